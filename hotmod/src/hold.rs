//! Unloading only where no lock of hotmod's is held.
//!
//! # Lock order
//!
//! hotmod's locks, outermost first: the loading locks (one per module, held for a whole load;
//! `load_all` takes several, in address order: `transaction::begin`) → the snapshot writer lock
//! (`snapshot::publish`) → a module's registry lock (`Runtime::registry`) → locks that each guard
//! one structure and are released before another is taken (the events hub, the hazard slot
//! registry, a library's thread-exit gate, the redirected keys). Module code never runs under the
//! registry lock or the writer lock, and under a loading lock only in the steps of that load
//! itself (`on_load`, the state hand-over), never in an unload. The fork handlers (`fork.rs`)
//! take every one of these but the loading locks themselves (whose holder they read instead) in
//! this order, and hold them across `fork`.
//!
//! # Why unloading waits for the locks to go
//!
//! Unloading a library runs module code: its ELF finalisers, on the unloading thread inside
//! `dlclose`; and its thread-exit destructors already running on other threads, which unloading
//! waits for (`os/linux_tls.rs`). That code may call back into hotmod — `load`, `reload`,
//! `apply_staged` take the loading lock, `live_generations` the registry lock — so a thread
//! unloads only when it holds neither: `Runtime::collect` takes generations out of the registry
//! under its lock, releases it, and hands the unloads to this thread's [`Hold`]. A thread without
//! a loading lock unloads them there and then; one inside a load (a `Loading` guard holds a
//! `Hold`) unloads them once it has released its last loading lock, still inside `load` or
//! `apply_staged`, before they return. While it unloads it keeps a hold, so module code that
//! loads and retires again (a finaliser that loads retires the generation it replaced) adds to
//! the list: that library unloads after the `dlclose` in progress has returned, never inside it.

use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr;

/// An unload `Runtime::collect` decided on, waiting for this thread to hold no lock.
pub(crate) type Deferred = Box<dyn FnOnce()>;

thread_local! {
    /// How many [`Hold`]s this thread has.
    static HOLDS: Cell<usize> = const { Cell::new(0) };
    /// What this thread retired while it had a `Hold`: a boxed list, or null. A raw pointer
    /// rather than a `Vec` so that the thread-local has no destructor and stays usable while the
    /// thread exits (thread-exit destructors may load and retire too).
    static DEFERRED: Cell<*mut Vec<Deferred>> = const { Cell::new(ptr::null_mut()) };
}

/// While a thread has a `Hold`, the unloads it decides on wait; when its last `Hold` ends, it
/// runs them, and keeps a hold while it does (see the module docs).
pub(crate) struct Hold {
    /// A `Hold` counts on its own thread's thread-locals: not `Send`.
    _thread: PhantomData<*const ()>,
}

impl Hold {
    pub(crate) fn new() -> Hold {
        HOLDS.set(HOLDS.get() + 1);
        Hold {
            _thread: PhantomData,
        }
    }

    /// Runs `unload` when this thread's last `Hold` ends.
    pub(crate) fn defer(&self, unload: Deferred) {
        let mut list = DEFERRED.get();
        if list.is_null() {
            list = Box::into_raw(Box::<Vec<Deferred>>::default());
            DEFERRED.set(list);
        }
        // SAFETY: `list` came from `Box::into_raw` (here or in an earlier `defer` on this
        // thread) and is owned through `DEFERRED` until `Drop` takes it back; only this thread
        // reaches it, and no reference to it lives across a call.
        unsafe { (*list).push(unload) };
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        /// Puts the count back even if an unload panics.
        struct Count(usize);
        impl Drop for Count {
            fn drop(&mut self) {
                HOLDS.set(self.0);
            }
        }
        let holds = HOLDS.get();
        let _count = Count(holds.saturating_sub(1));
        if holds > 1 {
            return;
        }
        // The last hold: unload, still holding (see the module docs).
        loop {
            let list = DEFERRED.replace(ptr::null_mut());
            if list.is_null() {
                break;
            }
            // SAFETY: made by `Box::into_raw` in `defer` and just taken out of `DEFERRED`:
            // owned here.
            let list = unsafe { Box::from_raw(list) };
            for unload in *list {
                unload();
            }
        }
    }
}
