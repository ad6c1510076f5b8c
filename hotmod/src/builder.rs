//! The built-in rebuild: save a source file, get a new generation.
//!
//! A thread watches the module crate's `src/` (recursively), `Cargo.toml` and `build.rs`. After
//! a change it waits for a short settle ([`SETTLE`], so an editor's write-rename-chmod burst
//! and rapid saves make one build), runs `cargo build --lib -p <package>` with the host's
//! profile and target directory, and loads the result. Changes that arrive during a build make
//! exactly one more build after it. A failed build leaves the current generation serving and
//! reports the compiler's first error lines. Every step is an [`Event`] (and a `tracing` line):
//! `building greeter …`, `built greeter in 1.4 s`, `greeter::hello: generation 3 live in 4 ms`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

use crate::error::Error;
use crate::events::Event;
use crate::module::Module;

/// Quiet time after a source change before building.
const SETTLE: Duration = Duration::from_millis(30);

/// How many lines of compiler output a failed build reports.
const ERROR_LINES: usize = 12;

/// Configures and starts the built-in rebuild of one hot module; from
/// [`Module::rebuild`](crate::Module::rebuild). Defaults: the module crate's own manifest
/// directory, and the profile and target directory the running executable was built with.
#[derive(Debug)]
#[must_use = "a Rebuild does nothing until start() is called"]
pub struct Rebuild {
    module: &'static Module,
    package: String,
    manifest_dir: PathBuf,
    target_dir: Option<PathBuf>,
    profile: Option<String>,
}

/// A running rebuild; dropping it stops it.
pub(crate) struct Running {
    _watcher: RecommendedWatcher,
}

/// Everything one `cargo build` needs.
struct Plan {
    module: &'static Module,
    package: String,
    manifest_dir: PathBuf,
    target_dir: PathBuf,
    /// The profile's name for `--profile` (`dev` builds into `debug/`).
    profile: String,
    /// `--target <triple>` when the host was built for an explicit target.
    target: Option<String>,
    /// Where the built library lands.
    artifact: PathBuf,
}

impl Rebuild {
    pub(crate) fn new(module: &'static Module, package: &str, manifest_dir: &Path) -> Rebuild {
        Rebuild {
            module,
            package: package.to_owned(),
            manifest_dir: manifest_dir.to_path_buf(),
            target_dir: None,
            profile: None,
        }
    }

    /// Builds the crate whose `Cargo.toml` is in `dir` (its package name must stay the same).
    pub fn manifest_dir(mut self, dir: impl Into<PathBuf>) -> Rebuild {
        self.manifest_dir = dir.into();
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
        let module = self.module;
        let plan = self.plan()?;
        let failed = |path: &Path, message: String| Error::Watch {
            module: module.name(),
            path: path.to_path_buf(),
            message,
        };
        let (sender, receiver) = mpsc::channel();
        let mut watcher =
            notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
                if let Ok(event) = result {
                    if is_source_change(&event) {
                        let _ = sender.send(());
                    }
                }
            })
            .map_err(|e| failed(&plan.manifest_dir, e.to_string()))?;
        let src = plan.manifest_dir.join("src");
        watcher
            .watch(&src, RecursiveMode::Recursive)
            .map_err(|e| failed(&src, e.to_string()))?;
        watcher
            .watch(&plan.manifest_dir, RecursiveMode::NonRecursive)
            .map_err(|e| failed(&plan.manifest_dir, e.to_string()))?;
        let name = format!("hotmod rebuild {}", plan.package);
        let manifest_dir = plan.manifest_dir.clone();
        std::thread::Builder::new()
            .name(name)
            .spawn(move || run(&plan, &receiver))
            .map_err(|e| failed(&manifest_dir, format!("starting the rebuild thread: {e}")))?;
        module.set_rebuild(Running { _watcher: watcher });
        Ok(())
    }

    fn plan(self) -> Result<Plan, Error> {
        let module = self.module;
        let unknown = |reason: String| Error::UnknownPath {
            module: module.name(),
            reason,
            env_var: module.env_var(),
        };
        let host = host_layout();
        let target_dir = match (self.target_dir, &host) {
            (Some(dir), _) => dir,
            (None, Some(host)) => host.target_dir.clone(),
            (None, None) => {
                return Err(unknown(
                    "the running executable is not in a cargo target directory; give the rebuild a target_dir(..)".into(),
                ))
            }
        };
        let profile = match (self.profile, &host) {
            (Some(profile), _) => profile,
            (None, Some(host)) => host.profile.clone(),
            (None, None) => "dev".to_owned(),
        };
        let target = host.and_then(|host| host.target);
        let profile_dir = match profile.as_str() {
            "dev" | "test" => "debug",
            "release" | "bench" => "release",
            other => other,
        };
        let mut out_dir = target_dir.clone();
        if let Some(triple) = &target {
            out_dir.push(triple);
        }
        let file = format!(
            "{}{}{}",
            std::env::consts::DLL_PREFIX,
            module.crate_name(),
            std::env::consts::DLL_SUFFIX
        );
        let artifact = out_dir.join(profile_dir).join(file);
        Ok(Plan {
            module,
            package: self.package,
            manifest_dir: self.manifest_dir,
            target_dir,
            profile,
            target,
            artifact,
        })
    }
}

/// Where and how the running executable was built, read from its path:
/// `<target-dir>/[<triple>/]<profile-dir>/[deps|examples/]<exe>`.
struct HostLayout {
    target_dir: PathBuf,
    profile: String,
    target: Option<String>,
}

fn host_layout() -> Option<HostLayout> {
    let exe = std::env::current_exe().ok()?;
    let mut dir = exe.parent()?;
    if dir.ends_with("deps") || dir.ends_with("examples") {
        dir = dir.parent()?;
    }
    let profile_dir = dir.file_name()?.to_str()?.to_owned();
    let mut target_dir = dir.parent()?;
    // A target triple directory, when the host was built with `--target`.
    let triple = crate::abi::TOOLCHAIN.split(' ').nth(3).unwrap_or_default();
    let mut target = None;
    if !triple.is_empty() && target_dir.file_name().is_some_and(|name| name == triple) {
        target = Some(triple.to_owned());
        target_dir = target_dir.parent()?;
    }
    let profile = match profile_dir.as_str() {
        "debug" => "dev".to_owned(),
        other => other.to_owned(),
    };
    Some(HostLayout {
        target_dir: target_dir.to_path_buf(),
        profile,
        target,
    })
}

/// A saved Rust source or manifest (not build output, not editor scratch files). Only `src/`
/// (recursively) and the manifest directory itself are watched, so build output under a
/// target directory inside the crate never gets here with a `.rs` name.
fn is_source_change(event: &notify::Event) -> bool {
    let kind = matches!(
        event.kind,
        EventKind::Create(_)
            | EventKind::Remove(_)
            | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any)
            | EventKind::Any
    );
    kind && event.paths.iter().any(|path| {
        path.extension().is_some_and(|e| e == "rs")
            || path.file_name().is_some_and(|n| n == "Cargo.toml")
    })
}

/// The rebuild thread: settle, build, load; until the watcher is dropped.
fn run(plan: &Plan, changes: &Receiver<()>) {
    while changes.recv().is_ok() {
        loop {
            match changes.recv_timeout(SETTLE) {
                Ok(()) => continue,
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        build_and_load(plan);
    }
}

fn build_and_load(plan: &Plan) {
    let module = plan.module;
    module.emit(Event::BuildStarted {
        module: module.name(),
        package: plan.package.clone(),
    });
    let started = Instant::now();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--lib",
            "--color",
            "never",
            "--message-format",
            "short",
        ])
        .arg("--manifest-path")
        .arg(plan.manifest_dir.join("Cargo.toml"))
        .args([
            "-p",
            &plan.package,
            "--profile",
            &plan.profile,
            "--target-dir",
        ])
        .arg(&plan.target_dir);
    if let Some(triple) = &plan.target {
        command.args(["--target", triple]);
    }
    let output = match command.output() {
        Ok(output) => output,
        Err(e) => {
            module.emit(Event::BuildFailed {
                module: module.name(),
                package: plan.package.clone(),
                message: format!("could not run cargo: {e}"),
            });
            return;
        }
    };
    if !output.status.success() {
        module.emit(Event::BuildFailed {
            module: module.name(),
            package: plan.package.clone(),
            message: first_errors(&String::from_utf8_lossy(&output.stderr)),
        });
        return;
    }
    module.emit(Event::BuildFinished {
        module: module.name(),
        package: plan.package.clone(),
        took: started.elapsed(),
    });
    if let Err(error) = module.install(&plan.artifact, Instant::now(), true) {
        module.reject(&error);
    }
}

/// The compiler's first error lines, without cargo's progress chatter.
fn first_errors(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| {
            let line = line.trim_start();
            !(line.starts_with("Compiling")
                || line.starts_with("Checking")
                || line.starts_with("Building")
                || line.starts_with("Blocking")
                || line.is_empty())
        })
        .collect();
    let start = lines
        .iter()
        .position(|line| line.contains("error"))
        .unwrap_or(0);
    lines[start..]
        .iter()
        .take(ERROR_LINES)
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}
