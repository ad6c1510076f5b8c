//! `fork()` of a host whose other threads are busy with hotmod: the child never crashes or
//! deadlocks, keeps calling, and loads (or is refused with a clear error); the parent is
//! untouched by the child and its exit.
//!
//! Each scenario runs in a host process of its own (this test binary, told what to do by
//! environment variables; see [`fork_host`]) with a fresh `TMPDIR`, and with glibc's stack cache
//! off (`GLIBC_TUNABLES=glibc.pthread.stack_cache_size=0`): when a thread of the forked child
//! ends, glibc unmaps the stacks, and with them the thread-locals, of the parent's threads that
//! do not exist in the child. A child that still read those threads' hazard slots would crash
//! there instead of reading stale values.
//!
//! The host loads generations, sets its threads going (in plain calls, holding handles, inside
//! a load, or all at once), forks, and waits for the child with a generous timeout: a child that
//! deadlocks is killed and the test fails. The child reports through its exit status; its
//! messages go to the host's stderr, which the test shows when it fails. Nothing waits for a
//! fixed time.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use hello_fixture::{hello, other};

/// What the host does (see [`fork_host`]).
const MODE: &str = "HOTMOD_FORK_MODE";
/// The libraries it loads.
const V1: &str = "HOTMOD_FORK_V1";
const V2: &str = "HOTMOD_FORK_V2";
const BLOCKINIT: &str = "HOTMOD_FORK_BLOCKINIT";
/// glibc unmaps a thread's stack as soon as the thread is joined (no cache).
const NO_STACK_CACHE: &str = "glibc.pthread.stack_cache_size=0";
/// How long the host waits for a forked child: generous; a deadlocked child never ends.
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

/// Marks the host's reports on its stdout.
const REPORT: &str = "@@ ";

fn report(what: &str) {
    println!("{REPORT}{what}");
}

/// Not a test of its own: the body of the host processes the tests below start. Without
/// [`MODE`] in the environment it does nothing.
#[test]
fn fork_host() {
    let Some(mode) = std::env::var_os(MODE) else {
        return;
    };
    let path = |var: &str| PathBuf::from(std::env::var_os(var).expect("a library path"));
    let libraries = Libraries {
        v1: path(V1),
        v2: path(V2),
        blockinit: path(BLOCKINIT),
    };
    match mode.to_str() {
        Some("plain-calls") => plain_calls(&libraries),
        Some("handles") => handles(&libraries),
        Some("loading") => loading(&libraries),
        Some("busy") => busy(&libraries),
        other => panic!("unknown mode {other:?}"),
    }
    report("host done");
}

struct Libraries {
    v1: PathBuf,
    v2: PathBuf,
    blockinit: PathBuf,
}

// ---------------------------------------------------------------------------------------------
// The host's side.

/// Forks; the child runs `child` and exits (0 if it returned, 1 if it panicked), the parent
/// waits for it and fails unless it exited with 0.
fn fork_and_wait(what: &str, child: impl FnOnce()) {
    // SAFETY: the child runs `child` on the thread that forked, then exits; what it may use of
    // hotmod after `fork` is exactly what these tests check.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child));
        // A normal exit: the exit hooks run (hotmod's removes only the child's own directory).
        std::process::exit(if outcome.is_ok() { 0 } else { 1 });
    }
    let status = support::wait_for_within(
        &format!("the child forked {what} to end"),
        CHILD_TIMEOUT,
        support::POLL,
        || {
            let mut status = 0;
            // SAFETY: polls our own child; `status` is a valid out-pointer.
            let waited = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            assert!(waited >= 0, "waitpid: {}", std::io::Error::last_os_error());
            (waited == pid).then_some(status)
        },
    );
    let status = std::process::ExitStatus::from_raw(status);
    assert!(
        status.success(),
        "the child forked {what} failed: {status} (its messages are above)"
    );
}

/// Called first in a forked child: if the host's wait for it times out (a deadlocked child),
/// the host's test thread panics and ends, and the child gets SIGKILL: it never outlives the
/// test.
fn die_with_parent() {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and touches no memory.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
}

/// The live generations of `hello`, once `wanted` holds for them (the collector runs at the
/// end of each load; this only waits for what a load already decided).
fn wait_for_live(what: &str, wanted: impl Fn(&[u64]) -> bool) -> Vec<u64> {
    support::wait_for(what, || {
        let live = hello::module().live_generations();
        if wanted(&live) {
            Ok(live)
        } else {
            Err(format!("live generations {live:?}"))
        }
    })
}

/// What every child checks before it exits: a thread of its own starts, makes plain calls and
/// ends (which unmaps the stacks of the parent's other threads, see the module docs).
///
/// Started with `pthread_create`, not `std::thread::spawn`: std's thread start takes a lock of
/// its own (its stack-overflow handler's `thread_info`), which a child forked while a parent
/// thread was starting (the busy scenario's thread churn) inherits held, and its spawn would
/// wait forever. That lock is std's, not hotmod's; what this checks is hotmod in a new thread.
fn new_thread_calls(expected: u32) {
    extern "C" fn calls(out: *mut libc::c_void) -> *mut libc::c_void {
        let version = hello::version();
        // SAFETY: `out` is the `u32` the creating thread passed and keeps alive until `join`.
        unsafe { *out.cast::<u32>() = version };
        std::ptr::null_mut()
    }
    let mut version = 0u32;
    let mut thread: libc::pthread_t = 0;
    // SAFETY: default attributes; `calls` has the start routine's C signature; `version`
    // outlives the thread, which is joined below.
    let created = unsafe {
        libc::pthread_create(
            &mut thread,
            std::ptr::null(),
            calls,
            std::ptr::addr_of_mut!(version).cast(),
        )
    };
    assert_eq!(created, 0, "a new thread in the child");
    // SAFETY: the thread just created, joined once.
    let joined = unsafe { libc::pthread_join(thread, std::ptr::null_mut()) };
    assert_eq!(joined, 0, "joining the child's thread");
    assert_eq!(version, expected);
}

/// The host's private directory of shadow copies, with the copies in it.
fn own_copies() -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut copies = support::shadow_copies();
    copies.sort();
    (support::shadow_dirs(), copies)
}

/// Checks, after the child ended, that the parent's directory and copies are as before the fork.
fn assert_untouched(before: &(Vec<PathBuf>, Vec<PathBuf>)) {
    assert_eq!(&own_copies(), before, "the parent's directory and copies");
    assert_eq!(before.0.len(), 1, "{before:?}");
}

/// The part every scenario ends with: the parent loads again and calls, and the generation it
/// replaced retires.
fn parent_loads_again(path: &Path, expected_version: u32) {
    let module = hello::module();
    let generation = module
        .load(path)
        .expect("the parent loads after the child exited");
    assert_eq!(hello::version(), expected_version);
    wait_for_live("the parent's older generations to retire", |live| {
        live == [0, generation]
    });
}

/// Threads in plain calls of v1 at the fork (their hazard slots hold it): in the child, v2 loads,
/// v1 retires (those threads' slots are gone with them), calls go on; the child exits normally.
/// Then the parent's threads finish their calls, and the parent loads again.
fn plain_calls(libraries: &Libraries) {
    let module = hello::module();
    module.load(&libraries.v1).expect("v1 loads");
    const THREADS: usize = 3;
    let entered = Arc::new(Barrier::new(THREADS + 1));
    let release = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (entered, release) = (entered.clone(), release.clone());
            std::thread::spawn(move || {
                // A plain call or two on this thread first, so that its fast call slot is
                // registered; then one that stays in v1 until the parent lets it go.
                assert_eq!(hello::version(), 1);
                hello::blocking_version(&entered, &release)
            })
        })
        .collect();
    entered.wait();
    let before = own_copies();

    fork_and_wait("while plain calls ran", || {
        die_with_parent();
        new_thread_calls(1);
        let generation = module.load(&libraries.v2).expect("v2 loads in the child");
        assert_eq!(hello::version(), 2);
        assert_eq!(hello::Handle::current().version(), 2);
        wait_for_live("v1 to retire in the child", |live| live == [0, generation]);
        new_thread_calls(2);
        let (dirs, _) = own_copies();
        assert_eq!(dirs.len(), 1, "a directory of the child's own: {dirs:?}");
        assert_ne!(dirs, before.0, "not the parent's");
        eprintln!("{REPORT}child: v1 retired, v2 answers");
    });

    assert_untouched(&before);
    assert_eq!(hello::version(), 1, "the parent's generation is still v1");
    release.wait();
    for thread in threads {
        assert_eq!(thread.join().expect("a calling thread"), 1);
    }
    parent_loads_again(&libraries.v2, 2);
    report("plain calls: child and parent fine");
}

/// Threads holding handles of v1 at the fork, one of them inside a call through its handle: in
/// the child those handles' counts stay up (their threads are gone, the counts with nobody to
/// drop them), so v1 stays loaded there; everything else goes on: v2 loads, calls answer, a
/// later generation retires as usual.
fn handles(libraries: &Libraries) {
    let module = hello::module();
    module.load(&libraries.v1).expect("v1 loads");
    let entered = Arc::new(Barrier::new(3));
    let release = Arc::new(Barrier::new(3));
    let threads: Vec<_> = (0..2)
        .map(|i| {
            let (entered, release) = (entered.clone(), release.clone());
            std::thread::spawn(move || {
                let handle = hello::Handle::current();
                if i == 0 {
                    // Inside module code through the handle.
                    handle.blocking_version(&entered, &release)
                } else {
                    entered.wait();
                    release.wait();
                    handle.version()
                }
            })
        })
        .collect();
    entered.wait();
    let before = own_copies();

    fork_and_wait("while handles were held", || {
        die_with_parent();
        new_thread_calls(1);
        let second = module.load(&libraries.v2).expect("v2 loads in the child");
        assert_eq!(hello::version(), 2);
        // v1 stays: the handles of the parent's threads still count in the child.
        let third = module
            .load(&libraries.v1)
            .expect("v1 loads again in the child");
        assert_eq!(hello::version(), 1);
        wait_for_live("v2 to retire in the child", |live| live == [0, 1, third]);
        assert!(second < third);
        new_thread_calls(1);
        eprintln!("{REPORT}child: handles' generation kept, the next one retired");
    });

    assert_untouched(&before);
    release.wait();
    for thread in threads {
        assert_eq!(thread.join().expect("a thread with a handle"), 1);
    }
    parent_loads_again(&libraries.v2, 2);
    report("handles: child and parent fine");
}

/// Another thread inside a load of `hello` at the fork (its on_load function waits): in the
/// child, that module's loads are refused with an error that says why, while its calls, its
/// queries and the other module's loads work. The parent's load then completes as usual.
fn loading(libraries: &Libraries) {
    let module = hello::module();
    module.load(&libraries.v1).expect("v1 loads");
    let gate = support::TempDir::new("fork-gate");
    std::env::set_var("HOTMOD_FIXTURE_ON_LOAD_GATE", gate.path());
    let loader = {
        let path = libraries.blockinit.clone();
        std::thread::spawn(move || hello::module().load(path))
    };
    support::wait_for("the load's on_load function to start", || {
        gate.path().join("entered").exists()
    });
    let before = own_copies();

    fork_and_wait("during another thread's load", || {
        die_with_parent();
        assert_eq!(hello::version(), 1);
        assert_eq!(module.generation(), 1);
        let refused = module
            .load(&libraries.v2)
            .expect_err("a load of the module whose load was under way is refused");
        let message = refused.to_string();
        assert!(message.contains("fork"), "says why: {message}");
        assert_eq!(refused.module(), module.name());
        assert_eq!(hello::version(), 1, "calls go on");
        new_thread_calls(1);
        // The other module of the same library had no load under way: it loads.
        let generation = other::module()
            .load(&libraries.v2)
            .expect("another module loads in the child");
        assert_eq!(other::version(), 2);
        assert_eq!(other::module().generation(), generation);
        eprintln!("{REPORT}child: refused: {message}");
    });

    assert_eq!(own_copies().0, before.0, "the parent's directory");
    std::fs::write(gate.path().join("release"), b"").expect("release the load");
    let generation = loader
        .join()
        .expect("the loading thread")
        .expect("the parent's load completes");
    assert_eq!(module.generation(), generation);
    parent_loads_again(&libraries.v2, 2);
    report("loading: child refused, parent fine");
}

/// Forks again and again while other threads keep hotmod busy: threads that start, make plain
/// calls and pin handles, and end (hazard slots taken and given back); a thread in plain calls;
/// a thread that loads v1 and v2 in turn (the loading, writer and registry locks, the private
/// directory, the thread-exit bookkeeping). Whatever each fork catches them doing, the child
/// calls, loads (or, while the parent's loads run, may be refused because one was under way),
/// and exits. Every other fork happens with the loading thread stopped: that child's load must
/// succeed.
fn busy(libraries: &Libraries) {
    const FORKS: usize = 40;
    let module = hello::module();
    module.load(&libraries.v1).expect("v1 loads");
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::spawn(|| {
                    assert!(matches!(hello::version(), 1 | 2));
                    assert!(matches!(hello::Handle::current().version(), 1 | 2));
                })
                .join()
                .expect("a short-lived thread");
            }
        })
    };
    let caller = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                assert!(matches!(hello::version(), 1 | 2));
            }
        })
    };
    // The loading thread loads while `loads_on` is set, else parks; `loading` is set while it
    // may be inside a load (set before it checks `loads_on`, so that a fork made after
    // clearing `loads_on` and seeing `loading` clear finds no load under way); `begun` counts
    // the loads it started.
    let loads_on = Arc::new(AtomicBool::new(true));
    let loading = Arc::new(AtomicBool::new(false));
    let begun = Arc::new(AtomicUsize::new(0));
    let loader = {
        let (stop, loads_on, loading) = (stop.clone(), loads_on.clone(), loading.clone());
        let begun = begun.clone();
        let paths = [libraries.v1.clone(), libraries.v2.clone()];
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                loading.store(true, Ordering::SeqCst);
                if loads_on.load(Ordering::SeqCst) {
                    begun.fetch_add(1, Ordering::SeqCst);
                    hello::module()
                        .load(&paths[n % 2])
                        .expect("the parent's loads");
                    n += 1;
                    loading.store(false, Ordering::SeqCst);
                } else {
                    loading.store(false, Ordering::SeqCst);
                    std::thread::park();
                }
            }
            n
        })
    };
    let (mut loaded, mut refused) = (0, 0);
    for i in 0..FORKS {
        let quiet = i % 2 == 1;
        loads_on.store(!quiet, Ordering::SeqCst);
        if quiet {
            support::wait_for("the loading thread to stop", || {
                !loading.load(Ordering::SeqCst)
            });
        } else {
            // Fork once a load has started: usually while it runs.
            let before = begun.load(Ordering::SeqCst);
            loader.thread().unpark();
            support::wait_for("the loading thread to start a load", || {
                begun.load(Ordering::SeqCst) > before
            });
        }
        let outcome = support::TempDir::new("fork-outcome");
        let marker = outcome.path().join("loaded");
        fork_and_wait(&format!("while busy ({i})"), || {
            die_with_parent();
            new_thread_calls(hello::version());
            match module.load(&libraries.v2) {
                Ok(generation) => {
                    assert_eq!(hello::version(), 2);
                    assert_eq!(module.generation(), generation);
                    std::fs::write(&marker, b"").expect("mark the load");
                }
                Err(error) if !quiet => {
                    assert!(
                        matches!(error, hotmod::Error::ForkedDuringLoad { .. }),
                        "{error}"
                    );
                }
                Err(error) => panic!("no load was under way, yet: {error}"),
            }
            new_thread_calls(hello::version());
        });
        if marker.exists() {
            loaded += 1;
        } else {
            refused += 1;
        }
    }
    stop.store(true, Ordering::SeqCst);
    loader.thread().unpark();
    churn.join().expect("the thread-starting thread");
    caller.join().expect("the calling thread");
    let loads = loader.join().expect("the loading thread");
    parent_loads_again(&libraries.v2, 2);
    report(&format!(
        "busy: {FORKS} children fine, {loaded} loaded, {refused} refused a load under way; the \
         parent loaded {loads} times meanwhile"
    ));
}

// ---------------------------------------------------------------------------------------------
// The tests: each runs a host process and checks that it, and every child it forked, ended
// well, and that nothing is left in the temp directory.

/// A host process running [`fork_host`] in `mode`.
struct Host {
    child: Child,
    output: support::OutputLines,
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn run(mode: &str, label: &str) {
    let temp = support::TempDir::new(label);
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .args(["--exact", "fork_host", "--nocapture", "--test-threads=1"])
        .env(MODE, mode)
        .env(V1, support::library("v1"))
        .env(V2, support::library("v2"))
        .env(BLOCKINIT, support::library("blockinit"))
        .env("GLIBC_TUNABLES", NO_STACK_CACHE)
        .env("TMPDIR", temp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the host process");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut host = Host {
        child,
        output: support::OutputLines::read(vec![
            ("", Box::new(stdout)),
            ("stderr: ", Box::new(stderr)),
        ]),
    };
    let status = support::wait_for_within(
        "the host process to end",
        CHILD_TIMEOUT * 3,
        support::POLL,
        || host.child.try_wait().expect("try_wait"),
    );
    host.output.rest();
    assert!(
        status.success() && host.output.text().contains(&format!("{REPORT}host done")),
        "the host failed ({status}):\n{}",
        host.output.text()
    );
    for line in host.output.seen.iter().filter(|line| line.contains(REPORT)) {
        eprintln!("{mode}: {line}");
    }
    let left: Vec<_> = std::fs::read_dir(temp.path())
        .expect("the host's temp directory")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left in the temp directory: {left:?}");
}

#[test]
fn a_child_forked_during_plain_calls_retires_what_they_ran_and_keeps_calling() {
    run("plain-calls", "fork-plain-calls");
}

#[test]
fn a_child_forked_while_handles_are_held_keeps_their_generation_and_keeps_loading() {
    run("handles", "fork-handles");
}

#[test]
fn a_child_forked_during_a_load_refuses_that_module_s_loads_and_keeps_calling() {
    run("loading", "fork-loading");
}

#[test]
fn children_forked_while_hotmod_is_busy_never_crash_or_hang() {
    run("busy", "fork-busy");
}
