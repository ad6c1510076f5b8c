//! Nothing accumulates in the temp directory, however a process ends.
//!
//! A process stopped by a signal (Ctrl-C's SIGINT, SIGTERM, SIGKILL) leaves its private
//! directory of shadow copies behind: no code of its own runs. The next process's first load
//! removes it, because nobody holds the directory's lock any more; a directory whose owner is
//! alive keeps its lock and is left alone. And a child forked from a host that exits (through
//! `exit`, or `_exit`, or after loading a generation of its own) leaves the host's directory and
//! copies in place.
//!
//! Every scenario runs in child processes of this test binary (the `child_process` test, told
//! what to do by environment variables) with a fresh `TMPDIR`, so the temp directory holds
//! nothing but what they leave. The tests wait for conditions (a line on the child's stdout, its
//! exit), never for fixed times.

mod support;

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};

use hello_fixture::hello;

/// What the child process does (see [`child_process`]).
const MODE: &str = "HOTMOD_RECLAIM_MODE";
/// The library the child loads first, and the one it loads next.
const FIRST: &str = "HOTMOD_RECLAIM_FIRST";
const SECOND: &str = "HOTMOD_RECLAIM_SECOND";

/// Not a test of its own: the body of the child processes started by the tests below. Without
/// [`MODE`] in the environment it does nothing.
#[test]
fn child_process() {
    let Some(mode) = std::env::var_os(MODE) else {
        return;
    };
    let first = PathBuf::from(std::env::var_os(FIRST).expect("the first library's path"));
    let second = PathBuf::from(std::env::var_os(SECOND).expect("the second library's path"));
    match mode.to_str() {
        Some("hold") => hold(&first),
        Some("fork-exit") => fork_and_exit(&first, &second, ForkedChild::Exits),
        Some("fork-_exit") => fork_and_exit(&first, &second, ForkedChild::UnderscoreExits),
        Some("fork-load") => fork_and_exit(&first, &second, ForkedChild::LoadsThenExits),
        other => panic!("unknown mode {other:?}"),
    }
}

/// Marks the child's reports on its stdout (libtest prints `test child_process ... ` before
/// them, on the same line).
const REPORT: &str = "@@ ";

fn report(what: &str) {
    println!("{REPORT}{what}");
}

/// Loads `library`, says where its private directory is, and waits until stdin closes (the
/// test's way of asking for a normal exit) or a signal ends the process.
fn hold(library: &Path) {
    // As in an interactive host: a shell that starts background jobs without job control has
    // them ignore SIGINT, and children inherit that.
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: restores the default action, which terminates the process; no handler of ours
        // is involved.
        let previous = unsafe { libc::signal(signal, libc::SIG_DFL) };
        assert_ne!(previous, libc::SIG_ERR);
    }
    hello::module().load(library).expect("load");
    assert_eq!(hello::version(), 1);
    let dirs = support::shadow_dirs();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    report(&format!("loaded {}", dirs[0].display()));
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    report("exiting normally");
}

#[derive(Clone, Copy, Debug)]
enum ForkedChild {
    /// Calls `std::process::exit`: `atexit` hooks run.
    Exits,
    /// Calls `libc::_exit`: no hook runs.
    UnderscoreExits,
    /// Loads another library (a directory of its own), then `std::process::exit`.
    LoadsThenExits,
}

/// Loads `first`, forks a child that ends as `how` says, and checks that this process's
/// directory and copy are untouched and that the child left nothing.
fn fork_and_exit(first: &Path, second: &Path, how: ForkedChild) {
    let module = hello::module();
    module.load(first).expect("load");
    let dirs = support::shadow_dirs();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let copies = support::shadow_copies();
    assert_eq!(copies.len(), 1, "{copies:?}");
    let temp = std::env::temp_dir();
    let before = entries(&temp);

    // SAFETY: the child runs only the code below, on the thread that forked: it loads a library
    // through hotmod (whose locks no other thread of this process holds: nothing else of this
    // test process uses hotmod) or exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        match how {
            ForkedChild::Exits => std::process::exit(0),
            // SAFETY: ends the child at once; nothing of it needs to run.
            ForkedChild::UnderscoreExits => unsafe { libc::_exit(0) },
            ForkedChild::LoadsThenExits => {
                // Exit codes say what went wrong: the child's output would mix with ours.
                let code = match module.load(second) {
                    Ok(_) if hello::version() != 2 => 3,
                    // Its own directory (named after its pid), not the parent's.
                    Ok(_) if support::shadow_dirs().len() != 1 => 4,
                    Ok(_) => 0,
                    Err(_) => 2,
                };
                std::process::exit(code)
            }
        }
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` is a valid out-pointer.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid, "waitpid: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the forked child failed: wait status {status:#x}"
    );
    assert_eq!(
        entries(&temp),
        before,
        "the temp directory is as before the fork"
    );
    assert_eq!(
        support::shadow_copies(),
        copies,
        "this process's copy is there"
    );
    assert_eq!(hello::version(), 1);
    // This process still owns its directory: its last generation retiring removes it.
    report(&format!("fork {how:?}: parent's directory intact"));
}

/// The names in `dir`, and those in its subdirectories, sorted.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read a directory").flatten() {
        let path = entry.path();
        if path.is_dir() && !path.is_symlink() {
            found.extend(entries(&path));
        }
        found.push(path);
    }
    found.sort();
    found
}

/// A child process running [`child_process`] in `mode`, its output read as it comes.
struct Host {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Its stdout and stderr.
    output: support::OutputLines,
}

impl Host {
    fn start(mode: &str, temp: &Path) -> Host {
        let exe = std::env::current_exe().expect("current_exe");
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(MODE, mode)
            .env(FIRST, support::library("v1"))
            .env(SECOND, support::library("v2"))
            .env("TMPDIR", temp)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a child process");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        Host {
            stdin: child.stdin.take(),
            child,
            output: support::OutputLines::read(vec![
                ("", Box::new(stdout)),
                ("stderr: ", Box::new(stderr)),
            ]),
        }
    }

    fn pid(&self) -> libc::pid_t {
        libc::pid_t::try_from(self.child.id()).expect("a pid")
    }

    /// Waits for a report `prefix…` of the child (see [`report`]); returns the rest of its line.
    fn line(&mut self, prefix: &str) -> String {
        let marker = format!("{REPORT}{prefix}");
        let line = self.output.wait_for_text(&marker);
        let at = line.find(&marker).expect("the line has the marker");
        line[at + marker.len()..].to_owned()
    }

    /// Waits for the process to end.
    fn wait(&mut self) -> ExitStatus {
        support::wait_for("the child process to end", || {
            self.child.try_wait().expect("try_wait")
        })
    }

    /// Sends `signal` and waits for the process to end; it must be the signal that ended it.
    fn kill(&mut self, signal: libc::c_int) {
        // SAFETY: sends a signal to our child, which has not been waited for (so its pid is
        // still its own).
        let sent = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(sent, 0, "kill: {}", std::io::Error::last_os_error());
        let status = self.wait();
        assert_eq!(status.signal(), Some(signal), "{status:?}");
    }

    /// Closes its stdin and waits for it to exit normally.
    fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.wait();
        self.line("exiting normally");
        assert!(status.success(), "{status:?}:\n{}", self.output.text());
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // A failed test must not leave its children behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The private directory a host reported, checked to be in `temp` with its copy in it.
fn private_dir(host: &mut Host, temp: &Path) -> PathBuf {
    let dir = PathBuf::from(host.line("loaded "));
    assert_eq!(dir.parent(), Some(temp), "{dir:?}");
    let name = dir.file_name().map(OsStr::to_string_lossy);
    assert!(
        name.as_deref()
            .is_some_and(|n| n.starts_with(&format!("hotmod-{}-", host.pid()))),
        "{dir:?}"
    );
    assert!(
        std::fs::read_dir(&dir)
            .expect("its directory")
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("v1.")),
        "{dir:?} has the copy of v1"
    );
    dir
}

fn assert_empty(temp: &Path) {
    let left = entries(temp);
    assert!(left.is_empty(), "left in the temp directory: {left:?}");
}

/// A host killed by `signal` leaves its directory; the next host's first load removes it, and
/// once that one exits normally nothing is left.
fn killed_then_reclaimed(signal: libc::c_int, label: &str) {
    let temp = support::TempDir::new(label);
    let mut killed = Host::start("hold", temp.path());
    let left = private_dir(&mut killed, temp.path());
    killed.kill(signal);
    assert!(
        left.is_dir(),
        "the killed process could not remove {left:?} (no code of its own ran)"
    );

    let mut next = Host::start("hold", temp.path());
    let own = private_dir(&mut next, temp.path());
    assert!(
        !left.exists(),
        "the next process's first load removed {left:?}: {:?}",
        entries(temp.path())
    );
    let all = entries(temp.path());
    assert!(
        all.iter().all(|p| p.starts_with(&own)),
        "only its own: {all:?}"
    );
    next.finish();
    assert_empty(temp.path());
}

#[test]
fn a_directory_left_by_sigint_is_reclaimed_by_the_next_process() {
    killed_then_reclaimed(libc::SIGINT, "reclaim-sigint");
}

#[test]
fn a_directory_left_by_sigterm_is_reclaimed_by_the_next_process() {
    killed_then_reclaimed(libc::SIGTERM, "reclaim-sigterm");
}

#[test]
fn a_directory_left_by_sigkill_is_reclaimed_by_the_next_process() {
    killed_then_reclaimed(libc::SIGKILL, "reclaim-sigkill");
}

/// The scan of a new process removes the directory of a killed one but not that of a live one,
/// whose copy stays loadable-from and whose exit then removes its own directory.
#[test]
fn a_live_process_keeps_its_directory() {
    let temp = support::TempDir::new("reclaim-live");
    let mut live = Host::start("hold", temp.path());
    let kept = private_dir(&mut live, temp.path());
    let mut dead = Host::start("hold", temp.path());
    let left = private_dir(&mut dead, temp.path());
    dead.kill(libc::SIGKILL);
    let kept_entries = entries(&kept);

    let mut next = Host::start("hold", temp.path());
    let own = private_dir(&mut next, temp.path());
    assert!(!left.exists(), "the dead process's {left:?} is gone");
    assert_eq!(
        entries(&kept),
        kept_entries,
        "the live process's {kept:?} is untouched"
    );
    assert!(own.is_dir());

    live.finish();
    assert!(!kept.exists(), "{kept:?} left with its process");
    next.finish();
    assert_empty(temp.path());
}

/// Runs `fork_and_exit` in a child process with a fresh temp directory, which is empty after.
fn forked(mode: &str, label: &str) {
    let temp = support::TempDir::new(label);
    let mut host = Host::start(mode, temp.path());
    host.line("fork ");
    let status = host.wait();
    assert!(status.success(), "{status:?}:\n{}", host.output.text());
    assert_empty(temp.path());
}

#[test]
fn a_forked_child_that_calls_exit_leaves_the_parent_directory() {
    forked("fork-exit", "reclaim-fork-exit");
}

#[test]
fn a_forked_child_that_calls_underscore_exit_leaves_the_parent_directory() {
    forked("fork-_exit", "reclaim-fork-_exit");
}

#[test]
fn a_forked_child_that_loads_then_exits_leaves_the_parent_directory() {
    forked("fork-load", "reclaim-fork-load");
}
