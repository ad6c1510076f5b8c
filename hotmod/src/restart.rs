//! When a hot load cannot be done: a restart that keeps state, sockets and every request.
//!
//! A library whose signatures or boundary types changed is refused: the host was compiled
//! against the old ones. A host that opts in with [`on_incompatible`] gets the change anyway:
//! the built-in rebuild then builds the host's executable as it was built (the same package,
//! binary or example, profile, target and target directory, with the module's edited sources)
//! and hands over to it. What is handed over:
//!
//! - every [`#[hotmod::state]`](crate::state) value, taken after the old side has drained (each
//!   copy is marked moved in the step that serializes it, so a late write is refused, never
//!   lost), and imported by the new build, with its `migrate` function across versions;
//! - the values the host hands over itself (`Handover::keep_value`, `take_value`), with
//!   feature `state`;
//! - the file descriptors the host names ([`keep_fd`], [`take_fd`]): listening sockets, the
//!   terminal;
//! - the fact itself: [`inherited`] tells a handed-over start from a cold one.
//!
//! Two shapes, because they differ:
//!
//! - [`Shape::Overlap`], a server: the new process starts beside the old one and inherits the
//!   listening socket. When it calls [`ready`], the old process's [`wait`] returns: it stops
//!   accepting, finishes its in-flight requests on their generations, calls
//!   [`Handover::finish`] and exits. Meanwhile the new process accepts; its accesses to a state
//!   wait until the state arrives.
//! - [`Shape::InPlace`], a terminal program: at its safe point (the top of a frame) the host's
//!   [`poll`] returns the hand-over, and [`Handover::exec`] replaces the process with the new
//!   executable: the same pid, so the shell keeps it in the foreground.
//!
//! If the host's build fails, or the new process exits or does not call [`ready`] within
//! 5 minutes, the old process keeps serving and an [`Event::RestartFailed`](crate::Event)
//! says why; the next save tries again. In place, where the old image is gone after `exec`, a
//! new build that ends before it calls [`ready`] (a panic in `main`, an error returned,
//! `process::exit`) runs the previous build again in the same process, with the same state
//! and descriptors (not after an abort or a signal, which run no exit handlers). Only a test harness (`cargo test`) cannot restart: its
//! executable is not something to start again.
//!
//! ```no_run
//! use std::net::TcpListener;
//! # fn serve(_: &TcpListener, _stop: &dyn Fn() -> bool) {}
//!
//! hotmod::restart::on_incompatible(hotmod::restart::Shape::Overlap);
//! let listener = match hotmod::restart::take_fd("listener") {
//!     Some(fd) => TcpListener::from(fd), // handed over: the same socket, no connection lost
//!     None => TcpListener::bind("127.0.0.1:3000").unwrap(),
//! };
//! hotmod::restart::keep_fd("listener", &listener).unwrap();
//! hotmod::restart::ready(); // serving: an old process may stop now
//! let handover = std::thread::spawn(hotmod::restart::wait);
//! serve(&listener, &|| handover.is_finished()); // stop accepting and drain once it returns
//! if let Ok(handover) = handover.join() {
//!     handover.finish().unwrap(); // the states go to the new process
//! }
//! ```
//!
//! A process with reloading compiled out never restarts: [`wait`] never returns, [`poll`] and
//! [`inherited`] give `None`.

#[cfg(unix)]
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use crate::error::Error;

/// How the host hands over to its rebuilt executable (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Shape {
    /// A server: the new process starts beside the old one and takes over its sockets; the old
    /// one drains and exits.
    Overlap,
    /// A terminal program: the process `exec`s the new executable in place at its safe point.
    InPlace,
}

/// A start that was handed over ([`inherited`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Inherited {
    /// How it was handed over.
    pub shape: Shape,
    /// The process that handed over (for an in-place restart, this same process before its
    /// `exec`).
    pub previous_pid: u32,
}

/// Opts this host in: from now on, a rebuilt library that is refused only because it needs a
/// restart (changed signatures or boundary types) restarts the host with its state instead.
/// Records the executable and the arguments this process was started with: the new process
/// gets the same.
pub fn on_incompatible(shape: Shape) {
    #[cfg(hotmod_restart)]
    {
        let shape = match shape {
            Shape::Overlap => crate::handover::Shape::Overlap,
            Shape::InPlace => crate::handover::Shape::InPlace,
        };
        crate::handover::enable(shape);
    }
    #[cfg(not(hotmod_restart))]
    let _ = shape;
}

/// Whether this process was started by a hand-over, and how. `None`: a cold start.
pub fn inherited() -> Option<Inherited> {
    #[cfg(hotmod_restart)]
    {
        let incoming = crate::handover::incoming()?;
        Some(Inherited {
            shape: match incoming.shape {
                crate::handover::Shape::Overlap => Shape::Overlap,
                crate::handover::Shape::InPlace => Shape::InPlace,
            },
            previous_pid: incoming.previous_pid,
        })
    }
    #[cfg(not(hotmod_restart))]
    None
}

/// Names a descriptor to hand over at a restart (a listening socket, the terminal). It must stay
/// open until the hand-over; the new process gets it with [`take_fd`]. A name is kept once: a
/// second call with the same name replaces the first.
#[cfg(unix)]
pub fn keep_fd(name: &str, fd: &impl AsFd) -> Result<(), Error> {
    let raw = fd.as_fd().as_raw_fd();
    #[cfg(hotmod_restart)]
    {
        crate::handover::keep_fd(name, raw).map_err(|message| Error::Restart {
            module: "restart",
            path: std::path::PathBuf::from(name),
            message,
        })
    }
    #[cfg(not(hotmod_restart))]
    {
        let _ = (name, raw);
        Ok(())
    }
}

/// The descriptor the previous process kept under `name`, once; `None` after a cold start.
#[cfg(unix)]
pub fn take_fd(name: &str) -> Option<OwnedFd> {
    #[cfg(hotmod_restart)]
    {
        crate::handover::incoming()?.take_fd(name)
    }
    #[cfg(not(hotmod_restart))]
    {
        let _ = name;
        None
    }
}

/// This process serves: after a hand-over, the previous process may stop accepting and drain
/// (an overlap), and the states start coming in. Call it once the host is ready to take
/// requests, after a cold start too (then it does nothing).
///
/// Until the states have come in, an access to one waits: in an overlap, for as long as the old
/// process drains. Such an access gives up with a panic after 60 s (the limit of every state
/// hand-over, counted from the access), and it blocks its thread meanwhile — in an async server
/// a worker thread of the runtime, so keep state accesses off the runtime's threads or keep the
/// old side's drain short. `take_value` (feature `state`) waits up to 120 s.
pub fn ready() {
    #[cfg(hotmod_restart)]
    if let Some(incoming) = crate::handover::incoming() {
        incoming.ready();
    }
}

/// A value the previous process handed over with [`Handover::keep_value`]: waits (after
/// [`ready`]) until the hand-over has arrived. `None` after a cold start or if there is no such
/// value; `Some(Err)` if it cannot be read as a `T` or never arrived.
#[cfg(feature = "state")]
pub fn take_value<T: serde::de::DeserializeOwned>(name: &str) -> Option<Result<T, Error>> {
    #[cfg(hotmod_restart)]
    {
        let incoming = crate::handover::incoming()?;
        let failed = |message: String| Error::Restart {
            module: "restart",
            path: std::path::PathBuf::from(name),
            message,
        };
        match incoming.value(name) {
            Ok(Some(data)) => Some(
                serde_json::from_str(&data)
                    .map_err(|e| failed(format!("the value cannot be read: {e}"))),
            ),
            Ok(None) => None,
            Err(message) => Some(Err(failed(message))),
        }
    }
    #[cfg(not(hotmod_restart))]
    {
        let _ = name;
        None
    }
}

/// Blocks until a restart is ready to hand over: for an overlap, the new process serves. Run it
/// on a thread of its own; when it returns, stop accepting, drain, and call
/// [`Handover::finish`]. Never returns where reloading is compiled out.
pub fn wait() -> Handover {
    #[cfg(hotmod_restart)]
    loop {
        if let Some(pending) = crate::handover::take_published(true) {
            return Handover {
                pending,
                values: Vec::new(),
            };
        }
    }
    #[cfg(not(hotmod_restart))]
    loop {
        std::thread::park();
    }
}

/// The restart ready to hand over, if one is: for an in-place restart, call it at a safe point
/// (the top of a frame) and [`Handover::exec`] what it returns.
pub fn poll() -> Option<Handover> {
    #[cfg(hotmod_restart)]
    {
        crate::handover::take_published(false).map(|pending| Handover {
            pending,
            values: Vec::new(),
        })
    }
    #[cfg(not(hotmod_restart))]
    None
}

/// A rebuilt host, ready to take over ([`wait`], [`poll`]). Dropped without
/// [`finish`](Self::finish) or [`exec`](Self::exec), it is abandoned: this process keeps its
/// state, an overlap's new process starts from its states' defaults, and the next save may
/// restart again.
pub struct Handover {
    #[cfg(hotmod_restart)]
    pending: crate::handover::Pending,
    #[cfg_attr(not(feature = "state"), allow(dead_code))]
    values: Vec<(String, String)>,
}

impl std::fmt::Debug for Handover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("Handover");
        #[cfg(hotmod_restart)]
        debug
            .field("module", &self.pending.module)
            .field("new_pid", &self.pending.new_pid())
            .field("in_place", &self.pending.is_in_place());
        debug.finish_non_exhaustive()
    }
}

impl Handover {
    /// The hot module whose change needs the restart.
    pub fn module(&self) -> &'static str {
        #[cfg(hotmod_restart)]
        {
            self.pending.module
        }
        #[cfg(not(hotmod_restart))]
        ""
    }

    /// The new process's id (an overlap); `None` in place: it will be this process's.
    pub fn new_pid(&self) -> Option<u32> {
        #[cfg(hotmod_restart)]
        {
            self.pending.new_pid()
        }
        #[cfg(not(hotmod_restart))]
        None
    }

    /// Hands `value` over under `name` (serialized now, with serde JSON): the new process reads
    /// it with [`take_value`]. For what the host owns, such as a game loop's world.
    #[cfg(feature = "state")]
    pub fn keep_value<T: serde::Serialize>(&mut self, name: &str, value: &T) -> Result<(), Error> {
        let data = serde_json::to_string(value).map_err(|e| Error::Restart {
            module: "restart",
            path: std::path::PathBuf::from(name),
            message: format!("serializing the value failed: {e}"),
        })?;
        self.values.retain(|(kept, _)| kept != name);
        self.values.push((name.to_owned(), data));
        Ok(())
    }

    /// An overlap, after the drain: hands every state and kept value to the new process, and
    /// waits until it says it took them.
    ///
    /// `Ok`: this process should exit next; its states are gone (an access to one panics). At
    /// its exit it does not end: it becomes a small waiter for the new process (the same pid,
    /// its executable run afresh, none of the host's code or memory), which passes `SIGTERM` and
    /// `SIGHUP` on and ends as the new process ends, so `cargo run`, the shell and Ctrl-C keep
    /// reaching the server they started.
    ///
    /// `Err`: the states are this process's again — the new process could not take one (a
    /// changed state without `migrate`, say; it then exits, and requests it had accepted
    /// meanwhile fail), or the pipe to it broke — so resume serving.
    pub fn finish(self) -> Result<(), Error> {
        #[cfg(hotmod_restart)]
        {
            self.pending.finish(&self.values)
        }
        #[cfg(not(hotmod_restart))]
        Ok(())
    }

    /// In place, at a safe point: replaces this process with the new executable, handing over
    /// every state, kept value and kept descriptor. Returns only if that failed; then this
    /// process holds its states again and runs on.
    pub fn exec(self) -> Error {
        #[cfg(hotmod_restart)]
        {
            self.pending.exec(&self.values)
        }
        #[cfg(not(hotmod_restart))]
        Error::ReloadDisabled {
            module: "restart",
            path: std::path::PathBuf::new(),
        }
    }
}
