//! Keeping a generation mapped while something uses it.
//!
//! Two kinds of users pin a generation:
//!
//! - **Handles** ([`PinnedGeneration`]) count themselves in `Generation::pins`.
//!   `PinnedGeneration::current` increments the count of the generation it read from
//!   `Runtime::current`, then re-reads `current`; if the
//!   generation is no longer current it backs off and retries. The collector swaps `current`
//!   before it reads `pins`, and all four accesses are `SeqCst`, so either the collector sees the
//!   increment or the handle sees the swap.
//!   Generation 0 is never unloaded: a handle that finds it current only raises its count (no
//!   hazard slot, no fence; before any library is prepared those fences would be real ones).
//!
//! - **Plain calls** must not write shared memory (a refcount would put every calling core on
//!   one cache line), so each thread owns a *hazard slot*: the call stores the generation in its
//!   slot, fences, and re-reads `current`; if it changed, it retries with the new one. The
//!   collector, after swapping `current`, runs a process-wide barrier (`membarrier(2)` where
//!   available) and then scans all slots: every reader either published its slot before the
//!   barrier (the scan sees it) or re-reads `current` after it (and sees the swap). With
//!   `membarrier` the reader's fence is only a compiler fence.
//!
//!   Each thread has two call slots (`hazard.rs`): the fast `CALL_SLOT` in its own TLS block,
//!   and the `call` field of its heap `HazardSlot`. The fast path (`call`, inlined into every
//!   generated wrapper) is: load `current`; load `CALL_SLOT` (null = registered and free); store
//!   the generation there; compiler fence; re-load `current`; call; store null; re-load
//!   `current`. Three loads of read-mostly memory and two stores to memory no other thread
//!   writes. Anything else — the first call on a thread, a process without expedited
//!   membarrier (the slot then never leaves `UNREGISTERED`), a call nested inside module code
//!   while the fast slot is held, a reload racing the call — goes to the out-of-line slow path,
//!   which uses the heap slot's `call` field with a real fence where needed, and pins by count
//!   (like a handle) when that is taken too.
//!
//! After a plain call or the last handle of a generation that is no longer current ends, the
//! runtime is asked to collect, so a generation retires as soon as its last user is gone.
//!
//! Generation 0 is never unloaded, so calls that find it current take no pin at all.

use std::ptr;
use std::sync::atomic::{compiler_fence, AtomicPtr, Ordering};

use crate::abi::RawTrampoline;
use crate::generation::Generation;
use crate::hazard::{fast_call_slot, thread_slot};
use crate::invocation::Invoke;
use crate::os;
use crate::runtime::{CountPin, Runtime};
use crate::transaction;

/// A pinned generation of one hot module: what a generated `Handle` wraps.
pub struct PinnedGeneration {
    pin: CountPin,
    /// The generation's trampoline table (empty for generation 0), copied here: it never
    /// changes while the generation lives, and a copy inside the handle lets the compiler keep
    /// it in registers across calls through the same handle.
    table: *const RawTrampoline,
    len: usize,
}

// SAFETY: a `PinnedGeneration` reads its generation's table (immutable while the generation
// lives, which its `CountPin` ensures) and otherwise only what `CountPin` (Send + Sync) reads.
unsafe impl Send for PinnedGeneration {}
// SAFETY: as above; `&PinnedGeneration` allows only reads and calls through immutable
// trampolines.
unsafe impl Sync for PinnedGeneration {}

impl PinnedGeneration {
    /// Pins the runtime's current generation.
    pub(crate) fn pin(runtime: &'static Runtime) -> PinnedGeneration {
        runtime.first_use();
        let pin = pin_current(runtime);
        let table = &pin.get().table;
        PinnedGeneration {
            table: table.as_ptr(),
            len: table.len(),
            pin,
        }
    }

    /// The pinned generation's number.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.pin.get().number
    }

    /// Whether the pinned generation is still the module's current one.
    #[inline]
    pub fn is_current(&self) -> bool {
        ptr::eq(self.pin.runtime().current_ptr(), self.pin.as_ptr())
    }

    /// Calls function `index` of the pinned generation; `builtin` is the compiled-in function,
    /// used when the pinned generation is 0.
    /// `I` calls the function's trampoline (its kind, see `invocation.rs`).
    #[inline]
    pub fn call<A, R, I: Invoke<A, R>, F: FnOnce(A) -> R>(
        &self,
        index: usize,
        args: A,
        builtin: F,
    ) -> R {
        // Generation 0 has an empty table; a loaded generation has one verified entry per host
        // function, so the index is out of range exactly when the compiled-in code must run.
        if index >= self.len {
            return builtin(args);
        }
        // SAFETY: `index < len`, and `table`/`len` describe the pinned generation's table, which
        // stays allocated and unchanged while the generation is pinned.
        let trampoline = unsafe { *self.table.add(index) };
        // SAFETY: `trampoline` is the verified trampoline of the host's function `index`, of the
        // kind `I` calls (verified too), and the library stays loaded while `self` exists.
        let returned = unsafe { I::invoke(trampoline, args) };
        let generation = self.pin.get();
        if generation.probation.active.load(Ordering::Relaxed) {
            observe(self.pin.runtime(), generation, !returned.panic.is_null());
        }
        // SAFETY: `returned` came from the call.
        unsafe { returned.finish() }
    }
}

impl Clone for PinnedGeneration {
    fn clone(&self) -> Self {
        PinnedGeneration {
            pin: self.pin.clone(),
            table: self.table,
            len: self.len,
        }
    }
}

impl std::fmt::Debug for PinnedGeneration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("module", &self.pin.runtime().name())
            .field("generation", &self.generation())
            .field("is_current", &self.is_current())
            .finish()
    }
}

/// Pins the current generation by count.
fn pin_current(runtime: &'static Runtime) -> CountPin {
    // Generation 0 is never unloaded: while it is current, its count is all a pin needs, with
    // no hazard slot and no fence. (Until a library is prepared the process has not registered
    // the expedited barrier, so the slot protocol's two fences would be real ones.)
    let current = runtime.current_ptr();
    if runtime.is_builtin(current) {
        // SAFETY: generation 0 lives in the runtime, a static, and is never freed.
        unsafe { &*current }.pins.fetch_add(1, Ordering::SeqCst);
        // SAFETY: we raised the count this pin releases.
        return unsafe { CountPin::adopt(runtime, current) };
    }
    let Some(slot) = thread_slot() else {
        // Thread teardown: no slot. The collector runs under the registry lock, so pinning
        // under it is safe too.
        return runtime.pin_locked();
    };
    // The `pin` slot is only ever held for this increment, so it is never in use here.
    let generation = publish(runtime, &slot.pin);
    // SAFETY: published and validated, so the collector cannot free it; once the count is up
    // (SeqCst, before the Release that clears the slot) the count keeps it.
    unsafe { &*generation }.pins.fetch_add(1, Ordering::SeqCst);
    release(runtime, &slot.pin, generation);
    // SAFETY: we raised the count this pin releases.
    unsafe { CountPin::adopt(runtime, generation) }
}

/// Calls function `index` of the runtime's current generation; `builtin` runs the compiled-in
/// function when generation 0 is current.
///
/// The fast path is inlined into every generated wrapper: one load of `current`, one
/// thread-local load, a store to this thread's slot, a compiler fence, a re-check of `current`,
/// the call, a store clearing the slot and a last check of `current`. Everything else (first call
/// on a thread, no expedited process barrier, nested calls, a reload racing the call, a panic in
/// the module) is out of line.
#[inline(always)]
pub(crate) fn call<A, R, I: Invoke<A, R>, F: FnOnce(A) -> R>(
    runtime: &'static Runtime,
    index: usize,
    args: A,
    builtin: F,
) -> R {
    let current = runtime.current_loaded();
    if current.is_null() {
        if let Some(forward) = runtime.forwarded(index) {
            return call_host::<A, R, I>(forward, args);
        }
        runtime.first_use();
        return builtin(args);
    }
    // SAFETY: `CALL_SLOT` is a thread-local of this thread, which outlives this call.
    let slot = unsafe { &*fast_call_slot() };
    // Relaxed: only this thread writes its call slot. Null means registered and free; anything
    // else is `UNREGISTERED` (first call on this thread, no expedited barrier, thread teardown)
    // or the generation of an outer plain call still running on this thread (a nested call).
    if !slot.load(Ordering::Relaxed).is_null() {
        return call_slow::<A, R, I, F>(runtime, index, args, builtin);
    }
    slot.store(current.cast_mut(), Ordering::Relaxed);
    // The slot is only registered once the process is registered for expedited membarrier, so
    // the reader half of the barrier pair is a compiler fence (see `os::reader_fence`).
    compiler_fence(Ordering::SeqCst);
    if !ptr::eq(runtime.current_loaded(), current) {
        // A reload swapped `current` meanwhile: the published generation may already be gone.
        // A collector may also have seen it in our slot and skipped it: ask again.
        slot.store(ptr::null_mut(), Ordering::Release);
        retired_while_calling(runtime);
        return call_slow::<A, R, I, F>(runtime, index, args, builtin);
    }
    // SAFETY: published and validated: the collector will not free it until the slot is cleared.
    let generation = unsafe { &*current };
    let Some(&trampoline) = generation.table.get(index) else {
        // Unreachable for a loaded generation (the loader verified one entry per host function);
        // fall back to the compiled-in code rather than trust a bad index.
        slot.store(ptr::null_mut(), Ordering::Release);
        return builtin(args);
    };
    // SAFETY: `trampoline` is the verified trampoline of the host's function `index`, whose
    // argument and return types are `A` and `R` and whose kind is the one `I` calls; the library
    // stays loaded until the slot clears.
    let returned = unsafe { I::invoke(trampoline, args) };
    // A rollback policy watches a new generation's first calls (one relaxed load otherwise).
    if generation.probation.active.load(Ordering::Relaxed) {
        observe(runtime, generation, !returned.panic.is_null());
    }
    // Release: the call's reads of the generation happen before the collector can see the slot
    // empty. The compiler fence keeps the re-check below after the store, which is what makes
    // either the collector see the slot empty or this thread see the swap (and collect).
    slot.store(ptr::null_mut(), Ordering::Release);
    compiler_fence(Ordering::SeqCst);
    if !ptr::eq(runtime.current_loaded(), current) {
        retired_while_calling(runtime);
    }
    // SAFETY: `returned` came from the call.
    unsafe { returned.finish() }
}

/// Inside a loaded library, a call of another hot module the library embeds: made in the
/// host's module of the same path, through its forwarding trampoline (a plain call there).
#[inline(always)]
fn call_host<A, R, I: Invoke<A, R>>(forward: RawTrampoline, args: A) -> R {
    // SAFETY: the host verified this library's copy of the module against its own before it
    // linked them: the function of this index has the same name, argument and return types and
    // kind in both, and the forwarding trampoline has the kind `I` calls. The host's module
    // outlives the library.
    let returned = unsafe { I::invoke(forward, args) };
    // SAFETY: `returned` came from the call.
    unsafe { returned.finish() }
}

/// Counts a call of a generation under probation (see `Module::set_rollback`); the caller still
/// holds the generation.
#[cold]
#[inline(never)]
fn observe(runtime: &'static Runtime, generation: &Generation, panicked: bool) {
    transaction::observe(runtime, generation, panicked);
}

/// A generation replaced while a plain call ran in it: the collector may have skipped it on our
/// account, so ask again.
#[cold]
#[inline(never)]
fn retired_while_calling(runtime: &'static Runtime) {
    runtime.collect();
}

/// The general plain call: first call on this thread, a nested call, a reload racing the call.
#[cold]
#[inline(never)]
fn call_slow<A, R, I: Invoke<A, R>, F: FnOnce(A) -> R>(
    runtime: &'static Runtime,
    index: usize,
    args: A,
    builtin: F,
) -> R {
    // The heap slot's `call` field: free unless this is a call nested two deep.
    let slot = match thread_slot() {
        Some(slot) if slot.call.load(Ordering::Relaxed).is_null() => slot,
        // Nested deeper (both call slots hold outer calls' generations) or thread teardown.
        _ => return PinnedGeneration::pin(runtime).call::<A, R, I, F>(index, args, builtin),
    };
    let generation = publish(runtime, &slot.call);
    // SAFETY: published and validated: alive and loaded until `release`.
    let loaded = unsafe { &*generation };
    let Some(&trampoline) = loaded.table.get(index) else {
        // Generation 0 (empty table) became current again.
        release(runtime, &slot.call, generation);
        return builtin(args);
    };
    // SAFETY: `index` is the host's index of a function the loader verified with these
    // argument and return types and the kind `I` calls; the library stays loaded until `release`.
    let returned = unsafe { I::invoke(trampoline, args) };
    if loaded.probation.active.load(Ordering::Relaxed) {
        observe(runtime, loaded, !returned.panic.is_null());
    }
    release(runtime, &slot.call, generation);
    // SAFETY: `returned` came from the call.
    unsafe { returned.finish() }
}

/// Publishes the runtime's current generation in `slot` and returns it once it is validated:
/// from then until `release`, the collector will not unload it.
#[inline]
fn publish(runtime: &'static Runtime, slot: &AtomicPtr<Generation>) -> *const Generation {
    let mut generation = runtime.current_ptr();
    let mut retried = false;
    loop {
        slot.store(generation.cast_mut(), Ordering::Relaxed);
        os::reader_fence();
        let now = runtime.current_ptr();
        if ptr::eq(now, generation) {
            if retried {
                // A collector may have seen the generation we published first (no longer
                // current) and skipped it on our account; we overwrote it without a `release`,
                // so ask again, or it stays loaded until the next reload.
                runtime.collect();
            }
            return generation;
        }
        generation = now;
        retried = true;
    }
}

/// Clears `slot`; if `generation` stopped being current meanwhile, the collector may have skipped
/// it on our account, so ask it again.
#[inline]
fn release(runtime: &'static Runtime, slot: &AtomicPtr<Generation>, generation: *const Generation) {
    slot.store(ptr::null_mut(), Ordering::Release);
    // Either the collector sees the slot empty or we see the swap: the same pairing as in
    // `publish` (without it a replaced generation could linger until the next collect).
    os::reader_fence();
    if !ptr::eq(runtime.current_ptr(), generation) {
        runtime.collect();
    }
}
