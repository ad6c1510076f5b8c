//! The pinning protocol, model-checked with loom: every interleaving (up to loom's preemption
//! bound) of a plain call or a handle against a reload that retires the replaced generation.
//!
//! What is modelled, step for step, is the protocol of `pin.rs` (`call`'s fast path, `publish`,
//! `release`, `pin_current`), `hazard.rs` (one call slot and one pin slot per thread) and
//! `Runtime::collect` / `Runtime::unpin` (under the registry lock: read `current`, read the pin
//! counts, the process-wide barrier, scan the slots, retire). It is a model of that code, not the
//! code itself: the real functions reach the OS (`membarrier`, thread-locals, `dlclose`), which
//! loom cannot run.
//!
//! How it maps:
//! - A generation's library is a `loom::cell::UnsafeCell`: a call reads it, retiring writes it.
//!   loom reports any read that is not ordered with the write (a call running while its library
//!   is unloaded), and the read also asserts the library is still loaded.
//! - `membarrier(PRIVATE_EXPEDITED)` is a SeqCst fence on both sides: the reader's compiler
//!   fence (`os::reader_fence`) and the collector's barrier are each `fence(SeqCst)`.
//! - loom treats a SeqCst load or store as Acquire/Release (tokio-rs/loom#180), so each SeqCst
//!   access of the real code is the access plus a SeqCst fence on the side that orders it
//!   (`sc_load`, `sc_store`, `sc_add`): the count protocol is a Dekker pattern (the handle raises
//!   the count, then re-reads `current`; the collector stores `current`, then reads the count),
//!   which SeqCst fences order as the real SeqCst accesses do.
//!
//! Not modelled: generation 0 (never unloaded, no pin), staged generations, nested calls,
//! thread exit (slots unregistered under the `SLOTS` lock), fork, and more than one reload.
//!
//! Each check runs the faithful model, then the same model with one step of the protocol taken
//! out (`Mutation`), and requires loom to find the failure: the model has teeth.

use std::panic::{catch_unwind, AssertUnwindSafe};

use loom::cell::UnsafeCell;
use loom::sync::atomic::{fence, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

/// An empty slot; generations are 1 (the one being replaced) and 2 (its replacement).
const NONE: usize = 0;
const OLD: usize = 1;
const NEW: usize = 2;

/// One step of the protocol left out, to show that the model notices.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mutation {
    /// The faithful model.
    None,
    /// `call` does not re-read `current` after publishing its slot.
    NoRecheck,
    /// The reader's half of the barrier (`os::reader_fence`) is missing.
    NoReaderFence,
    /// `collect` scans the slots without the process-wide barrier. Readers use only a compiler
    /// fence, which orders nothing at run time unless the barrier forces a fence on their CPU:
    /// without the barrier, neither side has a fence.
    NoBarrier,
    /// `release` does not ask the collector again when its generation stopped being current.
    NoCollectAfterRelease,
    /// `pin_current` does not hold its pin slot while it raises the count.
    HandleWithoutSlot,
}

struct Generation {
    /// The library: 1 while loaded, 0 once unloaded.
    library: UnsafeCell<u32>,
    pins: AtomicUsize,
}

struct World {
    mutation: Mutation,
    current: AtomicUsize,
    generations: [Generation; 3],
    /// The reader's call slot and pin slot (`HazardSlot::call` / `CALL_SLOT`, `HazardSlot::pin`).
    call_slot: AtomicUsize,
    pin_slot: AtomicUsize,
    /// `Registry::live`: loaded generations not yet retired.
    live: Mutex<Vec<usize>>,
}

impl World {
    fn new(mutation: Mutation) -> World {
        let generation = || Generation {
            library: UnsafeCell::new(1),
            pins: AtomicUsize::new(0),
        };
        World {
            mutation,
            current: AtomicUsize::new(OLD),
            generations: [generation(), generation(), generation()],
            call_slot: AtomicUsize::new(NONE),
            pin_slot: AtomicUsize::new(NONE),
            live: Mutex::new(vec![OLD, NEW]),
        }
    }

    /// `os::reader_fence`: with expedited membarrier a compiler fence, paired with the
    /// collector's barrier; modelled as a SeqCst fence.
    fn reader_fence(&self) {
        if !matches!(self.mutation, Mutation::NoReaderFence | Mutation::NoBarrier) {
            fence(Ordering::SeqCst);
        }
    }

    /// Runs code of generation `g`: reads its library, which must still be loaded.
    fn run_in(&self, g: usize) {
        let loaded = self.generations[g].library.with(|library| {
            // SAFETY: loom's cell: the read is checked against the retiring write.
            unsafe { *library }
        });
        assert_eq!(loaded, 1, "generation {g} ran after it was unloaded");
    }

    /// `pin::publish`: publish `current` in `slot`, re-read, retry until they agree.
    fn publish(&self, slot: &AtomicUsize) -> usize {
        let mut g = self.current.load(Ordering::Acquire);
        let mut retried = false;
        loop {
            slot.store(g, Ordering::Relaxed);
            self.reader_fence();
            let now = self.current.load(Ordering::Acquire);
            if now == g || self.mutation == Mutation::NoRecheck {
                if retried {
                    self.collect();
                }
                return g;
            }
            g = now;
            retried = true;
        }
    }

    /// `pin::release`: clear `slot`; if `g` stopped being current meanwhile, collect again.
    fn release(&self, slot: &AtomicUsize, g: usize) {
        slot.store(NONE, Ordering::Release);
        self.reader_fence();
        if self.current.load(Ordering::Acquire) != g
            && self.mutation != Mutation::NoCollectAfterRelease
        {
            self.collect();
        }
    }

    /// `pin::call`'s fast path (and its way out to the slow path when a reload raced it).
    fn plain_call(&self) {
        let g = self.current.load(Ordering::Acquire);
        self.call_slot.store(g, Ordering::Relaxed);
        self.reader_fence();
        if self.current.load(Ordering::Acquire) != g && self.mutation != Mutation::NoRecheck {
            // `retired_while_calling`, then `call_slow`.
            self.call_slot.store(NONE, Ordering::Release);
            self.collect();
            let g = self.publish(&self.call_slot);
            self.run_in(g);
            self.release(&self.call_slot, g);
            return;
        }
        self.run_in(g);
        self.release(&self.call_slot, g);
    }

    /// `pin::pin_current` for a loaded generation: publish in the pin slot, raise the count,
    /// release the slot. Returns the pinned generation.
    fn pin(&self) -> usize {
        let g = if self.mutation == Mutation::HandleWithoutSlot {
            self.current.load(Ordering::Acquire)
        } else {
            self.publish(&self.pin_slot)
        };
        sc_add(&self.generations[g].pins, 1);
        if self.mutation != Mutation::HandleWithoutSlot {
            self.release(&self.pin_slot, g);
        }
        g
    }

    /// `Runtime::unpin`: drop the count; the last user of a replaced generation collects.
    fn unpin(&self, g: usize) {
        let before = sc_add(&self.generations[g].pins, usize::MAX); // wrapping - 1
        if before == 1 && sc_load(&self.current) != g {
            self.collect();
        }
    }

    /// `Runtime::make_current` (inside `snapshot::publish`), then the collect a load ends with.
    fn reload(&self) {
        {
            let _registry = self.live.lock().unwrap();
            sc_store(&self.current, NEW);
        }
        self.collect();
    }

    /// `Runtime::collect`.
    fn collect(&self) {
        let mut live = self.live.lock().unwrap();
        let current = sc_load(&self.current);
        let idle = |g: usize| g != current && sc_load(&self.generations[g].pins) == 0;
        if !live.iter().any(|&g| idle(g)) {
            return;
        }
        // `os::process_barrier`: membarrier, a fence on every running thread.
        if self.mutation != Mutation::NoBarrier {
            fence(Ordering::SeqCst);
        }
        let hazards = [
            self.call_slot.load(Ordering::SeqCst),
            self.pin_slot.load(Ordering::SeqCst),
        ];
        let retiring: Vec<usize> = live
            .iter()
            .copied()
            .filter(|&g| idle(g) && !hazards.contains(&g))
            .collect();
        live.retain(|g| !retiring.contains(g));
        drop(live);
        for g in retiring {
            // `Runtime::retire`: unload the library.
            self.generations[g].library.with_mut(|library| {
                // SAFETY: loom's cell: the write is checked against every read.
                unsafe { *library = 0 }
            });
        }
    }

    /// After every thread is done: the replaced generation was retired (nothing pins it and
    /// it is not current), so no generation outlives its last user.
    fn assert_retired(&self) {
        let live = self.live.lock().unwrap();
        assert!(
            !live.contains(&OLD),
            "generation {OLD} was replaced and unused, yet stays loaded"
        );
    }
}

fn sc_load(a: &AtomicUsize) -> usize {
    fence(Ordering::SeqCst);
    a.load(Ordering::SeqCst)
}

fn sc_store(a: &AtomicUsize, v: usize) {
    a.store(v, Ordering::SeqCst);
    fence(Ordering::SeqCst);
}

/// A SeqCst `fetch_add` (`usize::MAX` subtracts one); returns the value before.
fn sc_add(a: &AtomicUsize, v: usize) -> usize {
    let before = a.fetch_add(v, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    before
}

fn model(mutation: Mutation, scenario: fn(Arc<World>)) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(move || scenario(Arc::new(World::new(mutation))));
}

/// Runs `scenario` faithfully (it must pass), then with each mutation in `broken` (loom must
/// find a failure in each).
fn check(scenario: fn(Arc<World>), broken: &[Mutation]) {
    model(Mutation::None, scenario);
    for &mutation in broken {
        let found = catch_unwind(AssertUnwindSafe(|| model(mutation, scenario)));
        match found {
            Ok(()) => panic!("loom found nothing wrong with {mutation:?}"),
            Err(payload) => {
                let why = payload
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| payload.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                eprintln!("{mutation:?}: loom found: {why}");
            }
        }
    }
}

/// One plain call on one thread while another reloads and collects.
fn plain_call_during_reload(world: Arc<World>) {
    let reader = {
        let world = world.clone();
        thread::spawn(move || world.plain_call())
    };
    world.reload();
    reader.join().unwrap();
    world.assert_retired();
}

/// A handle pinned, used and dropped on one thread while another reloads and collects.
fn handle_during_reload(world: Arc<World>) {
    let holder = {
        let world = world.clone();
        thread::spawn(move || {
            let g = world.pin();
            world.run_in(g);
            world.unpin(g);
        })
    };
    world.reload();
    holder.join().unwrap();
    world.assert_retired();
}

#[test]
fn a_plain_call_never_runs_an_unloaded_generation() {
    check(
        plain_call_during_reload,
        &[
            Mutation::NoRecheck,
            Mutation::NoReaderFence,
            Mutation::NoBarrier,
            Mutation::NoCollectAfterRelease,
        ],
    );
}

#[test]
fn a_handle_never_keeps_an_unloaded_generation() {
    check(
        handle_during_reload,
        &[
            Mutation::NoRecheck,
            Mutation::NoReaderFence,
            Mutation::HandleWithoutSlot,
        ],
    );
}
