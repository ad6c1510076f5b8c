//! The public control surface of a hot module, written once for both builds.
//!
//! Every method delegates to `imp`: the reloading implementation (`reloading.rs` over the
//! runtime, the load pipeline and the services) or, with hotmod's `reload` feature off, the
//! disabled one (`disabled.rs`), in the way libloading's `Library` sits over `os::unix` and
//! `os::windows`. The compiler checks that both provide what this file calls, so the two builds'
//! APIs cannot drift apart. Nothing in the crate imports this file but `lib.rs` and the
//! generated code's entry points (`private.rs`).
//!
//! Every method goes through the module's operations table ([`Ops`]), the first field of the
//! `Module`: the table of the copy of hotmod that made the module. A loaded library has its own
//! copy of hotmod, and its code's `module()` returns the host's `Module` of the same path
//! (`__private::module`): the library's copy of these methods then reads the host's table and
//! runs the host's runtime — one runtime per process, not a second loader, watcher and
//! collector inside the library that see none of the host's generations.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Error;
use crate::events::Events;
use crate::imp;
use crate::rollback::Rollback;

/// The control surface of one hot module: which generation is current, loading new ones,
/// watching for new builds, events, and which generations are still alive. Obtained from the
/// generated `module()` function.
///
/// When reloading is compiled out (hotmod's `reload` feature off), generation 0 is the only
/// generation, and everything that would load a library refuses with
/// [`Error::ReloadDisabled`] before touching any file.
#[repr(C)]
pub struct Module {
    /// Declared first, so that its place is the same in every copy of hotmod (`repr(C)`): a
    /// library's copy reads it from the host's `Module`.
    ops: &'static Ops,
    runtime: imp::Runtime,
}

/// What a [`Module`]'s methods do, as functions of the copy of hotmod that made the module.
///
/// `repr(C)` and in an interface file (`build.rs`): a library's copy of hotmod reads the host's
/// table, and the loader refuses a library whose hotmod interface differs from the host's, so
/// both agree on its layout and on every type its functions take and return.
#[repr(C)]
struct Ops {
    name: fn(&Module) -> &'static str,
    generation: fn(&Module) -> u64,
    load: fn(&'static Module, &Path) -> Result<u64, Error>,
    set_rollback: fn(&Module, Option<Rollback>),
    set_staged: fn(&'static Module, bool),
    apply_staged: fn(&'static Module) -> Option<u64>,
    staged_generation: fn(&Module) -> Option<u64>,
    subscribe: fn(&Module) -> Events,
    wait_for_generation: fn(&Module, u64, Duration) -> Result<u64, Error>,
    watch: fn(&'static Module) -> Result<(), Error>,
    unwatch: fn(&Module),
    start_rebuild: fn(Rebuild) -> Result<(), Error>,
    path: fn(&Module) -> PathBuf,
    set_path: fn(&Module, PathBuf),
    env_var: fn(&Module) -> String,
    live_generations: fn(&Module) -> Vec<u64>,
    unload_blocked: fn(&Module) -> Vec<u64>,
    load_all: fn(Loads) -> Result<Vec<u64>, Error>,
}

/// What `load_all` hands the first module's operations.
type Loads = Vec<(&'static Module, PathBuf)>;

/// This copy's operations: every `Module` it makes points here.
static OPS: Ops = Ops {
    name: |m| m.runtime.name(),
    generation: |m| m.runtime.generation(),
    load: |m, path| imp::load(&m.runtime, path),
    set_rollback: |m, policy| m.runtime.set_rollback(policy),
    set_staged: |m, on| imp::set_staged(&m.runtime, on),
    apply_staged: |m| imp::apply_staged(&m.runtime),
    staged_generation: |m| m.runtime.staged_generation(),
    subscribe: |m| m.runtime.subscribe(),
    wait_for_generation: |m, generation, timeout| {
        m.runtime.wait_for_generation(generation, timeout)
    },
    watch: |m| imp::watch(&m.runtime),
    unwatch: |m| m.runtime.stop_services(),
    start_rebuild: |rebuild| {
        imp::start_rebuild(
            &rebuild.module.runtime,
            rebuild.manifest_dir,
            rebuild.target_dir,
            rebuild.profile,
        )
    },
    path: |m| m.runtime.path(),
    set_path: |m, path| m.runtime.set_path(path),
    env_var: |m| m.runtime.env_var(),
    live_generations: |m| m.runtime.live_generations(),
    unload_blocked: |m| m.runtime.unload_blocked(),
    load_all: |loads| {
        let mut runtimes = Vec::with_capacity(loads.len());
        // A module of another copy of hotmod is not this runtime's to load: named through its
        // own operations (its runtime's layout is its copy's).
        let mut foreign = None;
        for (module, path) in loads {
            if std::ptr::eq(module.ops, &OPS) {
                runtimes.push((&module.runtime, path));
            } else {
                foreign.get_or_insert_with(|| (module.ops.name)(module));
            }
        }
        imp::load_all(runtimes, foreign)
    },
};

impl Module {
    #[cfg(feature = "reload")]
    #[doc(hidden)]
    /// Used by the generated code: `me` is the static being initialised
    /// (`static M: Module = Module::__new(&M, …)`), which the runtime enrols with the fork
    /// handlers.
    pub const fn __new(
        me: &'static Module,
        descriptor: &'static crate::abi::ModuleDescriptor,
        info: crate::runtime::ModuleInfo,
    ) -> Module {
        Module {
            ops: &OPS,
            runtime: imp::Runtime::new(
                &me.runtime,
                std::ptr::from_ref(me).cast(),
                descriptor,
                info,
                imp::autostart,
            ),
        }
    }

    #[cfg(not(feature = "reload"))]
    #[doc(hidden)]
    /// Used by the generated code: `name` is `module_path!()`, `default_path` the attribute's
    /// `path = "…"`, if any.
    pub const fn __compiled_out(name: &'static str, default_path: Option<&'static str>) -> Module {
        Module {
            ops: &OPS,
            runtime: imp::Runtime::new(name, default_path),
        }
    }

    /// What the generated code's entry points (`private.rs`) hand to the call paths.
    #[cfg(feature = "reload")]
    pub(crate) fn runtime(&'static self) -> &'static imp::Runtime {
        &self.runtime
    }

    /// The hot module's path, e.g. `greeter::hello`.
    pub fn name(&self) -> &'static str {
        (self.ops.name)(self)
    }

    /// The current generation's number: 0 until a library has been loaded (always, when
    /// reloading is compiled out).
    pub fn generation(&self) -> u64 {
        (self.ops.generation)(self)
    }

    /// Verifies the library at `path`, runs its `#[hotmod::on_load]` function if it has one, and
    /// makes it the next generation; returns its number. In staged mode (see
    /// [`set_staged`](Self::set_staged)) the new generation waits for
    /// [`apply_staged`](Self::apply_staged) instead of becoming current.
    ///
    /// On any error the current generation stays current, nothing is left behind, and
    /// subscribers get an [`Event::Rejected`](crate::Event::Rejected).
    pub fn load(&'static self, path: impl AsRef<Path>) -> Result<u64, Error> {
        (self.ops.load)(self, path.as_ref())
    }

    /// Loads [`path()`](Self::path) as the next generation.
    pub fn reload(&'static self) -> Result<u64, Error> {
        self.load(self.path())
    }

    /// Rollback policy for generations that become current from now on (`None`: off, the
    /// default). See [`Rollback`].
    pub fn set_rollback(&self, policy: Option<Rollback>) {
        (self.ops.set_rollback)(self, policy);
    }

    /// Staged mode: when on, a verified new generation (from `load`, `reload`, the watcher or
    /// the rebuild) waits until [`apply_staged`](Self::apply_staged) — say at the top of a
    /// frame — while plain calls and `Handle::current()` keep the current generation. A newer
    /// generation replaces a staged one that was never applied. Turning it off applies the
    /// staged generation, if any.
    pub fn set_staged(&'static self, on: bool) {
        (self.ops.set_staged)(self, on);
    }

    /// Makes the staged generation current; returns its number, or `None` if none waits.
    ///
    /// This is when the module's state is handed over (see [`State`](crate::State)); if that
    /// fails, the staged generation is dropped, an [`Event::Rejected`](crate::Event::Rejected)
    /// says why, the current generation stays, and this returns `None`.
    pub fn apply_staged(&'static self) -> Option<u64> {
        (self.ops.apply_staged)(self)
    }

    /// The generation waiting for [`apply_staged`](Self::apply_staged), if any.
    pub fn staged_generation(&self) -> Option<u64> {
        (self.ops.staged_generation)(self)
    }

    /// Events of this module from now on: builds, loads, rejections, retirements. While a
    /// subscription lives, the module's progress is not printed on stderr (see
    /// [`print_progress`](crate::print_progress)).
    pub fn subscribe(&self) -> Events {
        (self.ops.subscribe)(self)
    }

    /// Waits until the current generation is at least `generation`; returns the current one.
    /// When reloading is compiled out, a generation above 0 can never come: that is
    /// [`Error::ReloadDisabled`] at once instead of waiting out `timeout`.
    pub fn wait_for_generation(&self, generation: u64, timeout: Duration) -> Result<u64, Error> {
        (self.ops.wait_for_generation)(self, generation, timeout)
    }

    /// Watches [`path()`](Self::path) and loads each new build that lands there: when cargo
    /// links it into place, when a file is renamed over it, or when a writer closes it. A file
    /// that is not yet a complete library is skipped until the next change; a file whose bytes
    /// equal the newest generation's is not reloaded. Results arrive as
    /// [`Event`](crate::Event)s. Calling it again while watching does nothing.
    pub fn watch(&'static self) -> Result<(), Error> {
        (self.ops.watch)(self)
    }

    /// Stops watching (and rebuilding), and printing the module's progress.
    pub fn unwatch(&self) {
        (self.ops.unwatch)(self);
    }

    /// Rebuilds the module's crate whenever one of its sources is saved, with the host's
    /// profile and target directory, and loads the result. Same as
    /// `module().rebuild().start()`; see [`Rebuild`] to configure it.
    pub fn rebuild_on_save(&'static self) -> Result<(), Error> {
        self.rebuild().start()
    }

    /// A configurable built-in rebuild for this module.
    pub fn rebuild(&'static self) -> Rebuild {
        Rebuild::new(self)
    }

    /// The file `reload()` loads: the path given to [`set_path`](Self::set_path), else the
    /// `HOTMOD_<CRATE>_PATH` environment variable, else the attribute's `path = "…"`, else the
    /// standard cargo location of the crate's cdylib next to the running executable
    /// (`target/<profile>/lib<crate>.so`).
    pub fn path(&self) -> PathBuf {
        (self.ops.path)(self)
    }

    /// Sets the file `reload()` (and the watcher) load from.
    pub fn set_path(&self, path: impl Into<PathBuf>) {
        (self.ops.set_path)(self, path.into());
    }

    /// The environment variable that overrides [`path()`](Self::path): `HOTMOD_<CRATE>_PATH`.
    pub fn env_var(&self) -> String {
        (self.ops.env_var)(self)
    }

    /// Numbers of the generations still mapped, oldest first: 0 (the built-in code, always
    /// there), then every loaded generation that has not retired, the current one included.
    pub fn live_generations(&self) -> Vec<u64> {
        (self.ops.live_generations)(self)
    }

    /// Retired generations whose library the platform kept mapped, oldest first; each one was
    /// also reported as [`Event::RetireBlocked`](crate::Event::RetireBlocked) with the reason.
    ///
    /// On Linux with glibc this stays empty for libraries whose code used thread-locals or
    /// thread-specific keys: hotmod redirects those registrations when it loads a library, so
    /// they do not pin it. It lists generations whose code registered thread-exit callbacks
    /// hotmod cannot see (C++ `thread_local` through libstdc++, `dlsym`, C11 `tss_create`):
    /// glibc keeps such a library mapped until those threads exit. On musl nothing is ever
    /// unmapped; elsewhere the platform decides.
    pub fn unload_blocked(&self) -> Vec<u64> {
        (self.ops.unload_blocked)(self)
    }
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("name", &self.name())
            .field("generation", &self.generation())
            .field("live_generations", &self.live_generations())
            .finish()
    }
}

/// Loads a new generation of several hot modules at once: every library is verified and
/// initialised first; only if all pass do they all become current, in one step for
/// [`snapshot()`](crate::snapshot()). If any is rejected, none changes and the first error is
/// returned. Returns the new generation numbers in order. Staged mode does not apply: the point
/// is one switch.
///
/// Module state (`#[hotmod::state]`) moves as in a single load (see [`State`](crate::State)):
/// tried for every module before any switch; if a module's final hand-over fails after the
/// switch, every module goes back to its previous generation, state and all.
///
/// When reloading is compiled out: `Ok` with no generations for an empty set, else
/// [`Error::ReloadDisabled`] for the first module, and nothing changes.
pub fn load_all<'a>(
    loads: impl IntoIterator<Item = (&'static Module, &'a Path)>,
) -> Result<Vec<u64>, Error> {
    let loads: Loads = loads
        .into_iter()
        .map(|(module, path)| (module, path.to_path_buf()))
        .collect();
    match loads.first() {
        None => Ok(Vec::new()),
        // The first module's copy of hotmod loads them all (the host's, from a library's code).
        Some((first, _)) => (first.ops.load_all)(loads),
    }
}

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
        // In the copy of hotmod that made the module (the host's, from a library's code).
        (self.module.ops.start_rebuild)(self)
    }
}
