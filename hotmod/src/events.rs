//! What happened to a hot module: built, loaded, rejected, staged, retired.
//!
//! Every subscriber gets its own unbounded queue, so a slow subscriber never blocks a reload and
//! never loses an event; a dropped subscriber is forgotten at the next event. Every event is
//! also logged through `tracing` (target `hotmod`), and its `Display` is the one-line progress
//! message a tool can print as is. While the module watches or rebuilds, an event that neither a
//! subscriber nor a `tracing` subscriber takes is printed on stderr (see `progress.rs`).

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::progress;

/// Something that happened to a hot module. `Display` gives a concise progress line.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// The built-in rebuild started building the module's crate (`cargo build`, or the crate's
    /// own rustc command alone where only its sources changed: see `BuildFinished::direct`).
    BuildStarted {
        /// The hot module.
        module: &'static str,
        /// The cargo package being built.
        package: String,
    },
    /// `cargo build` built the module's library (cargo may still be relinking the host's
    /// example or test, which links the module too; should that fail, a `BuildFailed` follows).
    BuildFinished {
        /// The hot module.
        module: &'static str,
        /// The cargo package.
        package: String,
        /// From cargo's start to the library built.
        took: Duration,
        /// `true`: built without cargo, by the module crate's rustc command from cargo's last
        /// build run again (every change since the last build was one of the crate's own
        /// source files, and nothing else cargo looks at had changed); `false`: by cargo.
        direct: bool,
    },
    /// `cargo build` failed; the current generation keeps serving.
    BuildFailed {
        /// The hot module.
        module: &'static str,
        /// The cargo package.
        package: String,
        /// The compiler's errors as cargo shows them (its warnings and progress lines left
        /// out), or why cargo could not run.
        message: String,
    },
    /// A new generation is current.
    Loaded {
        /// The hot module.
        module: &'static str,
        /// The new current generation.
        generation: u64,
        /// The file it was loaded from.
        path: PathBuf,
        /// From the trigger (the call, the file event, or `apply_staged`) to serving.
        took: Duration,
    },
    /// A verified generation waits for [`Module::apply_staged`](crate::Module::apply_staged).
    Staged {
        /// The hot module.
        module: &'static str,
        /// The staged generation.
        generation: u64,
        /// The file it was loaded from.
        path: PathBuf,
    },
    /// A library was refused; the current generation keeps serving.
    Rejected {
        /// The hot module.
        module: &'static str,
        /// Why.
        error: Error,
    },
    /// The artifact changed on disk but its bytes equal the newest generation's: not reloaded.
    Unchanged {
        /// The hot module.
        module: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A new current generation changed items the host runs its own copy of — public
    /// constants and statics, methods marked `not_hot` — so the host keeps running their old
    /// code: accepted, but say so. A restart picks them up.
    StaleItems {
        /// The hot module.
        module: &'static str,
        /// The generation that changed them.
        generation: u64,
        /// `const GREETING`, `Visitor::initial` (a `not_hot` method); `… (removed)` for one the
        /// library no longer has.
        items: Vec<String>,
    },
    /// A generation was unloaded: it was not current and nothing used it any more.
    Retired {
        /// The hot module.
        module: &'static str,
        /// The retired generation.
        generation: u64,
    },
    /// A generation retired but its library stays mapped (see `Module::unload_blocked`).
    RetireBlocked {
        /// The hot module.
        module: &'static str,
        /// The generation whose library stays mapped.
        generation: u64,
        /// Why it could not be unloaded.
        reason: String,
    },
    /// A new generation failed its rollback policy; the previous one is current again.
    RolledBack {
        /// The hot module.
        module: &'static str,
        /// The generation that was rolled back.
        from: u64,
        /// The generation current again.
        to: u64,
        /// Why.
        reason: String,
    },
    /// The watcher or the rebuild hit a problem that is not about a particular library.
    WatchFailed {
        /// The hot module.
        module: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A rebuilt library needs a restart and the host opted in (`restart::on_incompatible`):
    /// hotmod builds the host's executable to hand over to.
    RestartBuilding {
        /// The hot module whose change needs it.
        module: &'static str,
        /// The host's cargo package.
        package: String,
    },
    /// The rebuilt host is ready to take over: an overlap's new process serves (the host's
    /// `restart::wait()` returns), or, in place, the host's next `restart::poll()` returns it.
    RestartReady {
        /// The hot module whose change needs it.
        module: &'static str,
        /// The new process (an overlap); `None` in place.
        pid: Option<u32>,
    },
    /// The restart could not happen (the host's build failed, the new process exited or was
    /// never ready); this process keeps its state and serves on.
    RestartFailed {
        /// The hot module whose change needed it.
        module: &'static str,
        /// Why, with the compiler's errors where the build failed.
        message: String,
    },
}

impl Event {
    /// The hot module the event is about.
    pub fn module(&self) -> &'static str {
        match self {
            Event::BuildStarted { module, .. }
            | Event::BuildFinished { module, .. }
            | Event::BuildFailed { module, .. }
            | Event::Loaded { module, .. }
            | Event::Staged { module, .. }
            | Event::Rejected { module, .. }
            | Event::Unchanged { module, .. }
            | Event::StaleItems { module, .. }
            | Event::Retired { module, .. }
            | Event::RetireBlocked { module, .. }
            | Event::RolledBack { module, .. }
            | Event::WatchFailed { module, .. }
            | Event::RestartBuilding { module, .. }
            | Event::RestartReady { module, .. }
            | Event::RestartFailed { module, .. } => module,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::BuildStarted { package, .. } => write!(f, "building {package} …"),
            Event::BuildFinished {
                package,
                took,
                direct,
                ..
            } => {
                write!(f, "built {package} in {:.1} s", took.as_secs_f64())?;
                if *direct {
                    write!(f, " (rustc alone)")?;
                }
                Ok(())
            }
            Event::BuildFailed {
                package, message, ..
            } => write!(
                f,
                "building {package} failed; the current generation keeps serving:\n{message}"
            ),
            Event::Loaded {
                module,
                generation,
                took,
                ..
            } => write!(
                f,
                "{module}: generation {generation} live in {}",
                Millis(*took)
            ),
            Event::Staged {
                module, generation, ..
            } => write!(
                f,
                "{module}: generation {generation} staged; it goes live at the next apply_staged()"
            ),
            Event::Rejected { error, .. } => write!(f, "{error}"),
            Event::Unchanged { module, path } => {
                write!(f, "{module}: {} is unchanged; not reloaded", path.display())
            }
            Event::StaleItems {
                module,
                generation,
                items,
            } => write!(
                f,
                "{module}: generation {generation} changed code the host runs its own copy of, which keeps its old code: {}; restart the host to pick it up",
                items.join(", ")
            ),
            Event::Retired { module, generation } => {
                write!(f, "{module}: generation {generation} retired")
            }
            Event::RetireBlocked {
                module,
                generation,
                reason,
            } => write!(
                f,
                "{module}: generation {generation} retired but its library stays mapped: {reason}"
            ),
            Event::RolledBack {
                module,
                from,
                to,
                reason,
            } => write!(
                f,
                "{module}: rolled back from generation {from} to generation {to}: {reason}"
            ),
            Event::WatchFailed { module, message } => write!(f, "{module}: {message}"),
            Event::RestartBuilding { module, package } => write!(
                f,
                "{module}: this change needs a restart; building the host ({package}) to hand over to, with its state …"
            ),
            Event::RestartReady { module, pid: Some(pid) } => write!(
                f,
                "{module}: the restarted host (pid {pid}) serves; this process drains and hands over its state"
            ),
            Event::RestartReady { module, pid: None } => write!(
                f,
                "{module}: the host is rebuilt; it takes over in place at the next restart::poll()"
            ),
            Event::RestartFailed { module, message } => write!(
                f,
                "{module}: restarting failed; this process keeps its state and serves on: {message}"
            ),
        }
    }
}

/// `4 ms`, `0.3 ms`.
struct Millis(Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_secs_f64() * 1000.0;
        if ms < 10.0 {
            write!(f, "{ms:.1} ms")
        } else {
            write!(f, "{ms:.0} ms")
        }
    }
}

/// A subscription: every event of one hot module from the moment of
/// [`subscribe`](crate::Module::subscribe) on, in order. Also an [`Iterator`] that blocks.
#[derive(Debug)]
pub struct Events {
    receiver: Receiver<Event>,
}

impl Events {
    /// The next event, waiting as long as it takes; `None` if the module can send no more.
    pub fn recv(&self) -> Option<Event> {
        self.receiver.recv().ok()
    }

    /// The next event if one is queued.
    pub fn try_recv(&self) -> Option<Event> {
        self.receiver.try_recv().ok()
    }

    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.receiver.recv_timeout(timeout).ok()
    }

    /// Waits up to `timeout` for an event that satisfies `wanted`, skipping the others; returns
    /// it, or `None` when the time is up.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut wanted: impl FnMut(&Event) -> bool,
    ) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.receiver.recv_timeout(left) {
                Ok(event) if wanted(&event) => return Some(event),
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }
}

impl Iterator for Events {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        self.recv()
    }
}

/// The subscribers of one module.
pub(crate) struct Hub {
    senders: Mutex<Vec<Sender<Event>>>,
    /// Set while the module watches or rebuilds: events that nobody takes are printed on
    /// stderr.
    printing: AtomicBool,
}

impl Hub {
    pub(crate) const fn new() -> Hub {
        Hub {
            senders: Mutex::new(Vec::new()),
            printing: AtomicBool::new(false),
        }
    }

    /// The module started watching or rebuilding (`what`, e.g. `watching /path/libx.so`): logs
    /// it, prints it on stderr unless the host takes the module's events itself, and prints
    /// the module's events from now on under the same condition.
    pub(crate) fn started(&self, module: &str, what: &str) {
        tracing::info!(target: "hotmod", "{module}: {what}");
        self.printing.store(true, Ordering::Relaxed);
        // A subscription dropped since the last event still counts here; it is forgotten at
        // the next event.
        let subscribed = !self.lock().is_empty();
        if !subscribed && progress::wanted() {
            progress::print(format_args!("{module}: {what}"));
        }
    }

    pub(crate) fn subscribe(&self) -> Events {
        let (sender, receiver) = mpsc::channel();
        self.lock().push(sender);
        Events { receiver }
    }

    /// The module stopped watching and rebuilding: its events are no longer printed.
    pub(crate) fn stopped(&self) {
        self.printing.store(false, Ordering::Relaxed);
    }

    /// Logs `event` and hands it to every live subscriber; with none, and nothing else taking
    /// it, prints it on stderr while the module watches or rebuilds. Never blocks on a
    /// subscriber: the queues are unbounded.
    pub(crate) fn emit(&self, event: Event) {
        match &event {
            Event::Rejected { .. }
            | Event::BuildFailed { .. }
            | Event::WatchFailed { .. }
            | Event::RestartFailed { .. }
            | Event::RolledBack { .. } => {
                tracing::warn!(target: "hotmod", "{event}")
            }
            Event::RetireBlocked { .. } | Event::StaleItems { .. } => {
                tracing::warn!(target: "hotmod", "{event}")
            }
            Event::Unchanged { .. } => tracing::debug!(target: "hotmod", "{event}"),
            _ => tracing::info!(target: "hotmod", "{event}"),
        }
        let delivered = {
            let mut senders = self.lock();
            senders.retain(|sender| sender.send(event.clone()).is_ok());
            !senders.is_empty()
        };
        if !delivered && self.printing.load(Ordering::Relaxed) && progress::wanted() {
            progress::print(&event);
        }
    }

    /// The subscribers' lock, held across `fork` (`fork.rs`). Held elsewhere only while events
    /// are handed to the queues, which runs no code of others.
    #[cfg(feature = "reload")]
    pub(crate) fn hold_for_fork(
        &'static self,
    ) -> std::sync::MutexGuard<'static, Vec<Sender<Event>>> {
        self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Sender<Event>>> {
        self.senders.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
