//! Consistent views across hot modules, and loading several modules all or nothing.
//!
//! Every change of any module's current generation happens inside [`publish`], which makes the
//! process-wide swap counter odd while it runs (a sequence lock; writers take turns on a mutex).
//! [`snapshot`] pins handles and retries until it saw the same even counter before and after,
//! so a snapshot never mixes generations from both sides of a [`load_all`]. Readers never block
//! writers: a reload never waits for a snapshot.

use std::path::PathBuf;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::error::Error;
use crate::module::Module;

/// Even: no swap in progress. Odd: some module's current generation is being changed.
static SWAPS: AtomicU64 = AtomicU64::new(0);
/// Writers take turns, so the counter's odd windows never overlap.
static WRITER: Mutex<()> = Mutex::new(());

/// Runs `swap` (stores to modules' current generations) as one step for snapshots.
pub(crate) fn publish<R>(swap: impl FnOnce() -> R) -> R {
    let _writer = WRITER.lock().unwrap_or_else(PoisonError::into_inner);
    // Odd from here; Release fence: a reader that sees any store below also sees the odd count.
    SWAPS.fetch_add(1, Ordering::Relaxed);
    fence(Ordering::Release);
    let result = swap();
    // Even again; Release: the stores above happen before a reader sees the new count.
    SWAPS.fetch_add(1, Ordering::Release);
    result
}

/// Calls `capture` (which pins handles of several modules) until no module's current generation
/// changed while it ran, and returns what it captured: one coherent set of generations.
/// [`snapshot!`](crate::snapshot!) is the convenient form.
pub fn snapshot<T>(mut capture: impl FnMut() -> T) -> T {
    loop {
        // Acquire: pairs with the Release of the closing increment in `publish`.
        let before = SWAPS.load(Ordering::Acquire);
        if before % 2 == 1 {
            std::thread::yield_now();
            continue;
        }
        let captured = capture();
        // Acquire fence: the loads in `capture` happen before the re-read below.
        fence(Ordering::Acquire);
        if SWAPS.load(Ordering::Relaxed) == before {
            return captured;
        }
        // A swap interleaved: drop the handles and try again.
    }
}

/// Pins the current generation of several hot modules at one instant: no reload interleaves,
/// so the handles form a coherent set. Returns a tuple of the modules' `Handle`s.
///
/// ```
/// #[hotmod::hot_module]
/// pub mod pricing {
///     pub fn price(units: u64) -> u64 { units * 3 }
/// }
///
/// #[hotmod::hot_module]
/// pub mod tax {
///     pub fn tax(amount: u64) -> u64 { amount / 5 }
/// }
///
/// // One request, one coherent pair of generations, whatever reloads happen meanwhile.
/// let (p, t) = hotmod::snapshot!(pricing, tax);
/// assert_eq!(t.tax(p.price(10)), 6);
/// ```
#[macro_export]
macro_rules! snapshot {
    ($($($segment:ident)::+),+ $(,)?) => {
        $crate::snapshot(|| ($($($segment)::+::Handle::current(),)+))
    };
}

/// Loads a new generation of several hot modules at once: every library is verified and
/// initialised first; only if all pass do they all become current, in one step for
/// [`snapshot()`]. If any is rejected, none changes and the first error is returned. Returns the
/// new generation numbers in order. Staged mode does not apply: the point is one switch.
///
/// Module state (`#[hotmod::state]`) moves as in a single load (see [`State`](crate::State)):
/// tried for every module before any switch; if a module's final hand-over fails after the
/// switch, every module goes back to its previous generation, state and all.
#[cfg(feature = "reload")]
pub fn load_all<'a>(
    loads: impl IntoIterator<Item = (&'static Module, &'a std::path::Path)>,
) -> Result<Vec<u64>, Error> {
    let started = Instant::now();
    let loads: Vec<(&'static Module, PathBuf)> = loads
        .into_iter()
        .map(|(module, path)| (module, path.to_path_buf()))
        .collect();
    let mut guards = Vec::new();
    // Lock the modules' loading locks in one global order, so concurrent `load_all`s of
    // overlapping sets cannot deadlock; each module appears once.
    let mut order: Vec<&'static Module> = loads.iter().map(|(m, _)| *m).collect();
    order.sort_by_key(|m| std::ptr::from_ref::<Module>(m) as usize);
    order.dedup_by_key(|m| std::ptr::from_ref::<Module>(m) as usize);
    if order.len() != loads.len() {
        let module = loads.first().map_or("hotmod", |(m, _)| m.name());
        return Err(Error::DuplicateModule { module });
    }
    for module in &order {
        guards.push(module.lock_loading());
    }
    let mut candidates = Vec::new();
    for (module, path) in &loads {
        match module.prepare(path) {
            Ok(candidate) => candidates.push((*module, candidate)),
            Err(error) => {
                module.reject(&error);
                // Dropping the candidates unloads every library prepared so far.
                return Err(error);
            }
        }
    }
    // The trial hand-over of every module's state (state.rs): a failure here changes nothing.
    let commits = candidates
        .into_iter()
        .map(|(module, candidate)| {
            module
                .hand_over(candidate)
                .map(|(ready, handoff)| (module, ready, handoff))
        })
        .collect::<Result<Vec<_>, _>>();
    let commits = match commits {
        Ok(commits) => commits,
        Err((module, error)) => {
            module.reject(&error);
            return Err(error);
        }
    };
    // Every outgoing generation stays loaded until the swap is complete: its state sealed, or
    // it current again.
    let outgoing: Vec<_> = commits
        .iter()
        .map(|(module, _, _)| module.pin_locked())
        .collect();
    let lives = publish(|| {
        commits
            .into_iter()
            .map(|(module, ready, handoff)| (module, module.make_current(ready), handoff))
            .collect::<Vec<_>>()
    });
    let (lives, swaps): (Vec<_>, Vec<_>) = lives
        .into_iter()
        .zip(outgoing)
        .map(|((module, live, handoff), from)| {
            let swap = module.swap(from, &live, handoff);
            ((module, live), swap)
        })
        .unzip();
    // Each module's state moves; if any cannot, every module goes back, state and all.
    if let Some((module, error)) = swaps
        .iter()
        .zip(&lives)
        .find_map(|(swap, (module, _))| swap.move_state().err().map(|e| (*module, e)))
    {
        for swap in &swaps {
            swap.revert_state();
        }
        let released = publish(|| swaps.iter().map(|swap| swap.restore()).collect::<Vec<_>>());
        module.reject(&error);
        for (swap, released) in swaps.into_iter().zip(released) {
            swap.undone(released);
        }
        return Err(error);
    }
    for swap in &swaps {
        swap.commit();
    }
    drop(guards);
    let numbers = lives
        .into_iter()
        .map(|(module, live)| module.announce(live, started))
        .collect();
    for swap in swaps {
        swap.done();
    }
    Ok(numbers)
}
