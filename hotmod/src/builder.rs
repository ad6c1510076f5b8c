//! The built-in rebuild: save a source file, get a new generation.
//!
//! A thread watches the module crate's `src/` (recursively), `Cargo.toml` and `build.rs`. After
//! a change it waits for a short settle ([`SETTLE`], so an editor's write-rename-chmod burst
//! and rapid saves make one build), runs `cargo build --lib -p <package>` with the host's
//! profile and target directory, and loads the result as soon as cargo reports it built (its
//! JSON message for the library; cargo may still be relinking the host). Where the host's own
//! package is a member of the module crate's workspace, it is selected too (`-p <host>`, and
//! `--test`/`--example`/`--bench <name>` when the host is one of those, so its dev-dependencies
//! count, plus what the host's `cargo run` selected): cargo's resolver 2 unifies features over
//! the selected packages only, and a dependency shared by host and module must be built with the
//! host's features, else the reloaded library's copy of it has other types and the first save
//! compiles the dependencies again (see [`HostSelection`]). In the `dev` and `test` profiles the
//! module's package alone is built without debug info, so the link leaves out every crate's
//! debug info ([`module_settings`]). After the first build, a save that changed only the
//! module crate's own sources runs that crate's rustc command from cargo's last build again,
//! without cargo (`direct_build.rs`; `BuildFinished::direct`), which saves cargo's own work
//! (~40–50 ms a save); anything else builds with cargo. Changes that arrive during a build
//! make exactly one more build after it. A failed build leaves the current generation serving
//! and reports the compiler's errors as cargo shows them. Before each build it checks that nobody but
//! this user or root could have written what the build reads or runs (`security.rs`,
//! `check_rebuild`); if someone could, cargo does not run and an [`Event::Rejected`] carries
//! [`Error::InsecureBuildInput`]. cargo runs in the manifest directory. Every step is an
//! [`Event`] (and a `tracing` line): `building greeter …`, `built greeter in 1.4 s`,
//! `greeter::hello: generation 3 live in 98 ms`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

use crate::direct_build::{self, Capture};
use crate::error::Error;
use crate::events::Event;
use crate::json;
use crate::security::RebuildRefusal;
use crate::transaction::Intake;

/// Quiet time after a source change before building. An editor's save is one burst of events
/// within a few milliseconds (truncate and write, or write a new file and rename it over the
/// old; a backup's events are not sources), so 10 ms merges it, and every millisecond here is
/// one of the save → serving loop (BENCHMARKS.md, "A shorter settle": 30 → 10 ms took ~20 ms
/// off the handler's p50). A write that pauses longer inside one save costs one build of the
/// unfinished file (reported as a failed build), then one of the whole file: the events that
/// arrive during a build make one more build after it.
const SETTLE: Duration = Duration::from_millis(10);

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
    /// The running executable's place in a cargo target directory (`None`: not in one).
    host_exe: Option<HostExe>,
    /// The host's package in the module's workspace, found at the first build that could read
    /// the workspace (`None` inside: not found, the module's package is built alone).
    host: OnceLock<Option<HostSelection>>,
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
    let (sender, receiver) = mpsc::channel::<Vec<PathBuf>>();
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
        if let Ok(event) = result {
            if is_source_change(&event) {
                // The paths too: a build whose changes are all the crate's own sources may run
                // its rustc without cargo (`direct_build.rs`).
                let _ = sender.send(event.paths);
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
        host_exe: host_exe(),
        host: OnceLock::new(),
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

/// What the running executable is, read from where cargo put it: a binary
/// (`<profile-dir>/<name>`), an example (`<profile-dir>/examples/<name>[-<hash>]`), or a test,
/// bench or unit-test harness (`<profile-dir>/deps/<crate name>-<hash>`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostExe {
    Bin(String),
    Example(String),
    Deps(String),
}

fn host_exe() -> Option<HostExe> {
    let exe = std::env::current_exe().ok()?;
    let name = exe.file_name()?.to_str()?;
    let name = name
        .strip_suffix(std::env::consts::EXE_SUFFIX)
        .filter(|_| !std::env::consts::EXE_SUFFIX.is_empty())
        .unwrap_or(name);
    let dir = exe.parent()?;
    Some(if dir.ends_with("deps") {
        HostExe::Deps(without_hash(name).to_owned())
    } else if dir.ends_with("examples") {
        HostExe::Example(without_hash(name).to_owned())
    } else {
        HostExe::Bin(name.to_owned())
    })
}

/// `name` without cargo's `-<16 hex digits>` metadata suffix.
fn without_hash(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((stem, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            stem
        }
        _ => name,
    }
}

/// What the build adds to select the host's package the way its own build did: `-p <package>`
/// and, for an example, test or bench host, that target (`--example <name>` …). Only a dev
/// target brings the package's dev-dependencies (and their features) into cargo's feature
/// resolution. Selecting it costs a relink of that target after each rebuild (it links the
/// module crate's rlib); a binary host is not relinked (`--lib` leaves its binaries alone).
///
/// A binary or example host was started by `cargo run`, which selects more than the host's
/// package where it runs without `-p`: the workspace's `default-members` (or all members of a
/// virtual workspace) at the workspace root. Features unify over that whole selection, so the
/// build selects it too ([`run_selection`]), else the first save would compile the shared
/// dependencies again with other features (and the user's next `cargo run` once more).
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostSelection {
    package: String,
    target: Option<(&'static str, String)>,
    /// The other packages the host's `cargo run` selected (see [`run_selection`]).
    also: Vec<String>,
    /// Why the selection may still differ from the host's own build, if it may.
    caveat: Option<String>,
    /// `--features`/`--no-default-features` arguments that select the host package's features
    /// as its own build did (`cargo run --features dev`), read from cargo's fingerprint of the
    /// running executable ([`host_features`]); empty when those are its defaults or unknown.
    features: Vec<String>,
}

/// The host's selection for `plan`'s builds: found once, at the first build, from
/// `cargo metadata --no-deps` of the module's workspace (after the build inputs were checked:
/// this runs cargo in the manifest directory too). `None` if the host's package is not there;
/// then the module's package is built alone, as a `tracing` line says.
fn host_selection<'a>(
    plan: &'a Plan,
    manifest_dir: &Path,
    cargo: &std::ffi::OsStr,
) -> Option<&'a HostSelection> {
    if let Some(found) = plan.host.get() {
        return found.as_ref();
    }
    let module = plan.module.name();
    let found = match find_host(plan, manifest_dir, cargo) {
        Ok(selection) => selection,
        Err(Retry(why)) => {
            // Not remembered: the manifest may be fixed before the next build.
            tracing::warn!(
                target: "hotmod",
                "{module}: building {} without the host's package (its shared dependencies may \
                 get other features than the host's): {why}",
                plan.package
            );
            return None;
        }
    };
    match &found {
        Ok(selection) => {
            let target = selection
                .target
                .as_ref()
                .map(|(flag, name)| format!(" {flag} {name}"))
                .unwrap_or_default();
            let caveat = selection
                .caveat
                .as_ref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default();
            let also: String = selection.also.iter().map(|p| format!(" -p {p}")).collect();
            tracing::info!(
                target: "hotmod",
                "{module}: building {} with the host's package: -p {}{also}{target}{caveat}",
                plan.package,
                selection.package
            );
        }
        Err(why) => tracing::warn!(
            target: "hotmod",
            "{module}: building {} without the host's package (its shared dependencies may get \
             other features than the host's): {why}",
            plan.package
        ),
    }
    plan.host.get_or_init(|| found.ok()).as_ref()
}

/// A failure worth another try at the next build.
struct Retry(String);

fn find_host(
    plan: &Plan,
    manifest_dir: &Path,
    cargo: &std::ffi::OsStr,
) -> Result<Result<HostSelection, String>, Retry> {
    let Some(exe) = &plan.host_exe else {
        return Ok(Err(
            "the running executable is not in a cargo target directory".into(),
        ));
    };
    let output = Command::new(cargo)
        .current_dir(manifest_dir)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--color",
            "never",
        ])
        .arg("--manifest-path")
        .arg(manifest_dir.join("Cargo.toml"))
        .output()
        .map_err(|e| Retry(format!("could not run cargo metadata: {e}")))?;
    if !output.status.success() {
        return Err(Retry(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let metadata = String::from_utf8_lossy(&output.stdout);
    let metadata = json::parse(&metadata)
        .map_err(|e| Retry(format!("cannot read cargo metadata's output: {e}")))?;
    // Set by `cargo run`/`cargo test`/`cargo bench` for the process they start; only a
    // tie-breaker, since a process started by such a process inherits them.
    let env_package = std::env::var("CARGO_PKG_NAME").ok();
    let mut selection = match select_host(&metadata, exe, env_package.as_deref()) {
        Ok(selection) => selection,
        Err(why) => return Ok(Err(why)),
    };
    // `cargo test` and `cargo bench` run their executables in the package's directory, whatever
    // the directory they ran in: only `cargo run` leaves a trace of its selection.
    if matches!(exe, HostExe::Bin(_) | HostExe::Example(_)) {
        let cwd = std::env::current_dir()
            .map_err(|e| Retry(format!("cannot read the working directory: {e}")))?;
        let also = run_selection(&metadata, &cwd, |root_manifest| {
            let output = Command::new(cargo)
                .current_dir(manifest_dir)
                .args(["metadata", "--no-deps", "--format-version", "1"])
                .args(["--color", "never", "--manifest-path"])
                .arg(root_manifest)
                .output()
                .map_err(|e| format!("could not run cargo metadata: {e}"))?;
            if !output.status.success() {
                return Err(format!(
                    "cargo metadata failed: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
            json::parse(&String::from_utf8_lossy(&output.stdout))
                .map_err(|e| format!("cannot read cargo metadata's output: {e}"))
        })
        .map_err(Retry)?;
        selection.also = also
            .into_iter()
            .filter(|p| *p != selection.package && *p != plan.package)
            .collect();
    }
    if let Some(features) = host_features() {
        selection.features = feature_args(&selection.package, &features);
    }
    Ok(Ok(selection))
}

/// The features cargo built the running executable's package with: (enabled, declared), read
/// from cargo's fingerprint of the executable, `<profile-dir>/.fingerprint/<package>-<hash>/
/// <kind>-<name>.json`. The `<hash>` is in the name of the file cargo linked (`deps/<name>-<hash>`
/// or `examples/<name>-<hash>`), of which the executable cargo uplifted (`<profile-dir>/<name>`)
/// is a hard link: the one with the executable's inode. `None` where any step fails (then the
/// build selects the package's default features, as before).
#[cfg(unix)]
fn host_features() -> Option<(Vec<String>, Vec<String>)> {
    use std::os::unix::fs::MetadataExt;
    let exe = std::env::current_exe().ok()?;
    let meta = std::fs::metadata(&exe).ok()?;
    let name = exe.file_name()?.to_str()?;
    let dir = exe.parent()?;
    let hashed_dirs = if dir.ends_with("deps") || dir.ends_with("examples") {
        vec![dir.to_path_buf()]
    } else {
        vec![dir.join("deps")]
    };
    let profile_dir = if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.parent()?
    } else {
        dir
    };
    let stem = without_hash(name);
    let hash = hashed_dirs.iter().find_map(|dir| {
        if stem != name {
            return Some(name[stem.len() + 1..].to_owned());
        }
        std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
            let file = entry.file_name();
            let file = file.to_str()?;
            let hash = file.strip_prefix(stem)?.strip_prefix('-')?;
            if hash.len() != 16 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let other = entry.metadata().ok()?;
            (other.ino() == meta.ino() && other.dev() == meta.dev()).then(|| hash.to_owned())
        })
    })?;
    let fingerprint = std::fs::read_dir(profile_dir.join(".fingerprint"))
        .ok()?
        .flatten()
        .find(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|dir| dir.ends_with(&format!("-{hash}")))
        })?
        .path();
    let text = std::fs::read_dir(&fingerprint)
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|e| e == "json"))
        .and_then(|path| std::fs::read_to_string(path).ok())?;
    let record = json::parse(text.trim_end()).ok()?;
    // Each is a JSON array written as a string: `"features":"[\"default\", \"dev\"]"`.
    let list = |key: &str| -> Option<Vec<String>> {
        let inner = json::parse(record.get(key)?.as_str()?).ok()?;
        Some(
            inner
                .as_array()?
                .iter()
                .filter_map(json::Value::as_str)
                .map(str::to_owned)
                .collect(),
        )
    };
    Some((
        list("features")?,
        list("declared_features").unwrap_or_default(),
    ))
}

/// Where the inode cannot be read, the features are not known.
#[cfg(not(unix))]
fn host_features() -> Option<(Vec<String>, Vec<String>)> {
    None
}

/// The arguments that select `package`'s `features` (enabled, declared) as its own build did:
/// none when they are what cargo selects anyway (its default features, or none where it declares
/// no `default`); else `--features <package>/<feature>` for each, and `--no-default-features`
/// when `default` was off. (`--no-default-features` applies to every selected package; the
/// module's own defaults come back through the host's dependency on it, unless it disabled
/// them.)
fn feature_args(package: &str, (enabled, declared): &(Vec<String>, Vec<String>)) -> Vec<String> {
    let has_default = declared.iter().any(|f| f == "default");
    let default_on = enabled.iter().any(|f| f == "default");
    let extra: Vec<&String> = enabled.iter().filter(|f| *f != "default").collect();
    // What `default` itself enables is listed too: only features beyond that set need naming,
    // but naming them all is harmless, so the only case left alone is the plain one.
    let plain = extra.is_empty() && (default_on || !has_default);
    if plain {
        return Vec::new();
    }
    let mut args = Vec::new();
    if has_default && !default_on {
        args.push("--no-default-features".to_owned());
    }
    if !extra.is_empty() {
        args.push("--features".to_owned());
        args.push(
            extra
                .iter()
                .map(|f| format!("{package}/{f}"))
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    args
}

/// The packages a `cargo run` without `-p` selects in `cwd` (the host's working directory,
/// where `cargo run` ran), if `cwd` is in the module's workspace (`metadata`, `cargo metadata
/// --no-deps` run for the module's manifest): in a member's directory, that member; at the
/// workspace's root, its default members, read by `root_metadata` (`cargo metadata --no-deps`
/// for the root manifest: `workspace_default_members`, which cargo fills from
/// `default-members`, or all members of a virtual workspace, or the root package). Elsewhere,
/// none. (A `cargo run -p <host>` at the root selected less; that host's first build compiles
/// what the default members add, once, and a `tracing` line names it. A default member's
/// library that the host does not link is compiled at the first save too, once: `--lib`
/// selects the libraries of every selected package.)
fn run_selection(
    metadata: &json::Value,
    cwd: &Path,
    root_metadata: impl FnOnce(&Path) -> Result<json::Value, String>,
) -> Result<Vec<String>, String> {
    let same = |a: &Path, b: &Path| {
        a == b
            || matches!(
                (std::fs::canonicalize(a), std::fs::canonicalize(b)),
                (Ok(a), Ok(b)) if a == b
            )
    };
    let Some(current) = cwd
        .ancestors()
        .map(|dir| dir.join("Cargo.toml"))
        .find(|manifest| manifest.is_file())
    else {
        return Ok(Vec::new());
    };
    let packages = metadata
        .get("packages")
        .and_then(json::Value::as_array)
        .ok_or("cargo metadata lists no packages")?;
    let field = |package: &json::Value, key: &str| {
        package
            .get(key)
            .and_then(json::Value::as_str)
            .map(str::to_owned)
    };
    let root = metadata
        .get("workspace_root")
        .and_then(json::Value::as_str)
        .map(|root| Path::new(root).join("Cargo.toml"));
    if root.as_deref().is_some_and(|root| same(root, &current)) {
        let root_metadata = root_metadata(&current)?;
        let ids: Vec<&str> = root_metadata
            .get("workspace_default_members")
            .and_then(json::Value::as_array)
            .ok_or("cargo metadata lists no workspace_default_members")?
            .iter()
            .filter_map(json::Value::as_str)
            .collect();
        let packages = root_metadata
            .get("packages")
            .and_then(json::Value::as_array)
            .ok_or("cargo metadata lists no packages")?;
        return Ok(packages
            .iter()
            .filter(|p| field(p, "id").is_some_and(|id| ids.contains(&id.as_str())))
            .filter_map(|p| field(p, "name"))
            .collect());
    }
    Ok(packages
        .iter()
        .filter(|p| field(p, "manifest_path").is_some_and(|m| same(Path::new(&m), &current)))
        .filter_map(|p| field(p, "name"))
        .collect())
}

/// The package and target of `metadata` (`cargo metadata --no-deps`: the workspace's members)
/// that built the executable `exe`; if several could have, the one named `env_package`.
fn select_host(
    metadata: &json::Value,
    exe: &HostExe,
    env_package: Option<&str>,
) -> Result<HostSelection, String> {
    let crate_name = |name: &str| name.replace('-', "_");
    let packages = metadata
        .get("packages")
        .and_then(json::Value::as_array)
        .ok_or("cargo metadata lists no packages")?;
    let mut found: Vec<HostSelection> = Vec::new();
    for package in packages {
        let Some(package_name) = package.get("name").and_then(json::Value::as_str) else {
            continue;
        };
        let targets = package.get("targets").and_then(json::Value::as_array);
        for target in targets.into_iter().flatten() {
            let Some(name) = target.get("name").and_then(json::Value::as_str) else {
                continue;
            };
            let kinds: Vec<&str> = target
                .get("kind")
                .and_then(json::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(json::Value::as_str)
                .collect();
            let is = |kind: &str| kinds.contains(&kind);
            let selection =
                |target: Option<(&'static str, String)>, caveat: Option<String>| HostSelection {
                    package: package_name.to_owned(),
                    target,
                    also: Vec::new(),
                    caveat,
                    features: Vec::new(),
                };
            let hit = match exe {
                HostExe::Bin(exe) if is("bin") && name == exe => Some(selection(None, None)),
                HostExe::Example(exe)
                    if is("example") && (name == exe || crate_name(name) == *exe) =>
                {
                    Some(selection(Some(("--example", name.to_owned())), None))
                }
                HostExe::Deps(exe) if crate_name(name) == *exe => {
                    if is("test") {
                        Some(selection(Some(("--test", name.to_owned())), None))
                    } else if is("bench") {
                        Some(selection(Some(("--bench", name.to_owned())), None))
                    } else if is("bin") || kinds.iter().any(|k| k.ends_with("lib")) {
                        // `cargo build` cannot select a unit-test harness alone.
                        Some(selection(
                            None,
                            Some(format!(
                                "the host is {package_name}'s unit tests: its dev-dependencies \
                                 do not count"
                            )),
                        ))
                    } else {
                        None
                    }
                }
                _ => None,
            };
            found.extend(hit);
        }
    }
    let described = || match exe {
        HostExe::Bin(name) => format!("binary {name}"),
        HostExe::Example(name) => format!("example {name}"),
        HostExe::Deps(name) => format!("test, bench or unit tests {name}"),
    };
    match found.len() {
        0 => Err(format!(
            "no package of the module's workspace has a target that built the running {}",
            described()
        )),
        1 => Ok(found.remove(0)),
        _ => {
            let named = env_package.and_then(|env| found.iter().position(|s| s.package == env));
            named.map(|at| found.remove(at)).ok_or_else(|| {
                let names: Vec<&str> = found.iter().map(|s| s.package.as_str()).collect();
                format!(
                    "packages {} each have a target that could be the running {}",
                    names.join(", "),
                    described()
                )
            })
        }
    }
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
fn run(plan: &Plan, changes: &Receiver<Vec<PathBuf>>) {
    // The module library's rustc command, from the last cargo build that ran it.
    let mut direct: Option<Capture> = None;
    while let Ok(paths) = changes.recv() {
        let mut changed: BTreeSet<PathBuf> = paths.into_iter().collect();
        loop {
            match changes.recv_timeout(SETTLE) {
                Ok(paths) => changed.extend(paths),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        build_and_load(plan, &changed, &mut direct);
    }
}

fn build_and_load(plan: &Plan, changed: &BTreeSet<PathBuf>, direct: &mut Option<Capture>) {
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
    let host = host_selection(plan, &manifest_dir, &cargo);
    if let Some(capture) = direct.as_mut() {
        match capture.needs_cargo(changed) {
            None => match build_directly(plan, capture, started) {
                Ok(_restart) => {
                    #[cfg(hotmod_restart)]
                    if _restart {
                        restart_host(plan, &manifest_dir, &target_dir, &cargo);
                    }
                    return;
                }
                Err(why) => tracing::debug!(
                    target: "hotmod",
                    "{}: building {} with cargo: rustc alone did not run: {why}",
                    module.name(),
                    plan.package
                ),
            },
            Some(why) => tracing::debug!(
                target: "hotmod",
                "{}: building {} with cargo: {why}",
                module.name(),
                plan.package
            ),
        }
    }
    // Captured again by this build, if it compiles the library.
    *direct = None;
    let mut command = Command::new(&cargo);
    command
        .current_dir(&manifest_dir)
        .args(["build", "--lib", "--color", "never"])
        .arg("--manifest-path")
        .arg(manifest_dir.join("Cargo.toml"))
        .args(["-p", &plan.package]);
    if let Some(host) = host {
        if host.package != plan.package {
            command.args(["-p", &host.package]);
        }
        for package in &host.also {
            command.args(["-p", package]);
        }
        if let Some((flag, name)) = &host.target {
            command.arg(flag).arg(name);
        }
        command.args(&host.features);
    }
    command
        .args(["--profile", &plan.profile, "--target-dir"])
        .arg(&target_dir);
    if let Some(triple) = &plan.target {
        command.args(["--target", triple]);
    }
    command.args(module_settings(&plan.profile, &plan.package));
    // Messages on stdout, rustc's diagnostics rendered on stderr as without the flag: the
    // module's library is offered when cargo reports it built, not when cargo exits, which
    // is later where the host's package is selected (cargo relinks the host's example or test
    // next: it links the module's rlib). `-vv`: cargo prints each rustc command with its
    // environment, which the next builds may run alone (`direct_build.rs`).
    command
        .arg("--message-format=json-render-diagnostics")
        .arg("-vv")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let failed = |message: String| {
        module.emit(Event::BuildFailed {
            module: module.name(),
            package: plan.package.clone(),
            message,
        })
    };
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return failed(format!("could not run cargo: {e}")),
    };
    // stderr on a thread of its own, so that neither pipe fills while the other is read.
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::Builder::new()
            .name(format!("hotmod cargo stderr {}", plan.package))
            .spawn(move || {
                let mut text = Vec::new();
                let _ = pipe.read_to_end(&mut text);
                text
            })
    });
    let stderr = match stderr {
        Some(Ok(thread)) => Some(thread),
        Some(Err(e)) => {
            let _ = child.kill();
            let _ = child.wait();
            return failed(format!("could not run cargo: starting a thread: {e}"));
        }
        None => None,
    };
    let artifact = std::path::absolute(&plan.artifact).unwrap_or_else(|_| plan.artifact.clone());
    let mut offered = false;
    // A kept-state restart is wanted (`built`): it builds once this cargo is done.
    let mut restart = false;
    // Packages cargo compiled besides the selected ones (the module's, the host's and what the
    // host's `cargo run` selected, which may link the module): none, when the build is the
    // host's own and only the module changed.
    // Nor the host's other hot modules: one that the module depends on is compiled again after
    // its own rebuild built it with the module's settings (`module_settings`), by design.
    let host_packages: Vec<String> = host
        .map(|host| {
            let mut packages = host.also.clone();
            packages.push(host.package.clone());
            packages
        })
        .unwrap_or_default()
        .into_iter()
        .chain(crate::runtime::registered().map(|r| r.info().package.to_owned()))
        .collect();
    let mut others: Vec<String> = Vec::new();
    // The library's source root, from cargo's message that it is built.
    let mut src_path: Option<PathBuf> = None;
    if let Some(stdout) = child.stdout.take() {
        let mut stdout = BufReader::new(stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            match stdout.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&line);
            if !offered && reports_built(&line, &artifact) {
                offered = true;
                src_path = json::parse(line.trim_end()).ok().and_then(|message| {
                    let path = message.get("target")?.get("src_path")?.as_str()?;
                    Some(PathBuf::from(path))
                });
                restart = built(plan, started, false);
            } else if let Some(package) = compiled_package(&line) {
                if package != plan.package && !host_packages.contains(&package) {
                    others.push(package);
                }
            }
        }
    }
    let status = child.wait();
    let stderr = stderr
        .and_then(|thread| thread.join().ok())
        .unwrap_or_default();
    // What `-vv` added: the commands cargo ran, apart from what cargo would have said without.
    let (commands, stderr) = direct_build::split_verbose(&String::from_utf8_lossy(&stderr));
    match status {
        Ok(status) if status.success() => {
            if !offered {
                restart = built(plan, started, false);
            }
            // Not where cargo relinks the host's example or test after the library: that is
            // cargo's to do at each build.
            let relinks_host = host.is_some_and(|host| host.target.is_some());
            if !relinks_host {
                let captured = src_path
                    .as_deref()
                    .ok_or_else(|| "cargo did not report the library's source".to_owned())
                    .and_then(|src_path| {
                        Capture::from_cargo(
                            &commands,
                            &plan.package,
                            module.crate_name(),
                            src_path,
                            &artifact,
                        )
                    });
                match captured {
                    Ok(capture) => *direct = Some(capture),
                    Err(why) => tracing::debug!(
                        target: "hotmod",
                        "{}: the next build of {} runs cargo too: {why}",
                        module.name(),
                        plan.package
                    ),
                }
            }
            #[cfg(hotmod_restart)]
            if restart {
                restart_host(plan, &manifest_dir, &target_dir, &cargo);
            }
            if !others.is_empty() {
                others.sort();
                others.dedup();
                tracing::warn!(
                    target: "hotmod",
                    "{}: building {} compiled {} too: changed since the last build, or the \
                     host's executable was built with another selection of packages (`cargo run \
                     -p …`?) or other features than this build's; the host's next `cargo run` may \
                     compile them again",
                    module.name(),
                    plan.package,
                    others.join(", ")
                );
            }
        }
        // After an offer too: the host's part of the build failed (the module's library had
        // built), and the user must see why.
        Ok(_) => {
            #[cfg(hotmod_restart)]
            if restart {
                crate::handover::failed();
            }
            failed(compiler_errors(&stderr))
        }
        Err(e) => {
            #[cfg(hotmod_restart)]
            if restart {
                crate::handover::failed();
            }
            failed(format!("could not wait for cargo: {e}"))
        }
    }
}

/// `--config` settings for the module's package alone in `profile`: no debug info in the library
/// the rebuild loads. A debug cdylib is mostly debug info, the dependencies' above all (the
/// HTTP example's handler: 18.8 MB, 3.7 MB without), and the linker copies and relocates all of
/// it on every save; `strip = "debuginfo"` makes it leave the debug sections out, `debug =
/// false` spares rustc writing the module's own, which would be left out anyway. Save →
/// serving, handler and game logic: 15–27 % less (BENCHMARKS.md, "Save → serving").
///
/// Only the module's package gets them, so every other crate is built as the host's own build
/// built it: a setting for all packages would compile every dependency again at the first save,
/// and again at the user's next `cargo build`. The module's build differs from the host's own
/// (another profile is another `-C metadata`): cargo keeps an incremental cache for each, the
/// first save ever compiles the module from scratch, and the user's next `cargo build` compiles
/// the module once more. What else it costs: a backtrace taken in reloaded code names its
/// functions (the symbol table stays) without file and line; a debugger sees no debug info in
/// generations ≥ 1 (generation 0, linked into the host, keeps its own); a panic's message still
/// says where it happened. An `opaque` type around a type of the module's own crate has another
/// `TypeId` in the rebuilt library, which is refused. A hot module that this one depends on is
/// compiled again after its own rebuild (built with its settings), once per switch.
///
/// Only for `dev` and `test`, the profiles with debug info by default; not for a package name
/// with other characters than ASCII letters, digits, `-` and `_`, which the key would have to
/// escape.
fn module_settings(profile: &str, package: &str) -> Vec<String> {
    let plain = |name: &str| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !matches!(profile, "dev" | "test") || !plain(package) {
        return Vec::new();
    }
    [r#"strip="debuginfo""#, "debug=false"]
        .iter()
        .flat_map(|setting| {
            [
                "--config".to_owned(),
                format!(r#"profile.{profile}.package."{package}".{setting}"#),
            ]
        })
        .collect()
}

/// The module's library is built: say so, and offer it. `true`: it was refused because it needs
/// a restart, and the host opted into one (`restart::on_incompatible`), which is now under way:
/// the caller builds the host once cargo is done ([`restart_host`]).
fn built(plan: &Plan, started: Instant, direct: bool) -> bool {
    let module = plan.module;
    module.emit(Event::BuildFinished {
        module: module.name(),
        package: plan.package.clone(),
        took: started.elapsed(),
        direct,
    });
    if let Err(error) = module.offer(&plan.artifact, Instant::now()) {
        module.report(&error);
        #[cfg(hotmod_restart)]
        return crate::handover::wanted(&error);
    }
    false
}

/// Builds the module's library with `capture`, its rustc command from cargo's last build, and
/// offers it as [`built`] does (`Ok`: what that returned); reports a compiler error as cargo's
/// build would (`BuildFailed`, the live generation keeps serving). `Err`: rustc did not run, or
/// its library could not be linked to the name the rebuild offers; cargo builds instead.
fn build_directly(plan: &Plan, capture: &mut Capture, started: Instant) -> Result<bool, String> {
    let module = plan.module;
    match capture.run()? {
        direct_build::Outcome::Built => {
            let artifact =
                std::path::absolute(&plan.artifact).unwrap_or_else(|_| plan.artifact.clone());
            // The library rustc wrote replaced the one under `deps/` (a new file): the name the
            // rebuild offers, cargo's hard link to the old one, would still be the previous
            // build's. Linked as cargo links it, so the offered file is this build's and a later
            // look at that name (the user's, a watcher's) finds the newest library.
            direct_build::uplift(capture.out(), &artifact).map_err(|e| {
                format!(
                    "linking {} to {}: {e}",
                    capture.out().display(),
                    artifact.display()
                )
            })?;
            Ok(built(plan, started, true))
        }
        direct_build::Outcome::Failed(rendered) => {
            module.emit(Event::BuildFailed {
                module: module.name(),
                package: plan.package.clone(),
                message: compiler_errors(&rendered),
            });
            Ok(false)
        }
    }
}

/// A kept-state restart (`restart.rs`, `handover.rs`): builds the host's executable the way
/// the module's build selected it (the host's package and its binary or example, what its
/// `cargo run` selected, the profile, target and target directory, the module's settings so
/// that the module's fresh build is reused), then hands over to it. Either way an event says
/// how it went; on a failure this process keeps serving.
#[cfg(hotmod_restart)]
fn restart_host(plan: &Plan, manifest_dir: &Path, target_dir: &Path, cargo: &std::ffi::OsStr) {
    let module = plan.module;
    let failed = |message: String| {
        crate::handover::failed();
        module.emit(Event::RestartFailed {
            module: module.name(),
            message,
        });
    };
    let (flag, name) = match &plan.host_exe {
        Some(HostExe::Bin(name)) => ("--bin", name),
        Some(HostExe::Example(name)) => ("--example", name),
        Some(HostExe::Deps(_)) => {
            return failed(
                "the host is a test or bench harness, which cannot be started again as it was"
                    .into(),
            )
        }
        None => return failed("the running executable is not in a cargo target directory".into()),
    };
    let Some(host) = host_selection(plan, manifest_dir, cargo) else {
        return failed(format!(
            "the host's package is not in the workspace of {}, so it cannot be built from there",
            manifest_dir.display()
        ));
    };
    module.emit(Event::RestartBuilding {
        module: module.name(),
        package: host.package.clone(),
    });
    let mut command = Command::new(cargo);
    command
        .current_dir(manifest_dir)
        .args(["build", "--color", "never", "--manifest-path"])
        .arg(manifest_dir.join("Cargo.toml"))
        .args(["-p", &plan.package, "-p", &host.package]);
    for package in &host.also {
        command.args(["-p", package]);
    }
    command
        .args([flag, name.as_str()])
        .args(&host.features)
        .args(["--profile", &plan.profile, "--target-dir"])
        .arg(target_dir);
    if let Some(triple) = &plan.target {
        command.args(["--target", triple]);
    }
    command
        .args(module_settings(&plan.profile, &plan.package))
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null());
    let output = match command.output() {
        Ok(output) => output,
        Err(e) => return failed(format!("could not run cargo: {e}")),
    };
    if !output.status.success() {
        return failed(format!(
            "building the host failed:\n{}",
            compiler_errors(&String::from_utf8_lossy(&output.stderr))
        ));
    }
    // The executable cargo reports for the host's target.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let executable = stdout.lines().find_map(|line| {
        let message = json::parse(line.trim_end()).ok()?;
        if message.get("reason")?.as_str()? != "compiler-artifact"
            || message.get("target")?.get("name")?.as_str()? != name.as_str()
        {
            return None;
        }
        message.get("executable")?.as_str().map(PathBuf::from)
    });
    let Some(executable) = executable else {
        return failed(format!("cargo built no executable named {name}"));
    };
    let launched = crate::handover::launch(module.name(), executable, |pid| {
        module.emit(Event::RestartReady {
            module: module.name(),
            pid,
        });
    });
    if let Err(message) = launched {
        failed(message);
    }
}

/// The package of a unit that `line`, one of cargo's JSON messages, reports compiled (not
/// fresh), if it does: the name in its `package_id` (`path+file:///w/greeter#0.1.0`,
/// `path+file:///w/x#greeter@0.1.0`, `registry+https://…#serde@1.0.0`).
fn compiled_package(line: &str) -> Option<String> {
    if !line.contains(r#""reason":"compiler-artifact""#) || !line.contains(r#""fresh":false"#) {
        return None;
    }
    let message = json::parse(line.trim_end()).ok()?;
    let id = message.get("package_id")?.as_str()?;
    let (path, fragment) = id.rsplit_once('#')?;
    let name = match fragment.split_once('@') {
        Some((name, _)) => name,
        None => path.rsplit('/').next()?,
    };
    Some(name.to_owned())
}

/// Whether `line`, one of cargo's JSON messages, reports `artifact` built (cargo writes the
/// message once the library is linked and linked to its final name).
fn reports_built(line: &str, artifact: &Path) -> bool {
    // Most lines are other units' artifacts: skip them unparsed.
    let Some(file_name) = artifact.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if !line.contains(r#""reason":"compiler-artifact""#) || !line.contains(file_name) {
        return false;
    }
    let Ok(message) = json::parse(line.trim_end()) else {
        return false;
    };
    message
        .get("filenames")
        .and_then(json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(json::Value::as_str)
        .any(|file| Path::new(file) == artifact)
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
    let lines = stderr
        .lines()
        .filter(|line| !is_progress(line) && !is_build_script_output(line));
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

/// A line of a build script's output, which `-vv` makes cargo print (`[greeter 0.1.0]
/// cargo:rerun-if-changed=build.rs`).
fn is_build_script_output(line: &str) -> bool {
    line.strip_prefix('[')
        .and_then(|rest| {
            rest.split_once("] ")
                .or_else(|| rest.strip_suffix(']').map(|r| (r, "")))
        })
        .is_some_and(|(inside, _)| {
            inside.split(' ').count() == 2 && !inside.is_empty() && !inside.starts_with(' ')
        })
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
        "Dirty",
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
    use super::{
        compiled_package, compiler_errors, feature_args, is_build_script_output, json,
        module_settings, reports_built, run_selection, select_host, without_hash, HostExe,
        HostSelection,
    };

    /// `cargo metadata --no-deps` of a workspace (trimmed to what is read, plus a few fields
    /// that are not): `game` has a binary, an example, a test and a bench; `tool` has a binary
    /// named like `game`'s example.
    const METADATA: &str = r#"{"packages":[
        {"name":"game","version":"0.1.0","id":"path+file:///w/game#0.1.0","source":null,
         "targets":[
            {"kind":["lib"],"crate_types":["lib"],"name":"game","src_path":"/w/game/src/lib.rs","test":true},
            {"kind":["bin"],"crate_types":["bin"],"name":"game-main","src_path":"/w/game/src/main.rs"},
            {"kind":["example"],"crate_types":["bin"],"name":"demo","src_path":"/w/game/examples/demo.rs"},
            {"kind":["test"],"crate_types":["bin"],"name":"live-reload","src_path":"/w/game/tests/live-reload.rs"},
            {"kind":["bench"],"crate_types":["bin"],"name":"speed","src_path":"/w/game/benches/speed.rs"}],
         "features":{"wide":[]},"manifest_path":"/w/game/Cargo.toml","description":"a \"quoted\" \u00e9 \ud83d\ude00"},
        {"name":"tool","targets":[{"kind":["bin"],"crate_types":["bin"],"name":"demo"}],"metadata":null,"n":-1.5e3}
    ],"workspace_root":"/w","version":1}"#;

    fn select(exe: HostExe, env: Option<&str>) -> Result<HostSelection, String> {
        select_host(
            &json::parse(METADATA).expect("the metadata parses"),
            &exe,
            env,
        )
    }

    #[test]
    fn the_host_features_are_named_only_where_they_are_not_the_defaults() {
        let list = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        // The defaults, or no features at all: nothing to add.
        assert!(feature_args("app", &(list(&["default"]), list(&["default"]))).is_empty());
        assert!(feature_args("app", &(list(&[]), list(&["x"]))).is_empty());
        // `--features dev`.
        assert_eq!(
            feature_args(
                "app",
                &(list(&["default", "dev"]), list(&["default", "dev"]))
            ),
            ["--features", "app/dev"]
        );
        // `--no-default-features`, with and without others.
        assert_eq!(
            feature_args("app", &(list(&[]), list(&["default", "dev"]))),
            ["--no-default-features"]
        );
        assert_eq!(
            feature_args(
                "app",
                &(list(&["dev", "x"]), list(&["default", "dev", "x"]))
            ),
            ["--no-default-features", "--features", "app/dev,app/x"]
        );
    }

    fn selection(package: &str, target: Option<(&'static str, &str)>) -> HostSelection {
        HostSelection {
            package: package.into(),
            target: target.map(|(flag, name)| (flag, name.into())),
            also: Vec::new(),
            caveat: None,
            features: Vec::new(),
        }
    }

    #[test]
    fn the_host_executable_names_its_package_and_dev_target() {
        assert_eq!(
            select(HostExe::Bin("game-main".into()), None),
            Ok(selection("game", None))
        );
        assert_eq!(
            select(HostExe::Deps("live_reload".into()), None),
            Ok(selection("game", Some(("--test", "live-reload"))))
        );
        assert_eq!(
            select(HostExe::Deps("speed".into()), None),
            Ok(selection("game", Some(("--bench", "speed"))))
        );
        let unit_tests = select(HostExe::Deps("game".into()), None).expect("the lib's tests");
        assert_eq!(unit_tests.package, "game");
        assert_eq!(unit_tests.target, None);
        assert!(unit_tests.caveat.is_some());
        // `tool`'s binary `demo` is not an example: only `game` matches.
        assert_eq!(
            select(HostExe::Example("demo".into()), None),
            Ok(selection("game", Some(("--example", "demo"))))
        );
    }

    #[test]
    fn an_executable_no_member_built_is_not_guessed() {
        let error = select(HostExe::Bin("server".into()), Some("game")).unwrap_err();
        assert!(error.contains("binary server"), "{error}");
        let error = select(HostExe::Deps("other_test".into()), None).unwrap_err();
        assert!(error.contains("other_test"), "{error}");
    }

    #[test]
    fn hashes_are_cut_only_when_they_are_cargos() {
        assert_eq!(without_hash("live_reload-0123456789abcdef"), "live_reload");
        assert_eq!(without_hash("game-main"), "game-main");
        assert_eq!(without_hash("x-0123456789abcdeg"), "x-0123456789abcdeg");
    }

    #[test]
    fn json_strings_and_errors() {
        let value = json::parse(METADATA).expect("parses");
        let packages = value.get("packages").and_then(json::Value::as_array);
        let game = &packages.expect("packages")[0];
        assert_eq!(
            game.get("description").and_then(json::Value::as_str),
            Some("a \"quoted\" \u{e9} \u{1f600}")
        );
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "\"open", "[1] 2", "\"\\x\""] {
            assert!(json::parse(bad).is_err(), "{bad:?} parsed");
        }
        let deep = "[".repeat(1000);
        assert!(json::parse(&deep).is_err());
    }

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
    fn the_librarys_artifact_message_is_recognised() {
        let artifact = std::path::Path::new("/w/target/debug/libgreeter.so");
        let message = |files: &str, fresh: bool| {
            format!(
                r#"{{"reason":"compiler-artifact","package_id":"path+file:///w/greeter#0.1.0","target":{{"kind":["rlib","cdylib"],"name":"greeter"}},"filenames":[{files}],"executable":null,"fresh":{fresh}}}"#
            )
        };
        let built = message(
            r#""/w/target/debug/libgreeter.rlib","/w/target/debug/libgreeter.so""#,
            false,
        );
        assert!(reports_built(&built, artifact));
        assert!(reports_built(&format!("{built}\n"), artifact));
        // Fresh (nothing to compile) is built too: the library is there.
        assert!(reports_built(
            &message(r#""/w/target/debug/libgreeter.so""#, true),
            artifact
        ));
        // Only in deps/ (the package was not selected), another library, other messages.
        let deps = message(r#""/w/target/debug/deps/libgreeter.so""#, false);
        assert!(!reports_built(&deps, artifact));
        let other = message(r#""/w/target/debug/libgreeter_extra.so""#, false);
        assert!(!reports_built(&other, artifact));
        let finished = r#"{"reason":"build-finished","success":true,"x":"libgreeter.so"}"#;
        assert!(!reports_built(finished, artifact));
        assert!(!reports_built(
            r#"{"reason":"compiler-artifact","libgreeter.so"#,
            artifact
        ));
    }

    #[test]
    fn cargo_runs_selection_follows_the_directory_it_ran_in() {
        let root =
            std::env::temp_dir().join(format!("hotmod-run-selection-{}", std::process::id()));
        let member = root.join("app");
        std::fs::create_dir_all(member.join("src")).expect("create the workspace");
        std::fs::write(root.join("Cargo.toml"), "").expect("write the root manifest");
        std::fs::write(member.join("Cargo.toml"), "").expect("write the member's manifest");
        let metadata = json::parse(&format!(
            r#"{{"packages":[{{"name":"app","id":"a","manifest_path":{:?}}},
                {{"name":"logic","id":"l","manifest_path":"/elsewhere/logic/Cargo.toml"}}],
               "workspace_root":{:?}}}"#,
            member.join("Cargo.toml").display().to_string(),
            root.display().to_string()
        ))
        .expect("the metadata parses");
        let root_metadata = json::parse(
            r#"{"packages":[{"name":"app","id":"a"},{"name":"logic","id":"l"}],
                "workspace_default_members":["l"]}"#,
        )
        .expect("the root's metadata parses");
        let not_asked = |_: &std::path::Path| Err("not asked".to_owned());
        // In a member's directory, or below it: that member.
        assert_eq!(
            run_selection(&metadata, &member.join("src"), not_asked),
            Ok(vec!["app".to_owned()])
        );
        // At the root: its default members, from the root's own metadata.
        let asked = run_selection(&metadata, &root, |manifest| {
            assert_eq!(manifest, root.join("Cargo.toml"));
            Ok(root_metadata.clone())
        });
        assert_eq!(asked, Ok(vec!["logic".to_owned()]));
        // Outside the workspace: nothing.
        assert_eq!(
            run_selection(&metadata, std::path::Path::new("/"), not_asked),
            Ok(vec![])
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn compiled_packages_are_named_from_their_ids() {
        let line = |id: &str, fresh: bool| {
            format!(
                r#"{{"reason":"compiler-artifact","package_id":"{id}","target":{{"name":"x"}},"fresh":{fresh}}}"#
            )
        };
        let named = |id, fresh| compiled_package(&line(id, fresh));
        assert_eq!(
            named("path+file:///w/greeter#0.1.0", false).as_deref(),
            Some("greeter")
        );
        assert_eq!(
            named("path+file:///w/x#greeter@0.1.0", false).as_deref(),
            Some("greeter")
        );
        let serde = "registry+https://github.com/rust-lang/crates.io-index#serde@1.0.0";
        assert_eq!(named(serde, false).as_deref(), Some("serde"));
        assert_eq!(named(serde, true), None);
        assert_eq!(compiled_package(r#"{"reason":"build-finished"}"#), None);
    }

    #[test]
    fn build_script_output_is_told_from_diagnostics() {
        assert!(is_build_script_output(
            "[hello_fixture 0.1.0] cargo:rerun-if-changed=build.rs"
        ));
        assert!(is_build_script_output("[x 1.0.0]"));
        assert!(!is_build_script_output("error[E0308]: mismatched types"));
        assert!(!is_build_script_output("[a b c] x"));
        assert!(!is_build_script_output("  --> src/lib.rs:1:1"));
    }

    #[test]
    fn output_without_an_error_line_is_kept_as_is() {
        let stderr = "   Compiling greeter v0.1.0 (/w/greeter)\nsomething went wrong\n";
        assert_eq!(compiler_errors(stderr), "something went wrong");
    }

    #[test]
    fn only_the_modules_package_is_built_without_debug_info_in_dev_and_test() {
        assert_eq!(
            module_settings("dev", "my-module_2"),
            [
                "--config",
                r#"profile.dev.package."my-module_2".strip="debuginfo""#,
                "--config",
                r#"profile.dev.package."my-module_2".debug=false"#,
            ]
        );
        assert_eq!(
            module_settings("test", "m")[1],
            r#"profile.test.package."m".strip="debuginfo""#
        );
        // Release has no debug info to leave out; a custom profile may be anything.
        assert!(module_settings("release", "m").is_empty());
        assert!(module_settings("profiling", "m").is_empty());
        // Not something the TOML key would need to escape.
        assert!(module_settings("dev", "a\"b").is_empty());
        assert!(module_settings("dev", "").is_empty());
    }
}
