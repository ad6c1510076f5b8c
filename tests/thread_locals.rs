//! Module code that uses thread-locals with destructors, `std::thread::current()` and
//! `println!` (fixtures/tls_fixture): its generations unload although the threads that used them
//! live on, its destructors run while it is loaded, and nothing of it runs once it is gone.
//!
//! glibc alone would keep every such library mapped until those threads exit (the control test
//! below shows it), and would crash a thread at exit that called `thread::current()` in a
//! library since unloaded.

mod support;

use std::sync::mpsc::{channel, Sender};
use std::thread::JoinHandle;

use tls_fixture::tls;

/// A long-lived thread that runs closures on request, so that thread-locals of several
/// generations accumulate on it.
struct Worker {
    jobs: Option<Sender<Box<dyn FnOnce() + Send>>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn new(name: &str) -> Worker {
        let (jobs, receiver) = channel::<Box<dyn FnOnce() + Send>>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for job in receiver {
                    job();
                }
            })
            .expect("spawn worker");
        Worker {
            jobs: Some(jobs),
            thread: Some(thread),
        }
    }

    fn run<R: Send + 'static>(&self, job: impl FnOnce() -> R + Send + 'static) -> R {
        let (reply, answer) = channel();
        let job = Box::new(move || {
            let _ = reply.send(job());
        });
        self.jobs
            .as_ref()
            .expect("worker alive")
            .send(job)
            .expect("send job");
        answer.recv().expect("worker answered")
    }

    /// Lets the thread exit (running its thread-exit callbacks) and waits for it.
    fn exit(mut self) {
        drop(self.jobs.take());
        self.thread
            .take()
            .expect("thread")
            .join()
            .expect("worker exited cleanly");
    }
}

fn load_tls() -> u64 {
    tls::module()
        .load(support::library("tls"))
        .expect("load tls fixture")
}

#[test]
fn a_thread_local_destructor_runs_when_its_thread_exits_while_the_generation_is_loaded() {
    let _serial = support::serial();
    load_tls();
    let handle = tls::Handle::current();
    let (created, dropped) = (handle.created(), handle.dropped());
    let calls = std::thread::spawn(|| (tls::touch(), tls::touch()))
        .join()
        .expect("thread");
    assert_eq!(calls, (1, 2), "the value is per thread");
    // pthread_join returns after the thread ran its thread-exit callbacks.
    assert_eq!(handle.created(), created + 1);
    assert_eq!(
        handle.dropped(),
        dropped + 1,
        "the destructor ran, through hotmod's trampoline, while the generation was loaded"
    );
}

#[test]
fn a_generation_unloads_while_threads_that_used_its_thread_locals_live_on() {
    let _serial = support::serial();
    let module = tls::module();
    let workers: Vec<Worker> = (0..3).map(|i| Worker::new(&format!("tls-{i}"))).collect();
    let first = load_tls();
    for worker in &workers {
        assert_eq!(worker.run(tls::touch), 1);
    }
    assert_eq!(tls::created(), 3, "each worker registered a destructor");

    let second = load_tls();
    assert!(!module.live_generations().contains(&first));
    assert!(
        !module.unload_blocked().contains(&first),
        "blocked: {:?}",
        module.unload_blocked()
    );
    let mapped = support::Footprint::mapped_copies_of(support::library("tls"));
    assert_eq!(
        mapped.len(),
        1,
        "only the current generation's copy is mapped: {mapped:?}"
    );
    // The same threads use the new generation; the old one's values are leaked, never dropped
    // by code that is gone.
    for worker in &workers {
        assert_eq!(worker.run(tls::touch), 1);
    }
    for worker in workers {
        worker.exit();
    }
    assert_eq!(module.generation(), second);
    assert_eq!(tls::dropped(), 3, "the live generation's destructors ran");
}

#[test]
fn a_thread_that_called_thread_current_in_a_retired_generation_exits_cleanly() {
    let _serial = support::serial();
    let module = tls::module();
    let worker = Worker::new("named-worker");
    let first = load_tls();
    // The library's std keeps its own thread handles: it does not know the host's names.
    assert_eq!(worker.run(tls::thread_name), "<unnamed>");
    load_tls();
    assert!(!module.unload_blocked().contains(&first));
    assert_eq!(
        support::Footprint::mapped_copies_of(support::library("tls")).len(),
        1
    );
    // Without the redirection, the library's pthread key destructor would now point into
    // unmapped memory and this exit would kill the test process with SIGSEGV.
    worker.exit();
    // And while the generation is loaded, the destructor runs normally.
    let name = std::thread::spawn(tls::thread_name).join().expect("thread");
    assert_eq!(name, "<unnamed>");
}

#[test]
fn a_key_destructor_runs_when_its_thread_exits_while_the_generation_is_loaded() {
    let _serial = support::serial();
    load_tls();
    let handle = tls::Handle::current();
    let dropped = handle.keyed_dropped();
    let seen = std::thread::spawn(|| (tls::keyed(5), tls::keyed(7)))
        .join()
        .expect("thread");
    assert_eq!(
        seen,
        (0, 5),
        "per-thread values through the module's own key"
    );
    assert_eq!(
        handle.keyed_dropped(),
        dropped + 1,
        "the key's destructor ran at exit"
    );
    assert_eq!(handle.keyed(1), 0, "this thread has a value of its own");
}

/// glibc has 1024 keys per process and a library never gives its keys back; hotmod gives
/// module libraries keys of their own, so generations that each create one (as
/// `thread::current()` does) do not run out.
#[test]
fn more_generations_than_glibc_has_keys_can_each_create_one() {
    let _serial = support::serial();
    let module = tls::module();
    let worker = Worker::new("keys");
    for _ in 0..1100 {
        load_tls();
        assert_eq!(worker.run(|| tls::keyed(1)), 0);
        assert_eq!(worker.run(tls::thread_name), "<unnamed>");
    }
    worker.exit();
    assert!(module.unload_blocked().is_empty());
    assert_eq!(
        tls::keyed_dropped(),
        1,
        "the live generation's value was destroyed"
    );
}

#[test]
fn println_in_module_code_works_across_reloads() {
    let _serial = support::serial();
    for _ in 0..3 {
        load_tls();
        assert_eq!(tls::say("hello from a generation"), 23);
        assert_eq!(
            std::thread::spawn(|| tls::say("and from a thread"))
                .join()
                .expect("thread"),
            17
        );
    }
    assert!(tls::module().unload_blocked().is_empty());
}

/// The control: with the redirection switched off, the same sequence leaves every generation
/// mapped, which is what the tests above would see without it. Runs in a child process, whose
/// libraries stay loaded.
#[test]
fn without_the_redirect_glibc_keeps_each_generation_mapped() {
    if !support::is_child() {
        let output = support::run_child(
            "without_the_redirect_glibc_keeps_each_generation_mapped",
            &[],
        );
        assert!(
            output.status.success(),
            "child failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    }
    hotmod::__private::set_thread_exit_redirect(false);
    let module = tls::module();
    let worker = Worker::new("control");
    let mut loaded = Vec::new();
    for _ in 0..4 {
        loaded.push(load_tls());
        worker.run(tls::touch);
    }
    let blocked = module.unload_blocked();
    assert_eq!(
        blocked,
        loaded[..3],
        "glibc keeps every library whose thread-locals live on"
    );
    assert_eq!(
        support::Footprint::mapped_copies_of(support::library("tls")).len(),
        4
    );
    worker.exit();
}

/// The other control: with the redirection switched off, a thread that called
/// `thread::current()` in a generation since unloaded is killed by a signal when it exits
/// (glibc calls the library's key destructor, now unmapped). Runs in a child process.
#[test]
fn without_the_redirect_a_thread_that_used_an_unloaded_generation_crashes_at_exit() {
    use std::os::unix::process::ExitStatusExt;
    const NAME: &str =
        "without_the_redirect_a_thread_that_used_an_unloaded_generation_crashes_at_exit";
    if !support::is_child() {
        let output = support::run_child(NAME, &[]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("generation unloaded, letting the thread exit"),
            "the child did not get as far as the exit:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.signal().is_some(),
            "expected the child to be killed by a signal, got {:?}",
            output.status
        );
        return;
    }
    hotmod::__private::set_thread_exit_redirect(false);
    let module = tls::module();
    let worker = Worker::new("doomed");
    let first = load_tls();
    worker.run(tls::thread_name);
    load_tls();
    assert!(!module.live_generations().contains(&first));
    assert!(
        !module.unload_blocked().contains(&first),
        "glibc unloads it"
    );
    println!("generation unloaded, letting the thread exit");
    worker.exit();
    println!("the thread exited and the process survived");
}
