//! The built-in rebuild: save a source file, get a new generation.
//!
//! A thread watches the module crate's `src/` (recursively), `Cargo.toml` and `build.rs`. After
//! a change it waits for a short settle ([`SETTLE`], so an editor's write-rename-chmod burst
//! and rapid saves make one build), runs `cargo build --lib -p <package>` with the host's
//! profile and target directory, and loads the result. Changes that arrive during a build make
//! exactly one more build after it. A failed build leaves the current generation serving and
//! reports the compiler's errors as cargo shows them. Before each build it checks that nobody but
//! this user or root could have written what the build reads or runs (`security.rs`,
//! `check_rebuild`); if someone could, cargo does not run and an [`Event::Rejected`] carries
//! [`Error::InsecureBuildInput`]. cargo runs in the manifest directory. Every step is an
//! [`Event`] (and a `tracing` line): `building greeter …`, `built greeter in 1.4 s`,
//! `greeter::hello: generation 3 live in 98 ms`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

use crate::error::Error;
use crate::events::Event;
use crate::security::RebuildRefusal;
use crate::transaction::Intake;

/// Quiet time after a source change before building.
const SETTLE: Duration = Duration::from_millis(30);

/// A running rebuild; dropping it stops it.
pub(crate) struct Running {
    _watcher: RecommendedWatcher,
}

/// What a rebuild was asked to do (`Rebuild`'s settings; `None`: the host's).
pub(crate) struct Request {
    pub(crate) package: String,
    pub(crate) manifest_dir: PathBuf,
    pub(crate) target_dir: Option<PathBuf>,
    pub(crate) profile: Option<String>,
}

/// Everything one `cargo build` needs.
struct Plan {
    module: Intake,
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

/// Starts watching the module crate's sources for `request`; returns the running rebuild and
/// the line that says so. The first build happens at the first change.
pub(crate) fn start(module: Intake, request: Request) -> Result<(Running, String), Error> {
    let plan = plan(module, request)?;
    let failed = |path: &Path, message: String| Error::Watch {
        module: module.name(),
        path: path.to_path_buf(),
        message,
    };
    let (sender, receiver) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
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
    let started = format!(
        "rebuilding {} on changes under {}",
        plan.package,
        src.display()
    );
    std::thread::Builder::new()
        .name(name)
        .spawn(move || run(&plan, &receiver))
        .map_err(|e| failed(&manifest_dir, format!("starting the rebuild thread: {e}")))?;
    Ok((Running { _watcher: watcher }, started))
}

fn plan(module: Intake, request: Request) -> Result<Plan, Error> {
    let unknown = |reason: String| Error::UnknownPath {
        module: module.name(),
        reason,
        env_var: module.env_var(),
    };
    let host = host_layout();
    let target_dir = match (request.target_dir, &host) {
        (Some(dir), _) => dir,
        (None, Some(host)) => host.target_dir.clone(),
        (None, None) => {
            return Err(unknown(
                "the running executable is not in a cargo target directory; give the rebuild a target_dir(..)".into(),
            ))
        }
    };
    let profile = match (request.profile, &host) {
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
        package: request.package,
        manifest_dir: request.manifest_dir,
        target_dir,
        profile,
        target,
        artifact,
    })
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
    // cargo runs in the manifest directory, so the configuration it and rustup read is the one
    // checked here (not whatever lies above the host's working directory); every path it is
    // given is therefore absolute.
    let Some((manifest_dir, target_dir, cargo)) = cargo_paths(plan) else {
        return;
    };
    match crate::security::check_rebuild(
        module.name(),
        &plan.package,
        &manifest_dir,
        &target_dir,
        &cargo,
    ) {
        Ok(()) => {}
        Err(RebuildRefusal::Insecure(error)) => {
            module.report(&error);
            return;
        }
        Err(RebuildRefusal::Unchecked(message)) => {
            module.emit(Event::BuildFailed {
                module: module.name(),
                package: plan.package.clone(),
                message,
            });
            return;
        }
    }
    module.emit(Event::BuildStarted {
        module: module.name(),
        package: plan.package.clone(),
    });
    let started = Instant::now();
    let mut command = Command::new(cargo);
    command
        .current_dir(&manifest_dir)
        .args(["build", "--lib", "--color", "never"])
        .arg("--manifest-path")
        .arg(manifest_dir.join("Cargo.toml"))
        .args([
            "-p",
            &plan.package,
            "--profile",
            &plan.profile,
            "--target-dir",
        ])
        .arg(&target_dir);
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
            message: compiler_errors(&String::from_utf8_lossy(&output.stderr)),
        });
        return;
    }
    module.emit(Event::BuildFinished {
        module: module.name(),
        package: plan.package.clone(),
        took: started.elapsed(),
    });
    if let Err(error) = module.offer(&plan.artifact, Instant::now()) {
        module.report(&error);
    }
}

/// The manifest and target directories made absolute, and the cargo to run (`$CARGO` made
/// absolute if it is a path, else `cargo`); `None`, after a `BuildFailed` event, if the working
/// directory they are relative to is gone.
fn cargo_paths(plan: &Plan) -> Option<(PathBuf, PathBuf, std::ffi::OsString)> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let resolved = (|| {
        let cargo = if Path::new(&cargo).components().count() > 1 {
            std::path::absolute(&cargo)?.into_os_string()
        } else {
            cargo
        };
        Ok::<_, std::io::Error>((
            std::path::absolute(&plan.manifest_dir)?,
            std::path::absolute(&plan.target_dir)?,
            cargo,
        ))
    })();
    match resolved {
        Ok(paths) => Some(paths),
        Err(e) => {
            plan.module.emit(Event::BuildFailed {
                module: plan.module.name(),
                package: plan.package.clone(),
                message: format!("could not run cargo: cannot make its paths absolute: {e}"),
            });
            None
        }
    }
}

/// The errors of a failed `cargo build` as cargo shows them (each with its source excerpt,
/// notes and help, and cargo's closing `could not compile` line), without its progress lines and
/// without warnings. If nothing there reads as an error, all of cargo's output but the progress
/// lines.
fn compiler_errors(stderr: &str) -> String {
    let lines = stderr.lines().filter(|line| !is_progress(line));
    let mut errors: Vec<&str> = Vec::new();
    // Whether the diagnostic the current line belongs to is an error; lines before the first
    // diagnostic are kept (cargo's own messages).
    let mut in_error = true;
    for line in lines.clone() {
        if line.starts_with("error") {
            in_error = true;
        } else if line.starts_with("warning") {
            in_error = false;
        }
        if in_error {
            errors.push(line);
        }
    }
    let kept: Vec<&str> = if errors.iter().any(|line| line.starts_with("error")) {
        errors
    } else {
        lines.collect()
    };
    kept.join("\n").trim_matches('\n').to_owned()
}

/// A cargo status line (`   Compiling greeter v0.1.0 (…)`): indented, then a capitalised verb.
fn is_progress(line: &str) -> bool {
    const VERBS: &[&str] = &[
        "Compiling",
        "Checking",
        "Building",
        "Blocking",
        "Finished",
        "Locking",
        "Updating",
        "Downloading",
        "Downloaded",
        "Adding",
        "Fresh",
        "Running",
        "Waiting",
    ];
    let trimmed = line.trim_start();
    trimmed.len() < line.len()
        && VERBS.iter().any(|verb| {
            trimmed
                .strip_prefix(verb)
                .is_some_and(|rest| rest.starts_with(' '))
        })
}

#[cfg(test)]
mod tests {
    use super::compiler_errors;

    #[test]
    fn errors_are_kept_whole_and_warnings_and_progress_left_out() {
        // (No `\` line continuation: it would eat the progress lines' indentation.)
        let stderr = "   Compiling hotmod v0.1.0 (/w/hotmod)
   Compiling greeter v0.1.0 (/w/greeter)
warning: unused variable: `x`
 --> src/lib.rs:3:9
  |
3 |     let x = 1;
  |         ^ help: if this is intentional, prefix it with an underscore: `_x`
  |
  = note: `#[warn(unused_variables)]` on by default

error: mismatched closing delimiter: `}`
  --> src/lib.rs:10:5
   |
10 |     if true { 2 } else { 7
   |                        - unclosed delimiter
11 | }
   | ^ mismatched closing delimiter

warning: `greeter` (lib) generated 1 warning
error: could not compile `greeter` (lib) due to 1 previous error; 1 warning emitted
";
        assert_eq!(
            compiler_errors(stderr),
            "\
error: mismatched closing delimiter: `}`
  --> src/lib.rs:10:5
   |
10 |     if true { 2 } else { 7
   |                        - unclosed delimiter
11 | }
   | ^ mismatched closing delimiter

error: could not compile `greeter` (lib) due to 1 previous error; 1 warning emitted"
        );
    }

    #[test]
    fn output_without_an_error_line_is_kept_as_is() {
        let stderr = "   Compiling greeter v0.1.0 (/w/greeter)\nsomething went wrong\n";
        assert_eq!(compiler_errors(stderr), "something went wrong");
    }
}
