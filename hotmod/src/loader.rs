//! Turning a file into a verified generation: file checks, a private shadow copy, `dlopen`,
//! descriptor lookup and verification.
//!
//! Each generation is loaded from its own copy: `dlopen` of a path that is already loaded returns
//! the old image, even after the file was replaced. Copies live in one private (0700) directory
//! per process, under unpredictable names, and are removed when their generation retires or when
//! a load is refused.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::abi::{ModuleDescriptor, Trampoline, ABI_VERSION, SYMBOL_PREFIX};
use crate::error::Error;
use crate::os;
use crate::verify::{verify, Refusal};

/// A library loaded from a shadow copy; dropping it unloads the library and removes the copy.
pub(crate) struct LoadedLibrary {
    library: Option<libloading::Library>,
    copy: PathBuf,
}

impl LoadedLibrary {
    /// Closes the library and reports whether the platform really unmapped it.
    pub(crate) fn unload(mut self) -> bool {
        if let Some(library) = self.library.take() {
            // A failed dlclose leaves the library mapped; still_mapped reports that below.
            let _ = library.close();
        }
        let mapped = os::still_mapped(&self.copy);
        // Drop removes the copy.
        drop(self);
        !mapped
    }
}

impl Drop for LoadedLibrary {
    fn drop(&mut self) {
        drop(self.library.take());
        let _ = std::fs::remove_file(&self.copy);
    }
}

/// What a successful `open` yields: the library, its trampolines in host order, and its
/// `#[on_load]` function, not yet run.
pub(crate) struct Opened {
    pub(crate) library: LoadedLibrary,
    pub(crate) table: Vec<Trampoline>,
    pub(crate) on_load: Option<Trampoline>,
    /// The library's verified descriptor; valid while `library` is loaded.
    pub(crate) descriptor: *const ModuleDescriptor,
}

/// A library file's bytes, read and checked to be a complete library for this platform.
pub(crate) struct Artifact {
    pub(crate) path: PathBuf,
    pub(crate) bytes: Vec<u8>,
}

impl Artifact {
    /// A digest of the bytes, to tell an unchanged file from a new build.
    pub(crate) fn digest(&self) -> u64 {
        // Fixed keys: the digest of the same bytes is the same across calls.
        let mut hasher = std::hash::DefaultHasher::new();
        hasher.write(&self.bytes);
        hasher.finish()
    }
}

/// Reads `path` and checks it is a complete shared library (not a directory, not a file that
/// is still being written).
pub(crate) fn read(module: &'static str, path: &Path) -> Result<Artifact, Error> {
    let path_buf = path.to_path_buf();
    let io = |action, source| Error::Io {
        module,
        path: path_buf.clone(),
        action,
        source: Arc::new(source),
    };
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotFound {
                module,
                path: path_buf.clone(),
            })
        }
        Err(e) => return Err(io("reading its metadata", e)),
    };
    if !metadata.is_file() {
        return Err(Error::NotAFile {
            module,
            path: path_buf.clone(),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| io("reading it", e))?;
    os::check_library(&bytes).map_err(|reason| Error::NotALibrary {
        module,
        path: path_buf.clone(),
        reason,
    })?;
    Ok(Artifact {
        path: path_buf,
        bytes,
    })
}

/// Loads a checked artifact from a private copy and verifies its descriptor against `host`.
pub(crate) fn open_artifact(
    module: &'static str,
    symbol: &'static str,
    host: &'static ModuleDescriptor,
    artifact: Artifact,
) -> Result<Opened, Error> {
    let Artifact {
        path: path_buf,
        bytes,
    } = artifact;
    let path = path_buf.as_path();
    let io = |action, source| Error::Io {
        module,
        path: path_buf.clone(),
        action,
        source: Arc::new(source),
    };

    let copy = shadow_path(path).map_err(|e| io("creating hotmod's private directory", e))?;
    std::fs::write(&copy, &bytes).map_err(|e| io("writing its private copy", e))?;
    // From here on, dropping `library` removes the copy, whatever goes wrong.
    let mut library = LoadedLibrary {
        library: None,
        copy,
    };

    // SAFETY: loading a library runs its initialisers. The file is a complete shared library
    // (checked above) the user asked to load; Rust cdylibs run no user code at load time unless
    // the module author wrote a static constructor, which is the author's code like any other.
    let opened =
        unsafe { libloading::Library::new(&library.copy) }.map_err(|e| Error::LoadFailed {
            module,
            path: path_buf.clone(),
            message: e.to_string(),
        })?;
    let library_ref = library.library.insert(opened);

    let mut symbol_name = symbol.as_bytes().to_vec();
    symbol_name.push(0);
    // SAFETY: the symbol is a static `ModuleDescriptor` if the library was built by hotmod; we
    // only take its address here, and `verify` reads the header before trusting the rest.
    let descriptor = match unsafe { library_ref.get::<*const ModuleDescriptor>(&symbol_name) } {
        Ok(sym) => *sym,
        Err(_) => std::ptr::null(),
    };
    if descriptor.is_null() {
        let found = descriptor_symbols(&bytes);
        return Err(if found.is_empty() {
            Error::NoDescriptor {
                module,
                path: path_buf,
            }
        } else {
            Error::OtherModule {
                module,
                path: path_buf,
                found,
            }
        });
    }

    // SAFETY: `descriptor` is the address of the exported symbol in `library`, which stays loaded
    // until `library` drops, after `verify` returns.
    match unsafe { verify(host, descriptor) } {
        Ok(table) => {
            // SAFETY: verified: a whole descriptor of this ABI version in `library`, loaded.
            let descriptor = unsafe { &*descriptor };
            // Before any of the library's functions runs: its own module statics must know
            // they live in a loaded generation (they never start watchers or builds).
            descriptor.hosted.store(true, Ordering::Relaxed);
            Ok(Opened {
                library,
                table,
                on_load: descriptor.on_load,
                descriptor,
            })
        }
        Err(refusal) => Err(match refusal {
            Refusal::NotADescriptor => Error::NoDescriptor {
                module,
                path: path_buf,
            },
            Refusal::AbiVersion { found } => Error::AbiVersion {
                module,
                path: path_buf,
                expected: ABI_VERSION,
                found,
            },
            Refusal::OtherModule { found } => Error::OtherModule {
                module,
                path: path_buf,
                found: vec![found],
            },
            Refusal::Toolchain { expected, found } => Error::Toolchain {
                module,
                path: path_buf,
                expected,
                found,
            },
            Refusal::Incompatible(changes) => Error::Incompatible {
                module,
                path: path_buf,
                changes,
            },
        }),
    }
}

/// Hot modules a library provides, read from its symbol names: `greeter::hello` for
/// `__hotmod_v1__greeter__hello`.
fn descriptor_symbols(bytes: &[u8]) -> Vec<String> {
    let prefix = SYMBOL_PREFIX.as_bytes();
    let mut found: Vec<String> = Vec::new();
    let mut at = 0;
    while let Some(pos) = bytes[at..].windows(prefix.len()).position(|w| w == prefix) {
        let start = at + pos + prefix.len();
        let end = bytes[start..]
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
            .map_or(bytes.len(), |n| start + n);
        let name = String::from_utf8_lossy(&bytes[start..end]).replace("__", "::");
        if !name.is_empty() && !found.contains(&name) {
            found.push(name);
        }
        at = end;
    }
    found
}

/// A fresh, unpredictable path in the process's private directory for a copy of `source`.
fn shadow_path(source: &Path) -> std::io::Result<PathBuf> {
    static DIR: Mutex<Option<PathBuf>> = Mutex::new(None);
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = {
        let mut dir = DIR.lock().unwrap_or_else(PoisonError::into_inner);
        match &*dir {
            Some(dir) => dir.clone(),
            None => {
                let path = std::env::temp_dir().join(format!(
                    "hotmod-{}-{:016x}",
                    std::process::id(),
                    random()
                ));
                os::private_dir(&path)?;
                dir.insert(path).clone()
            }
        }
    };
    let stem = source
        .file_stem()
        .map_or_else(|| "module".into(), |s| s.to_string_lossy().into_owned());
    let extension = source
        .extension()
        .map_or_else(String::new, |e| format!(".{}", e.to_string_lossy()));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(dir.join(format!("{stem}.{n}.{:016x}{extension}", random())))
}

/// 64 unpredictable bits from the standard library's per-process random hash keys.
fn random() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}
