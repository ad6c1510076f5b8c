//! Turning a file into a verified generation: file and permission checks, a private shadow
//! copy (`shadow.rs`), `dlopen` with thread-exit callbacks redirected (`os::open_library`),
//! descriptor lookup and verification.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::abi::{
    FnEntry, HandleTrampoline, HostLink, HostLinks, ModuleDescriptor, RawTrampoline, SliceRef,
    Trampoline, ABI_VERSION, SYMBOL_STEM,
};
use crate::error::Error;
use crate::os;
use crate::shadow::ShadowCopy;
use crate::verify::{verify, Refusal};

/// A library loaded from a shadow copy; dropping it unloads the library and removes the copy.
pub(crate) struct LoadedLibrary {
    library: Option<libloading::Library>,
    thread_exit: Option<os::ThreadExit>,
    /// What the library's embedded copies of other hot modules call in the host; it reads
    /// them until it is unloaded, so they are freed only after a successful unload.
    links: Option<Box<Links>>,
    // Declared last: removed after the library is closed.
    copy: ShadowCopy,
}

impl LoadedLibrary {
    /// Closes the library; `Err` says why it is still mapped (reported as
    /// `Event::RetireBlocked`).
    pub(crate) fn unload_or_reason(mut self) -> Result<(), String> {
        self.close(true)
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
        let _ = os::dl_op(|| library.close());
        if os::still_mapped(self.copy.path()) {
            // Its code may still run (a thread-exit callback): keep what it reads.
            std::mem::forget(self.links.take());
        }
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

    /// The private copy the library was loaded from.
    pub(crate) fn copy_path(&self) -> &Path {
        self.copy.path()
    }
}

impl Drop for LoadedLibrary {
    fn drop(&mut self) {
        let _ = self.close(false);
    }
}

/// One of the host's hot modules, as a load links a library's embedded copy of it.
pub(crate) struct HostModule {
    pub(crate) name: &'static str,
    pub(crate) symbol: &'static str,
    pub(crate) descriptor: &'static ModuleDescriptor,
    /// Its bit in a view's reach (`Runtime::reach_bit`).
    pub(crate) reach_bit: u64,
    /// Its `Module`, opaque (`abi::HostLink::module`).
    pub(crate) module: *const (),
    /// Its runtime, opaque (`abi::HostLink::runtime`).
    pub(crate) runtime: *const (),
}

/// The host's side of `abi::HostLinks` for one library, owned by its `LoadedLibrary`.
struct Links {
    header: HostLinks,
    modules: Vec<HostLink>,
    /// What `modules`' `forward` and `handle` slices point into.
    _forwards: Vec<LinkSlices>,
}

/// One link's slices, in the library's function order (`HostLink::forward`, `handle`).
#[derive(Default)]
struct LinkSlices {
    forward: Box<[Option<RawTrampoline>]>,
    handle: Box<[Option<HandleTrampoline>]>,
}

impl Links {
    fn new(mut links: Vec<(HostLink, LinkSlices)>) -> Box<Links> {
        let mut forwards = Vec::with_capacity(links.len());
        let mut modules = Vec::with_capacity(links.len());
        for (mut link, slices) in links.drain(..) {
            // The boxed slices do not move when the box does.
            link.forward = SliceRef::borrowed(&slices.forward);
            link.handle = SliceRef::borrowed(&slices.handle);
            forwards.push(slices);
            modules.push(link);
        }
        let mut links = Box::new(Links {
            header: HostLinks {
                modules: SliceRef::borrowed(&[]),
                print_progress: crate::progress::print_progress,
                allow_insecure_paths: crate::security::allow_insecure_paths,
            },
            modules,
            _forwards: forwards,
        });
        links.header.modules = SliceRef::borrowed(&links.modules);
        links
    }
}

/// The other hot modules `library` embeds (a crate the loaded module's crate depends on) that
/// this binary has too, each verified against the host's and linked to it: the embedded copy's
/// calls then run the host's module. A copy that differs refuses the load.
fn link_embedded(
    module: &'static str,
    own_symbol: &str,
    path: &Path,
    library: &libloading::Library,
    host_modules: &[HostModule],
) -> Result<(Box<Links>, u64), Error> {
    let mut links = Vec::new();
    let mut reach = 0;
    // The host's modules, each looked up in the library by its symbol: a hash lookup per
    // module, no scan of the file.
    for host in host_modules {
        let symbol = host.symbol;
        if symbol == own_symbol {
            // The module the library is loaded as: its `module()` is the host's; its calls of
            // itself stay its own (no forwarding trampolines).
            links.push((
                HostLink {
                    module_path: host.descriptor.module_path,
                    forward: SliceRef::borrowed(&[]),
                    module: host.module,
                    runtime: host.runtime,
                    handles: host.descriptor.handles,
                    handle: SliceRef::borrowed(&[]),
                },
                LinkSlices::default(),
            ));
            continue;
        }
        let mut symbol_name = symbol.as_bytes().to_vec();
        symbol_name.push(0);
        // SAFETY: as for the module's own descriptor in `open_artifact`: only the address.
        let Ok(embedded) = (unsafe { library.get::<*const ModuleDescriptor>(&symbol_name) }) else {
            continue;
        };
        let embedded = *embedded;
        if embedded.is_null() {
            continue;
        }
        let host_descriptor = host.descriptor;
        // SAFETY: the symbol's address in `library`, loaded while this runs; `verify` reads the
        // header before trusting the rest.
        if let Err(refusal) = unsafe { verify(host_descriptor, embedded) } {
            let changes = match refusal {
                Refusal::Incompatible(changes) => changes,
                // Header, ABI or toolchain: the module's own descriptor passed those checks, and
                // the embedded one was built in the same compilation; anything else is foreign.
                _ => continue,
            };
            // Another hot module of the library's own crate is part of this build, not a
            // dependency it was compiled against: left unlinked (the library's copy), never a
            // reason to refuse the module being loaded.
            if crate_of(symbol) == crate_of(own_symbol) {
                continue;
            }
            return Err(Error::EmbeddedIncompatible {
                module,
                path: path.to_path_buf(),
                embedded: host.name,
                changes,
            });
        }
        // SAFETY: verified: a whole descriptor in `library`, loaded while this runs; the host's
        // is a static.
        let (theirs, ours) = unsafe {
            (
                (*embedded).functions.as_slice(),
                host_descriptor.functions.as_slice(),
            )
        };
        // The host's function of each of the library's, by name.
        let hosts: Vec<Option<&FnEntry>> = theirs
            .iter()
            .map(|f| {
                // SAFETY: strings of the verified descriptors.
                let name = unsafe { f.name.as_str() };
                ours.iter().find(|h| {
                    // SAFETY: a string of the host's own descriptor, a static.
                    unsafe { h.name.as_str() == name }
                })
            })
            .collect();
        let slices = LinkSlices {
            forward: hosts.iter().map(|h| h.and_then(|h| h.forward)).collect(),
            handle: hosts.iter().map(|h| h.map(|h| h.handle)).collect(),
        };
        reach |= host.reach_bit;
        links.push((
            HostLink {
                module_path: host_descriptor.module_path,
                forward: SliceRef::borrowed(&[]),
                module: host.module,
                runtime: host.runtime,
                handles: host_descriptor.handles,
                handle: SliceRef::borrowed(&[]),
            },
            slices,
        ));
    }
    Ok((Links::new(links), reach))
}

/// The crate of a descriptor symbol: `graph_top` for `__hotmod_v9__graph_top__a`.
fn crate_of(symbol: &str) -> Option<&str> {
    let rest = symbol.strip_prefix(SYMBOL_STEM)?;
    let (_version, name) = rest.split_once("__")?;
    Some(name.rsplit_once("__")?.0)
}

/// A library cargo built for another crate, which embeds this module only as a dependency's
/// copy: `libgraph_top.so` offered as `graph_base::b`. Told by the file name cargo gives a
/// cdylib (`lib<crate>.so`) naming the crate of another hot module the library has (read from
/// its symbol names only then: a file named after the module's own crate costs nothing); a
/// renamed file is not caught. Returns that other module, `graph_top::a`.
fn embedding_crate(own_symbol: &str, path: &Path, bytes: &[u8]) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let stem = file
        .strip_prefix(std::env::consts::DLL_PREFIX)?
        .strip_suffix(std::env::consts::DLL_SUFFIX)?;
    if crate_of(own_symbol) == Some(stem) {
        return None;
    }
    descriptor_symbols(bytes)
        .into_iter()
        .map(|(_, name)| name)
        .find(|name| {
            name.rsplit_once("::")
                .is_some_and(|(krate, _)| krate == stem)
        })
}

/// What a successful `open` yields: the library, its trampolines in host order, and its
/// `#[on_load]` function, not yet run.
pub(crate) struct Opened {
    pub(crate) library: LoadedLibrary,
    pub(crate) table: Vec<RawTrampoline>,
    pub(crate) on_load: Option<Trampoline>,
    /// The library's verified descriptor; valid while `library` is loaded.
    pub(crate) descriptor: *const ModuleDescriptor,
    /// The host modules its embedded copies were linked to (their reach bits): what a call into
    /// it can reach besides its own module.
    pub(crate) reach: u64,
}

/// A library file's bytes, read and checked to be a complete library for this platform.
pub(crate) struct Artifact {
    pub(crate) path: PathBuf,
    pub(crate) bytes: Vec<u8>,
}

impl Artifact {
    /// Whether `copy`, the private copy of a loaded generation, holds exactly these bytes: the
    /// watcher does not load a file identical to the newest generation again.
    pub(crate) fn same_as(&self, copy: &Path) -> bool {
        // Why not a digest of the bytes: this runs at every landing, in whatever profile the
        // user builds the host in, usually dev, where hotmod's own code is unoptimised. Hashing
        // a 12 MB debug library with SipHash there cost tens of milliseconds, most of a
        // reload. Here the per-byte work is the kernel's (`read`) and libc's (`[u8] == [u8]`
        // is `memcmp`), optimised in any profile; a length that differs costs one `fstat`, and
        // a new build usually differs within the first chunk.
        const CHUNK: usize = 1 << 20;
        let Ok(mut file) = std::fs::File::open(copy) else {
            // Gone (a forked child's inherited copy, a cleaned temp directory): load the file.
            return false;
        };
        if file.metadata().map(|m| m.len()).ok() != u64::try_from(self.bytes.len()).ok() {
            return false;
        }
        let mut buffer = vec![0u8; CHUNK.min(self.bytes.len())];
        for expected in self.bytes.chunks(CHUNK) {
            let read = &mut buffer[..expected.len()];
            if file.read_exact(read).is_err() || *read != *expected {
                return false;
            }
        }
        // Nothing after: the copy is ours and written once, but "same" means the whole file.
        matches!(file.read(&mut [0u8; 1]), Ok(0))
    }
}

/// The buffer of the last artifact dropped, reused by the next [`read`].
///
/// Why: a library's bytes are read into one allocation of its size. glibc serves an allocation
/// above its mmap threshold (which it raises up to 32 MiB) with fresh pages every time, so each
/// load of a larger library paid a page fault and a page clear per 4 KiB (a 40 MB debug library:
/// ~15 ms of a ~34 ms reload in a dev host). Kept here, the pages are touched once per process.
/// The cost is one buffer the size of the largest library read, kept for the process's life.
static SPARE: Mutex<Vec<u8>> = Mutex::new(Vec::new());

impl Drop for Artifact {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.bytes);
        // `try_lock`: never wait here; another load's buffer may take the place instead.
        if let Ok(mut spare) = SPARE.try_lock() {
            if spare.capacity() < bytes.capacity() {
                *spare = bytes;
            }
        }
    }
}

/// Reads the whole file at `path`, into [`SPARE`]'s buffer if there is one.
fn read_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    // `try_lock`, never wait: busy means another load has it, or, in a child forked while a
    // thread of the parent held it, never free again; either way a fresh buffer does.
    let mut bytes = SPARE
        .try_lock()
        .map(|mut spare| std::mem::take(&mut *spare))
        .unwrap_or_default();
    bytes.clear();
    // `read_to_end` reserves the file's length up front (as `std::fs::read` does) and reads with
    // plain `read` calls: no per-byte work in Rust.
    std::fs::File::open(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
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
    let resolved = crate::security::checked_path(module, path)?;
    let bytes = read_bytes(&resolved).map_err(|e| io("reading it", e))?;
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
    host_modules: &[HostModule],
    artifact: Artifact,
) -> Result<Opened, Error> {
    // Borrowed, not moved out: dropping `artifact` hands its buffer to the next read.
    let path_buf = artifact.path.clone();
    let bytes = &artifact.bytes[..];
    let path = path_buf.as_path();
    let io = |action, source| Error::Io {
        module,
        path: path_buf.clone(),
        action,
        source: Arc::new(source),
    };

    let copy = ShadowCopy::create(path, bytes).map_err(|(action, e)| io(action, e))?;
    // SAFETY: loading a library runs its initialisers. The file is a complete shared library
    // (checked above) the user asked to load; Rust cdylibs run no user code at load time unless
    // the module author wrote a static constructor, which is the author's code like any other.
    // `bytes` are what `copy` holds.
    let (opened, thread_exit) =
        unsafe { os::open_library(copy.path(), bytes) }.map_err(|e| Error::LoadFailed {
            module,
            path: path_buf.clone(),
            message: e.to_string(),
        })?;
    // From here on, dropping `library` unloads it and removes the copy, whatever goes wrong.
    let mut library = LoadedLibrary {
        library: None,
        thread_exit: Some(thread_exit),
        links: None,
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
        let found = descriptor_symbols(bytes);
        let other_abi = found.iter().map(|(v, _)| *v).find(|v| *v != ABI_VERSION);
        return Err(match other_abi {
            // Built against another hotmod: its symbol names another ABI version.
            Some(found) => Error::AbiVersion {
                module,
                path: path_buf,
                expected: ABI_VERSION,
                found,
            },
            None if found.is_empty() => Error::NoDescriptor {
                module,
                path: path_buf,
            },
            None => Error::OtherModule {
                module,
                path: path_buf,
                found: found.into_iter().map(|(_, name)| name).collect(),
            },
        });
    }

    // SAFETY: `descriptor` is the address of the exported symbol in `library`, which stays loaded
    // until `library` drops, after `verify` returns.
    match unsafe { verify(host, descriptor) } {
        Ok(table) => {
            // SAFETY: verified: a whole descriptor of this ABI version in `library`, loaded.
            let descriptor = unsafe { &*descriptor };
            if let Some(owner) = embedding_crate(symbol, path, bytes) {
                return Err(Error::OtherModule {
                    module,
                    path: path_buf,
                    found: vec![owner],
                });
            }
            let (links, reach) = link_embedded(module, symbol, path, library_ref, host_modules)?;
            // Before any other function of the library runs (see `enter_library`).
            // SAFETY: the verified descriptor's `enter` is `enter_library` of the library's
            // hotmod copy, and this is the first call into this freshly loaded copy; the links
            // live in `library`, which frees them only once the library is unloaded.
            unsafe { (descriptor.enter)(&links.header) };
            library.links = Some(links);
            Ok(Opened {
                library,
                table,
                on_load: descriptor.on_load,
                descriptor,
                reach,
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

/// Hot modules a library provides, read from its descriptor symbol names (NUL-terminated, as in
/// the string table): `greeter::hello` for `__hotmod_v4__greeter__hello`, with the ABI version
/// each names. Only for explaining a refusal.
fn descriptor_symbols(bytes: &[u8]) -> Vec<(u32, String)> {
    let stem = SYMBOL_STEM.as_bytes();
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let mut found: Vec<(u32, String)> = Vec::new();
    let mut at = 0;
    while let Some(pos) = bytes[at..].windows(stem.len()).position(|w| w == stem) {
        let begin = at + pos;
        let start = begin + stem.len();
        let end = bytes[start..]
            .iter()
            .position(|b| !word(b))
            .map_or(bytes.len(), |n| start + n);
        at = end.max(start);
        // A symbol name ends with its NUL in the string table, and begins after the previous
        // name's (Mach-O prefixes C names with `_`); the same characters inside string data
        // (a module's `ModuleInfo`) run on into the neighbouring strings, which the linker
        // packs without NULs: `greeter::hello__hotmod_v8__greeter__hellogreeter\0`.
        let after_nul = |i: usize| i == 0 || bytes[i - 1] == 0;
        let begins =
            after_nul(begin) || (begin > 0 && bytes[begin - 1] == b'_' && after_nul(begin - 1));
        if !begins || bytes.get(end) != Some(&0) {
            continue;
        }
        // `<version>__<crate>__<module>`
        let symbol = String::from_utf8_lossy(&bytes[start..end]);
        let Some((version, name)) = symbol.split_once("__") else {
            continue;
        };
        let Ok(version) = version.parse::<u32>() else {
            continue;
        };
        let name = name.replace("__", "::");
        if !name.is_empty() && !found.iter().any(|(_, n)| *n == name) {
            found.push((version, name));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::descriptor_symbols;

    /// A name is a whole string-table entry: not the same characters inside packed string
    /// data, which run on into the strings beside them.
    #[test]
    fn descriptor_names_are_whole_string_table_entries() {
        let bytes = b"safety.greeter::hello__hotmod_v8__greeter__hellogreeter\0\0\0cargo\
                      \0__hotmod_v8__greeter__hello\0";
        assert_eq!(
            descriptor_symbols(bytes),
            [(8, "greeter::hello".to_owned())]
        );
        // Mach-O's leading underscore, and a name at the very start.
        assert_eq!(
            descriptor_symbols(b"\0___hotmod_v7__a__b\0"),
            [(7, "a::b".to_owned())]
        );
        assert_eq!(
            descriptor_symbols(b"__hotmod_v8__c__d\0"),
            [(8, "c::d".to_owned())]
        );
    }
}
