//! Shared by the integration tests: real cdylibs built by cargo, once per test process and only
//! those the process asks for, into one target directory shared by every test binary
//! (`target/hotmod-fixtures`); plus helpers to inspect the process (mappings, shadow copies)
//! and to run one test in a child process.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long tests wait for an event: generous for a busy 2-core machine; a missing event still
/// fails the test.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Copying, editing and building module crates, shared with the examples.
#[path = "../../examples/shared/crate_copy.rs"]
pub mod crate_copy;

/// A user's workspace written by a test, and a host started in it.
pub mod scratch;

/// The fixtures built in variants and their variants, shared with the fixtures' build scripts.
#[path = "../../fixtures/variants.rs"]
pub mod variants;

/// The fixture package that has variant `name` (variant names are unique across fixtures).
fn package_with_variant(name: &str) -> Option<&'static str> {
    let mut owners = variants::FIXTURES
        .iter()
        .filter(|fixture| fixture.variants.contains(&name));
    let owner = owners.next()?;
    assert!(
        owners.next().is_none(),
        "fixtures/variants.rs lists variant {name} for more than one fixture"
    );
    Some(owner.package)
}

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/hotmod-fixtures`, or `target/hotmod-fixtures-<name>` when `RUSTFLAGS` (which the
/// fixture builds inherit) ask for a sanitizer (`-Zsanitizer=<name>`, scripts/sanitize.sh):
/// instrumented and plain fixtures never overwrite each other.
fn fixtures_dir() -> PathBuf {
    let flags = std::env::var("RUSTFLAGS").unwrap_or_default();
    let sanitizer = flags
        .split_whitespace()
        .find_map(|flag| flag.trim_start_matches("-Z").strip_prefix("sanitizer="));
    let name = sanitizer.map_or("hotmod-fixtures".into(), |s| format!("hotmod-fixtures-{s}"));
    workspace().join("target").join(name)
}

fn dylib(name: &str) -> String {
    format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Runs `cargo build -p <package>` in the shared fixture target directory and copies the
/// cdylib to `variants/<label>.so`, so variants built one after another do not overwrite
/// each other.
fn build(package: &str, lib_name: &str, label: &str, env: &[(&str, &str)]) -> PathBuf {
    let target = fixtures_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace())
        .args(["build", "--quiet", "--lib", "-p", package, "--target-dir"])
        .arg(&target)
        .env_remove("HOTMOD_FIXTURE")
        .env_remove("HOTMOD_GRAPH_BASE")
        .env_remove("HOTMOD_GRAPH_TOP");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run cargo");
    assert!(
        output.status.success(),
        "building fixture {label} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // With `CARGO_BUILD_TARGET` (scripts/sanitize.sh) this cargo inherits the target, and with
    // it cargo's per-target layout; RUSTFLAGS then spare build scripts and proc macros.
    let built = match std::env::var("CARGO_BUILD_TARGET") {
        Ok(triple) => target.join(triple),
        Err(_) => target.clone(),
    }
    .join("debug")
    .join(dylib(lib_name));
    let dir = target.join("variants");
    std::fs::create_dir_all(&dir).expect("create variants dir");
    let dest = dir.join(format!("{label}{}", std::env::consts::DLL_SUFFIX));
    let tmp = dir.join(format!(".{label}.{}.tmp", std::process::id()));
    std::fs::copy(&built, &tmp).expect("copy fixture");
    std::fs::rename(&tmp, &dest).expect("publish fixture");
    dest
}

/// Builds one fixture (under a file lock, so test processes that run at the same time take
/// turns).
fn build_fixture(name: &str) -> PathBuf {
    std::fs::create_dir_all(fixtures_dir()).expect("create fixture dir");
    let lock = File::create(fixtures_dir().join(".lock")).expect("create lock file");
    lock.lock().expect("lock fixture dir");
    let path = if let Some(package) = package_with_variant(name) {
        build(package, package, name, &[("HOTMOD_FIXTURE", name)])
    } else {
        match name {
            "greeter" => build("greeter", "greeter", "greeter", &[]),
            "plain" => build("plain_cdylib", "plain_cdylib", "plain", &[]),
            "tls" => build("tls_fixture", "tls_fixture", "tls", &[]),
            "pin" => build("pin_fixture", "pin_fixture", "pin", &[]),
            "on_load" => build("on_load_fixture", "on_load_fixture", "on_load", &[]),
            "on_load-reenter" => build(
                "on_load_fixture",
                "on_load_fixture",
                name,
                &[("HOTMOD_ON_LOAD", "reenter")],
            ),
            "tss" => build("tss_fixture", "tss_fixture", "tss", &[]),
            "reentry" => build("reentry_fixture", "reentry_fixture", "reentry", &[]),
            // Built for its own package alone: its feature_dep lacks the host's `wide`.
            "feature" => build("feature_fixture", "feature_fixture", "feature", &[]),
            // graph_base's `b` and graph_top's `a` (which calls `b`), in variants.
            "graph-b1" => build("graph_base", "graph_base", name, &[]),
            "graph-b2" => build(
                "graph_base",
                "graph_base",
                name,
                &[("HOTMOD_GRAPH_BASE", "b2")],
            ),
            "graph-a2" => build(
                "graph_top",
                "graph_top",
                name,
                &[("HOTMOD_GRAPH_TOP", "a2")],
            ),
            "graph-a2-b2" => build(
                "graph_top",
                "graph_top",
                name,
                &[("HOTMOD_GRAPH_TOP", "a2"), ("HOTMOD_GRAPH_BASE", "b2")],
            ),
            "graph-a2-bwide" => build(
                "graph_top",
                "graph_top",
                name,
                &[("HOTMOD_GRAPH_TOP", "a2"), ("HOTMOD_GRAPH_BASE", "bwide")],
            ),
            other => panic!("no fixture named {other}"),
        }
    };
    drop(lock);
    path
}

/// The path of a built fixture: a variant listed in fixtures/variants.rs (`v1`, `s2`, `c1bad`,
/// …), `greeter` (another hot module's
/// library), `plain` (a cdylib without hotmod), `tls` (`tls_fixture`), `pin` (`pin_fixture`),
/// `on_load` (`on_load_fixture`), `tss` (`tss_fixture`), `reentry` (`reentry_fixture`) or
/// `feature` (`feature_fixture`, built without the host's features of `feature_dep`). Each is
/// built the first time a test of this process asks for it.
pub fn library(name: &str) -> &'static Path {
    static BUILT: Mutex<Vec<(String, &'static Path)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, path)) = built.iter().find(|(n, _)| n == name) {
        return path;
    }
    let path: &'static Path = Box::leak(build_fixture(name).into_boxed_path());
    built.push((name.to_owned(), path));
    path
}

/// This process's private directories of shadow copies (`<temp>/hotmod-<pid>-<random>`).
pub fn shadow_dirs() -> Vec<PathBuf> {
    let prefix = format!("hotmod-{}-", std::process::id());
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

/// Every shadow copy this process has on disk (not the directory's lock file, `.lock`).
pub fn shadow_copies() -> Vec<PathBuf> {
    shadow_dirs()
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != ".lock")
        .map(|e| e.path())
        .collect()
}

/// Set in a child test process started by [`run_child`].
pub const CHILD_ENV: &str = "HOTMOD_TEST_CHILD";

/// Whether this process is a child started by [`run_child`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Runs the test `name` of this test binary alone, in a child process, with `env` set, and
/// returns its output. The test sees [`is_child`] true. Unless `env` sets `TMPDIR`, the child
/// gets a temporary directory of its own, removed afterwards: a child that crashes on purpose
/// cannot clean up its shadow copies.
pub fn run_child(name: &str, env: &[(&str, &std::ffi::OsStr)]) -> std::process::Output {
    let exe = std::env::current_exe().expect("current_exe");
    let mut command = Command::new(exe);
    command
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1");
    let temp = TempDir::new("child");
    command.env("TMPDIR", temp.path());
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run child test process")
}

/// The lines a child process writes on the streams given to [`OutputLines::read`], each read as
/// it comes by a thread of its own, and kept for failure messages.
pub struct OutputLines {
    lines: Receiver<String>,
    /// Every line taken so far, in the order they came.
    pub seen: Vec<String>,
}

impl OutputLines {
    /// Reads `streams` (a child's piped stdout or stderr), each line prefixed with its stream's
    /// label.
    pub fn read(streams: Vec<(&'static str, Box<dyn Read + Send>)>) -> OutputLines {
        let (send, lines) = mpsc::channel();
        for (label, stream) in streams {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if send.send(format!("{label}{line}")).is_err() {
                        break;
                    }
                }
            });
        }
        OutputLines {
            lines,
            seen: Vec::new(),
        }
    }

    /// Takes lines until one satisfies `wanted`, and returns it. Fails naming `what`, with every
    /// line so far, if none comes within `timeout` or the streams end first.
    pub fn wait_for_line(
        &mut self,
        what: &str,
        timeout: Duration,
        mut wanted: impl FnMut(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no {what} within {} s; the child wrote:\n{}",
                    timeout.as_secs(),
                    self.text()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the child ended before {what}; it wrote:\n{}", self.text())
                }
            }
        }
    }

    /// [`OutputLines::wait_for_line`] for a line that contains `text`, within [`EVENT_TIMEOUT`].
    pub fn wait_for_text(&mut self, text: &str) -> String {
        self.wait_for_line(&format!("line {text:?}"), EVENT_TIMEOUT, |line| {
            line.contains(text)
        })
    }

    /// Takes the lines left, until the streams end (each line within [`EVENT_TIMEOUT`]).
    pub fn rest(&mut self) {
        while let Ok(line) = self.lines.recv_timeout(EVENT_TIMEOUT) {
            self.seen.push(line);
        }
    }

    /// Every line so far, one after another.
    pub fn text(&self) -> String {
        self.seen.join("\n")
    }
}

/// `VmRSS` and `VmSize` of this process in KiB, and the number of its mappings.
#[derive(Debug, Clone, Copy)]
pub struct Footprint {
    pub rss_kib: i64,
    pub size_kib: i64,
    pub mappings: i64,
}

impl Footprint {
    pub fn now() -> Footprint {
        let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
        };
        let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
        Footprint {
            rss_kib: field("VmRSS:"),
            size_kib: field("VmSize:"),
            mappings: maps.lines().count() as i64,
        }
    }

    /// The shadow copies of this process that are mapped now (deleted ones included): one per
    /// loaded library.
    pub fn mapped_copies() -> std::collections::BTreeSet<String> {
        let prefix = std::env::temp_dir()
            .join(format!("hotmod-{}-", std::process::id()))
            .to_string_lossy()
            .into_owned();
        let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
        maps.lines()
            .filter_map(|line| line.find(&prefix).map(|at| &line[at..]))
            .map(|path| path.trim_end_matches(" (deleted)").to_owned())
            .collect()
    }

    /// The mapped shadow copies made from `library` (copies are named `<stem>.<n>.<random>.so`).
    pub fn mapped_copies_of(library: &Path) -> std::collections::BTreeSet<String> {
        let stem = library
            .file_stem()
            .expect("a file name")
            .to_string_lossy()
            .into_owned();
        Self::mapped_copies()
            .into_iter()
            .filter(|copy| {
                Path::new(copy)
                    .file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with(&format!("{stem}.")))
            })
            .collect()
    }
}

/// Module crates of the workspace that another one depends on (the handler calls
/// `examples/pricing`). [`edited_library`] builds their copies in a target directory of their
/// own, `target/hotmod-fixtures/apart`: cargo names the outputs of an `rlib` + `cdylib` package
/// without a hash (`deps/libpricing.rlib`), so an edited copy built beside the handler's copies
/// would overwrite the rlib those link for the crate as written, which cargo goes on taking for
/// up to date — and every later handler build would embed the edited copy.
const CALLED_CRATES: &[&str] = &["examples/pricing"];

/// A build of a copy of the workspace crate at `crate_dir` (e.g. `examples/handler`) with
/// `edits` applied to its `src/lib.rs` (none: the crate as written), the way a user edits a
/// module while the host runs. Built once per process under `label`, in the shared fixture
/// target directory (its `apart/` target directory for [`CALLED_CRATES`]; under the same file
/// lock as the other fixtures); returns `variants/<label>.so`.
pub fn edited_library(
    crate_dir: &str,
    lib_name: &str,
    label: &str,
    edits: &[(&str, &str)],
) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(path) = built.get_or_insert_with(HashMap::new).get(label) {
        return path.clone();
    }
    std::fs::create_dir_all(fixtures_dir()).expect("create fixture dir");
    let lock = File::create(fixtures_dir().join(".lock")).expect("create lock file");
    lock.lock().expect("lock fixture dir");
    // One copy directory per crate, rewritten for every variant: cargo's fingerprints follow
    // the sources of the copy they last built, so a variant built from another directory
    // could be taken for fresh.
    let name = Path::new(crate_dir).file_name().expect("a crate directory");
    let copy = fixtures_dir().join("copies").join(name);
    crate_copy::copy_crate(&workspace().join(crate_dir), &copy)
        .unwrap_or_else(|e| panic!("copying {crate_dir}: {e}"));
    if !edits.is_empty() {
        crate_copy::edit(&copy.join("src/lib.rs"), edits)
            .unwrap_or_else(|e| panic!("editing the copy of {crate_dir}: {e}"));
    }
    let target = if CALLED_CRATES.contains(&crate_dir) {
        fixtures_dir().join("apart")
    } else {
        fixtures_dir()
    };
    let artifact = crate_copy::build(&copy, &target, lib_name)
        .unwrap_or_else(|e| panic!("building variant {label}: {e}"));
    let dir = fixtures_dir().join("variants");
    std::fs::create_dir_all(&dir).expect("create variants dir");
    let dest = dir.join(format!("{label}{}", std::env::consts::DLL_SUFFIX));
    let tmp = dir.join(format!(".{label}.{}.tmp", std::process::id()));
    std::fs::copy(&artifact, &tmp).expect("copy variant");
    std::fs::rename(&tmp, &dest).expect("publish variant");
    drop(lock);
    built
        .get_or_insert_with(HashMap::new)
        .insert(label.to_owned(), dest.clone());
    dest
}

/// Copies the fixture crate `fixtures/<name>` to `dest` (see [`crate_copy::copy_crate`]) for a
/// test that builds it elsewhere; returns `dest`. Its build script's fixtures/variants.rs is
/// named by absolute path in the copy, as its manifest's path dependencies are.
pub fn copy_fixture(name: &str, dest: &Path) -> PathBuf {
    let copy = crate_copy::copy_crate(&workspace().join("fixtures").join(name), dest)
        .unwrap_or_else(|e| panic!("copying the fixture crate {name}: {e}"));
    let variants = workspace().join("fixtures/variants.rs");
    crate_copy::edit(
        &copy.join("build.rs"),
        &[(
            r#"#[path = "../variants.rs"]"#,
            &format!("#[path = {:?}]", variants.display().to_string()),
        )],
    )
    .unwrap_or_else(|e| panic!("pointing the copy of {name} at fixtures/variants.rs: {e}"));
    copy
}

/// Tests in one binary share the fixture module's generations: take this first.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How often [`wait_for`] polls its condition.
pub const POLL: Duration = Duration::from_millis(5);

/// What a condition polled by [`wait_for`] returns: `true`, `Some(value)` or `Ok(value)` once it
/// holds; until then `false`, `None`, or `Err(state)` with what the test sees now, which a
/// timeout shows.
pub trait Condition {
    type Value;
    fn holds(self) -> Result<Self::Value, Option<String>>;
}

impl Condition for bool {
    type Value = ();
    fn holds(self) -> Result<(), Option<String>> {
        if self {
            Ok(())
        } else {
            Err(None)
        }
    }
}

impl<T> Condition for Option<T> {
    type Value = T;
    fn holds(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T> Condition for Result<T, String> {
    type Value = T;
    fn holds(self) -> Result<T, Option<String>> {
        self.map_err(Some)
    }
}

/// Polls `condition` until it holds, or fails after a generous timeout ([`EVENT_TIMEOUT`]),
/// naming `what` it waited for; returns the condition's value. The one way the tests wait for
/// something that sends no event.
pub fn wait_for<C: Condition>(what: &str, condition: impl FnMut() -> C) -> C::Value {
    wait_for_within(what, EVENT_TIMEOUT, POLL, condition)
}

/// [`wait_for`] with another timeout and polling interval, for a wait that takes longer, or
/// whose condition is costly to check.
pub fn wait_for_within<C: Condition>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut condition: impl FnMut() -> C,
) -> C::Value {
    let deadline = Instant::now() + timeout;
    loop {
        match condition().holds() {
            Ok(value) => return value,
            Err(state) => assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} ({} s){}",
                timeout.as_secs(),
                state.map(|state| format!(": {state}")).unwrap_or_default()
            ),
        }
        std::thread::sleep(every);
    }
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("hotmod-test-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl TempDir {
    /// A fresh directory under this checkout's `target/hotmod-tmp/`, for crates the built-in
    /// rebuild must build: it refuses a crate below a directory others may write, such as `/tmp`.
    pub fn in_target(label: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = workspace()
            .join("target")
            .join("hotmod-tmp")
            .join(format!("{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir under target");
        TempDir(dir)
    }
}

/// Whether hotmod's built-in rebuild may build crates of this checkout. It refuses a crate below
/// a directory every user may write (a checkout under `/tmp`, say: anyone could plant a
/// `.cargo/config.toml` there). A test that needs a rebuild returns early where it cannot, and
/// says why on stderr.
pub fn rebuilds_allowed_here(test: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let workspace = workspace();
    for dir in workspace.ancestors() {
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        if meta.permissions().mode() & 0o002 != 0 {
            eprintln!(
                "{test}: skipped: {} lets every user write it, so hotmod's rebuild refuses the \
                 crates of this checkout below it (see docs/guarantees.md)",
                dir.display()
            );
            return false;
        }
    }
    true
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `fixtures/attr_fixture`'s cdylib (one library for all of its hot modules), built once per
/// process into the shared fixture target directory: `variants/attr.so`.
pub fn attr_library() -> &'static Path {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        std::fs::create_dir_all(fixtures_dir()).expect("create fixture dir");
        let lock = File::create(fixtures_dir().join(".lock")).expect("create lock file");
        lock.lock().expect("lock fixture dir");
        build("attr_fixture", "attr_fixture", "attr", &[])
    })
}

/// Copies `library` to `artifact` the way a build tool publishes one: written beside it under
/// another name, then renamed over it (creating `artifact`'s directory if needed).
pub fn publish_library(library: &Path, artifact: &Path) {
    let dir = artifact.parent().expect("the artifact's directory");
    std::fs::create_dir_all(dir).expect("create the artifact's directory");
    let tmp = dir.join(format!(".incoming.{}.tmp", std::process::id()));
    std::fs::copy(library, &tmp).expect("write the library beside the artifact");
    std::fs::rename(&tmp, artifact).expect("rename it over the artifact");
}

/// `cargo build --lib -p <package>` into the target directory and profile this test binary was
/// built with, as a user does before `reload()`; returns the cdylib's path as cargo reports it
/// (`target/<profile>/lib<package>.so`), not as hotmod computes it.
pub fn build_at_default_location(package: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile dir>/deps/<test binary>
    let profile_dir = exe.parent().and_then(Path::parent).expect("a cargo layout");
    let target_dir = profile_dir.parent().expect("a target directory");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(workspace())
        .args(["build", "--lib", "-p", package, "--profile", profile])
        .args(["--message-format", "json", "--target-dir"])
        .arg(target_dir)
        .output()
        .expect("run cargo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "building {package} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let file = dylib(package);
    // The compiler-artifact message of the package lists its outputs; the cdylib outside
    // `deps/` is the one cargo places for users.
    stdout
        .lines()
        .filter(|line| line.contains("\"compiler-artifact\"") && line.contains(&file))
        .flat_map(|line| line.split('"'))
        .filter(|part| part.ends_with(&file) && !part.contains("/deps/"))
        .map(PathBuf::from)
        .next_back()
        .unwrap_or_else(|| panic!("cargo reported no {file} outside deps/:\n{stdout}"))
}

/// How many inotify instances this process holds open. hotmod's artifact watcher and its
/// rebuild each hold one while they run (Linux); once it is closed, no file event can reach
/// them.
pub fn inotify_instances() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(Result::ok)
        .filter(|entry| {
            std::fs::read_link(entry.path()).is_ok_and(|to| to == Path::new("anon_inode:inotify"))
        })
        .count()
}

/// A new, empty `.rs` file in `crate_dir/src`: a source change for the built-in rebuild, which
/// cargo ignores (no module refers to it). Removed on drop.
pub struct SourceTrigger(PathBuf);

impl SourceTrigger {
    pub fn create(crate_dir: &Path) -> SourceTrigger {
        let path = crate_dir
            .join("src")
            .join(format!(".trigger-{}.rs", std::process::id()));
        std::fs::write(
            &path,
            "// written by a rebuild test; removed when it ends\n",
        )
        .expect("write the trigger file");
        SourceTrigger(path)
    }
}

impl Drop for SourceTrigger {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Publishes `library` at `artifact` the way cargo does: written under `deps/` beside it, then
/// hard-linked to the final name, one file event (a create) for a watcher.
pub fn link_library(library: &Path, artifact: &Path) {
    let deps = artifact
        .parent()
        .expect("the artifact's directory")
        .join("deps");
    std::fs::create_dir_all(&deps).expect("create deps");
    let name = artifact.file_name().expect("a file name").to_string_lossy();
    let staged = deps.join(format!("{name}.{}", std::process::id()));
    let _ = std::fs::remove_file(&staged);
    std::fs::copy(library, &staged).expect("write the deps copy");
    let _ = std::fs::remove_file(artifact);
    std::fs::hard_link(&staged, artifact).expect("hard link the final name");
}

/// The file name of `hello_fixture`'s library on this platform (`libhello_fixture.so`).
pub fn hello_artifact_name() -> String {
    dylib("hello_fixture")
}

/// Starts a watcher test of `hello_fixture::hello` from v1 as a freshly loaded generation (not
/// staged, no watcher left from another test), watching `dir`'s artifact; returns its path.
pub fn watch_hello_from_v1(dir: &Path) -> PathBuf {
    let module = hello_fixture::hello::module();
    module.unwatch();
    module.set_staged(false);
    module.load(library("v1")).expect("v1 loads");
    let artifact = dir.join(hello_artifact_name());
    module.set_path(&artifact);
    module.watch().expect("watch starts");
    artifact
}

/// Starts `hello_fixture::hello`'s built-in rebuild of the crate at `manifest_dir` (a copy of
/// the fixture, see [`copy_fixture`]) into `target_dir`, in the dev profile.
pub fn start_hello_rebuild(manifest_dir: &Path, target_dir: &Path) {
    hello_fixture::hello::module()
        .rebuild()
        .manifest_dir(manifest_dir)
        .target_dir(target_dir)
        .profile("dev")
        .start()
        .expect("the rebuild starts");
}

/// Switches hotmod's insecure-path override on until dropped: off again however the test ends.
pub struct AllowInsecure;

impl AllowInsecure {
    pub fn on() -> AllowInsecure {
        hotmod::allow_insecure_paths(true);
        AllowInsecure
    }
}

impl Drop for AllowInsecure {
    fn drop(&mut self) {
        hotmod::allow_insecure_paths(false);
    }
}

/// Where the built-in rebuild puts `attr_fixture`'s cdylib: the host's target directory and
/// profile (`target/<profile>/libattr_fixture.so`), read off this test binary's own path.
pub fn attr_default_artifact() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test binary>
    let profile_dir = exe.parent().and_then(Path::parent).expect("a cargo layout");
    profile_dir.join(dylib("attr_fixture"))
}

/// Checks that `first_call` (a module's first use) starts the built-in rebuild of
/// `fixtures/attr_fixture`, and that a source change then builds the crate and loads it as
/// generation 1 from [`attr_default_artifact`]; stops the rebuild again. `module` is the hot
/// module `first_call` uses, before any load.
pub fn first_use_starts_the_attr_rebuild(
    module: &'static hotmod::Module,
    first_call: impl FnOnce(),
) {
    use hotmod::Event;
    // The rebuild's first build may compile hotmod's dependencies for the fixture crate alone.
    const BUILD_TIMEOUT: Duration = Duration::from_secs(900);
    let events = module.subscribe();
    let watching_before = inotify_instances();

    // First use: generation 0 answers, and the rebuild starts watching the crate's sources.
    first_call();
    assert_eq!(module.generation(), 0);
    assert_eq!(
        inotify_instances(),
        watching_before + 1,
        "the first call started the rebuild"
    );

    // A source change (a new file no module refers to, so the build is the crate as
    // committed) makes the rebuild build the crate and load it.
    let trigger = SourceTrigger::create(&workspace().join("fixtures/attr_fixture"));
    let started = events
        .wait_for(EVENT_TIMEOUT, |e| matches!(e, Event::BuildStarted { .. }))
        .expect("the source change starts a build");
    assert!(
        matches!(&started, Event::BuildStarted { package, .. } if package == "attr_fixture"),
        "{started:?}"
    );
    let outcome = events
        .wait_for(BUILD_TIMEOUT, is_build_outcome)
        .expect("a build outcome");
    let Event::Loaded {
        generation, path, ..
    } = &outcome
    else {
        panic!("expected the build to be loaded, got {outcome}")
    };
    assert_eq!(*generation, 1);
    assert_eq!(*path, attr_default_artifact());
    assert_eq!(module.generation(), 1);
    // Stop before the trigger file goes, so its removal builds nothing.
    module.unwatch();
    drop(trigger);
    // Leave nothing running for a later test's count.
    wait_for("the rebuild to close", || {
        inotify_instances() == watching_before
    });
}

/// Whether `event` ends a build the rebuild started: loaded, failed to build, or refused.
pub fn is_build_outcome(event: &hotmod::Event) -> bool {
    matches!(
        event,
        hotmod::Event::Loaded { .. }
            | hotmod::Event::BuildFailed { .. }
            | hotmod::Event::Rejected { .. }
    )
}

/// The items a `StaleItems` event among `reported` names for `generation`, if there is one.
pub fn stale_items(reported: &[hotmod::Event], generation: u64) -> Option<Vec<String>> {
    reported.iter().find_map(|event| match event {
        hotmod::Event::StaleItems {
            generation: g,
            items,
            ..
        } if *g == generation => Some(items.clone()),
        _ => None,
    })
}
