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
//!   one cache line), so each thread owns a *hazard slot*, and the outermost call into hot code
//!   on a thread announces a **view** there: the epoch it began at (`snapshot::epoch`, the swap
//!   counter, which every change of any module's current generation advances). The call stores
//!   the view in its slot, fences, and re-reads the counter; if it moved, it announces again.
//!   Every call nested in it — the module's code calling another hot module (directly in the
//!   host, or forwarded from a library's embedded copy), or its own through host code — runs
//!   the generation that was current at that epoch: one call sees one generation of every
//!   module it reaches, for its whole duration, whatever reloads happen meanwhile.
//!
//!   The collector, after a swap, runs a process-wide barrier (`membarrier(2)` where
//!   available) and then scans all slots: a view keeps each module's generation at its epoch
//!   loaded, for the modules it *reaches* (`VIEW_REACH`: the outer call's generation's own
//!   module and the host modules its library's embedded copies were linked to; all modules
//!   for generation 0, whose imports nothing lists). Every reader either announced before the
//!   barrier (the scan sees it) or re-reads the counter after it (and sees the swap). With
//!   `membarrier` the reader's fence is only a compiler fence.
//!
//!   A call in a view finds its generation by reading `current`, then `Runtime::since` (the
//!   epoch `current` last changed at, stored before it): if that is at most the view's epoch,
//!   `current` is the generation; else the module changed since, and the runtime's history
//!   says which generation was current then (`call_at_epoch`, out of line).
//!
//!   A library's embedded copy of another hot module calls the host's forwarding trampoline of
//!   the function (`FnEntry::forward`), in the host and in the view of the call into the
//!   library. When that view sees a loaded generation of the module (`forward_target`: the
//!   reads of a nested call, above, with nothing to announce), the trampoline hands the call
//!   on to that generation's trampoline in tail position, with its own arguments: the
//!   library's code reaches the generation through an indirect call and an indirect jump, no
//!   frame of the host's, and gets its result and panic message as they are. Anything else (generation 0,
//!   no view, outside its reach, changed since its epoch, under probation) makes the plain call
//!   through the module's wrapper. The trampoline reads the thread's slot at its static offset
//!   from the thread pointer (`hazard::static_slot`), which exists where hotmod is part of the
//!   main program; elsewhere (a host that is itself a `dlopen`ed library) every forwarded call
//!   takes the plain call.
//!
//!   A loaded generation whose library imports no other module (`Generation::reach` is its
//!   own module's bit) needs no view: the outermost call into it publishes the generation
//!   itself in the slot, as before views existed — store, compiler fence, re-read `current` —
//!   and a call of the same module nested in it through host code runs that generation. A
//!   generation with imports, or generation 0, opens a view.
//!
//!   The view's fast path (`call`, inlined into every generated wrapper) is, for the outermost
//!   call: load `current`; load `CALL_SLOT` (null = registered and free); load the counter; store
//!   the reach and the view; compiler fence; load `current`; re-load the counter (unchanged:
//!   that `current` is the generation at the view's epoch); store the generation's reach;
//!   call; store null; re-load the counter. For a nested call: load `current`, the slot, the
//!   reach, `since`; call. Anything else — the first call on a thread, a process without
//!   expedited membarrier (the slot then never leaves `UNREGISTERED`: the heap slot's `call`
//!   field holds a generation, with a real fence, and no views), thread teardown — goes to the
//!   out-of-line slow path, which pins by count when the heap slot is taken too.
//!
//! After a plain call or the last handle of a generation that is no longer current ends, the
//! runtime is asked to collect, so a generation retires as soon as its last user is gone.
//!
//! Generation 0 is never unloaded, so calls that find it current take no pin at all.

use std::ptr;
use std::sync::atomic::{compiler_fence, AtomicPtr, Ordering};

use crate::abi::{HandleOps, HandleTrampoline, HeldPin, RawTrampoline, HOSTED};
use crate::generation::Generation;
use crate::hazard::{
    self, fast_call_slot, thread_slot, view_epoch, view_reach, view_word, View, UNREGISTERED,
};
use crate::invocation::{self, Invoke};
use crate::os;
use crate::runtime::{CountPin, Runtime};
use crate::snapshot;
use crate::transaction;

/// A pinned generation of one hot module: what a generated `Handle` wraps.
pub struct PinnedGeneration {
    pin: CountPin,
    /// The generation's trampoline table (empty for generation 0), copied here: it never
    /// changes while the generation lives, and a copy inside the handle lets the compiler keep
    /// it in registers across calls through the same handle.
    table: *const RawTrampoline,
    len: usize,
    /// The view a handle pins when its generation can reach other modules: its calls run
    /// in it (see `PinnedGeneration::handle`). `None` for a generation without imports, and
    /// for the pin a plain call returning `Pinned` takes.
    view: Option<Box<ViewPin>>,
    /// Inside a loaded library, a handle of a module the host links: the host's handle, which
    /// pins the host's generation and makes every call (`table` is then empty).
    host: Option<Box<HostHandle>>,
}

// SAFETY: a `PinnedGeneration` reads its generation's table (immutable while the generation
// lives, which its `CountPin` ensures) and otherwise only what `CountPin` (Send + Sync) reads.
unsafe impl Send for PinnedGeneration {}
// SAFETY: as above; `&PinnedGeneration` allows only reads and calls through immutable
// trampolines.
unsafe impl Sync for PinnedGeneration {}

impl PinnedGeneration {
    /// Pins the runtime's current generation.
    #[inline]
    pub(crate) fn pin(runtime: &'static Runtime) -> PinnedGeneration {
        runtime.first_use();
        let pin = pin_current(runtime);
        let table = &pin.get().table;
        PinnedGeneration {
            table: table.as_ptr(),
            len: table.len(),
            view: None,
            host: None,
            pin,
        }
    }

    /// Pins the runtime's current generation for a `Handle`, with the view at the epoch it was
    /// current at when its generation can reach other modules: every call through the handle
    /// (and its clones) runs the generations of those modules that were current then, which
    /// stay loaded for as long as the handle lives — a handle pins one consistent world.
    #[inline]
    pub(crate) fn handle(runtime: &'static Runtime) -> PinnedGeneration {
        let mut pinned = PinnedGeneration::pin(runtime);
        if HOSTED.load(Ordering::Relaxed) {
            // In a library: a copy of a module the host links takes the host's handle, which
            // pins the host's generation as a handle taken in the host does. (A module the
            // host does not have is the library's own, generation 0 of its code.)
            if let Some(host) = HostHandle::current(runtime) {
                pinned.host = Some(Box::new(host));
            }
            return pinned;
        }
        if !pinned.pin.get().imports {
            // A generation that reaches no other module needs no view.
            return pinned;
        }
        pinned.with_view(runtime)
    }

    /// `handle` for a generation that reaches other modules: adds the view at an epoch it is
    /// current at, pinning again if it was replaced meanwhile.
    #[cold]
    #[inline(never)]
    fn with_view(mut self, runtime: &'static Runtime) -> PinnedGeneration {
        loop {
            let epoch = even_epoch();
            let view = ViewPin::new(View {
                epoch,
                reach: self.pin.get().reach,
            });
            // Read between the pin and the counter's re-check (as in `OpenView::open`): if the
            // counter held still, this `current` is the generation current at `epoch`.
            let current = runtime.current_ptr();
            if snapshot::epoch() == epoch && ptr::eq(current, self.pin.as_ptr()) {
                self.view = Some(Box::new(view));
                return self;
            }
            // Replaced meanwhile, or a swap came between: pin again.
            drop(view);
            self = PinnedGeneration::pin(runtime);
        }
    }

    /// The generation's count alone, for a `Pinned` value (the view, if any, is let go).
    pub(crate) fn into_held(self) -> HeldPin {
        self.pin.into_held()
    }

    /// The pinned generation's number.
    #[inline]
    pub fn generation(&self) -> u64 {
        if let Some(host) = &self.host {
            return host.generation();
        }
        self.pin.get().number
    }

    /// Whether the pinned generation is still the module's current one.
    #[inline]
    pub fn is_current(&self) -> bool {
        if let Some(host) = &self.host {
            return host.is_current();
        }
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
        if let Some(view) = &self.view {
            return self.call_in_view::<A, R, I, F>(view, index, args, builtin);
        }
        self.call_pinned::<A, R, I, F>(index, args, builtin)
    }

    /// `call` through a handle that pins a view. Out of line: a handle of a generation without
    /// imports pays one test of `view`.
    #[inline(never)]
    fn call_in_view<A, R, I: Invoke<A, R>, F: FnOnce(A) -> R>(
        &self,
        view: &ViewPin,
        index: usize,
        args: A,
        builtin: F,
    ) -> R {
        // SAFETY: `CALL_SLOT` is a thread-local of this thread, which outlives this call.
        let slot = unsafe { &*fast_call_slot() };
        let word = slot.load(Ordering::Relaxed);
        if word.is_null() || (word == UNREGISTERED && registered_now()) {
            // The outermost call (the thread's first one registers its slot first): the
            // handle's view, in this thread's slot for the calls nested in it. (Nested in
            // another call, that call's view holds.)
            let _in_view = view.enter(slot);
            return self.call_pinned::<A, R, I, F>(index, args, builtin);
        }
        self.call_pinned::<A, R, I, F>(index, args, builtin)
    }

    /// `call` in the pinned generation, with whatever view this thread has.
    #[inline(always)]
    fn call_pinned<A, R, I: Invoke<A, R>, F: FnOnce(A) -> R>(
        &self,
        index: usize,
        args: A,
        builtin: F,
    ) -> R {
        // Generation 0 has an empty table; a loaded generation has one verified entry per host
        // function, so the index is out of range exactly when the compiled-in code must run.
        if index >= self.len {
            // In a library, a handle of another hot module it embeds, linked to the host's:
            // the call is made there, through the host's handle.
            if let Some(host) = &self.host {
                return host.call::<A, R, F>(index, args, builtin);
            }
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
            view: self.view.clone(),
            host: self.host.clone(),
        }
    }
}

/// Inside a loaded library, a host's `Handle` of a module the host links (`abi::HandleOps`):
/// the host pins, clones and releases it, and every call through it is the host's handle's
/// method, run by the host's hotmod.
struct HostHandle {
    handle: *mut (),
    ops: &'static HandleOps,
    /// The host's `FnEntry::handle` of each of the library's functions of the module.
    calls: &'static [Option<HandleTrampoline>],
}

// SAFETY: a host's `Handle` is `Send` and `Sync`; the ops and calls are immutable host data.
unsafe impl Send for HostHandle {}
// SAFETY: as above.
unsafe impl Sync for HostHandle {}

impl HostHandle {
    /// The host's `Handle::current()` of `runtime`'s module, if the host links it.
    fn current(runtime: &'static Runtime) -> Option<HostHandle> {
        let link = runtime.host_link()?;
        let ops = link.handles;
        // SAFETY: the host's slice, alive with the link (until this library is unloaded).
        let calls = unsafe { link.handle.as_slice() };
        if calls.is_empty() {
            // The module the library was loaded as: its handles are its own code's.
            return None;
        }
        // SAFETY: the host's runtime of this module's path, for the host's `current`.
        let handle = unsafe { (ops.current)(link.runtime) };
        Some(HostHandle { handle, ops, calls })
    }

    fn generation(&self) -> u64 {
        // SAFETY: a live handle of the host's, for the host's function.
        unsafe { (self.ops.generation)(self.handle) }
    }

    fn is_current(&self) -> bool {
        // SAFETY: as above.
        unsafe { (self.ops.is_current)(self.handle) }
    }

    /// Function `index` (the library's) through the host's handle; the library's own copy
    /// (`builtin`) for a function the host's module lacks.
    fn call<A, R, F: FnOnce(A) -> R>(&self, index: usize, args: A, builtin: F) -> R {
        let Some(&Some(call)) = self.calls.get(index) else {
            return builtin(args);
        };
        // SAFETY: the host's handle trampoline of the function of this name, which the loader
        // verified equal to this copy's (arguments `A`, result `R`), and a live host handle of
        // its module.
        let returned = unsafe { invocation::invoke_through::<A, R>(call, self.handle, args) };
        // SAFETY: `returned` came from the call.
        unsafe { returned.finish() }
    }
}

impl Clone for HostHandle {
    fn clone(&self) -> HostHandle {
        HostHandle {
            // SAFETY: a live handle of the host's, for the host's function.
            handle: unsafe { (self.ops.clone)(self.handle) },
            ops: self.ops,
            calls: self.calls,
        }
    }
}

impl Drop for HostHandle {
    fn drop(&mut self) {
        // SAFETY: a live handle of the host's, given back once.
        unsafe { (self.ops.drop)(self.handle) }
    }
}

/// The host's side of `abi::HandleOps`: its handles, boxed, as a library's code holds them.
pub static HOST_HANDLES: HandleOps = HandleOps {
    current: host_current,
    clone: host_clone,
    drop: host_drop,
    generation: host_generation,
    is_current: host_is_current,
};

/// # Safety
/// `runtime` is a `&'static Runtime` of this copy (`HostLink::runtime`).
unsafe extern "C" fn host_current(runtime: *const ()) -> *mut () {
    // SAFETY: the caller's contract.
    let runtime = unsafe { &*runtime.cast::<Runtime>() };
    Box::into_raw(Box::new(PinnedGeneration::handle(runtime))).cast()
}

/// # Safety
/// `handle` is a live handle made by `host_current` or `host_clone`.
unsafe extern "C" fn host_clone(handle: *const ()) -> *mut () {
    // SAFETY: the caller's contract.
    let handle = unsafe { &*handle.cast::<PinnedGeneration>() };
    Box::into_raw(Box::new(handle.clone())).cast()
}

/// # Safety
/// As for `host_clone`; the handle is not used again.
unsafe extern "C" fn host_drop(handle: *mut ()) {
    // SAFETY: the caller's contract: a box of ours, given back once.
    drop(unsafe { Box::from_raw(handle.cast::<PinnedGeneration>()) });
}

/// # Safety
/// As for `host_clone`.
unsafe extern "C" fn host_generation(handle: *const ()) -> u64 {
    // SAFETY: the caller's contract.
    unsafe { &*handle.cast::<PinnedGeneration>() }.generation()
}

/// # Safety
/// As for `host_clone`.
unsafe extern "C" fn host_is_current(handle: *const ()) -> bool {
    // SAFETY: the caller's contract.
    unsafe { &*handle.cast::<PinnedGeneration>() }.is_current()
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
        return call_builtin::<A, R, I, F>(runtime, index, args, builtin);
    }
    // SAFETY: `CALL_SLOT` is a thread-local of this thread, which outlives this call.
    let slot = unsafe { &*fast_call_slot() };
    // Relaxed: only this thread writes its call slot. Null means registered and free; anything
    // else is a view (a call nested in an outer call into hot code), the generation of an outer
    // call into a module that imports none (nested too), or `UNREGISTERED` (first call on this
    // thread, no expedited barrier, thread teardown).
    let word = slot.load(Ordering::Relaxed);
    if !word.is_null() {
        if let Some(epoch) = view_epoch(word) {
            return call_in_view::<A, R, I, F>(runtime, epoch, current, index, args, builtin);
        }
        return call_slow::<A, R, I, F>(runtime, index, args, builtin);
    }
    // The outermost call. A generation that imports no other module needs no view: it is
    // published in the slot as it is (the generation is all the call can reach).
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
    if generation.imports {
        // It calls other hot modules: the call opens a view instead.
        slot.store(ptr::null_mut(), Ordering::Release);
        return call_opening_view_after::<A, R, I, F>(runtime, current, slot, index, args, builtin);
    }
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

/// A generation replaced while a plain call ran in it: the collector may have skipped it on our
/// account, so ask again.
#[cold]
#[inline(never)]
fn retired_while_calling(runtime: &'static Runtime) {
    runtime.collect();
}

/// `call_opening_view` for a call that first published `published` (a generation with hot
/// imports) in its slot and cleared it: a collector may have skipped it meanwhile. Out of line:
/// it keeps the calls into generations without imports as small as they were.
#[inline(never)]
fn call_opening_view_after<A, R, I: Invoke<A, R>, F: FnOnce(A) -> R>(
    runtime: &'static Runtime,
    published: *const Generation,
    slot: &AtomicPtr<Generation>,
    index: usize,
    args: A,
    builtin: F,
) -> R {
    compiler_fence(Ordering::SeqCst);
    if !ptr::eq(runtime.current_loaded(), published) {
        retired_while_calling(runtime);
    }
    call_opening_view::<A, R, I, F>(runtime, slot, index, args, builtin)
}

/// A plain call while generation 0 is current: in a library, a call of another hot module the
/// library embeds goes to the host's; in the host, the compiled-in function runs, in a view when
/// the process has other modules this call could reach.
#[inline(always)]
fn call_builtin<A, R, I: Invoke<A, R>, F: FnOnce(A) -> R>(
    runtime: &'static Runtime,
    index: usize,
    args: A,
    builtin: F,
) -> R {
    if let Some(forward) = runtime.forwarded(index) {
        return call_host::<A, R, I>(forward, args);
    }
    call_builtin_here::<A, R, I, F>(runtime, index, args, builtin)
}

/// Generation 0 of a module of this binary (the host's, or a library's own module).
#[inline(never)]
fn call_builtin_here<A, R, I: Invoke<A, R>, F: FnOnce(A) -> R>(
    runtime: &'static Runtime,
    index: usize,
    args: A,
    builtin: F,
) -> R {
    runtime.first_use();
    if HOSTED.load(Ordering::Relaxed) {
        // A library's own module: its code, as compiled into it.
        return builtin(args);
    }
    // SAFETY: `CALL_SLOT` is a thread-local of this thread, which outlives this call.
    let slot = unsafe { &*fast_call_slot() };
    let word = slot.load(Ordering::Relaxed);
    if word.is_null() {
        return call_opening_view::<A, R, I, F>(runtime, slot, index, args, builtin);
    }
    if let Some(epoch) = view_epoch(word) {
        return call_in_view::<A, R, I, F>(runtime, epoch, ptr::null(), index, args, builtin);
    }
    // This thread's first call, no expedited barrier, or nested in a call without a view.
    call_slow::<A, R, I, F>(runtime, index, args, builtin)
}

/// Registers this thread's fast slot if it can be (the process barrier is expedited); whether
/// the slot is now free for a view.
fn registered_now() -> bool {
    let _ = thread_slot();
    // SAFETY: `CALL_SLOT` is a thread-local of this thread.
    unsafe { &*fast_call_slot() }
        .load(Ordering::Relaxed)
        .is_null()
}

/// A view announced in this thread's fast call slot by an outermost call into hot code: every
/// hot module that call reaches is seen, for the whole call, in the generation that was current
/// at `epoch`, and the collector keeps those generations loaded until the view closes.
///
/// The protocol is the hazard slot's (see the module docs) with the swap counter in place of
/// `current`: announce the epoch, compiler fence, re-read the counter. A collector that runs
/// after a swap and its process barrier sees the view, or the view saw the swap and was
/// announced again at the new epoch.
struct OpenView<'s> {
    slot: &'s AtomicPtr<Generation>,
    /// The counter as first read: a swap since (even one that made the announcement be made
    /// again) may have made a collector keep a generation for this view.
    first: u64,
}

impl<'s> OpenView<'s> {
    /// Announces a view at the current epoch in `slot`, which is this thread's fast call slot,
    /// registered and free; it reaches the modules in `reach`. Returns it with what `read`
    /// read of the state at its epoch: `read` runs after the announcement and before the
    /// counter is read again, so an unchanged counter proves that no swap came between (a
    /// swap makes the counter odd before it stores anything), and a `current` that `read` loads
    /// is the generation current at the view's epoch.
    #[inline(always)]
    fn open<T>(
        slot: &'s AtomicPtr<Generation>,
        reach: u64,
        read: impl Fn() -> T,
    ) -> (OpenView<'s>, T) {
        // SAFETY: `VIEW_REACH` is a thread-local of this thread, which outlives this call.
        unsafe { &*view_reach() }.store(reach, Ordering::Relaxed);
        let first = even_epoch();
        let mut seen = first;
        loop {
            slot.store(view_word(seen), Ordering::Relaxed);
            // The slot is only registered once the process barrier is expedited: the reader
            // half is a compiler fence (see `os::reader_fence`).
            compiler_fence(Ordering::SeqCst);
            let value = read();
            // Acquire (`snapshot::epoch`): a `read` that saw a swap's store also sees the odd
            // count stored before it.
            if snapshot::epoch() == seen {
                return (OpenView { slot, first }, value);
            }
            seen = even_epoch();
        }
    }
}

/// The current epoch, once no `publish` is in progress: a call never begins inside one. (A
/// generation made current there is already reported current, under its runtime's lock, so a
/// call beginning then at the epoch before it would run the one it replaced.)
#[inline(always)]
fn even_epoch() -> u64 {
    let epoch = snapshot::epoch();
    if epoch & 1 == 0 {
        return epoch;
    }
    wait_for_publish()
}

/// Waits out a `publish` in progress (a few stores under locks; it runs no module code).
#[cold]
#[inline(never)]
fn wait_for_publish() -> u64 {
    loop {
        std::thread::yield_now();
        let epoch = snapshot::epoch();
        if epoch & 1 == 0 {
            return epoch;
        }
    }
}

impl Drop for OpenView<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        // Release: the call's reads of the generations it saw happen before a collector can
        // see the slot empty; the fence keeps the re-check after the store (as in `call`).
        self.slot.store(ptr::null_mut(), Ordering::Release);
        compiler_fence(Ordering::SeqCst);
        if snapshot::epoch() != self.first {
            // Swaps happened since the view was first announced: collectors may have kept
            // generations for it.
            Runtime::collect_all();
        }
    }
}

/// A view a handle pins (`hazard::pin_view`): the collector keeps what it reaches at its epoch
/// loaded until the last handle with it goes, without the handle holding a slot.
pub(crate) struct ViewPin(View);

impl ViewPin {
    fn new(view: View) -> ViewPin {
        hazard::pin_view(view);
        ViewPin(view)
    }

    /// Announces the pinned view in this thread's free fast slot for one call through the
    /// handle. No re-check: the pin already keeps what it reaches loaded.
    #[inline(always)]
    fn enter<'s>(&self, slot: &'s AtomicPtr<Generation>) -> InPinnedView<'s> {
        // SAFETY: `VIEW_REACH` is a thread-local of this thread, which outlives this call.
        unsafe { &*view_reach() }.store(self.0.reach, Ordering::Relaxed);
        slot.store(view_word(self.0.epoch), Ordering::Relaxed);
        InPinnedView(slot)
    }
}

impl Clone for ViewPin {
    fn clone(&self) -> ViewPin {
        ViewPin::new(self.0)
    }
}

impl Drop for ViewPin {
    fn drop(&mut self) {
        hazard::unpin_view(self.0);
        if snapshot::epoch() != self.0.epoch {
            // Swaps since: collectors may have kept generations for this view.
            Runtime::collect_all();
        }
    }
}

/// A handle's view in this thread's slot, for one call (cleared on the way out, panics too).
struct InPinnedView<'s>(&'s AtomicPtr<Generation>);

impl Drop for InPinnedView<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.0.store(ptr::null_mut(), Ordering::Release);
    }
}

/// The outermost plain call into hot code, on a thread whose fast slot is free: opens a view
/// (reaching every module until the generation is known, then its hot imports) and runs the
/// call in it.
#[inline(always)]
fn call_opening_view<A, R, I: Invoke<A, R>, F: FnOnce(A) -> R>(
    runtime: &'static Runtime,
    slot: &AtomicPtr<Generation>,
    index: usize,
    args: A,
    builtin: F,
) -> R {
    let (view, current) = OpenView::open(slot, u64::MAX, || runtime.current_loaded());
    if current.is_null() {
        return builtin(args);
    }
    // SAFETY: the generation current at the view's epoch (`OpenView::open`), which the view
    // keeps loaded: it reaches every module while `VIEW_REACH` is all ones.
    let generation = unsafe { &*current };
    // Narrowed to what this generation can reach: its own module and its hot imports, so a
    // long call does not keep other modules' old generations loaded.
    // SAFETY: `VIEW_REACH` is a thread-local of this thread.
    unsafe { &*view_reach() }.store(generation.reach, Ordering::Relaxed);
    let returned = in_generation::<A, R, I, F>(runtime, generation, index, args, builtin);
    drop(view);
    returned
}

/// A plain call nested in a view (a hot module's code calling another's, or its own through
/// its wrapper): the generation that was current at the view's epoch. `current` is the
/// runtime's `current` as the caller read it (before `since` is read here).
#[inline(always)]
fn call_in_view<A, R, I: Invoke<A, R>, F: FnOnce(A) -> R>(
    runtime: &'static Runtime,
    epoch: u64,
    current: *const Generation,
    index: usize,
    args: A,
    builtin: F,
) -> R {
    // SAFETY: `VIEW_REACH` is a thread-local of this thread.
    let reach = unsafe { &*view_reach() }.load(Ordering::Relaxed);
    if reach & runtime.reach_bit() == 0 {
        // Not among what the outer call's generation imports (a call through host code it
        // was handed): its own pin, of the current generation.
        return PinnedGeneration::pin(runtime).call_pinned::<A, R, I, F>(index, args, builtin);
    }
    if runtime.since() > epoch {
        return call_at_epoch::<A, R, I, F>(runtime, epoch, index, args, builtin);
    }
    if current.is_null() {
        return builtin(args);
    }
    // SAFETY: the generation current at the view's epoch (`Runtime::since`), which the view
    // keeps loaded: its reach includes this module.
    let generation = unsafe { &*current };
    in_generation::<A, R, I, F>(runtime, generation, index, args, builtin)
}

/// A call in a view whose module changed generation since the view's epoch: the generation
/// that was current then.
#[cold]
#[inline(never)]
fn call_at_epoch<A, R, I: Invoke<A, R>, F: FnOnce(A) -> R>(
    runtime: &'static Runtime,
    epoch: u64,
    index: usize,
    args: A,
    builtin: F,
) -> R {
    let generation = runtime.at_epoch(epoch);
    if runtime.is_builtin(generation) {
        return builtin(args);
    }
    // SAFETY: the generation current at the view's epoch, which the view (still announced by
    // the caller) keeps loaded.
    let generation = unsafe { &*generation };
    in_generation::<A, R, I, F>(runtime, generation, index, args, builtin)
}

/// Calls function `index` of `generation`, a loaded generation the caller keeps loaded.
#[inline(always)]
fn in_generation<A, R, I: Invoke<A, R>, F: FnOnce(A) -> R>(
    runtime: &'static Runtime,
    generation: &Generation,
    index: usize,
    args: A,
    builtin: F,
) -> R {
    let Some(&trampoline) = generation.table.get(index) else {
        // Unreachable for a loaded generation (one verified entry per host function).
        return builtin(args);
    };
    // SAFETY: `trampoline` is the verified trampoline of the host's function `index`, whose
    // argument and return types are `A` and `R` and whose kind is the one `I` calls; the caller
    // keeps the library loaded for the call and for `finish` (a view, still open).
    let returned = unsafe { I::invoke(trampoline, args) };
    if generation.probation.active.load(Ordering::Relaxed) {
        observe(runtime, generation, !returned.panic.is_null());
    }
    // SAFETY: `returned` came from the call.
    unsafe { returned.finish() }
}

/// Inside a loaded library, a call of another hot module the library embeds: made in the
/// host's module of the same path, through its forwarding trampoline (a plain call there).
#[inline(always)]
pub(crate) fn call_host<A, R, I: Invoke<A, R>>(forward: RawTrampoline, args: A) -> R {
    // SAFETY: the host verified this library's copy of the module against its own before it
    // linked them: the function of this index has the same name, argument and return types and
    // kind in both, and the forwarding trampoline has the kind `I` calls. The host's module
    // outlives the library.
    let returned = unsafe { I::invoke(forward, args) };
    // SAFETY: `returned` came from the call.
    unsafe { returned.finish() }
}

/// In the host, a forwarding trampoline's call (`FnEntry::forward`: a library's embedded copy
/// of this module calling it), when it can be handed on as it is: the trampoline of function
/// `index` of the generation this thread's view sees, for the forwarding trampoline to call in
/// tail position with its own arguments — its caller then gets that trampoline's result, panic
/// message included, as if it had called it. `None` sends the forwarding trampoline to the
/// plain call through the module's wrapper (`call`), which covers every other case.
///
/// These are the reads of a call nested in a view (`call_in_view`), in its order: the call
/// runs in the view of the outer call into the library, announced in this thread's slot, which
/// keeps the generation loaded until after the forwarded call returns (the outer call returns
/// only after the library's code that made it). Declined: generation 0 current, no view (the
/// thread's slot holds a generation, or is unregistered), a module outside the view's reach,
/// a module that changed generation since the view's epoch, and a generation under probation
/// (its calls are counted after they return).
#[inline(always)]
pub(crate) fn forward_target(runtime: &'static Runtime, index: usize) -> Option<RawTrampoline> {
    let current = runtime.current_loaded();
    if current.is_null() {
        return None;
    }
    // The slot and the reach by their static offset: no thread-local access, which would make
    // the forwarding trampoline save its arguments around it (`hazard::static_slot`; where
    // there is no static offset, every call takes the plain call).
    let (word, reach) = hazard::static_slot()?;
    let epoch = view_epoch(word)?;
    if reach & runtime.reach_bit() == 0 || runtime.since() > epoch {
        return None;
    }
    // SAFETY: `current`, read before `since`, is the generation current at the view's epoch
    // (`Runtime::since`), which the view keeps loaded: its reach includes this module.
    let generation = unsafe { &*current };
    if generation.probation.active.load(Ordering::Relaxed) {
        return None;
    }
    generation.table.get(index).copied()
}

/// Counts a call of a generation under probation (see `Module::set_rollback`); the caller still
/// holds the generation.
#[cold]
#[inline(never)]
fn observe(runtime: &'static Runtime, generation: &Generation, panicked: bool) {
    transaction::observe(runtime, generation, panicked);
}

/// The general plain call: first call on this thread, a call nested in one without a view, a
/// reload racing the call, no expedited barrier (generation 0 included: its empty table sends
/// the call to the compiled-in function).
#[cold]
#[inline(never)]
fn call_slow<A, R, I: Invoke<A, R>, F: FnOnce(A) -> R>(
    runtime: &'static Runtime,
    index: usize,
    args: A,
    builtin: F,
) -> R {
    // Also registers this thread's fast slot, once the process barrier is expedited.
    let heap = thread_slot();
    // SAFETY: `CALL_SLOT` is a thread-local of this thread.
    let outer = unsafe { &*fast_call_slot() }.load(Ordering::Relaxed);
    if outer.is_null() {
        // This thread's first call: its fast slot is registered now, so the call can open a
        // view like any other.
        return call::<A, R, I, F>(runtime, index, args, builtin);
    }
    if outer != UNREGISTERED && runtime.owns(outer) {
        // Nested (through host code) in an outer call of this same module, which imports no
        // other: the outer call's generation, which its slot keeps loaded.
        // SAFETY: published in this thread's slot by the outer call, still running.
        let generation = unsafe { &*outer };
        return in_generation::<A, R, I, F>(runtime, generation, index, args, builtin);
    }
    // The heap slot's `call` field: free unless this is a call nested two deep.
    let slot = match heap {
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
