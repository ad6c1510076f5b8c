//! `fork()`: a child forked from the host keeps calling, loading and retiring, and never crashes
//! or deadlocks on what the parent's other threads were doing.
//!
//! After `fork` only the forking thread exists in the child; the memory of every other thread
//! is copied as it was, mid-operation. hotmod's process-wide state must therefore not be
//! caught in a state only a vanished thread could finish. The handlers registered here with
//! `pthread_atfork` (once, when the first runtime enrols: `Runtime::enrol`, at the first lock
//! any hot module takes; hotmod copies inside loaded libraries register nothing) make sure of
//! that:
//!
//! - **prepare** (in the parent, on the forking thread, before the fork) takes every lock that
//!   is held only briefly and never while code of others runs, in hotmod's lock order
//!   (`hold.rs`): the list of enrolled runtimes; each runtime's loading-lock state (not the
//!   loading lock itself, see below); the snapshot writer lock; each runtime's registry lock;
//!   the hazard-slot registry; each runtime's events hub; the private directory; the thread-exit
//!   bookkeeping (`os::ForkLocks`); last, the lock every `dlopen` and `dlclose` of hotmod's
//!   runs under (`os/dl_ops.rs`), so that no glibc loader or exit-handler lock is left held by
//!   a thread the child does not have. Whoever holds one of them waits, if at all, only for locks
//!   that come later in this order (or on a condition variable, which releases it), so the
//!   handler never deadlocks; and a fork from anywhere — module code, `on_load`, a thread-exit
//!   destructor — never waits on itself: hotmod runs no code of others under these locks. While
//!   it holds them no other thread is inside one, so the child starts with every structure they
//!   guard consistent.
//! - **parent** releases them.
//! - **child** puts right what belonged to threads that are gone, then releases the locks:
//!   - hazard slots: every slot but the forking thread's is given back, cleared (`hazard.rs`).
//!     The gone threads' plain calls will never end, and their fast call slots lie in thread
//!     storage glibc may unmap in the child; the child's collector reads neither.
//!   - thread-exit gates: destructors the gone threads were running no longer count, so an
//!     unload in the child does not wait for them forever (`os/linux_tls.rs`).
//!   - private directory: the child forgets the parent's and makes its own at its first load;
//!     neither its drops of inherited generations nor its exit touch the parent's (`shadow.rs`).
//!   - library placement: reservations of address space a gone thread made to steer its
//!     `dlopen` near the host's code are unmapped (`os/linux_near.rs`).
//!   - loading locks: a module whose loading lock a gone thread held is marked abandoned: that
//!     load, which may have stopped anywhere (in its `on_load`, in the middle of handing state
//!     over), never finishes in the child, so the child's loads of that module are refused
//!     with [`Error::ForkedDuringLoad`](crate::Error::ForkedDuringLoad); its calls and queries
//!     go on, as do loads of every other module. A load the forking thread itself was running
//!     goes on normally.
//!
//! Why not make fork wait for loads instead (take every loading lock in prepare)? A load runs
//! module code under its loading lock: an `on_load` that waits for the thread now forking (or
//! spawns a process through `fork`) would deadlock the parent, and every `fork` of the process
//! — from any library — would wait for loads in progress. Refusing in the child costs only
//! loads of that one module, in that one child.
//!
//! What the child inherits as it was: generations stay mapped (`fork` copies the mappings) and
//! keep their numbers; handles held by gone threads keep counting, so the generations they pin
//! stay loaded in the child for good; the child's collector retires everything else as usual.
//! Watchers and rebuilds do not run in the child (their threads are gone). The process-wide
//! barrier's registration (`membarrier`) is the memory map's, which the child gets a copy of.
//!
//! Not covered: a module never locked before the fork (nothing of it to protect), a `fork` from
//! a signal handler that interrupted hotmod on the forking thread (as with `malloc`), children
//! made without the handlers (a raw `clone`; `vfork` and `posix_spawn`, whose children only
//! `exec`), and locks of others: a `#[hotmod::state]` value's lock held by a gone thread (its
//! accesses in the child wait, like any mutex's), or a state hand-over a gone thread was in
//! the middle of (the incoming copies stay pending: accesses give up with a panic after 60 s).

use std::cell::Cell;
use std::ptr;
use std::sync::{Mutex, Once, PoisonError};

use crate::{hazard, os, shadow, snapshot};

/// Locks held across a fork, released in the parent and the child.
pub(crate) trait Held {
    /// In the child, with every lock of the prepare handler held: forgets what threads that do
    /// not exist in the child held.
    fn in_child(&mut self) {}
}

/// A guard with nothing to put right in the child.
pub(crate) struct Plain<G>(pub(crate) G);

impl<G> Held for Plain<G> {}

impl Held for hazard::ForkSlots {
    fn in_child(&mut self) {
        hazard::ForkSlots::in_child(self);
    }
}

impl Held for shadow::ForkDir {
    fn in_child(&mut self) {
        shadow::ForkDir::in_child(self);
    }
}

impl Held for os::ForkLocks {
    fn in_child(&mut self) {
        os::ForkLocks::in_child(self);
    }
}

/// Which of its locks a [`Participant`] is asked for, in the order they are taken.
pub(crate) enum Level {
    /// The state of its loading locks (before the snapshot writer lock).
    Loading,
    /// Its registry (after the writer lock, before the hazard-slot registry).
    Registry,
    /// Its leaf locks (the events hub).
    Leaves,
}

/// Something with locks of its own to hold across a fork: a runtime.
pub(crate) trait Participant: Sync {
    /// Takes its locks of `level`. Must not enrol anything (the list's lock is held).
    fn hold(&'static self, level: Level) -> Box<dyn Held>;
}

/// Every enrolled participant, in enrolment order.
static PARTICIPANTS: Mutex<Vec<&'static dyn Participant>> = Mutex::new(Vec::new());

/// Adds `participant` (once) and installs the handlers if they are not yet. Call with no lock of
/// hotmod's held but loading locks: a fork in progress holds the list until it is done.
pub(crate) fn enrol(participant: &'static dyn Participant) {
    {
        let mut participants = PARTICIPANTS.lock().unwrap_or_else(PoisonError::into_inner);
        if !participants.iter().any(|p| ptr::addr_eq(*p, participant)) {
            participants.push(participant);
        }
    }
    install();
}

/// Registers the handlers, once per process.
fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        if let Err(errno) = os::at_fork(prepare, parent, child) {
            tracing::warn!(
                target: "hotmod",
                "registering hotmod's fork handlers failed (error {errno}); a child forked \
                 from this process may find hotmod's state held by threads it does not have"
            );
        }
    });
}

thread_local! {
    /// What the prepare handler took, until the parent or child handler releases it: a boxed
    /// list, or null. The three handlers run on the forking thread; `const` and without a
    /// destructor, so usable at any point of a thread's life.
    static HELD: Cell<*mut Vec<Box<dyn Held>>> = const { Cell::new(ptr::null_mut()) };
}

/// The prepare handler (see the module docs for the order).
extern "C" fn prepare() {
    let participants = PARTICIPANTS.lock().unwrap_or_else(PoisonError::into_inner);
    let list = participants.clone();
    let mut held: Vec<Box<dyn Held>> = Vec::with_capacity(3 * list.len() + 5);
    held.push(Box::new(Plain(participants)));
    held.extend(list.iter().map(|p| p.hold(Level::Loading)));
    held.push(Box::new(Plain(snapshot::hold_for_fork())));
    held.extend(list.iter().map(|p| p.hold(Level::Registry)));
    held.push(Box::new(hazard::ForkSlots::take()));
    held.extend(list.iter().map(|p| p.hold(Level::Leaves)));
    held.push(Box::new(shadow::ForkDir::take()));
    held.push(Box::new(os::ForkLocks::take()));
    // Last: no thread of hotmod's is inside `dlopen` or `dlclose` (`os/dl_ops.rs`).
    if let Some(dl_ops) = os::hold_dl_ops_for_fork() {
        held.push(Box::new(Plain(dl_ops)));
    }
    HELD.set(Box::into_raw(Box::new(held)));
}

/// The parent handler: releases the locks.
extern "C" fn parent() {
    release(false);
}

/// The child handler: puts right what gone threads held, then releases the locks.
extern "C" fn child() {
    release(true);
}

fn release(in_child: bool) {
    let held = HELD.replace(ptr::null_mut());
    if held.is_null() {
        // Defensive: a parent or child handler without its prepare handler (glibc runs the
        // handlers registered before a fork as one set, under one lock).
        return;
    }
    // SAFETY: made by `Box::into_raw` in `prepare` on this thread and just taken out of `HELD`:
    // owned here, once.
    let mut held = unsafe { Box::from_raw(held) };
    if in_child {
        for locks in held.iter_mut() {
            locks.in_child();
        }
        os::near::in_child();
    }
    // In the reverse order of taking.
    while let Some(locks) = held.pop() {
        drop(locks);
    }
}
