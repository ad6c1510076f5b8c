//! Visible by default: a host that watches or rebuilds a hot module and does nothing else about
//! hotmod's events sees them on stderr — a line when watching or rebuilding starts, a line per
//! event, a failed build's compiler errors in full — and sees nothing there once it subscribes,
//! calls `hotmod::print_progress(false)` or runs with `HOTMOD_QUIET=1`.
//!
//! Each test runs a real host, the `host` test of this binary, in a child process, drives it
//! (publishing libraries, editing sources, commands on its stdin) and reads its stderr as it
//! comes. Every wait is on a line of that stderr, with a generous timeout.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use hello_fixture::hello;

/// The rebuild's first build compiles hotmod's dependencies in its own target directory.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// How the host starts: which way it watches or rebuilds, and whether it takes the events.
const MODE: &str = "PROGRESS_TEST_MODE";
/// The host's rebuild: the crate copy to build, and the target directory.
const COPY: &str = "PROGRESS_TEST_COPY";
const TARGET: &str = "PROGRESS_TEST_TARGET";

/// The host. Its mode (`MODE`) says how it starts: `watch` (`module().watch()`), `first-use`
/// (the module's first call, for `HOTMOD_WATCH=1`), `subscribe` (subscribes, then watches),
/// `quiet` (`hotmod::print_progress(false)`, then watches) or `rebuild` (the built-in rebuild
/// of `COPY` into `TARGET`). Then it says `host: started` and follows the commands on its stdin
/// (`wait N`: wait until generation N is current and say so; `subscribe`: subscribe and say so)
/// until its stdin closes. It never reads its subscriptions, and never drops them: holding one
/// is what counts.
#[test]
fn host() {
    if !support::is_child() {
        return;
    }
    let module = hello::module();
    let mut subscriptions = Vec::new();
    let mode = std::env::var(MODE).expect("the parent sets the mode");
    match mode.as_str() {
        "watch" => module.watch().expect("watch starts"),
        "first-use" => assert_eq!(hello::version(), 1),
        "subscribe" => {
            subscriptions.push(module.subscribe());
            module.watch().expect("watch starts");
        }
        "quiet" => {
            hotmod::print_progress(false);
            module.watch().expect("watch starts");
        }
        "rebuild" => {
            let var = |name| PathBuf::from(std::env::var_os(name).expect("the parent sets it"));
            support::start_hello_rebuild(&var(COPY), &var(TARGET));
        }
        other => panic!("unknown mode {other}"),
    }
    eprintln!("host: started");
    for line in std::io::stdin().lines() {
        let line = line.expect("read a command");
        if let Some(n) = line.strip_prefix("wait ") {
            let n: u64 = n.parse().expect("a generation number");
            module
                .wait_for_generation(n, support::EVENT_TIMEOUT)
                .expect("the generation comes");
            eprintln!("host: generation {n} is current");
        } else if line == "subscribe" {
            subscriptions.push(module.subscribe());
            eprintln!("host: subscribed");
        } else {
            panic!("unknown command {line:?}");
        }
    }
    // Held until the process ends: events of its exit are not printed either.
    std::mem::forget(subscriptions);
}

/// A running host and its stderr, read as it comes.
struct Host {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: support::OutputLines,
    _temp: support::TempDir,
}

impl Host {
    /// Starts the host in `mode`, watching `artifact` (unless it rebuilds), with `env` set.
    /// hotmod's variables are cleared first: only the test's own apply.
    fn start(mode: &str, artifact: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Host {
        let temp = support::TempDir::new("progress-host");
        let mut command = Command::new(std::env::current_exe().expect("current_exe"));
        command
            .args(["--exact", "host", "--nocapture", "--test-threads=1"])
            .env(support::CHILD_ENV, "1")
            .env("TMPDIR", temp.path())
            .env_remove("HOTMOD_WATCH")
            .env_remove("HOTMOD_REBUILD")
            .env_remove("HOTMOD_QUIET")
            .env(hello::module().env_var(), artifact)
            .env(MODE, mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start the host");
        let stdin = child.stdin.take();
        let stderr = child.stderr.take().expect("the host's stderr");
        Host {
            child,
            stdin,
            stderr: support::OutputLines::read(vec![("", Box::new(stderr))]),
            _temp: temp,
        }
    }

    /// Sends a command (see [`host`]).
    fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("the host's stdin is open");
        writeln!(stdin, "{command}").expect("write to the host");
        stdin.flush().expect("flush the host's stdin");
    }

    /// Has the host wait for generation `n`.
    fn wait_generation(&mut self, n: u64) {
        self.send(&format!("wait {n}"));
        self.stderr
            .wait_for_text(&format!("host: generation {n} is current"));
    }

    /// Closes the host's stdin, waits for it to end and returns everything it wrote to stderr.
    fn finish(mut self) -> Vec<String> {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait for the host");
        // The reader thread ends at the end of the stream.
        self.stderr.rest();
        assert!(status.success(), "the host failed:\n{}", self.stderr.text());
        std::mem::take(&mut self.stderr.seen)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // A failed test leaves no host behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn artifact_in(dir: &Path) -> PathBuf {
    dir.join(format!(
        "{}hello_fixture{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

/// hotmod's own stderr lines.
fn progress_lines(stderr: &[String]) -> Vec<&String> {
    stderr.iter().filter(|l| l.starts_with("hotmod:")).collect()
}

#[test]
fn watching_says_so_and_prints_each_load() {
    let (v1, v2) = (support::library("v1"), support::library("v2"));
    let dir = support::TempDir::new("progress-watch");
    let artifact = artifact_in(dir.path());
    let mut host = Host::start("watch", &artifact, &[]);
    host.stderr.wait_for_text("host: started");
    let start = format!(
        "hotmod: hello_fixture::hello: watching {}",
        artifact.display()
    );
    assert!(
        host.stderr.seen.contains(&start),
        "the start line {start:?} comes first; the host wrote:\n{}",
        host.stderr.text()
    );

    support::link_library(v2, &artifact);
    host.stderr
        .wait_for_text("hotmod: hello_fixture::hello: generation 1 live in");
    support::link_library(v1, &artifact);
    host.stderr
        .wait_for_text("hotmod: hello_fixture::hello: generation 2 live in");
    host.finish();
}

#[test]
fn the_environment_variable_says_so_at_first_use() {
    let v2 = support::library("v2");
    let dir = support::TempDir::new("progress-env");
    let artifact = artifact_in(dir.path());
    let mut host = Host::start(
        "first-use",
        &artifact,
        &[("HOTMOD_WATCH", std::ffi::OsStr::new("1"))],
    );
    host.stderr.wait_for_text("host: started");
    let start = format!(
        "hotmod: hello_fixture::hello: watching {}",
        artifact.display()
    );
    assert!(host.stderr.seen.contains(&start), "{}", host.stderr.text());
    support::link_library(v2, &artifact);
    host.stderr
        .wait_for_text("hotmod: hello_fixture::hello: generation 1 live in");
    host.finish();
}

/// A copy of `fixtures/hello_fixture` for the host's rebuild, always at the same place (see
/// `crate_copy::copy_crate` on why).
fn rebuild_copy() -> PathBuf {
    let copy = support::workspace().join("target/hotmod-progress-copy/hello_fixture");
    support::copy_fixture("hello_fixture", &copy)
}

#[test]
fn a_failed_rebuild_shows_the_compiler_errors_in_full() {
    if !support::rebuilds_allowed_here("a_failed_rebuild_shows_the_compiler_errors_in_full") {
        return;
    }
    let target = support::workspace().join("target/hotmod-progress");
    // Another run of this test builds into the same directory: take turns.
    let _lock = support::crate_copy::lock(&target).expect("lock the target directory");
    let copy = rebuild_copy();
    let lib = copy.join("src/lib.rs");
    let dir = support::TempDir::new("progress-rebuild");
    let mut host = Host::start(
        "rebuild",
        &artifact_in(dir.path()),
        &[(COPY, copy.as_os_str()), (TARGET, target.as_os_str())],
    );
    host.stderr.wait_for_text("host: started");
    let start = format!(
        "hotmod: hello_fixture::hello: rebuilding hello_fixture on changes under {}",
        copy.join("src").display()
    );
    assert!(host.stderr.seen.contains(&start), "{}", host.stderr.text());

    // A syntax error: the build fails and its errors are shown as cargo shows them.
    support::crate_copy::edit(&lib, &[("{ 2 } else { 1 }", "{ 2 } else { 1 ")])
        .expect("break the copy");
    host.stderr
        .wait_for_text("hotmod: building hello_fixture …");
    host.stderr
        .wait_for_line("the failed build", BUILD_TIMEOUT, |l| {
            l.starts_with(
                "hotmod: building hello_fixture failed; the current generation keeps serving:",
            )
        });
    let from = host.stderr.seen.len();
    host.stderr
        .wait_for_text("error: could not compile `hello_fixture`");
    let errors = &host.stderr.seen[from..];
    let shown = errors.join("\n");
    assert!(
        errors[0].starts_with("error"),
        "the first compiler error follows at once:\n{shown}"
    );
    assert!(
        errors
            .iter()
            .any(|l| l.trim_start().starts_with("--> src/lib.rs:")),
        "the error's location:\n{shown}"
    );
    assert!(
        errors.iter().any(|l| l.contains("{ 2 } else { 1")),
        "the source excerpt:\n{shown}"
    );
    assert!(
        errors.iter().any(|l| l.contains('^')),
        "the excerpt's marker:\n{shown}"
    );
    assert!(
        !errors.iter().any(|l| l.contains("Compiling")),
        "no progress chatter:\n{shown}"
    );

    // Fixed: built and loaded, and said so.
    support::crate_copy::edit(&lib, &[("{ 2 } else { 1 ", "{ 2 } else { 5 }")])
        .expect("fix the copy");
    host.stderr
        .wait_for_line("the new generation", BUILD_TIMEOUT, |l| {
            l.contains("hotmod: hello_fixture::hello: generation 1 live in")
        });
    assert!(
        host.stderr
            .seen
            .iter()
            .any(|l| l.starts_with("hotmod: built hello_fixture in")),
        "{}",
        host.stderr.text()
    );
    host.finish();
}

/// Runs the host in `mode` with `env`: two libraries land and both become current. Returns its
/// stderr. By the time generation 2 is current, generation 1's event is long done (loads take
/// turns), so a line it printed would be there.
fn two_loads(mode: &str, env: &[(&str, &std::ffi::OsStr)]) -> Vec<String> {
    let (v1, v2) = (support::library("v1"), support::library("v2"));
    let dir = support::TempDir::new("progress-silent");
    let artifact = artifact_in(dir.path());
    let mut host = Host::start(mode, &artifact, env);
    host.stderr.wait_for_text("host: started");
    support::link_library(v2, &artifact);
    host.wait_generation(1);
    support::link_library(v1, &artifact);
    host.wait_generation(2);
    host.finish()
}

#[test]
fn a_host_that_subscribes_sees_no_progress() {
    let stderr = two_loads("subscribe", &[]);
    assert_eq!(
        progress_lines(&stderr),
        Vec::<&String>::new(),
        "{stderr:#?}"
    );
}

#[test]
fn print_progress_false_silences_it() {
    let stderr = two_loads("quiet", &[]);
    assert_eq!(
        progress_lines(&stderr),
        Vec::<&String>::new(),
        "{stderr:#?}"
    );
}

#[test]
fn hotmod_quiet_silences_it() {
    let stderr = two_loads("watch", &[("HOTMOD_QUIET", std::ffi::OsStr::new("1"))]);
    assert_eq!(
        progress_lines(&stderr),
        Vec::<&String>::new(),
        "{stderr:#?}"
    );
}

#[test]
fn a_subscription_taken_later_stops_the_printing() {
    let (v1, v2) = (support::library("v1"), support::library("v2"));
    let dir = support::TempDir::new("progress-later");
    let artifact = artifact_in(dir.path());
    let mut host = Host::start("watch", &artifact, &[]);
    host.stderr.wait_for_text("host: started");
    support::link_library(v2, &artifact);
    host.stderr
        .wait_for_text("hotmod: hello_fixture::hello: generation 1 live in");

    host.send("subscribe");
    host.stderr.wait_for_text("host: subscribed");
    support::link_library(v1, &artifact);
    host.wait_generation(2);
    // Generation 3 comes only after generation 2's event is done.
    support::link_library(v2, &artifact);
    host.wait_generation(3);
    let stderr = host.finish();
    let subscribed = stderr
        .iter()
        .position(|l| l == "host: subscribed")
        .expect("the host subscribed");
    assert_eq!(
        progress_lines(&stderr[subscribed..]),
        Vec::<&String>::new(),
        "{stderr:#?}"
    );
}
