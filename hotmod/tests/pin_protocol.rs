//! The pinning protocol, model-checked with loom: every interleaving (up to loom's preemption
//! bound) of a plain call or a handle against a reload that retires the replaced generation.
//!
//! What is modelled, step for step, is the protocol of `pin.rs` (a plain call's view:
//! `OpenView::open`, `call_in_view` — which is also what `forward_target` reads, in the same
//! order, for a library's call handed on to the generation of its view —, `call_at_epoch`, the
//! view's close; a plain call into a
//! generation without hot imports, published in the slot as itself; and `publish`, `release`,
//! `pin_current` for handles), `hazard.rs` (the fast slot holding a view, one pin
//! slot per thread), `snapshot::publish` with `Runtime::make_current` (the swap counter made
//! odd, `since` and the history, `current`, the counter even again) and `Runtime::collect` /
//! `Runtime::unpin` (under the registry lock: read `current`, read the pin counts, the
//! process-wide barrier, scan the slots and the views, retire). A plain call makes a nested
//! calls of the module, and must see one generation in both (the consistency rule) as well as
//! never run an unloaded one. It is a model of that code, not the
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
//! Not modelled: generation 0 (never unloaded, no pin), staged generations, more than one
//! module (a view's reach: one bit per module, read by the collector like the view itself),
//! thread exit (slots unregistered under the `SLOTS` lock), fork, more than one reload, and the
//! heap-slot path of a process without the expedited barrier.
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
    /// `release` (or a view's close) does not ask the collector again when a swap happened.
    NoCollectAfterRelease,
    /// `make_current` stores `since` after `current`: a view could pair the new generation
    /// with the old epoch.
    SinceAfterCurrent,
    /// `collect` does not keep the generations views reach.
    IgnoreViews,
    /// The outer call reads `current` after the counter's re-check: a swap between them pairs
    /// the new generation with the old epoch.
    OuterCurrentAfterRecheck,
    /// A view's close compares the counter with its last read instead of its first: a
    /// collector that saw an announcement made again later kept a generation nobody collects.
    CloseAgainstLastRead,
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
    /// The reader's fast call slot (`CALL_SLOT`, holding a view word) and pin slot
    /// (`HazardSlot::pin`).
    call_slot: AtomicUsize,
    pin_slot: AtomicUsize,
    /// `snapshot::SWAPS`: the epoch, odd while a swap is published.
    epoch: AtomicUsize,
    /// `Runtime::since`: the epoch `current` last changed at.
    since: AtomicUsize,
    /// The registry (under its lock).
    live: Mutex<Registry>,
}

/// `Registry::live` and `Registry::history`.
struct Registry {
    live: Vec<usize>,
    /// (the epoch it became current at, generation)
    history: Vec<(usize, usize)>,
}

/// A view word in a slot (`hazard::view_word`): the epoch, tagged in the low bit.
fn view_word(epoch: usize) -> usize {
    (epoch << 1) | 1
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
            epoch: AtomicUsize::new(0),
            since: AtomicUsize::new(0),
            live: Mutex::new(Registry {
                live: vec![OLD, NEW],
                history: vec![(0, OLD)],
            }),
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

    /// A plain call into a generation that imports no other module (`pin::call`'s fast path,
    /// and its way out to the slow path when a reload raced it): the generation itself is
    /// published in the slot.
    fn plain_call_without_imports(&self) {
        let g = self.current.load(Ordering::Acquire);
        self.call_slot.store(g, Ordering::Relaxed);
        self.reader_fence();
        if self.current.load(Ordering::Acquire) != g && self.mutation != Mutation::NoRecheck {
            // `retired_while_calling`, then `call_slow`, which finds the slot free and tries
            // the fast path again until `current` holds still: `publish`'s loop.
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

    /// A plain call (`pin::call` → `call_opening_view`, which runs the generation `current`
    /// held when the view was checked) that makes a nested call of the module (`call_in_view`);
    /// returns the generations both ran.
    fn plain_call(&self) -> [usize; 2] {
        // `OpenView::open`: announce the epoch, fence, re-read it.
        let first = self.even_epoch();
        let mut seen = first;
        let outer = loop {
            self.call_slot.store(view_word(seen), Ordering::Relaxed);
            self.reader_fence();
            // The outer call's own generation: `current`, read before the counter's re-check.
            let mut current = self.current.load(Ordering::Acquire);
            let now = self.epoch.load(Ordering::Acquire);
            if self.mutation == Mutation::OuterCurrentAfterRecheck {
                current = self.current.load(Ordering::Acquire);
            }
            if now == seen || self.mutation == Mutation::NoRecheck {
                break current;
            }
            seen = self.even_epoch();
        };
        let view = seen;
        self.run_in(outer);
        let mut ran = [outer, NONE];
        for ran in &mut ran[1..] {
            // `call_in_view`: `current`, then `since`; a later `since` sends it to the history.
            let current = self.current.load(Ordering::Acquire);
            let g = if self.since.load(Ordering::Relaxed) <= view {
                current
            } else {
                // `call_at_epoch`.
                self.at_epoch(&self.live.lock().unwrap().history, view)
            };
            self.run_in(g);
            *ran = g;
        }
        // The view's close: clear, fence, collect if a swap happened since the first
        // announcement.
        self.call_slot.store(NONE, Ordering::Release);
        self.reader_fence();
        let opened = if self.mutation == Mutation::CloseAgainstLastRead {
            seen
        } else {
            first
        };
        if self.epoch.load(Ordering::Acquire) != opened
            && self.mutation != Mutation::NoCollectAfterRelease
        {
            self.collect();
        }
        ran
    }

    /// `pin::even_epoch`: the epoch once no swap is being published.
    fn even_epoch(&self) -> usize {
        loop {
            let epoch = self.epoch.load(Ordering::Acquire);
            if epoch & 1 == 0 {
                return epoch;
            }
            thread::yield_now();
        }
    }

    /// `Locked::at_epoch`: the generation current at `epoch`.
    fn at_epoch(&self, history: &[(usize, usize)], epoch: usize) -> usize {
        history
            .iter()
            .rev()
            .find(|(since, _)| *since <= epoch)
            .map_or(OLD, |(_, g)| *g)
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

    /// `snapshot::publish` around `Runtime::make_current`, then the collect a load ends with.
    fn reload(&self) {
        let odd = self.epoch.fetch_add(1, Ordering::Relaxed) + 1;
        fence(Ordering::Release);
        {
            let mut registry = self.live.lock().unwrap();
            registry.history.push((odd + 1, NEW));
            if self.mutation == Mutation::SinceAfterCurrent {
                sc_store(&self.current, NEW);
                self.since.store(odd + 1, Ordering::Relaxed);
            } else {
                self.since.store(odd + 1, Ordering::Relaxed);
                sc_store(&self.current, NEW);
            }
        }
        self.epoch.fetch_add(1, Ordering::Release);
        self.collect();
    }

    /// `Runtime::collect`.
    fn collect(&self) {
        let mut registry = self.live.lock().unwrap();
        let current = sc_load(&self.current);
        let idle = |g: usize| g != current && sc_load(&self.generations[g].pins) == 0;
        if !registry.live.iter().any(|&g| idle(g)) {
            return;
        }
        // `os::process_barrier`: membarrier, a fence on every running thread.
        if self.mutation != Mutation::NoBarrier {
            fence(Ordering::SeqCst);
        }
        let mut hazards = vec![self.pin_slot.load(Ordering::SeqCst)];
        // `hazard::hazards` and `hazard::views`: the fast slot holds a generation, or a view,
        // which keeps the generation current at its epoch.
        let word = self.call_slot.load(Ordering::SeqCst);
        if word & 1 == 0 {
            hazards.push(word);
        } else if self.mutation != Mutation::IgnoreViews {
            hazards.push(self.at_epoch(&registry.history, word >> 1));
        }
        let retiring: Vec<usize> = registry
            .live
            .iter()
            .copied()
            .filter(|&g| idle(g) && !hazards.contains(&g))
            .collect();
        registry.live.retain(|g| !retiring.contains(g));
        registry.history.retain(|(_, g)| !retiring.contains(g));
        drop(registry);
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
        let registry = self.live.lock().unwrap();
        assert!(
            !registry.live.contains(&OLD),
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

/// One plain call (with a nested call) on one thread while another reloads and collects: both
/// run one generation, never an unloaded one.
fn plain_call_during_reload(world: Arc<World>) {
    let reader = {
        let world = world.clone();
        thread::spawn(move || world.plain_call())
    };
    world.reload();
    let [first, second] = reader.join().unwrap();
    assert_eq!(first, second, "one call saw two generations");
    world.assert_retired();
}

/// One plain call into a generation without hot imports on one thread while another reloads
/// and collects.
fn plain_call_without_imports_during_reload(world: Arc<World>) {
    let reader = {
        let world = world.clone();
        thread::spawn(move || world.plain_call_without_imports())
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
fn a_plain_call_sees_one_generation_and_never_an_unloaded_one() {
    check(
        plain_call_during_reload,
        &[
            Mutation::NoRecheck,
            Mutation::NoReaderFence,
            Mutation::NoBarrier,
            Mutation::NoCollectAfterRelease,
            Mutation::SinceAfterCurrent,
            Mutation::IgnoreViews,
            Mutation::CloseAgainstLastRead,
            Mutation::OuterCurrentAfterRecheck,
        ],
    );
}

#[test]
fn a_plain_call_without_imports_never_runs_an_unloaded_generation() {
    check(
        plain_call_without_imports_during_reload,
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
