//! Keeping a generation mapped while something uses it.
//!
//! Two kinds of users pin a generation:
//!
//! - **Handles** ([`Pin`]) count themselves in `Generation::pins`. `Pin::current` increments the
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
//!   `membarrier` the reader's fence is only a compiler fence, so a plain call costs two loads
//!   and two stores of thread-local or read-mostly memory.
//!
//!   A plain call made while the thread's slot is already taken (module code calling a hot
//!   function, possibly of another module) pins by count instead, like a handle.
//!
//! After a plain call or the last handle of a generation that is no longer current ends, the
//! module is asked to collect, so a generation retires as soon as its last user is gone.
//!
//! Generation 0 is never unloaded, so calls that find it current take no pin at all.

use std::mem::{ManuallyDrop, MaybeUninit};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::abi::{PanicSlot, Trampoline};
use crate::generation::Generation;
use crate::module::Module;
use crate::os;

/// A pinned generation of one hot module: what a generated `Handle` wraps.
pub struct Pin {
    module: &'static Module,
    generation: NonNull<Generation>,
}

// SAFETY: a `Pin` only reads its generation (immutable apart from the atomic `pins`) and the
// module (a `Sync` static); the pin count it holds is released with an atomic decrement.
unsafe impl Send for Pin {}
// SAFETY: as above; `&Pin` allows only reads and calls through immutable trampolines.
unsafe impl Sync for Pin {}

impl Pin {
    /// Pins the module's current generation.
    pub fn current(module: &'static Module) -> Pin {
        module.first_use();
        Pin {
            module,
            generation: pin_current(module),
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
        // SAFETY: the generation is pinned, so it is alive and its library loaded.
        let generation = unsafe { self.generation.as_ref() };
        if generation.library.is_none() {
            return builtin(args);
        }
        // SAFETY: `index` is the host's index of a function the loader verified, and the
        // library stays loaded while `self` exists.
        let result = unsafe { invoke(generation.table[index], args) };
        if generation.probation.active.load(Ordering::Relaxed) {
            self.module.observe(generation, result.is_err());
        }
        match result {
            Ok(value) => value,
            Err(message) => resume_panic(message),
        }
    }
}

impl Clone for Pin {
    fn clone(&self) -> Self {
        // SAFETY: `self` holds a pin, so the generation is alive and its count is ≥ 1; a
        // relaxed increment suffices because the count cannot reach 0 concurrently.
        unsafe { self.generation.as_ref() }
            .pins
            .fetch_add(1, Ordering::Relaxed);
        Pin {
            module: self.module,
            generation: self.generation,
        }
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        unpin(self.module, self.generation.as_ptr());
    }
}

impl std::fmt::Debug for Pin {
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
#[inline]
pub fn call<A, R, F: FnOnce(A) -> R>(
    module: &'static Module,
    index: usize,
    args: A,
    builtin: F,
) -> R {
    if module.current_loaded().is_null() {
        module.first_use();
        return builtin(args);
    }
    call_loaded(module, index, args, builtin)
}

#[inline(never)]
fn call_loaded<A, R, F: FnOnce(A) -> R>(
    module: &'static Module,
    index: usize,
    args: A,
    builtin: F,
) -> R {
    let slot = match thread_slot() {
        Some(slot) if slot.call.load(Ordering::Relaxed).is_null() => slot,
        // A nested call (the slot holds the outer call's generation) or thread teardown.
        _ => return Pin::current(module).call(index, args, builtin),
    };
    let generation = publish(module, &slot.call);
    // SAFETY: published and validated: alive and loaded until `release`.
    let loaded = unsafe { &*generation };
    if loaded.library.is_none() {
        // Generation 0 became current again.
        release(module, &slot.call, generation);
        return builtin(args);
    }
    // SAFETY: `index` is the host's index of a function the loader verified with these
    // argument and return types; the library stays loaded until `release`.
    let result = unsafe { invoke(loaded.table[index], args) };
    if loaded.probation.active.load(Ordering::Relaxed) {
        module.observe(loaded, result.is_err());
    }
    release(module, &slot.call, generation);
    match result {
        Ok(value) => value,
        Err(message) => resume_panic(message),
    }
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
    if !ptr::eq(module.current_ptr(), generation) {
        module.collect();
    }
}

/// Runs a trampoline. `Err` carries the message of a panic inside the module.
///
/// # Safety
/// `trampoline` must be a verified trampoline taking `A` and returning `R`, in a library that
/// stays loaded during the call.
#[inline(always)]
pub(crate) unsafe fn invoke<A, R>(trampoline: Trampoline, args: A) -> Result<R, String> {
    let mut args = ManuallyDrop::new(args);
    let mut ret = MaybeUninit::<R>::uninit();
    let mut panic = PanicSlot::new();
    // SAFETY: `args` is an initialised `A` whose ownership passes to the trampoline (we never
    // drop it: `ManuallyDrop`); `ret` has room for an `R`; `panic` is a live slot.
    unsafe {
        trampoline(
            ptr::from_mut::<A>(&mut args).cast(),
            ret.as_mut_ptr().cast(),
            &mut panic,
        )
    };
    match panic.take() {
        None => {
            // SAFETY: no panic recorded, so the trampoline wrote the return value.
            Ok(unsafe { ret.assume_init() })
        }
        Some(message) => Err(message),
    }
}

/// Re-raises a module's panic on the caller's thread as an ordinary panic whose payload is the
/// module's message (a `String`). The module's own panic hook already reported it.
#[cold]
#[inline(never)]
fn resume_panic(message: String) -> ! {
    std::panic::resume_unwind(Box::new(message))
}

/// One thread's published generations (null when unused).
struct HazardSlot {
    /// Held for the duration of a plain call.
    call: AtomicPtr<Generation>,
    /// Held while `Pin::current` raises a count.
    pin: AtomicPtr<Generation>,
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
        self.0.call.store(ptr::null_mut(), Ordering::Release);
        self.0.pin.store(ptr::null_mut(), Ordering::Release);
        self.0.owned.store(false, Ordering::Release);
    }
}

thread_local! {
    static SLOT: SlotOwner = SlotOwner::acquire();
}

#[inline]
fn thread_slot() -> Option<&'static HazardSlot> {
    SLOT.try_with(|owner| owner.0).ok()
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
            ]
        })
        .filter(|p| !p.is_null())
        .map(|p| p.cast_const())
        .collect()
}
