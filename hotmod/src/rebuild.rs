//! The built-in rebuild's builder, written once for both builds (see `module.rs`).

use std::path::PathBuf;

use crate::error::Error;
use crate::module::Module;

/// Configures and starts the built-in rebuild of one hot module; from
/// [`Module::rebuild`](crate::Module::rebuild). Defaults: the module crate's own manifest
/// directory, and the profile and target directory the running executable was built with.
/// Where the running executable's package is a member of the module crate's workspace, it is
/// built along (its binaries are not relinked; a test, example or bench host is), so that
/// dependencies shared by host and module get the host's features.
/// When reloading is compiled out, [`start`](Self::start) fails with
/// [`Error::ReloadDisabled`].
#[derive(Debug)]
#[must_use = "a Rebuild does nothing until start() is called"]
pub struct Rebuild {
    module: &'static Module,
    manifest_dir: Option<PathBuf>,
    target_dir: Option<PathBuf>,
    profile: Option<String>,
}

impl Rebuild {
    pub(crate) fn new(module: &'static Module) -> Rebuild {
        Rebuild {
            module,
            manifest_dir: None,
            target_dir: None,
            profile: None,
        }
    }

    /// Builds the crate whose `Cargo.toml` is in `dir` (its package name must stay the same).
    pub fn manifest_dir(mut self, dir: impl Into<PathBuf>) -> Rebuild {
        self.manifest_dir = Some(dir.into());
        self
    }

    /// Builds into this target directory instead of the host's.
    pub fn target_dir(mut self, dir: impl Into<PathBuf>) -> Rebuild {
        self.target_dir = Some(dir.into());
        self
    }

    /// Builds with this cargo profile (`dev`, `release`, …) instead of the host's.
    pub fn profile(mut self, profile: impl Into<String>) -> Rebuild {
        self.profile = Some(profile.into());
        self
    }

    /// Starts watching the sources; replaces a rebuild already running for the module. The
    /// first build happens at the first change.
    pub fn start(self) -> Result<(), Error> {
        self.module.start_rebuild(self)
    }

    /// The module and the settings, for the module's copy of hotmod to start.
    #[allow(clippy::type_complexity)]
    pub(crate) fn into_parts(
        self,
    ) -> (
        &'static Module,
        Option<PathBuf>,
        Option<PathBuf>,
        Option<String>,
    ) {
        (
            self.module,
            self.manifest_dir,
            self.target_dir,
            self.profile,
        )
    }
}
