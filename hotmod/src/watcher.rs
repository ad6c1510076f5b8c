//! Loading each new build of a module's artifact as it lands.
//!
//! The watcher listens (through `notify`: inotify on Linux) to the artifact's directory and
//! reacts to the ways a library gets published: cargo's hard link of the final name (a create),
//! a rename over the final name, and a writer closing the file after writing it in place. There
//! is no fixed debounce: each change is handled at once, after draining changes that queued
//! meanwhile, so a burst produces one load.
//!
//! A file that is not yet a complete library (a writer still at work) is skipped silently and
//! retried at the next change; if no change comes within [`QUIET`], it is reported as rejected.
//! A file whose bytes equal the newest generation's is not reloaded (`Event::Unchanged`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

use crate::error::Error;
use crate::events::Event;
use crate::module::Module;

/// How long an incomplete file may stay without further changes before it is reported.
const QUIET: Duration = Duration::from_secs(2);

/// A running watcher; dropping it stops watching and ends its thread.
pub(crate) struct Watcher {
    _inner: RecommendedWatcher,
}

enum Signal {
    /// The artifact changed at this instant.
    Changed(Instant),
    /// The OS watcher reported an error.
    Failed(String),
}

impl Watcher {
    /// Starts watching `path` for `module`.
    pub(crate) fn start(module: &'static Module, path: PathBuf) -> Result<Watcher, Error> {
        let failed = |message: String| Error::Watch {
            module: module.name(),
            path: path.clone(),
            message,
        };
        let name = path
            .file_name()
            .map(OsString::from)
            .ok_or_else(|| failed("the path has no file name".into()))?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let (sender, receiver) = mpsc::channel();
        let mut inner =
            notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
                let signal = match result {
                    Ok(event) if publishes(&event, &name) => Signal::Changed(Instant::now()),
                    Ok(_) => return,
                    Err(error) => Signal::Failed(error.to_string()),
                };
                // The receiver is gone only when the watcher is being dropped.
                let _ = sender.send(signal);
            })
            .map_err(|e| failed(e.to_string()))?;
        inner
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| failed(format!("watching its directory {}: {e}", dir.display())))?;
        let watched = path.clone();
        std::thread::Builder::new()
            .name(format!("hotmod watch {}", module.name()))
            .spawn(move || run(module, &watched, &receiver))
            .map_err(|e| failed(format!("starting the watcher thread: {e}")))?;
        Ok(Watcher { _inner: inner })
    }
}

/// Whether `event` may have put a new library at the watched file name.
fn publishes(event: &notify::Event, name: &OsString) -> bool {
    let kind = matches!(
        event.kind,
        EventKind::Create(_)
            | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any)
            | EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Any
    );
    kind && event
        .paths
        .iter()
        .any(|p| p.file_name() == Some(name.as_os_str()))
}

/// The watcher thread: one load attempt per batch of changes.
fn run(module: &'static Module, path: &Path, signals: &Receiver<Signal>) {
    // When the oldest change not yet loaded happened (set while a file is incomplete).
    let mut pending: Option<Instant> = None;
    loop {
        let signal = match pending {
            None => signals.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(_) => signals.recv_timeout(QUIET),
        };
        let changed_at = match signal {
            Ok(Signal::Changed(at)) => at,
            Ok(Signal::Failed(message)) => {
                module.emit(Event::WatchFailed {
                    module: module.name(),
                    message: format!("watching {}: {message}", path.display()),
                });
                continue;
            }
            Err(RecvTimeoutError::Timeout) => {
                // Still incomplete after a quiet period: not a writer at work, a bad file.
                if let Some(at) = pending.take() {
                    attempt(module, path, at, true);
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let first = *pending.get_or_insert(changed_at);
        // Coalesce whatever queued meanwhile into this attempt.
        while let Ok(signal) = signals.try_recv() {
            if let Signal::Failed(message) = signal {
                module.emit(Event::WatchFailed {
                    module: module.name(),
                    message: format!("watching {}: {message}", path.display()),
                });
            }
        }
        if attempt(module, path, first, false) {
            pending = None;
        }
    }
}

/// Loads `path` if it changed; returns false when the file is not (yet) a complete library and
/// `report_incomplete` is off, so the caller retries at the next change.
fn attempt(module: &'static Module, path: &Path, since: Instant, report_incomplete: bool) -> bool {
    match module.install(path, since, true) {
        Ok(_) => true,
        Err(Error::NotALibrary { .. } | Error::NotFound { .. }) if !report_incomplete => false,
        Err(error) => {
            module.reject(&error);
            true
        }
    }
}
