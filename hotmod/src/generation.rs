//! One loaded version of a hot module.
//!
//! A `Generation` is created by the loader after verification and owned by its `Module`'s list
//! of live generations until it retires. Generation 0 is the code compiled into the host; it has
//! no library and lives in the `Module` static forever.
//!
//! Invariants:
//! - `table[i]` is the library's trampoline for the host's function `i`; it stays callable while
//!   `library` is loaded, which is until the `Generation` is dropped.
//! - A generation is dropped only by `Module::collect`, when it is not current, `pins` is 0 and
//!   no hazard slot holds it (see `pin.rs`).

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;

use crate::abi::{ModuleDescriptor, Trampoline};
use crate::loader::LoadedLibrary;
use crate::pin::CachePadded;

pub(crate) struct Generation {
    /// 0 for the built-in code, then 1, 2, … in load order.
    pub(crate) number: u64,
    /// Trampolines in the host's function order; empty for generation 0, whose calls go
    /// directly to the compiled-in functions.
    pub(crate) table: Vec<Trampoline>,
    /// Handles and nested plain calls holding this generation. The only field written after
    /// creation, so it has cache lines of its own: pinning never slows calls reading `table`.
    pub(crate) pins: CachePadded<AtomicUsize>,
    /// Digest of the library file's bytes (`None` for generation 0).
    pub(crate) digest: Option<u64>,
    /// The library's descriptor (null for generation 0, whose descriptor is the module's).
    pub(crate) descriptor: *const ModuleDescriptor,
    /// The file the library was loaded from (`None` for generation 0).
    pub(crate) origin: Option<PathBuf>,
    /// The library the table points into; `None` for generation 0. Declared last so it is
    /// unloaded after everything that points into it.
    pub(crate) library: Option<LoadedLibrary>,
}

impl Generation {
    /// Generation 0: the built-in code.
    pub(crate) const fn builtin() -> Self {
        Generation {
            number: 0,
            table: Vec::new(),
            pins: CachePadded(AtomicUsize::new(0)),
            digest: None,
            descriptor: std::ptr::null(),
            origin: None,
            library: None,
        }
    }
}
