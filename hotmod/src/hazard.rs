//! Hazard slots: where each thread publishes the generation its plain call runs in, and where
//! the collector looks before it unloads anything (the protocol is described in `pin.rs`).
//!
//! A call slot holds either a generation (the plain-call protocol of a process with one hot
//! module) or a *view*: the epoch an outermost call into hot code began at (`pin.rs`), tagged
//! in the low bit, which no generation's address has. Beside the fast slot, `VIEW_REACH` says
//! which modules the view protects (one bit per module, `Runtime::reach_bit`).
//!
//! Each thread has two call slots. The fast one, `CALL_SLOT`, is a constant-initialised
//! thread-local in the thread's own TLS block; the collector reaches it through the pointer the
//! thread registers in its heap `HazardSlot` (under the `SLOTS` lock, and removed under it at
//! thread exit, before the TLS block goes). Heap slots are 128-byte aligned: two threads' slots
//! never share a cache line.
//!
//! After `fork`, only the forking thread exists in the child: the other threads' registered
//! `CALL_SLOT`s lie in TLS blocks glibc may unmap there (it reuses or frees dead threads'
//! stacks), and their calls will never end. The fork handlers (`fork.rs`) hold `SLOTS` across
//! the fork, and in the child [`ForkSlots::in_child`] gives back every slot but the forking
//! thread's, cleared: the child's collector reads only slots of threads that exist.

use std::cell::Cell;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::generation::Generation;
use crate::os;

/// One thread's published generations (null when unused). Aligned so that no two threads' slots
/// share a cache line (or an adjacent-line prefetch pair): a plain call writes its slot twice.
#[repr(align(128))]
pub(crate) struct HazardSlot {
    /// Held for the duration of a plain call.
    pub(crate) call: AtomicPtr<Generation>,
    /// Held while `PinnedGeneration::current` raises a count.
    pub(crate) pin: AtomicPtr<Generation>,
    /// The owning thread's `CALL_SLOT` once registered, else null. Set and cleared under the
    /// `SLOTS` lock, which `hazards` holds while it reads through it: the thread clears it before
    /// its thread-locals are freed.
    fast: AtomicPtr<AtomicPtr<Generation>>,
    /// The owning thread's `VIEW_REACH`, registered and cleared with `fast`.
    reach: AtomicPtr<AtomicU64>,
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
                    reach: AtomicPtr::new(ptr::null_mut()),
                    owned: AtomicBool::new(true),
                }));
                slots.push(slot);
                slot
            }
        };
        OWN_SLOT.set(slot);
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
            self.0.reach.store(ptr::null_mut(), Ordering::Release);
        }
        CALL_SLOT.with(|slot| slot.call.store(UNREGISTERED, Ordering::Relaxed));
        self.0.call.store(ptr::null_mut(), Ordering::Release);
        self.0.pin.store(ptr::null_mut(), Ordering::Release);
        OWN_SLOT.set(ptr::null());
        self.0.owned.store(false, Ordering::Release);
    }
}

/// `CALL_SLOT` of a thread that has not registered it (or has unregistered it at exit). Not null,
/// so the fast path's single check sends such calls to the slow path; never a generation's
/// address (`Generation` is 8-aligned and heap-allocated, so never at address 8).
pub(crate) const UNREGISTERED: *mut Generation = NonNull::<Generation>::dangling().as_ptr();

thread_local! {
    static SLOT: SlotOwner = SlotOwner::acquire();
    /// The plain-call fast path's hazard slot, with `VIEW_REACH` beside it (one thread-local,
    /// so that a call finds both with one address computation: where the TLS access is
    /// compiled as a call, in code built position-independent, that is one fewer). It lives in
    /// the thread's own static TLS block: one `%fs`-relative load and two stores per call, no
    /// lazy-initialisation check, no pointer to chase, and no cache line shared with another
    /// thread. The collector finds it through the thread's `HazardSlot::fast`.
    static CALL_SLOT: FastSlot = const {
        FastSlot {
            call: AtomicPtr::new(UNREGISTERED),
            reach: AtomicU64::new(u64::MAX),
        }
    };
    /// The slot `SLOT` owns, or null: what the fork handler in the child keeps. `const` and
    /// without a destructor, so reading it never acquires a slot (which takes `SLOTS`).
    static OWN_SLOT: Cell<*const HazardSlot> = const { Cell::new(ptr::null()) };
}

/// `CALL_SLOT`: the fast call slot and `VIEW_REACH`, in this order (`static_slot` reads them by
/// offset).
#[repr(C)]
pub(crate) struct FastSlot {
    call: AtomicPtr<Generation>,
    /// `VIEW_REACH`: while `call` holds a view, the modules whose generations at its epoch it
    /// keeps loaded (`Runtime::reach_bit`s; all of them until the call knows its generation's
    /// hot imports). Written only by its thread; read by collectors through
    /// `HazardSlot::reach`.
    reach: AtomicU64,
}

/// This thread's slot, acquiring one on first use; `None` during thread teardown. Also
/// registers the thread's `CALL_SLOT` once the process barrier is expedited.
#[inline]
pub(crate) fn thread_slot() -> Option<&'static HazardSlot> {
    let slot = SLOT.try_with(|owner| owner.0).ok()?;
    if os::barrier_registered() && slot.fast.load(Ordering::Relaxed).is_null() {
        register_call_slot(slot);
    }
    Some(slot)
}

/// Makes this thread's `CALL_SLOT` visible to the collector, then opens it to the fast path.
#[cold]
fn register_call_slot(slot: &'static HazardSlot) {
    let call_slot = fast_call_slot().cast_mut();
    let reach = view_reach().cast_mut();
    {
        // Under the lock `hazards` scans with: a scan either sees the registration, or runs
        // before it — and then before any generation this thread publishes in `CALL_SLOT`, whose
        // re-check of `current` therefore sees the swap that scan belonged to.
        let _slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
        slot.reach.store(reach, Ordering::Release);
        slot.fast.store(call_slot, Ordering::Release);
    }
    // Only `UNREGISTERED` is replaced: a value that is a generation belongs to a call running.
    CALL_SLOT.with(|slot| {
        let _ = slot.call.compare_exchange(
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
        .filter(|p| !p.is_null() && *p != UNREGISTERED && view_epoch(*p).is_none())
        .map(|p| p.cast_const())
        .collect()
}

/// A view announced in some thread's call slot: the epoch its outermost call began at, and
/// the modules (`Runtime::reach_bit`s) whose generations at that epoch it may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct View {
    pub(crate) epoch: u64,
    pub(crate) reach: u64,
}

/// The slot value that announces a view at `epoch` (even): tagged in the low bit.
#[inline(always)]
pub(crate) fn view_word(epoch: u64) -> *mut Generation {
    // Epochs count swaps: they fit a pointer's width in any process that will ever run.
    ptr::without_provenance_mut(((epoch as usize) << 1) | 1)
}

/// The epoch of a slot value that announces a view, else `None`.
#[inline(always)]
pub(crate) fn view_epoch(word: *mut Generation) -> Option<u64> {
    let word = word.addr();
    (word & 1 == 1).then_some((word >> 1) as u64)
}

/// `CALL_SLOT`'s offset from the thread pointer when it is the same in every thread (hotmod is
/// part of the main program, whose TLS block is static: `os::static_tls_offset`); 0 while
/// unknown or where there is none.
static STATIC_SLOT: AtomicIsize = AtomicIsize::new(0);
/// Whether `find_static_slot` looked.
static STATIC_SLOT_SOUGHT: AtomicBool = AtomicBool::new(false);

/// Looks for `CALL_SLOT`'s static offset (once), for `static_slot`. Every load calls it
/// (`transaction.rs`) before it links a library to the host's modules: before any forwarding
/// trampoline can run.
pub(crate) fn find_static_slot() {
    if STATIC_SLOT_SOUGHT.swap(true, Ordering::Relaxed) {
        return;
    }
    if let Some(offset) = os::static_tls_offset(fast_call_slot().cast()) {
        STATIC_SLOT.store(offset, Ordering::Relaxed);
    }
}

/// This thread's `CALL_SLOT` and `VIEW_REACH` values, read at their static offset from the
/// thread pointer without the thread-local machinery, which in code built
/// position-independent is a call the compiler saves registers around; `None` until
/// `find_static_slot` found the offset, or where there is none. Any thread sees the offset
/// or 0: either is right for it.
#[inline(always)]
pub(crate) fn static_slot() -> Option<(*mut Generation, u64)> {
    let offset = STATIC_SLOT.load(Ordering::Relaxed);
    if offset == 0 {
        return None;
    }
    let reach = offset.wrapping_add(std::mem::offset_of!(FastSlot, reach) as isize);
    // SAFETY: `offset` is `CALL_SLOT`'s in every thread (`os::static_tls_offset`), whose
    // `call` and `reach` are words only this thread writes (collectors read them).
    let (call, reach) = unsafe { (os::read_static_tls(offset), os::read_static_tls(reach)) };
    Some((ptr::without_provenance_mut(call), reach as u64))
}

/// This thread's `VIEW_REACH` (see the module docs).
#[inline(always)]
pub(crate) fn view_reach() -> *const AtomicU64 {
    CALL_SLOT.with(|slot| ptr::from_ref(&slot.reach))
}

/// Views pinned by handles (`pin.rs`, `ViewPin`): each keeps what a view at its epoch keeps,
/// for as long as the handle lives, without a slot. A multiset: equal entries are separate pins.
static PINNED_VIEWS: Mutex<Vec<View>> = Mutex::new(Vec::new());

/// Adds a pinned view. The caller then re-reads the epoch: a collector that locks after this
/// sees the entry, and one that locked before had finished its swap, which the re-read sees.
pub(crate) fn pin_view(view: View) {
    PINNED_VIEWS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(view);
}

/// Removes one pinned view equal to `view` (added by `pin_view`).
pub(crate) fn unpin_view(view: View) {
    let mut pinned = PINNED_VIEWS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(at) = pinned.iter().position(|v| *v == view) {
        pinned.swap_remove(at);
    }
}

/// The views announced in threads' fast slots, this thread's too unless `others_only`, and the
/// views handles pin (unless `others_only`: a thread cannot tell its own handles apart). Call
/// after `os::process_barrier`: every view announced (and checked against the epoch) before it
/// is seen, with its reach; a slot read torn against a later view belongs to a call that began
/// after the barrier, whose epoch is at least the swap's.
pub(crate) fn views(others_only: bool) -> Vec<View> {
    let own = if others_only {
        SLOT.try_with(|owner| ptr::from_ref(owner.0)).ok()
    } else {
        None
    };
    let mut views: Vec<View> = if others_only {
        Vec::new()
    } else {
        PINNED_VIEWS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    };
    let slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
    views.extend(
        slots
            .iter()
            .filter(|slot| own != Some(ptr::from_ref::<HazardSlot>(slot)))
            .filter_map(|slot| {
                let epoch = view_epoch(fast_slot(slot, &slots))?;
                let reach = slot.reach.load(Ordering::Acquire);
                // SAFETY: registered with `fast` and cleared with it under the `SLOTS` lock,
                // which we hold: the thread-local is alive.
                let reach =
                    unsafe { reach.as_ref() }.map_or(u64::MAX, |r| r.load(Ordering::SeqCst));
                Some(View { epoch, reach })
            }),
    );
    views
}

/// Whether a plain call of another thread may still run in `generation`: that thread's call
/// slots (the fast one or the heap one; not the `pin` slot, held only while a count is raised)
/// hold it. The calling thread's own slots are left out: a swap made from inside a call of
/// `generation` (a rollback is decided in the call that panicked) must not wait for itself.
///
/// Used by a swap that moves state (`Runtime::drain`): after the swap that made `generation` not
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
    _registrations: &MutexGuard<'_, Vec<&'static HazardSlot>>,
) -> *mut Generation {
    let fast = slot.fast.load(Ordering::Acquire);
    // SAFETY: a registered `CALL_SLOT` stays allocated until its thread clears `fast`, which it
    // does under the `SLOTS` lock, held by our caller (`_registrations`).
    unsafe { fast.as_ref() }.map_or(ptr::null_mut(), |fast| fast.load(Ordering::SeqCst))
}

/// This thread's fast call slot (`CALL_SLOT`): null when registered and free, `UNREGISTERED`
/// before registration and after thread exit began, else the generation of a plain call running
/// on this thread. Valid for as long as the thread runs.
#[inline(always)]
pub(crate) fn fast_call_slot() -> *const AtomicPtr<Generation> {
    CALL_SLOT.with(|slot| ptr::from_ref(&slot.call))
}

/// `SLOTS`, held across `fork` (see the module docs). Only held briefly elsewhere, and never
/// while another lock is taken.
pub(crate) struct ForkSlots {
    slots: MutexGuard<'static, Vec<&'static HazardSlot>>,
    _pinned: MutexGuard<'static, Vec<View>>,
}

impl ForkSlots {
    /// Takes `SLOTS` and `PINNED_VIEWS` (the prepare handler): the child never starts with one
    /// held by a thread it does not have. (Handles live in memory the child has too; they
    /// unpin their views there when dropped.)
    pub(crate) fn take() -> ForkSlots {
        let slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
        let pinned = PINNED_VIEWS.lock().unwrap_or_else(PoisonError::into_inner);
        ForkSlots {
            slots,
            _pinned: pinned,
        }
    }

    /// In the child: every slot but this thread's is given back, its pointers cleared. Their
    /// threads do not exist here, nor do their calls and pins in progress; their `CALL_SLOT`s
    /// are never read again (a thread started in the child that takes such a slot registers
    /// its own).
    pub(crate) fn in_child(&mut self) {
        let own = OWN_SLOT.get();
        for slot in self.slots.iter().filter(|slot| !ptr::eq(**slot, own)) {
            slot.fast.store(ptr::null_mut(), Ordering::Relaxed);
            slot.reach.store(ptr::null_mut(), Ordering::Relaxed);
            slot.call.store(ptr::null_mut(), Ordering::Relaxed);
            slot.pin.store(ptr::null_mut(), Ordering::Relaxed);
            slot.owned.store(false, Ordering::Release);
        }
    }
}
