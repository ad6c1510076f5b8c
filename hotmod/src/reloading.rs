//! The reloading implementation behind the public types (`module.rs`, `pinned.rs`): the
//! runtime, the load pipeline, and the services (watcher, rebuild) that the façade starts. `disabled.rs` provides the same items when reloading is compiled out.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::abi::HOSTED;
use crate::builder::{self, Request};
use crate::error::Error;
use crate::events::Event;
use crate::transaction::{self, Intake, Outcome};
use crate::watcher::Watcher;

pub(crate) use crate::abi::HeldPin;
pub(crate) use crate::runtime::Runtime;
pub(crate) use crate::security::allow_insecure_paths;

/// Inside a loaded library, this copy of hotmod loads nothing: a module whose operations run
/// here there is the library's own copy of a module the host does not have (`module.rs`).
fn hosted(runtime: &'static Runtime) -> Result<(), Error> {
    if HOSTED.load(Ordering::Relaxed) {
        return Err(Error::InLoadedLibrary {
            module: runtime.name(),
        });
    }
    Ok(())
}

pub(crate) fn load(runtime: &'static Runtime, path: &Path) -> Result<u64, Error> {
    hosted(runtime)?;
    match transaction::load(runtime, path, Instant::now(), false) {
        Ok(Outcome::Live(number) | Outcome::Staged(number)) => Ok(number),
        Ok(Outcome::Unchanged) => Ok(runtime.newest().0),
        Err(error) => {
            runtime.reject(&error);
            Err(error)
        }
    }
}

pub(crate) fn set_staged(runtime: &'static Runtime, on: bool) {
    runtime.set_staging(on);
    if !on {
        transaction::apply_staged(runtime);
    }
}

pub(crate) fn apply_staged(runtime: &'static Runtime) -> Option<u64> {
    transaction::apply_staged(runtime)
}

/// `foreign`: the first of the modules asked for that another copy of hotmod made (the host's
/// copy is asked for a library's own module; a library's copy for the host's, behind its own).
pub(crate) fn load_all(
    loads: Vec<(&'static Runtime, PathBuf)>,
    foreign: Option<&'static str>,
) -> Result<Vec<u64>, Error> {
    for (runtime, _) in &loads {
        hosted(runtime)?;
    }
    if let Some(module) = foreign {
        return Err(Error::InLoadedLibrary { module });
    }
    transaction::load_all(loads)
}

pub(crate) fn watch(runtime: &'static Runtime) -> Result<(), Error> {
    hosted(runtime)?;
    let mut services = runtime.services();
    if services.watcher.is_none() {
        let path = runtime.path();
        services.watcher = Some(Box::new(Watcher::start(
            Intake::new(runtime),
            path.clone(),
        )?));
        drop(services);
        runtime.started(&format!("watching {}", path.display()));
    }
    Ok(())
}

pub(crate) fn start_rebuild(
    runtime: &'static Runtime,
    manifest_dir: Option<PathBuf>,
    target_dir: Option<PathBuf>,
    profile: Option<String>,
) -> Result<(), Error> {
    hosted(runtime)?;
    let info = runtime.info();
    let request = Request {
        package: info.package.to_owned(),
        manifest_dir: manifest_dir.unwrap_or_else(|| PathBuf::from(info.manifest_dir)),
        target_dir,
        profile,
    };
    let (running, started) = builder::start(Intake::new(runtime), request)?;
    runtime.services().rebuild = Some(Box::new(running));
    runtime.started(&started);
    Ok(())
}

/// Starts what `#[hot_module(watch)]`, `#[hot_module(rebuild)]`, `HOTMOD_WATCH=1` or
/// `HOTMOD_REBUILD=1` ask for (the runtime calls it once, at the module's first use in the
/// host).
pub(crate) fn autostart(runtime: &'static Runtime) {
    let flag = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0");
    let info = runtime.info();
    let result = if info.rebuild || flag("HOTMOD_REBUILD") {
        start_rebuild(runtime, None, None, None)
    } else if info.watch || flag("HOTMOD_WATCH") {
        watch(runtime)
    } else {
        Ok(())
    };
    if let Err(error) = result {
        runtime.emit(Event::WatchFailed {
            module: runtime.name(),
            message: error.to_string(),
        });
    }
}

/// `Pinned::generation`: the generation that made the value, once it reached the host.
pub(crate) fn made_by(hold: Option<&HeldPin>) -> Option<u64> {
    hold.map(|hold| hold.number)
}
