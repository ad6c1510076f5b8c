//! Consistent views across hot modules, and loading several modules all or nothing.
//!
//! Every change of any module's current generation happens inside [`publish`], which makes the
//! process-wide swap counter odd while it runs (a sequence lock; writers take turns on a mutex).
//! [`snapshot`] pins handles and retries until it saw the same even counter before and after,
//! so a snapshot never mixes generations from both sides of a [`load_all`]. Readers never block
//! writers: a reload never waits for a snapshot.

use std::marker::PhantomData;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Even: no swap in progress. Odd: some module's current generation is being changed.
static SWAPS: AtomicU64 = AtomicU64::new(0);
/// Writers take turns, so the counter's odd windows never overlap.
static WRITER: Mutex<()> = Mutex::new(());

/// The writer lock, held across `fork` (`fork.rs`): a child never starts with the counter odd
/// and nobody left to make it even. Held elsewhere only inside `publish`, which runs no code of
/// others.
#[cfg(feature = "reload")]
pub(crate) fn hold_for_fork() -> std::sync::MutexGuard<'static, ()> {
    WRITER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Proof that the code holding it runs inside [`publish`]: what storing a module's current
/// generation asks for (`Runtime::make_current`). Only `publish` makes one.
pub(crate) struct Publishing {
    /// The epoch the stores take effect at: the counter's value once `publish` returns.
    #[cfg_attr(not(feature = "reload"), allow(dead_code))]
    epoch: u64,
    _private: PhantomData<*const ()>,
}

impl Publishing {
    /// The epoch at which the generations made current inside this `publish` are current
    /// (the even counter value after it): a view announced at an earlier epoch still sees the
    /// generations they replace (`pin.rs`).
    #[cfg_attr(not(feature = "reload"), allow(dead_code))]
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// The swap counter: each `publish` adds 2, so an even value names one state of every
/// module's current generation (an *epoch*), and an odd one a `publish` in progress whose
/// stores may be seen or not. A call's view is the even epoch at or below what it read.
#[inline(always)]
#[cfg_attr(not(feature = "reload"), allow(dead_code))]
pub(crate) fn epoch() -> u64 {
    // Acquire: pairs with the Release of `publish`'s closing increment, so every generation
    // made current at or before this epoch is visible.
    SWAPS.load(Ordering::Acquire)
}

/// Runs `swap` (stores to modules' current generations) as one step for snapshots.
#[cfg_attr(not(feature = "reload"), allow(dead_code))]
pub(crate) fn publish<R>(swap: impl FnOnce(&Publishing) -> R) -> R {
    let _writer = WRITER.lock().unwrap_or_else(PoisonError::into_inner);
    // Odd from here; Release fence: a reader that sees any store below also sees the odd count.
    let odd = SWAPS.fetch_add(1, Ordering::Relaxed) + 1;
    fence(Ordering::Release);
    let result = swap(&Publishing {
        epoch: odd + 1,
        _private: PhantomData,
    });
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
