//! Loading each new build of a module's artifact as it lands.
//!
//! # When the watcher looks
//!
//! The watcher listens (through `notify`: inotify on Linux) to the artifact's directory and
//! reacts only to the ways a finished library gets to the watched name:
//!
//! - a hard link made to it (cargo's way: the build is written under `deps/`, then linked), or a
//!   file created there (`Create`);
//! - a rename over it (`Modify(Name)`, the destination of the rename);
//! - a writer closing it after writing (`Access(Close(Write))`: inotify's `IN_CLOSE_WRITE`).
//!
//! Never to data modifications: a writer at work modifies the file many times, and a file whose
//! final size was set first (`set_len`) and whose header was written first passes every check
//! of a complete library long before its last byte is written. (Off Linux, where the backends
//! report no closes, data modifications trigger a look too; see below.)
//!
//! There is no fixed debounce: each change is handled at once, after draining changes that queued
//! meanwhile, so a burst produces one load. A file whose bytes equal the newest generation's is
//! not reloaded (`Event::Unchanged`).
//!
//! # What it assumes of writers
//!
//! A file is complete when no one has it open for writing any more. A writer that writes the
//! watched name in place writes it in one open, however slowly (`fs::write`, `fs::copy`, `cp`, a
//! linker); a tool that closes the file between chunks and opens it again must write under
//! another name and rename or link the result into place: between its close and its next open
//! nothing tells its pause from its end. (Should the watcher look in such a gap, the checks of a
//! complete library skip a file cut short, silently, until the next change; a file that passes
//! them but fails to load is reported as rejected.)
//!
//! # Files still open for writing
//!
//! On Linux each look starts by taking a read lease on the file (`fcntl(F_SETLEASE, F_RDLCK)`),
//! which the kernel grants only while no one — any process, this one included — has the file
//! open for writing:
//!
//! - Refused (`EAGAIN`): someone still writes it (the writer whose `create` the watcher just saw,
//!   or a second writer while another one closed), so the file is not read and the watcher waits
//!   for the next change, looking again every [`QUIET`] meanwhile (a writer that opened the file
//!   under another name, e.g. its `deps/` copy, sends no event here when it closes). A file open
//!   for writing is never loaded and never reported.
//! - Granted: the lease is held until the look ends, so a writer that opens the file meanwhile
//!   waits in its `open` until then (at most the kernel's `lease-break-time`, 45 s by default; an
//!   `O_NONBLOCK` open fails with `EWOULDBLOCK` instead): the bytes cannot change while they are
//!   read. The kernel tells a lease holder of such an opener with a signal; the watcher asks for
//!   `SIGURG`, which is ignored unless the process handles it, and then directs it to no process.
//!
//! A lease needs a file of this user's (or `CAP_LEASE`) on a file system that supports leases.
//! Where none can be taken, and off Linux, the watcher goes by the events alone, with one more
//! rule: a `Create` of a file with a single link is a writer creating it in place (cargo's hard
//! link gives two links), so it waits for that writer's close, a rename, or [`QUIET`].
//!
//! A file that is not a complete library when the watcher looks (cut short, say) is skipped
//! silently and looked at again at the next change; if no change comes within [`QUIET`], it is
//! reported as rejected.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

use crate::error::Error;
use crate::events::Event;
use crate::os;
use crate::transaction::Intake;

/// How long an incomplete file may stay without further changes before it is reported, and how
/// often a file open for writing is looked at again.
const QUIET: Duration = Duration::from_secs(2);

/// Whether the platform's backend reports a writer's close (`IN_CLOSE_WRITE`). Where it does
/// not, data modifications must trigger a look, or a file written in place would never load.
const CLOSE_EVENTS: bool = cfg!(target_os = "linux");

/// A running watcher; dropping it stops watching and ends its thread.
pub(crate) struct Watcher {
    _inner: RecommendedWatcher,
}

/// What the changes since the last look were.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Trigger {
    /// A file was created at the name (a hard link, or a writer's `create`).
    created: bool,
    /// A rename to the name, a writer's close, or (without close events) a write.
    published: bool,
}

impl Trigger {
    const CREATED: Trigger = Trigger {
        created: true,
        published: false,
    };
    const PUBLISHED: Trigger = Trigger {
        created: false,
        published: true,
    };

    fn and(self, other: Trigger) -> Trigger {
        Trigger {
            created: self.created || other.created,
            published: self.published || other.published,
        }
    }
}

enum Signal {
    /// The artifact changed at this instant, in this way.
    Changed(Instant, Trigger),
    /// The OS watcher reported an error.
    Failed(String),
}

impl Watcher {
    /// Starts watching `path` for `module`.
    pub(crate) fn start(module: Intake, path: PathBuf) -> Result<Watcher, Error> {
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
                    Ok(event) => match trigger(&event, &name) {
                        Some(trigger) => Signal::Changed(Instant::now(), trigger),
                        None => return,
                    },
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

/// How `event` may have put a new library at the watched file name `name`, if it may have.
fn trigger(event: &notify::Event, name: &OsStr) -> Option<Trigger> {
    let named = |path: &PathBuf| path.file_name() == Some(name);
    let at_name = match event.kind {
        // The name was renamed away: nothing new is there.
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => false,
        // [from, to]: only the destination counts.
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
            event.paths.last().is_some_and(named)
        }
        _ => event.paths.iter().any(named),
    };
    if !at_name {
        return None;
    }
    match event.kind {
        EventKind::Create(_) => Some(Trigger::CREATED),
        EventKind::Modify(ModifyKind::Name(_))
        | EventKind::Access(AccessKind::Close(AccessMode::Write))
        // Backends that cannot say what changed.
        | EventKind::Modify(ModifyKind::Any)
        | EventKind::Any => Some(Trigger::PUBLISHED),
        EventKind::Modify(ModifyKind::Data(_)) if !CLOSE_EVENTS => Some(Trigger::PUBLISHED),
        _ => None,
    }
}

/// The watcher thread: one look per batch of changes.
fn run(module: Intake, path: &Path, signals: &Receiver<Signal>) {
    // Set while changes have not led to a load: when the first of them happened, and what they
    // were (the file was incomplete, or open for writing).
    let mut pending: Option<(Instant, Trigger)> = None;
    loop {
        let signal = match pending {
            None => signals.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(_) => signals.recv_timeout(QUIET),
        };
        let (changed_at, trigger) = match signal {
            Ok(Signal::Changed(at, trigger)) => (at, trigger),
            Ok(Signal::Failed(message)) => {
                watch_failed(module, path, &message);
                continue;
            }
            Err(RecvTimeoutError::Timeout) => {
                // No change for a quiet period: look again. A file no one writes that is still
                // incomplete is not a writer at work but a bad file, and is reported now.
                if let Some((since, trigger)) = pending {
                    if look(module, path, since, trigger, true) {
                        pending = None;
                    }
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let (since, mut trigger) = match pending {
            Some((since, before)) => (since, before.and(trigger)),
            None => (changed_at, trigger),
        };
        // Coalesce whatever queued meanwhile into this look.
        while let Ok(signal) = signals.try_recv() {
            match signal {
                Signal::Changed(_, more) => trigger = trigger.and(more),
                Signal::Failed(message) => watch_failed(module, path, &message),
            }
        }
        pending = if look(module, path, since, trigger, false) {
            None
        } else {
            Some((since, trigger))
        };
    }
}

fn watch_failed(module: Intake, path: &Path, message: &str) {
    module.emit(Event::WatchFailed {
        module: module.name(),
        message: format!("watching {}: {message}", path.display()),
    });
}

/// Loads `path` unless someone still writes it. Returns false to be called again later: the
/// file is open for writing, or (unless `report_incomplete`) not yet a complete library or
/// being created in place; true when this change is dealt with (loaded, unchanged, reported).
fn look(
    module: Intake,
    path: &Path,
    since: Instant,
    trigger: Trigger,
    report_incomplete: bool,
) -> bool {
    let lease = match os::lease::take(path) {
        os::lease::Lease::Busy => return false,
        os::lease::Lease::Held(lease) => Some(lease),
        os::lease::Lease::Unavailable => {
            if !report_incomplete && !trigger.published && created_in_place(path) {
                return false;
            }
            None
        }
    };
    // Under the lease (where there is one): no one can open the file for writing until the load
    // has read it.
    let result = module.offer(path, since);
    drop(lease);
    match result {
        Ok(_) => true,
        Err(Error::NotALibrary { .. } | Error::NotFound { .. }) if !report_incomplete => false,
        Err(error) => {
            module.report(&error);
            true
        }
    }
}

/// Whether the file at `path` is one a writer is creating in place: a regular file with a
/// single link (cargo links its `deps/` copy, which makes two; a symbolic link points at a
/// file made elsewhere).
#[cfg(unix)]
fn created_in_place(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file() && m.nlink() == 1)
}

#[cfg(not(unix))]
fn created_in_place(_path: &Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::{trigger, Trigger, CLOSE_EVENTS};
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, EventKind, MetadataKind, ModifyKind,
        RenameMode,
    };
    use std::ffi::OsStr;
    use std::path::PathBuf;

    fn event(kind: EventKind, paths: &[&str]) -> notify::Event {
        let mut event = notify::Event::new(kind);
        for path in paths {
            event = event.add_path(PathBuf::from(path));
        }
        event
    }

    fn at_lib(kind: EventKind) -> Option<Trigger> {
        trigger(&event(kind, &["/t/libm.so"]), OsStr::new("libm.so"))
    }

    #[test]
    fn publishing_triggers_and_writing_does_not() {
        assert_eq!(
            at_lib(EventKind::Create(CreateKind::File)),
            Some(Trigger::CREATED)
        );
        assert_eq!(
            at_lib(EventKind::Access(AccessKind::Close(AccessMode::Write))),
            Some(Trigger::PUBLISHED)
        );
        assert_eq!(
            at_lib(EventKind::Modify(ModifyKind::Name(RenameMode::To))),
            Some(Trigger::PUBLISHED)
        );
        let written = at_lib(EventKind::Modify(ModifyKind::Data(DataChange::Any)));
        if CLOSE_EVENTS {
            assert_eq!(written, None, "a write is not the end of a write");
        } else {
            assert_eq!(written, Some(Trigger::PUBLISHED));
        }
        for kind in [
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
        ] {
            assert_eq!(at_lib(kind), None, "{kind:?}");
        }
    }

    #[test]
    fn only_the_watched_name_and_a_rename_s_destination_count() {
        let name = OsStr::new("libm.so");
        let create = EventKind::Create(CreateKind::File);
        assert_eq!(trigger(&event(create, &["/t/other.so"]), name), None);
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert_eq!(
            trigger(&event(both, &["/t/.tmp", "/t/libm.so"]), name),
            Some(Trigger::PUBLISHED)
        );
        assert_eq!(
            trigger(&event(both, &["/t/libm.so", "/t/old.so"]), name),
            None,
            "renamed away"
        );
    }
}
