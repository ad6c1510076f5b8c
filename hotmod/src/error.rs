//! Why a library was not loaded.
//!
//! Every variant names the hot module and the file, and its `Display` is one sentence a user can
//! act on. A rejected load never changes the current generation.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why `load`, `reload` or `watch` did not produce a new generation.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file does not exist.
    #[error("{module}: {} was not loaded: the file does not exist; build the module's crate (cargo build -p <crate>) or point hotmod at the right file", path.display())]
    NotFound {
        /// The hot module, e.g. `greeter::hello`.
        module: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The path names a directory or another non-file.
    #[error("{module}: {} was not loaded: it is a directory, not a library file", path.display())]
    NotAFile {
        /// The hot module.
        module: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// The file could not be read or copied.
    #[error("{module}: {} was not loaded: {action} failed: {source}", path.display())]
    Io {
        /// The hot module.
        module: &'static str,
        /// The file.
        path: PathBuf,
        /// What hotmod was doing.
        action: &'static str,
        /// The cause (shared, so errors can be cloned into events).
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The file is not a shared library for this platform.
    #[error("{module}: {} was not loaded: it is not a shared library ({reason})", path.display())]
    NotALibrary {
        /// The hot module.
        module: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The platform's dynamic loader refused the file.
    #[error("{module}: {} was not loaded: the dynamic loader refused it: {message}", path.display())]
    LoadFailed {
        /// The hot module.
        module: &'static str,
        /// The file.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },
    /// The library exports no hotmod descriptor at all.
    #[error("{module}: {} was not loaded: it has no hotmod descriptor; it must be the cdylib of the crate that contains `#[hotmod::hot_module] mod ...`", path.display())]
    NoDescriptor {
        /// The hot module.
        module: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The library carries hot modules, but not this one.
    #[error("{module}: {} was not loaded: it is the library of another hot module ({}), not of {module}", path.display(), found.join(", "))]
    OtherModule {
        /// The hot module.
        module: &'static str,
        /// The file.
        path: PathBuf,
        /// The hot modules the library does provide.
        found: Vec<String>,
    },
    /// The library was built against another version of hotmod's ABI.
    #[error("{module}: {} was not loaded: it uses hotmod ABI version {found}, this host uses version {expected}; rebuild the module against the host's hotmod", path.display())]
    AbiVersion {
        /// The hot module.
        module: &'static str,
        /// The file.
        path: PathBuf,
        /// The host's ABI version.
        expected: u32,
        /// The library's ABI version.
        found: u32,
    },
    /// The library was built by another compiler, for another target, or against another hotmod.
    #[error("{module}: {} was not loaded: it was built with {found}, the host with {expected}; build both with the same toolchain", path.display())]
    Toolchain {
        /// The host's toolchain identity.
        expected: String,
        /// The library's toolchain identity.
        found: String,
        /// The hot module.
        module: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// Functions or types the host relies on changed.
    #[error("{module}: {} was not loaded: {}; restart the host to pick up {}", path.display(), Changes(changes), Changes(changes).what())]
    Incompatible {
        /// The hot module.
        module: &'static str,
        /// The file.
        path: PathBuf,
        /// Every difference found, host's view first.
        changes: Vec<Incompatibility>,
    },
    /// The library embeds a copy of another hot module the host has (a crate the module's crate
    /// depends on), built from other code: its calls of that module would run the host's, whose
    /// functions or types differ from what it was compiled against.
    #[error("{module}: {} was not loaded: the copy of {embedded} compiled into it differs from the host's {embedded}: {}; build it against the {embedded} the host runs, or restart the host", path.display(), Changes(changes))]
    EmbeddedIncompatible {
        /// The hot module.
        module: &'static str,
        /// The file.
        path: PathBuf,
        /// The other hot module, `base::b`.
        embedded: &'static str,
        /// Every difference found, host's view first.
        changes: Vec<Incompatibility>,
    },
    /// The library's `#[hotmod::on_load]` function returned an error or panicked.
    #[error("{module}: {} was not made current: its on_load function {message}", path.display())]
    OnLoad {
        /// The hot module.
        module: &'static str,
        /// The file.
        path: PathBuf,
        /// `returned an error: …` or `panicked: …`.
        message: String,
    },
    /// Handing the module's state to the new generation failed (see `hotmod::State`).
    #[error("{module}: {} was not made current: {message}; the current generation and its state are unchanged", path.display())]
    State {
        /// The hot module.
        module: &'static str,
        /// The file.
        path: PathBuf,
        /// Which state and why.
        message: String,
    },
    /// `load_all` was given the same module twice.
    #[error(
        "{module}: load_all was given this module more than once; give each module one library"
    )]
    DuplicateModule {
        /// The hot module.
        module: &'static str,
    },
    /// This process is a child forked while another thread of its parent was loading this
    /// module: that load stopped where it was and can never finish here, so the module's loads
    /// are refused in this process (its calls go on; other modules load as usual). Load it in
    /// the parent, or fork when no load of it is under way (see the crate docs, `fork`).
    #[error("{module}: cannot be loaded in this process: it was forked while another thread was loading this module, and that load can never finish here; the current generation keeps serving; load the module in the parent, or fork when no load of it is under way")]
    ForkedDuringLoad {
        /// The hot module.
        module: &'static str,
    },
    /// Watching a file or directory for changes could not start.
    #[error("{module}: cannot watch {} for changes: {message}", path.display())]
    Watch {
        /// The hot module.
        module: &'static str,
        /// What was to be watched.
        path: PathBuf,
        /// The cause.
        message: String,
    },
    /// A blocking wait ran out of time.
    #[error("{module}: timed out after {after:?} waiting for {what}")]
    Timeout {
        /// The hot module.
        module: &'static str,
        /// What was awaited.
        what: String,
        /// How long it waited.
        after: Duration,
    },
    /// Someone other than the host's user (or root) could have written the file: it, or a
    /// directory above it, belongs to another user or is writable by others or by a shared
    /// group. See [`allow_insecure_paths`](crate::allow_insecure_paths).
    #[error("{module}: {} was not loaded: {} {reason}, so another user could have replaced the library; fix the ownership or permissions (e.g. chmod go-w), or call hotmod::allow_insecure_paths(true) to load it anyway", path.display(), offender.display())]
    InsecurePath {
        /// The hot module.
        module: &'static str,
        /// The file.
        path: PathBuf,
        /// The file or directory at fault.
        offender: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The built-in rebuild did not run cargo: someone other than the host's user (or root)
    /// could have written a file or directory that build reads or runs — the crate's
    /// directory, manifest, lock file, build script or sources, a `.cargo/config.toml`,
    /// `rust-toolchain(.toml)` or workspace manifest that cargo or rustup looks for above the
    /// crate or in `CARGO_HOME`, the cargo executable, or the target directory. The rules are
    /// those of [`Error::InsecurePath`] without the exception for sticky directories such as
    /// `/tmp` (anyone may create the files cargo looks for there). The current generation keeps
    /// serving. See [`allow_insecure_paths`](crate::allow_insecure_paths).
    #[error("{module}: {package} was not rebuilt: {} {reason}, so another user could have written code the build would compile or run; fix the ownership or permissions (e.g. chmod go-w), or call hotmod::allow_insecure_paths(true) to build it anyway", path.display())]
    InsecureBuildInput {
        /// The hot module.
        module: &'static str,
        /// The cargo package the rebuild builds.
        package: String,
        /// The file or directory at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Where the module's artifact is could not be worked out.
    #[error("{module}: cannot tell where the module's library is: {reason}; set it with module().set_path(..) or the {env_var} environment variable")]
    UnknownPath {
        /// The hot module.
        module: &'static str,
        /// Why.
        reason: String,
        /// The environment variable that overrides the path.
        env_var: String,
    },
    /// The host was built without hotmod's `reload` feature: the module's code is compiled in
    /// and nothing can be loaded.
    #[error("{module}: {} cannot be loaded: reloading is compiled out of this build (hotmod's `reload` feature is off); build with hotmod's default features to reload", path.display())]
    ReloadDisabled {
        /// The hot module.
        module: &'static str,
        /// The file that was to be loaded.
        path: PathBuf,
    },
    /// A load of the module was asked for from inside a load of the same module, on the
    /// thread running it (its `#[hotmod::on_load]` function, or a state's `migrate`, calling
    /// `module().load(..)`), which would wait for itself.
    #[error("{module}: cannot be loaded from inside one of its own loads (its on_load function or a state migration runs while the module's load holds its loading lock); load it once that load has returned")]
    LoadReentered {
        /// The hot module.
        module: &'static str,
    },
    /// A loaded library's code asked to load, watch or rebuild a hot module of its own that the
    /// host does not have (the library's copy of it): only the host's hot modules load new
    /// generations, in the host's runtime. The same call on a module the host has reaches the
    /// host's module.
    #[error("{module}: cannot be loaded, watched or rebuilt from the code of a loaded library: the host has no hot module of that path, only the library's own copy; load it from the host, or make the host depend on its crate")]
    InLoadedLibrary {
        /// The hot module.
        module: &'static str,
    },
    /// A kept-state restart ([`restart`](crate::restart)) could not hand over; this process
    /// keeps its state and serves on.
    #[error("{module}: restarting with {} failed: {message}; this process keeps its state and serves on", path.display())]
    Restart {
        /// The hot module whose change needed the restart (`restart` where the host's own call
        /// failed).
        module: &'static str,
        /// The executable, or the name of the kept value or descriptor.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl Error {
    /// The hot module the error is about.
    pub fn module(&self) -> &'static str {
        match self {
            Error::NotFound { module, .. }
            | Error::NotAFile { module, .. }
            | Error::Io { module, .. }
            | Error::NotALibrary { module, .. }
            | Error::LoadFailed { module, .. }
            | Error::NoDescriptor { module, .. }
            | Error::OtherModule { module, .. }
            | Error::AbiVersion { module, .. }
            | Error::Toolchain { module, .. }
            | Error::Incompatible { module, .. }
            | Error::EmbeddedIncompatible { module, .. }
            | Error::OnLoad { module, .. }
            | Error::State { module, .. }
            | Error::DuplicateModule { module }
            | Error::ForkedDuringLoad { module }
            | Error::InLoadedLibrary { module }
            | Error::LoadReentered { module }
            | Error::Watch { module, .. }
            | Error::Timeout { module, .. }
            | Error::InsecurePath { module, .. }
            | Error::InsecureBuildInput { module, .. }
            | Error::UnknownPath { module, .. }
            | Error::ReloadDisabled { module, .. }
            | Error::Restart { module, .. } => module,
        }
    }

    /// The file the error is about, if there is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::NotFound { path, .. }
            | Error::NotAFile { path, .. }
            | Error::Io { path, .. }
            | Error::NotALibrary { path, .. }
            | Error::LoadFailed { path, .. }
            | Error::NoDescriptor { path, .. }
            | Error::OtherModule { path, .. }
            | Error::AbiVersion { path, .. }
            | Error::Toolchain { path, .. }
            | Error::Incompatible { path, .. }
            | Error::EmbeddedIncompatible { path, .. }
            | Error::OnLoad { path, .. }
            | Error::State { path, .. }
            | Error::Watch { path, .. }
            | Error::InsecurePath { path, .. }
            | Error::InsecureBuildInput { path, .. }
            | Error::ReloadDisabled { path, .. }
            | Error::Restart { path, .. } => Some(path),
            Error::UnknownPath { .. }
            | Error::Timeout { .. }
            | Error::DuplicateModule { .. }
            | Error::ForkedDuringLoad { .. }
            | Error::InLoadedLibrary { .. }
            | Error::LoadReentered { .. } => None,
        }
    }
}

/// One difference between what the host was compiled against and what a library provides.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incompatibility {
    /// A function's signature or parameter layouts changed.
    FunctionChanged {
        /// The function.
        name: String,
        /// Its signature in the host.
        expected: String,
        /// Its signature in the library.
        found: String,
    },
    /// A function the host calls is missing.
    FunctionRemoved {
        /// The function.
        name: String,
        /// Its signature in the host.
        expected: String,
    },
    /// A struct, enum, trait or opaque type that crosses the boundary (through any alias,
    /// module or crate) changed: its description as the compiler gave it differs.
    TypeChanged {
        /// The type's path (`greeter::hello::Reply`).
        name: String,
        /// Its description in the host.
        expected: String,
        /// Its description in the library.
        found: String,
    },
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Incompatibility::FunctionChanged {
                name,
                expected,
                found,
            } => {
                write!(f, "function `{name}` changed from {expected} to {found}")
            }
            Incompatibility::FunctionRemoved { name, expected } => {
                write!(f, "function `{name}` ({expected}) is missing")
            }
            Incompatibility::TypeChanged {
                name,
                expected,
                found,
            } => {
                write!(f, "type `{name}` changed from {expected} to {found}")
            }
        }
    }
}

/// Joins incompatibilities with "; ".
struct Changes<'a>(&'a [Incompatibility]);

impl Changes<'_> {
    /// What the restart would pick up: "signature changes" when only functions changed.
    fn what(&self) -> &'static str {
        let types = self
            .0
            .iter()
            .any(|change| matches!(change, Incompatibility::TypeChanged { .. }));
        if types {
            "changes to types that cross the boundary"
        } else {
            "signature changes"
        }
    }
}

impl fmt::Display for Changes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, change) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{change}")?;
        }
        Ok(())
    }
}
