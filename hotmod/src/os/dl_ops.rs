//! One lock around every `dlopen` and `dlclose` hotmod makes, held across `fork` too.
//!
//! While a thread is inside `dlopen` or `dlclose`, glibc holds locks of its own: the loader's
//! (`dl_load_lock`, `dl_load_write_lock`) and, while a library's `atexit` handlers run at
//! `dlclose` (`__cxa_finalize`), `__exit_funcs_lock`. A child forked at that moment starts with
//! them held by a thread it does not have: its next `dlopen`, or its `exit`, waits forever (seen
//! in `tests/fork.rs`: a child stuck in `exit` on `__exit_funcs_lock`, the parent retiring a
//! generation). The fork handlers (`fork.rs`) take this lock last in their prepare step, so no
//! thread of hotmod's is inside either call when the process forks. A fork from code that runs
//! inside one of them (a library's initialiser or finaliser) does not wait for itself: the
//! handler sees that this thread holds the lock and leaves it.

use std::cell::Cell;
use std::sync::{Mutex, MutexGuard, PoisonError};

static DL_OPS: Mutex<()> = Mutex::new(());

thread_local! {
    /// Whether this thread is inside `dl_op` (const, no destructor: usable at any point of a
    /// thread's life).
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` (a `dlopen` or `dlclose`) holding the lock.
pub(crate) fn dl_op<R>(f: impl FnOnce() -> R) -> R {
    if INSIDE.get() {
        // A library's initialiser loading another: already held by this thread.
        return f();
    }
    let _guard = DL_OPS.lock().unwrap_or_else(PoisonError::into_inner);
    INSIDE.set(true);
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            INSIDE.set(false);
        }
    }
    let _leave = Leave;
    f()
}

/// The lock, for the fork handlers: `None` when this thread already holds it (a fork from
/// inside a `dlopen` or `dlclose`).
pub(crate) fn hold_for_fork() -> Option<MutexGuard<'static, ()>> {
    if INSIDE.get() {
        return None;
    }
    Some(DL_OPS.lock().unwrap_or_else(PoisonError::into_inner))
}
