//! The implementation behind the public types when reloading is compiled out (hotmod's `reload`
//! feature is off): the same items as `reloading.rs`, for exactly one generation, 0, the code
//! compiled into the binary. Everything that would load a library (`load`, `reload`, `watch`,
//! `rebuild_on_save`, `rebuild().start()`, `wait_for_generation` beyond 0) refuses with
//! [`Error::ReloadDisabled`] before touching any file: this build links no loader and no watcher.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::artifact_path;
use crate::error::Error;
use crate::events::{Events, Hub};
use crate::rollback::Rollback;

/// A module without reloading: its name, where a library would come from, and its (silent)
/// events.
pub(crate) struct Runtime {
    name: &'static str,
    default_path: Option<&'static str>,
    path: Mutex<Option<PathBuf>>,
    events: Hub,
}

/// Never made: without reloading no value is tied to a generation but 0.
pub(crate) enum HeldPin {}

impl Runtime {
    pub(crate) const fn new(name: &'static str, default_path: Option<&'static str>) -> Runtime {
        Runtime {
            name,
            default_path,
            path: Mutex::new(None),
            events: Hub::new(),
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn generation(&self) -> u64 {
        0
    }

    pub(crate) fn set_rollback(&self, _policy: Option<Rollback>) {}

    pub(crate) fn staged_generation(&self) -> Option<u64> {
        None
    }

    pub(crate) fn subscribe(&self) -> Events {
        self.events.subscribe()
    }

    pub(crate) fn wait_for_generation(
        &self,
        generation: u64,
        _timeout: Duration,
    ) -> Result<u64, Error> {
        if generation == 0 {
            Ok(0)
        } else {
            Err(self.disabled(self.path()))
        }
    }

    pub(crate) fn stop_services(&self) {}

    pub(crate) fn path(&self) -> PathBuf {
        let set = self
            .path
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        artifact_path::resolve(self.name, set, self.default_path)
    }

    pub(crate) fn set_path(&self, path: PathBuf) {
        *self.path.lock().unwrap_or_else(PoisonError::into_inner) = Some(path);
    }

    pub(crate) fn env_var(&self) -> String {
        artifact_path::env_var(self.name)
    }

    pub(crate) fn live_generations(&self) -> Vec<u64> {
        vec![0]
    }

    pub(crate) fn unload_blocked(&self) -> Vec<u64> {
        Vec::new()
    }

    fn disabled(&self, path: PathBuf) -> Error {
        Error::ReloadDisabled {
            module: self.name,
            path,
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (reloading compiled out)", self.name)
    }
}

pub(crate) fn load(runtime: &'static Runtime, path: &Path) -> Result<u64, Error> {
    Err(runtime.disabled(path.to_path_buf()))
}

pub(crate) fn set_staged(_runtime: &'static Runtime, _on: bool) {}

pub(crate) fn apply_staged(_runtime: &'static Runtime) -> Option<u64> {
    None
}

/// `foreign` is always `None`: without reloading no library is loaded, so every module is this
/// copy's.
pub(crate) fn load_all(
    loads: Vec<(&'static Runtime, PathBuf)>,
    _foreign: Option<&'static str>,
) -> Result<Vec<u64>, Error> {
    match loads.into_iter().next() {
        None => Ok(Vec::new()),
        Some((runtime, path)) => Err(runtime.disabled(path)),
    }
}

pub(crate) fn watch(runtime: &'static Runtime) -> Result<(), Error> {
    Err(runtime.disabled(runtime.path()))
}

pub(crate) fn start_rebuild(
    runtime: &'static Runtime,
    _manifest_dir: Option<PathBuf>,
    _target_dir: Option<PathBuf>,
    _profile: Option<String>,
) -> Result<(), Error> {
    Err(runtime.disabled(runtime.path()))
}

/// Nothing to allow: this build checks no library paths, it loads none.
pub(crate) fn allow_insecure_paths(_allow: bool) {}

/// `Pinned::generation`: always the compiled-in code.
pub(crate) fn made_by(_hold: Option<&HeldPin>) -> Option<u64> {
    Some(0)
}
