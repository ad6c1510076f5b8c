//! One loaded version of a hot module.
//!
//! A `Generation` is created by the loader after verification and owned by its runtime's list
//! of live generations until it retires. Generation 0 is the code compiled into the host; it has
//! no library and lives in the module's static forever.
//!
//! Invariants:
//! - `table[i]` is the library's trampoline for the host's function `i`; it stays callable while
//!   `library` is loaded, which is until the `Generation` is dropped.
//! - A generation is dropped only by `Runtime::collect`, when it is not current, `pins` is 0 and
//!   no hazard slot holds it (see `pin.rs`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering};

use crate::abi::{ModuleDescriptor, RawTrampoline};
use crate::loader::LoadedLibrary;
use crate::rollback::Rollback;

pub(crate) struct Generation {
    /// 0 for the built-in code, then 1, 2, … in load order.
    pub(crate) number: u64,
    /// Trampolines in the host's function order; empty for generation 0, whose calls go
    /// directly to the compiled-in functions.
    pub(crate) table: Vec<RawTrampoline>,
    /// Whether a call into it can reach other modules (`reach` is more than its own module's
    /// bit): its calls open views (`pin.rs`). Read by every plain call, beside `table`.
    pub(crate) imports: bool,
    /// Handles and nested plain calls holding this generation. The only field written after
    /// creation, so it has cache lines of its own: pinning never slows calls reading `table`.
    pub(crate) pins: CachePadded<AtomicUsize>,
    /// The library's descriptor (null for generation 0, whose descriptor is the module's).
    pub(crate) descriptor: *const ModuleDescriptor,
    /// The file the library was loaded from (`None` for generation 0).
    pub(crate) origin: Option<PathBuf>,
    /// Rollback bookkeeping while the generation is new (see `Probation`).
    pub(crate) probation: Probation,
    /// The modules a call into this generation can reach (`Runtime::reach_bit`s): its own and
    /// the host modules its library's embedded copies were linked to, its hot imports. All for
    /// generation 0, whose imports nothing lists.
    pub(crate) reach: u64,
    /// The library the table points into; `None` for generation 0. Declared last so it is
    /// unloaded after everything that points into it.
    pub(crate) library: Option<LoadedLibrary>,
}

impl Generation {
    /// The library's verified descriptor; `None` for generation 0 (whose descriptor is the
    /// host's own).
    pub(crate) fn descriptor(&self) -> Option<&ModuleDescriptor> {
        // SAFETY: a loaded generation's descriptor was verified when it was loaded and lives in
        // `library`, which stays loaded for as long as `self` exists.
        unsafe { self.descriptor.as_ref() }
    }

    /// The private copy its library was loaded from, which holds the bytes that were checked
    /// and loaded (`None` for generation 0).
    pub(crate) fn copy_path(&self) -> Option<&std::path::Path> {
        self.library.as_ref().map(LoadedLibrary::copy_path)
    }

    /// Generation 0: the built-in code.
    pub(crate) const fn builtin() -> Self {
        Generation {
            number: 0,
            table: Vec::new(),
            imports: true,
            pins: CachePadded(AtomicUsize::new(0)),
            descriptor: std::ptr::null(),
            origin: None,
            probation: Probation::new(),
            reach: u64::MAX,
            library: None,
        }
    }
}

/// A new generation's first calls, counted while a rollback policy watches it.
///
/// `active` is the only thing the call path reads when no policy is set: one relaxed load of a
/// field next to the table it already reads. The other fields are written only while `active`.
pub(crate) struct Probation {
    pub(crate) active: AtomicBool,
    panics_in_a_row: AtomicU32,
    within_first_calls: AtomicU32,
    calls: AtomicU32,
    streak: AtomicU32,
    /// The generation to go back to; pinned (count) while the probation lasts.
    pub(crate) fallback: AtomicPtr<Generation>,
}

/// What a watched call means for its generation.
pub(crate) enum Verdict {
    /// Keep watching.
    Watching,
    /// Enough calls without a panic streak: trusted from now on.
    Passed,
    /// A panic streak: go back to the fallback.
    RollBack { streak: u32, calls: u32 },
}

impl Probation {
    pub(crate) const fn new() -> Probation {
        Probation {
            active: AtomicBool::new(false),
            panics_in_a_row: AtomicU32::new(0),
            within_first_calls: AtomicU32::new(0),
            calls: AtomicU32::new(0),
            streak: AtomicU32::new(0),
            fallback: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// Starts watching (at the swap, under the module lock, before the generation is
    /// published as current: the SeqCst store of `current` orders these writes before any
    /// call that can see the generation).
    pub(crate) fn start(&self, policy: Rollback, fallback: *const Generation) {
        self.panics_in_a_row
            .store(policy.panics_in_a_row.max(1), Ordering::Relaxed);
        self.within_first_calls
            .store(policy.within_first_calls, Ordering::Relaxed);
        self.fallback.store(fallback.cast_mut(), Ordering::Relaxed);
        self.active.store(true, Ordering::Relaxed);
    }

    /// Stops watching; returns the fallback whose count the caller must release (`None` if the
    /// probation was not active or already ended).
    pub(crate) fn end(&self) -> Option<*const Generation> {
        if !self.active.swap(false, Ordering::AcqRel) {
            return None;
        }
        let fallback = self.fallback.swap(std::ptr::null_mut(), Ordering::AcqRel);
        (!fallback.is_null()).then_some(fallback.cast_const())
    }

    /// Counts one call.
    pub(crate) fn observe(&self, panicked: bool) -> Verdict {
        let calls = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let streak = if panicked {
            self.streak.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.streak.store(0, Ordering::Relaxed);
            0
        };
        if streak >= self.panics_in_a_row.load(Ordering::Relaxed) {
            Verdict::RollBack { streak, calls }
        } else if calls >= self.within_first_calls.load(Ordering::Relaxed) {
            Verdict::Passed
        } else {
            Verdict::Watching
        }
    }
}

/// A value alone in its cache lines (two: adjacent-line prefetch pairs them), for data that some
/// threads write while others read their neighbours on every call.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        &self.0
    }
}
