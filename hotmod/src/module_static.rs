//! The control surface of a hot module when reloading is compiled out (hotmod's `reload`
//! feature is off).
//!
//! Same public methods as the reloadable `Module` (and a [`Rebuild`] with the same builder
//! methods), so host code compiles in both modes; there is exactly one generation, 0, the code
//! compiled into the binary. Everything that would load a library (`load`, `reload`, `watch`,
//! `rebuild_on_save`, `rebuild().start()`, `wait_for_generation` beyond 0) refuses with
//! [`Error::ReloadDisabled`] before touching any file: this build links no loader and no watcher.
//!
//! `tests/static_mode.rs` checks that the public methods here are exactly those of the
//! reloadable `Module`, `Rebuild` and `Pinned`: a method added there needs its twin here.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::artifact_path;
use crate::error::Error;
use crate::events::{Events, Hub};

/// The control surface of one hot module. In this build reloading is compiled out: generation 0
/// (the compiled-in code) is the only generation, and loading always fails with
/// [`Error::ReloadDisabled`].
pub struct Module {
    name: &'static str,
    default_path: Option<&'static str>,
    path: Mutex<Option<PathBuf>>,
    events: Hub,
}

impl Module {
    #[doc(hidden)]
    /// Used by the generated code: `name` is `module_path!()`, `default_path` the attribute's
    /// `path = "…"`, if any.
    pub const fn __compiled_out(name: &'static str, default_path: Option<&'static str>) -> Module {
        Module {
            name,
            default_path,
            path: Mutex::new(None),
            events: Hub::new(),
        }
    }

    /// The hot module's path, e.g. `greeter::hello`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Always 0: the code compiled into the binary is the only generation.
    pub fn generation(&self) -> u64 {
        0
    }

    /// Always fails with [`Error::ReloadDisabled`]: this build cannot load libraries.
    pub fn load(&'static self, path: impl AsRef<Path>) -> Result<u64, Error> {
        Err(self.disabled(path.as_ref().to_path_buf()))
    }

    /// Always fails with [`Error::ReloadDisabled`]: this build cannot load libraries.
    pub fn reload(&'static self) -> Result<u64, Error> {
        self.load(self.path())
    }

    /// Does nothing: no generation can be loaded, so none is ever rolled back.
    pub fn set_rollback(&self, _policy: Option<Rollback>) {}

    /// Does nothing: nothing can be staged in this build.
    pub fn set_staged(&'static self, _on: bool) {}

    /// Always `None`: nothing can be staged in this build.
    pub fn apply_staged(&'static self) -> Option<u64> {
        None
    }

    /// Always `None`: nothing can be staged in this build.
    pub fn staged_generation(&self) -> Option<u64> {
        None
    }

    /// Events of this module; in this build there are none.
    pub fn subscribe(&self) -> Events {
        self.events.subscribe()
    }

    /// `Ok(0)` for generation 0; any later generation can never come, so
    /// [`Error::ReloadDisabled`] at once instead of waiting out `timeout`.
    pub fn wait_for_generation(&self, generation: u64, _timeout: Duration) -> Result<u64, Error> {
        if generation == 0 {
            Ok(0)
        } else {
            Err(self.disabled(self.path()))
        }
    }

    /// Always fails with [`Error::ReloadDisabled`]: this build cannot watch or load.
    pub fn watch(&'static self) -> Result<(), Error> {
        Err(self.disabled(self.path()))
    }

    /// Does nothing: nothing is watched in this build.
    pub fn unwatch(&self) {}

    /// Always fails with [`Error::ReloadDisabled`]: this build cannot rebuild and load.
    pub fn rebuild_on_save(&'static self) -> Result<(), Error> {
        self.rebuild().start()
    }

    /// The built-in rebuild's builder, for code that compiles in both modes; its `start` fails
    /// with [`Error::ReloadDisabled`].
    pub fn rebuild(&'static self) -> Rebuild {
        Rebuild { module: self }
    }

    fn disabled(&self, path: PathBuf) -> Error {
        Error::ReloadDisabled {
            module: self.name,
            path,
        }
    }

    /// The file `reload()` would load in a build with reloading: the path given to
    /// [`set_path`](Self::set_path), else the `HOTMOD_<CRATE>_PATH` environment variable, else the
    /// attribute's `path = "…"`, else the standard cargo location of the crate's cdylib.
    pub fn path(&self) -> PathBuf {
        let set = self
            .path
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        artifact_path::resolve(self.name, set, self.default_path)
    }

    /// Sets the file `reload()` names in its error.
    pub fn set_path(&self, path: impl Into<PathBuf>) {
        *self.path.lock().unwrap_or_else(PoisonError::into_inner) = Some(path.into());
    }

    /// The environment variable that overrides [`path()`](Self::path): `HOTMOD_<CRATE>_PATH`.
    pub fn env_var(&self) -> String {
        artifact_path::env_var(self.name)
    }

    /// Always `[0]`: only the compiled-in code exists.
    pub fn live_generations(&self) -> Vec<u64> {
        vec![0]
    }

    /// Always empty: nothing is ever loaded, so nothing is ever unloaded.
    pub fn unload_blocked(&self) -> Vec<u64> {
        Vec::new()
    }
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("name", &self.name)
            .field("generation", &0u64)
            .field("reload", &"compiled out")
            .finish()
    }
}

/// The built-in rebuild's builder when reloading is compiled out: same methods as in a
/// reloading build, and [`start`](Self::start) fails with [`Error::ReloadDisabled`].
#[derive(Debug)]
#[must_use = "a Rebuild does nothing until start() is called"]
pub struct Rebuild {
    module: &'static Module,
}

impl Rebuild {
    /// Ignored in this build.
    pub fn manifest_dir(self, _dir: impl Into<PathBuf>) -> Rebuild {
        self
    }

    /// Ignored in this build.
    pub fn target_dir(self, _dir: impl Into<PathBuf>) -> Rebuild {
        self
    }

    /// Ignored in this build.
    pub fn profile(self, _profile: impl Into<String>) -> Rebuild {
        self
    }

    /// Always fails with [`Error::ReloadDisabled`].
    pub fn start(self) -> Result<(), Error> {
        Err(self.module.disabled(self.module.path()))
    }
}

/// [`load_all`](crate::load_all) when reloading is compiled out: `Ok` with no generations for an
/// empty set, else [`Error::ReloadDisabled`] for the first module, and nothing changes.
pub fn load_all<'a>(
    loads: impl IntoIterator<Item = (&'static Module, &'a Path)>,
) -> Result<Vec<u64>, Error> {
    match loads.into_iter().next() {
        None => Ok(Vec::new()),
        Some((module, path)) => Err(module.disabled(path.to_path_buf())),
    }
}

/// Same as a reloading build's rollback policy; without reloading it is never applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rollback {
    /// Consecutive panicking calls that trigger the rollback.
    pub panics_in_a_row: u32,
    /// How many calls the new generation is watched for; after that it is trusted.
    pub within_first_calls: u32,
}

/// Does nothing: this build never checks library paths, it loads none.
pub fn allow_insecure_paths(_allow: bool) {}

/// A value of a hot function that a reloading build keeps tied to the generation that made it.
/// Without reloading there is one generation, the compiled-in code, so it is a plain wrapper.
pub struct Pinned<T> {
    value: T,
}

impl<T> Pinned<T> {
    /// Wraps a value in module code.
    pub const fn new(value: T) -> Pinned<T> {
        Pinned { value }
    }

    /// Always `Some(0)`: the compiled-in code made it.
    pub fn generation(&self) -> Option<u64> {
        Some(0)
    }
}

impl<T> std::ops::Deref for Pinned<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> std::ops::DerefMut for Pinned<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Pinned<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pinned")
            .field("value", &self.value)
            .field("generation", &self.generation())
            .finish()
    }
}
