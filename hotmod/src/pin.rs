//! Keeping a generation mapped while something uses it.
//!
//! Two kinds of users pin a generation:
//!
//! - **Handles** ([`PinnedGeneration`]) count themselves in `Generation::pins`. `PinnedGeneration::current` increments the
//!   count of the generation it read from `Module::current`, then re-reads `current`; if the
//!   generation is no longer current it backs off and retries. The collector swaps `current`
//!   before it reads `pins`, and all four accesses are `SeqCst`, so either the collector sees the
//!   increment or the handle sees the swap.
//!
//! - **Plain calls** must not write shared memory (a refcount would put every calling core on
//!   one cache line), so each thread owns a *hazard slot*: the call stores the generation in its
//!   slot, fences, and re-reads `current`; if it changed, it retries with the new one. The
//!   collector, after swapping `current`, runs a process-wide barrier (`membarrier(2)` where
//!   available) and then scans all slots: every reader either published its slot before the
//!   barrier (the scan sees it) or re-reads `current` after it (and sees the swap). With
//!   `membarrier` the reader's fence is only a compiler fence.
//!
//!   Each thread has two call slots. The fast one, `CALL_SLOT`, is a constant-initialised
//!   thread-local in the thread's own TLS block; the collector reaches it through the pointer
//!   the thread registers in its heap `HazardSlot` (under the `SLOTS` lock, and removed under it
//!   at thread exit, before the TLS block goes). The fast path (`call`, inlined into every
//!   generated wrapper) is: load `current`; load `CALL_SLOT` (null = registered and free); store
//!   the generation there; compiler fence; re-load `current`; call; store null; re-load
//!   `current`. Three loads of read-mostly memory and two stores to memory no other thread
//!   writes. Anything else — the first call on a thread, a process without expedited
//!   membarrier (the slot then never leaves `UNREGISTERED`), a call nested inside module code
//!   while the fast slot is held, a reload racing the call — goes to the out-of-line slow path,
//!   which uses the heap slot's `call` field with a real fence where needed, and pins by count
//!   (like a handle) when that is taken too.
//!
//!   Heap slots are 128-byte aligned: two threads' slots never share a cache line.
//!
//! After a plain call or the last handle of a generation that is no longer current ends, the
//! module is asked to collect, so a generation retires as soon as its last user is gone.
//!
//! Generation 0 is never unloaded, so calls that find it current take no pin at all.

use std::mem::{ManuallyDrop, MaybeUninit};
use std::ptr::{self, NonNull};
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicPtr, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::abi::{PanicSlot, Trampoline};
use crate::generation::Generation;
use crate::module::Module;
use crate::os;

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

/// A pinned generation of one hot module: what a generated `Handle` wraps.
pub struct PinnedGeneration {
    module: &'static Module,
    generation: NonNull<Generation>,
    /// The generation's trampoline table (empty for generation 0), copied here: it never
    /// changes while the generation lives, and a copy inside the handle lets the compiler keep
    /// it in registers across calls through the same handle.
    table: *const Trampoline,
    len: usize,
}

// SAFETY: a `PinnedGeneration` only reads its generation and that generation's table (immutable apart from
// the atomic `pins`) and the module (a `Sync` static); the pin count it holds is released with
// an atomic decrement.
unsafe impl Send for PinnedGeneration {}
// SAFETY: as above; `&PinnedGeneration` allows only reads and calls through immutable trampolines.
unsafe impl Sync for PinnedGeneration {}

impl PinnedGeneration {
    /// Pins the module's current generation.
    pub fn current(module: &'static Module) -> PinnedGeneration {
        module.first_use();
        let generation = pin_current(module);
        // SAFETY: just pinned, so alive; its table is never modified after creation.
        let table = &unsafe { generation.as_ref() }.table;
        PinnedGeneration {
            module,
            generation,
            table: table.as_ptr(),
            len: table.len(),
        }
    }

    /// The pinned generation's number.
    #[inline]
    pub fn generation(&self) -> u64 {
        // SAFETY: the generation is pinned, so it is alive.
        unsafe { self.generation.as_ref() }.number
    }

    /// Whether the pinned generation is still the module's current one.
    #[inline]
    pub fn is_current(&self) -> bool {
        ptr::eq(self.module.current_ptr(), self.generation.as_ptr())
    }

    /// Calls function `index` of the pinned generation; `builtin` is the compiled-in function,
    /// used when the pinned generation is 0.
    #[inline]
    pub fn call<A, R, F: FnOnce(A) -> R>(&self, index: usize, args: A, builtin: F) -> R {
        // Generation 0 has an empty table; a loaded generation has one verified entry per host
        // function, so the index is out of range exactly when the compiled-in code must run.
        if index >= self.len {
            return builtin(args);
        }
        // SAFETY: `index < len`, and `table`/`len` describe the pinned generation's table, which
        // stays allocated and unchanged while the generation is pinned.
        let trampoline = unsafe { *self.table.add(index) };
        let mut call = Invocation::new();
        // SAFETY: `trampoline` is the verified trampoline of the host's function `index`, and the
        // library stays loaded while `self` exists.
        let panicked = unsafe { call.run::<A>(trampoline, args) };
        // SAFETY: the generation is pinned, so it is alive.
        let generation = unsafe { self.generation.as_ref() };
        if generation.probation.active.load(Ordering::Relaxed) {
            observe(self.module, generation, panicked);
        }
        // SAFETY: `call` ran and returned `panicked`.
        unsafe { call.finish(panicked) }
    }
}

impl Clone for PinnedGeneration {
    fn clone(&self) -> Self {
        // SAFETY: `self` holds a pin, so the generation is alive and its count is ≥ 1; a
        // relaxed increment suffices because the count cannot reach 0 concurrently.
        unsafe { self.generation.as_ref() }
            .pins
            .fetch_add(1, Ordering::Relaxed);
        PinnedGeneration {
            module: self.module,
            generation: self.generation,
            table: self.table,
            len: self.len,
        }
    }
}

impl Drop for PinnedGeneration {
    fn drop(&mut self) {
        unpin(self.module, self.generation.as_ptr());
    }
}

impl std::fmt::Debug for PinnedGeneration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("module", &self.module.name())
            .field("generation", &self.generation())
            .field("is_current", &self.is_current())
            .finish()
    }
}

/// Pins the current generation by count and returns it.
fn pin_current(module: &'static Module) -> NonNull<Generation> {
    let generation = match thread_slot() {
        Some(slot) => {
            // The `pin` slot is only ever held for this increment, so it is never in use here.
            let generation = publish(module, &slot.pin);
            // SAFETY: published and validated, so the collector cannot free it; once the count
            // is up (SeqCst, before the Release that clears the slot) the count keeps it.
            unsafe { &*generation }.pins.fetch_add(1, Ordering::SeqCst);
            release(module, &slot.pin, generation);
            generation
        }
        // Thread teardown: no slot. The collector runs under the module lock, so pinning under
        // it is safe too.
        None => module.pin_locked(),
    };
    // SAFETY: `current_ptr` never returns null (generation 0 lives in the module static).
    unsafe { NonNull::new_unchecked(generation.cast_mut()) }
}

/// Releases one count pin; asks the module to collect if that was the last pin of a generation
/// that is no longer current.
pub(crate) fn unpin(module: &'static Module, generation: *const Generation) {
    // SAFETY: the caller holds a pin on `generation`, so it is alive until this decrement.
    let previous = unsafe { &*generation }.pins.fetch_sub(1, Ordering::SeqCst);
    // Nothing below dereferences `generation`: it may be freed as soon as the count is 0.
    if previous == 1 && !ptr::eq(module.current_ptr_seqcst(), generation) {
        module.collect();
    }
}

/// Calls function `index` of the module's current generation; `builtin` runs the compiled-in
/// function when generation 0 is current.
///
/// The fast path is inlined into every generated wrapper: one load of `current`, one
/// thread-local load, a store to this thread's slot, a compiler fence, a re-check of `current`,
/// the call, a store clearing the slot and a last check of `current`. Everything else (first call
/// on a thread, no expedited process barrier, nested calls, a reload racing the call, a panic in
/// the module) is out of line.
#[inline(always)]
pub fn call<A, R, F: FnOnce(A) -> R>(
    module: &'static Module,
    index: usize,
    args: A,
    builtin: F,
) -> R {
    let current = module.current_loaded();
    if current.is_null() {
        module.first_use();
        return builtin(args);
    }
    // SAFETY: `CALL_SLOT` is a thread-local of this thread, which outlives this call.
    let slot = unsafe { &*CALL_SLOT.with(ptr::from_ref) };
    // Relaxed: only this thread writes its call slot. Null means registered and free; anything
    // else is `UNREGISTERED` (first call on this thread, no expedited barrier, thread teardown)
    // or the generation of an outer plain call still running on this thread (a nested call).
    if !slot.load(Ordering::Relaxed).is_null() {
        return call_slow(module, index, args, builtin);
    }
    slot.store(current.cast_mut(), Ordering::Relaxed);
    // The slot is only registered once the process is registered for expedited membarrier, so
    // the reader half of the barrier pair is a compiler fence (see `os::reader_fence`).
    compiler_fence(Ordering::SeqCst);
    if !ptr::eq(module.current_loaded(), current) {
        // A reload swapped `current` meanwhile: the published generation may already be gone.
        // A collector may also have seen it in our slot and skipped it: ask again.
        slot.store(ptr::null_mut(), Ordering::Release);
        retired_while_calling(module);
        return call_slow(module, index, args, builtin);
    }
    // SAFETY: published and validated: the collector will not free it until the slot is cleared.
    let generation = unsafe { &*current };
    let Some(&trampoline) = generation.table.get(index) else {
        // Unreachable for a loaded generation (the loader verified one entry per host function);
        // fall back to the compiled-in code rather than trust a bad index.
        slot.store(ptr::null_mut(), Ordering::Release);
        return builtin(args);
    };
    let mut call = Invocation::new();
    // SAFETY: `trampoline` is the verified trampoline of the host's function `index`, whose
    // argument and return types are `A` and `R`; the library stays loaded until the slot clears.
    let panicked = unsafe { call.run::<A>(trampoline, args) };
    // A rollback policy watches a new generation's first calls (one relaxed load otherwise).
    if generation.probation.active.load(Ordering::Relaxed) {
        observe(module, generation, panicked);
    }
    // Release: the call's reads of the generation happen before the collector can see the slot
    // empty. The compiler fence keeps the re-check below after the store, which is what makes
    // either the collector see the slot empty or this thread see the swap (and collect).
    slot.store(ptr::null_mut(), Ordering::Release);
    compiler_fence(Ordering::SeqCst);
    if !ptr::eq(module.current_loaded(), current) {
        retired_while_calling(module);
    }
    // SAFETY: `call` ran and returned `panicked`.
    unsafe { call.finish(panicked) }
}

/// Counts a call of a generation under probation (see `Module::set_rollback`); the caller still
/// holds the generation.
#[cold]
#[inline(never)]
fn observe(module: &'static Module, generation: &Generation, panicked: bool) {
    module.observe(generation, panicked);
}

/// A generation replaced while a plain call ran in it: the collector may have skipped it on our
/// account, so ask again.
#[cold]
#[inline(never)]
fn retired_while_calling(module: &'static Module) {
    module.collect();
}

/// The general plain call: first call on this thread, a nested call, a reload racing the call.
#[cold]
#[inline(never)]
fn call_slow<A, R, F: FnOnce(A) -> R>(
    module: &'static Module,
    index: usize,
    args: A,
    builtin: F,
) -> R {
    // The heap slot's `call` field: free unless this is a call nested two deep.
    let slot = match thread_slot() {
        Some(slot) if slot.call.load(Ordering::Relaxed).is_null() => slot,
        // Nested deeper (both call slots hold outer calls' generations) or thread teardown.
        _ => return PinnedGeneration::current(module).call(index, args, builtin),
    };
    let generation = publish(module, &slot.call);
    // SAFETY: published and validated: alive and loaded until `release`.
    let loaded = unsafe { &*generation };
    let Some(&trampoline) = loaded.table.get(index) else {
        // Generation 0 (empty table) became current again.
        release(module, &slot.call, generation);
        return builtin(args);
    };
    let mut call = Invocation::new();
    // SAFETY: `index` is the host's index of a function the loader verified with these
    // argument and return types; the library stays loaded until `release`.
    let panicked = unsafe { call.run::<A>(trampoline, args) };
    if loaded.probation.active.load(Ordering::Relaxed) {
        observe(module, loaded, panicked);
    }
    release(module, &slot.call, generation);
    // SAFETY: `call` ran and returned `panicked`.
    unsafe { call.finish(panicked) }
}

/// Publishes the module's current generation in `slot` and returns it once it is validated:
/// from then until `release`, the collector will not unload it.
#[inline]
fn publish(module: &'static Module, slot: &AtomicPtr<Generation>) -> *const Generation {
    let mut generation = module.current_ptr();
    let mut retried = false;
    loop {
        slot.store(generation.cast_mut(), Ordering::Relaxed);
        os::reader_fence();
        let now = module.current_ptr();
        if ptr::eq(now, generation) {
            if retried {
                // A collector may have seen the generation we published first (no longer
                // current) and skipped it on our account; we overwrote it without a `release`,
                // so ask again, or it stays loaded until the next reload.
                module.collect();
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
fn release(module: &'static Module, slot: &AtomicPtr<Generation>, generation: *const Generation) {
    slot.store(ptr::null_mut(), Ordering::Release);
    // Either the collector sees the slot empty or we see the swap: the same pairing as in
    // `publish` (without it a replaced generation could linger until the next collect).
    os::reader_fence();
    if !ptr::eq(module.current_ptr(), generation) {
        module.collect();
    }
}

/// One call through a trampoline: room for the return value and for a panic's message. Whether
/// it panicked comes back in a register (`run`'s result): a call that does not panic touches
/// neither the slot nor anything but its return value here.
struct Invocation<R> {
    ret: MaybeUninit<R>,
    panic: PanicSlot,
}

impl<R> Invocation<R> {
    #[inline(always)]
    fn new() -> Self {
        Invocation {
            ret: MaybeUninit::uninit(),
            panic: PanicSlot::new(),
        }
    }

    /// Runs `trampoline` with `args`; returns whether the module code panicked.
    ///
    /// # Safety
    /// `trampoline` must be a verified trampoline taking `A` and returning `R`, in a library that
    /// stays loaded during the call; `run` must be called at most once.
    #[inline(always)]
    unsafe fn run<A>(&mut self, trampoline: Trampoline, args: A) -> bool {
        let mut args = ManuallyDrop::new(args);
        // SAFETY: `args` is an initialised `A` whose ownership passes to the trampoline (we never
        // drop it: `ManuallyDrop`); `ret` has room for an `R`; `panic` has room for a slot.
        unsafe {
            trampoline(
                ptr::from_mut::<A>(&mut args).cast(),
                self.ret.as_mut_ptr().cast(),
                &mut self.panic,
            )
        }
    }

    /// The return value, or the module's panic re-raised here.
    ///
    /// # Safety
    /// `run` must have returned `panicked`; `finish` is called at most once.
    #[inline(always)]
    unsafe fn finish(&mut self, panicked: bool) -> R {
        if panicked {
            // SAFETY: the trampoline returned `true`, so it wrote the message; taken once.
            unsafe { resume_panic(&mut self.panic) }
        }
        // SAFETY: the trampoline returned `false`, so it wrote the return value; read once.
        unsafe { self.ret.assume_init_read() }
    }
}

/// Runs a trampoline outside the call paths (the on_load gate). `Err` carries the message of a
/// panic inside the module.
///
/// # Safety
/// `trampoline` must be a verified trampoline taking `A` and returning `R`, in a library that
/// stays loaded during the call.
pub(crate) unsafe fn invoke<A, R>(trampoline: Trampoline, args: A) -> Result<R, String> {
    let mut call = Invocation::<R>::new();
    // SAFETY: the caller's contract.
    if unsafe { call.run::<A>(trampoline, args) } {
        // SAFETY: the trampoline returned `true`, so it wrote the message.
        Err(unsafe { call.panic.take() })
    } else {
        // SAFETY: the trampoline returned `false`, so it wrote the return value.
        Ok(unsafe { call.ret.assume_init_read() })
    }
}

/// Re-raises a module's panic on the caller's thread as an ordinary panic whose payload is the
/// module's message (a `String`). The module's own panic hook already reported it.
///
/// # Safety
/// The trampoline `panic` was passed to returned `true`, and the message was not taken yet.
#[cold]
#[inline(never)]
unsafe fn resume_panic(panic: &mut PanicSlot) -> ! {
    // SAFETY: the caller's contract.
    let message = unsafe { panic.take() };
    std::panic::resume_unwind(Box::new(message))
}

/// One thread's published generations (null when unused). Aligned so that no two threads' slots
/// share a cache line (or an adjacent-line prefetch pair): a plain call writes its slot twice.
#[repr(align(128))]
struct HazardSlot {
    /// Held for the duration of a plain call.
    call: AtomicPtr<Generation>,
    /// Held while `PinnedGeneration::current` raises a count.
    pin: AtomicPtr<Generation>,
    /// The owning thread's `CALL_SLOT` once registered, else null. Set and cleared under the
    /// `SLOTS` lock, which `hazards` holds while it reads through it: the thread clears it before
    /// its thread-locals are freed.
    fast: AtomicPtr<AtomicPtr<Generation>>,
    owned: AtomicBool,
}

/// Every slot ever created; slots of exited threads are reused. Slots are leaked: there are as
/// many as the peak number of threads that made plain calls.
static SLOTS: Mutex<Vec<&'static HazardSlot>> = Mutex::new(Vec::new());

/// Gives the slot back when the thread exits.
struct SlotOwner(&'static HazardSlot);

impl SlotOwner {
    fn acquire() -> SlotOwner {
        let mut slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
        let free = slots.iter().find(|slot| {
            slot.owned
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        });
        let slot = match free {
            Some(slot) => *slot,
            None => {
                let slot: &'static HazardSlot = Box::leak(Box::new(HazardSlot {
                    call: AtomicPtr::new(ptr::null_mut()),
                    pin: AtomicPtr::new(ptr::null_mut()),
                    fast: AtomicPtr::new(ptr::null_mut()),
                    owned: AtomicBool::new(true),
                }));
                slots.push(slot);
                slot
            }
        };
        SlotOwner(slot)
    }
}

impl Drop for SlotOwner {
    fn drop(&mut self) {
        // Unregister the thread-local call slot before the thread's thread-locals go away; from
        // now on this thread's plain calls take the slow path (and pin by count).
        {
            let _slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
            self.0.fast.store(ptr::null_mut(), Ordering::Release);
        }
        CALL_SLOT.with(|slot| slot.store(UNREGISTERED, Ordering::Relaxed));
        self.0.call.store(ptr::null_mut(), Ordering::Release);
        self.0.pin.store(ptr::null_mut(), Ordering::Release);
        self.0.owned.store(false, Ordering::Release);
    }
}

/// `CALL_SLOT` of a thread that has not registered it (or has unregistered it at exit). Not null,
/// so the fast path's single check sends such calls to the slow path; never a generation's
/// address (`Generation` is 8-aligned and heap-allocated, so never at address 8).
const UNREGISTERED: *mut Generation = NonNull::<Generation>::dangling().as_ptr();

thread_local! {
    static SLOT: SlotOwner = SlotOwner::acquire();
    /// The plain-call fast path's hazard slot. It lives in the thread's own static TLS block:
    /// one `%fs`-relative load and two stores per call, no lazy-initialisation check, no pointer
    /// to chase, and no cache line shared with another thread. The collector finds it through
    /// the thread's `HazardSlot::fast`.
    static CALL_SLOT: AtomicPtr<Generation> = const { AtomicPtr::new(UNREGISTERED) };
}

/// This thread's slot, acquiring one on first use; `None` during thread teardown. Also
/// registers the thread's `CALL_SLOT` once the process barrier is expedited.
#[inline]
fn thread_slot() -> Option<&'static HazardSlot> {
    let slot = SLOT.try_with(|owner| owner.0).ok()?;
    if os::barrier_registered() && slot.fast.load(Ordering::Relaxed).is_null() {
        register_call_slot(slot);
    }
    Some(slot)
}

/// Makes this thread's `CALL_SLOT` visible to the collector, then opens it to the fast path.
#[cold]
fn register_call_slot(slot: &'static HazardSlot) {
    let call_slot = CALL_SLOT.with(ptr::from_ref).cast_mut();
    {
        // Under the lock `hazards` scans with: a scan either sees the registration, or runs
        // before it — and then before any generation this thread publishes in `CALL_SLOT`, whose
        // re-check of `current` therefore sees the swap that scan belonged to.
        let _slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
        slot.fast.store(call_slot, Ordering::Release);
    }
    // Only `UNREGISTERED` is replaced: a value that is a generation belongs to a call running.
    CALL_SLOT.with(|call| {
        let _ = call.compare_exchange(
            UNREGISTERED,
            ptr::null_mut(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    });
}

/// The generations currently published in any thread's slot. Call after `os::process_barrier`.
pub(crate) fn hazards() -> Vec<*const Generation> {
    let slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
    slots
        .iter()
        .flat_map(|slot| {
            [
                slot.call.load(Ordering::SeqCst),
                slot.pin.load(Ordering::SeqCst),
                fast_slot(slot, &slots),
            ]
        })
        .filter(|p| !p.is_null() && *p != UNREGISTERED)
        .map(|p| p.cast_const())
        .collect()
}

/// Whether a plain call of another thread may still run in `generation`: that thread's call
/// slots (the fast one or the heap one; not the `pin` slot, held only while a count is raised)
/// hold it. The calling thread's own slots are left out: a swap made from inside a call of
/// `generation` (a rollback is decided in the call that panicked) must not wait for itself.
///
/// Used by a swap that moves state (`Module::drain`): after the swap that made `generation` not
/// current and a successful `os::process_barrier`, a `false` stays `false` — a new plain call
/// re-reads `current` after publishing and goes to the new generation. Not seen: plain calls
/// pinned by count (nested more than two deep, or during thread teardown), and calls of
/// generation 0, which take no pin.
pub(crate) fn running_elsewhere(generation: *const Generation) -> bool {
    let own = SLOT.try_with(|owner| ptr::from_ref(owner.0)).ok();
    let slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
    slots
        .iter()
        .filter(|slot| own != Some(ptr::from_ref::<HazardSlot>(slot)))
        .any(|slot| {
            ptr::eq(fast_slot(slot, &slots), generation)
                || ptr::eq(slot.call.load(Ordering::SeqCst), generation)
        })
}

/// What the thread owning `slot` has published in its registered fast `CALL_SLOT` (null if it
/// has none). The `SLOTS` guard is the proof that the registration cannot go away meanwhile.
fn fast_slot(
    slot: &HazardSlot,
    _registrations: &std::sync::MutexGuard<'_, Vec<&'static HazardSlot>>,
) -> *mut Generation {
    let fast = slot.fast.load(Ordering::Acquire);
    // SAFETY: a registered `CALL_SLOT` stays allocated until its thread clears `fast`, which it
    // does under the `SLOTS` lock, held by our caller (`_registrations`).
    unsafe { fast.as_ref() }.map_or(ptr::null_mut(), |fast| fast.load(Ordering::SeqCst))
}
