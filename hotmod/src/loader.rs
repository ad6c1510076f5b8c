//! Turning a file into a verified generation: file and permission checks, a private shadow
//! copy (`shadow.rs`), `dlopen` with thread-exit callbacks redirected (`os::open_library`),
//! descriptor lookup and verification.

use std::path::Path;

use crate::abi::{ModuleDescriptor, Trampoline, ABI_VERSION, SYMBOL_PREFIX};
use crate::error::Error;
use crate::os;
use crate::shadow::ShadowCopy;
use crate::verify::{verify, Refusal};

/// A library loaded from a shadow copy; dropping it unloads the library and removes the copy.
pub(crate) struct LoadedLibrary {
    library: Option<libloading::Library>,
    thread_exit: Option<os::ThreadExit>,
    // Declared last: removed after the library is closed.
    copy: ShadowCopy,
}

impl LoadedLibrary {
    /// Closes the library and reports whether the platform really unmapped it.
    pub(crate) fn unload(self) -> bool {
        self.unload_or_reason().is_ok()
    }

    /// Closes the library; `Err` says why it is still mapped. (For the events API: a retired
    /// generation that could not be unloaded, and why.)
    pub(crate) fn unload_or_reason(mut self) -> Result<(), String> {
        self.close(true)
    }

    /// Why this library will stay mapped when its generation retires, if hotmod already knows
    /// (for example: its thread-exit callbacks could not be redirected).
    #[allow(dead_code)] // for the events API
    pub(crate) fn kept_reason(&self) -> Option<String> {
        self.thread_exit
            .as_ref()
            .and_then(os::ThreadExit::kept_reason)
    }

    fn close(&mut self, check: bool) -> Result<(), String> {
        let Some(library) = self.library.take() else {
            return Ok(());
        };
        if let Some(thread_exit) = &mut self.thread_exit {
            if let Err(reason) = thread_exit.release() {
                // Unmapping could leave a thread-exit callback pointing into it: keep it mapped
                // for the life of the process.
                std::mem::forget(library);
                return Err(reason);
            }
        }
        // A failed dlclose leaves the library mapped; still_mapped reports that below.
        let _ = library.close();
        if check && os::still_mapped(self.copy.path()) {
            return Err(
                "the dynamic loader kept it mapped: code hotmod could not redirect \
                        registered a thread-exit callback in it (glibc unloads it when the \
                        threads involved exit)"
                    .into(),
            );
        }
        Ok(())
    }
}

impl Drop for LoadedLibrary {
    fn drop(&mut self) {
        let _ = self.close(false);
    }
}

/// What a successful `open` yields: the library and its trampolines in host order.
pub(crate) struct Opened {
    pub(crate) library: LoadedLibrary,
    pub(crate) table: Vec<Trampoline>,
}

/// Loads `path` as a library of the hot module described by `host`, or says why not.
pub(crate) fn open(
    module: &'static str,
    symbol: &'static str,
    host: &'static ModuleDescriptor,
    path: &Path,
) -> Result<Opened, Error> {
    let path_buf = path.to_path_buf();
    let io = |action, source| Error::Io {
        module,
        path: path_buf.clone(),
        action,
        source,
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
    let resolved = crate::security::checked_path(module, path)?;
    let bytes = std::fs::read(&resolved).map_err(|e| io("reading it", e))?;
    os::check_library(&bytes).map_err(|reason| Error::NotALibrary {
        module,
        path: path_buf.clone(),
        reason,
    })?;

    let copy = ShadowCopy::create(path, &bytes).map_err(|(action, e)| io(action, e))?;
    // SAFETY: loading a library runs its initialisers. The file is a complete shared library
    // (checked above) the user asked to load; Rust cdylibs run no user code at load time unless
    // the module author wrote a static constructor, which is the author's code like any other.
    // `bytes` are what `copy` holds.
    let (opened, thread_exit) =
        unsafe { os::open_library(copy.path(), &bytes) }.map_err(|e| Error::LoadFailed {
            module,
            path: path_buf.clone(),
            message: e.to_string(),
        })?;
    // From here on, dropping `library` unloads it and removes the copy, whatever goes wrong.
    let mut library = LoadedLibrary {
        library: None,
        thread_exit: Some(thread_exit),
        copy,
    };
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
        Ok(table) => Ok(Opened { library, table }),
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
