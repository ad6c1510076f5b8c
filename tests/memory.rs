//! Memory after many reloads: 1000 generations loaded and retired with no handle kept leave
//! the process's mappings and resident memory where they were (within 1 MiB), for a module
//! without thread-locals and for one whose code registers thread-local destructors on several
//! long-lived threads (which glibc alone would keep mapped: +4 mappings and ~315 KB per reload).
//!
//! The figures are printed (`cargo test --test memory -- --nocapture`); BENCHMARKS.md quotes
//! them.

mod support;

use std::path::Path;
use std::sync::mpsc::{channel, Sender};
use std::thread::JoinHandle;
use std::time::Instant;

use hello_fixture::hello;
use support::Footprint;
use tls_fixture::tls;

/// Reloads measured.
const RELOADS: usize = 1000;
/// Reloads before the baseline, so that one-time allocations (allocator arenas, the pinning
/// protocol's slots, the glibc TLS generation arrays) are behind us.
const WARM_UP: usize = 20;
/// How far from the baseline resident memory and mapped size may end up.
const SLACK_KIB: i64 = 1024;
/// How many more mappings than at the baseline are tolerated (the allocator may split or add a
/// region; a library left mapped adds at least four).
const SLACK_MAPPINGS: i64 = 2;

fn report(label: &str, base: Footprint, after: Footprint, seconds: f64) {
    println!(
        "memory[{label}]: {RELOADS} reloads in {seconds:.2} s ({:.0} us each); \
         RSS {} -> {} KiB ({:+} KiB); mapped {} -> {} KiB ({:+} KiB); \
         mappings {} -> {} ({:+})",
        seconds * 1e6 / RELOADS as f64,
        base.rss_kib,
        after.rss_kib,
        after.rss_kib - base.rss_kib,
        base.size_kib,
        after.size_kib,
        after.size_kib - base.size_kib,
        base.mappings,
        after.mappings,
        after.mappings - base.mappings,
    );
}

fn assert_back_to_baseline(label: &str, library: &Path, base: Footprint, after: Footprint) {
    assert!(
        after.rss_kib - base.rss_kib <= SLACK_KIB,
        "{label}: resident memory grew by {} KiB",
        after.rss_kib - base.rss_kib
    );
    assert!(
        after.size_kib - base.size_kib <= SLACK_KIB,
        "{label}: mapped size grew by {} KiB",
        after.size_kib - base.size_kib
    );
    assert!(
        after.mappings - base.mappings <= SLACK_MAPPINGS,
        "{label}: {} more mappings",
        after.mappings - base.mappings
    );
    assert_eq!(
        Footprint::mapped_copies_of(library).len(),
        1,
        "{label}: only the current generation is mapped"
    );
}

#[test]
fn a_thousand_reloads_of_a_plain_module_return_to_baseline() {
    let _serial = support::serial();
    let module = hello::module();
    let library = support::library("v1");
    let reload = || {
        module.load(library).expect("reload");
        assert_eq!(hello::answer(), 42);
        assert_eq!(hello::greet("mem"), "hello mem");
    };
    for _ in 0..WARM_UP {
        reload();
    }
    let base = Footprint::now();
    let start = Instant::now();
    for _ in 0..RELOADS {
        reload();
    }
    let seconds = start.elapsed().as_secs_f64();
    let after = Footprint::now();
    report("plain module", base, after, seconds);
    assert!(
        module.unload_blocked().is_empty(),
        "{:?}",
        module.unload_blocked()
    );
    assert_eq!(
        module.live_generations().len(),
        2,
        "generation 0 and the current one"
    );
    assert_back_to_baseline("plain module", library, base, after);
}

/// A long-lived thread that runs closures on request.
struct Worker {
    jobs: Sender<Box<dyn FnOnce() + Send>>,
    thread: JoinHandle<()>,
}

impl Worker {
    fn new() -> Worker {
        let (jobs, receiver) = channel::<Box<dyn FnOnce() + Send>>();
        let thread = std::thread::spawn(move || {
            for job in receiver {
                job();
            }
        });
        Worker { jobs, thread }
    }

    fn run<R: Send + 'static>(&self, job: impl FnOnce() -> R + Send + 'static) -> R {
        let (reply, answer) = channel();
        let job = Box::new(move || {
            let _ = reply.send(job());
        });
        self.jobs.send(job).expect("send job");
        answer.recv().expect("worker answered")
    }
}

#[test]
fn a_thousand_reloads_of_a_module_with_thread_local_destructors_return_to_baseline() {
    let _serial = support::serial();
    let module = tls::module();
    let library = support::library("tls");
    let workers: Vec<Worker> = (0..3).map(|_| Worker::new()).collect();
    let reload = |workers: &[Worker]| {
        module.load(library).expect("reload");
        // Each worker's first use of this generation's thread-local registers its destructor.
        for worker in workers {
            assert_eq!(worker.run(tls::touch), 1);
        }
        assert_eq!(tls::created(), workers.len());
    };
    for _ in 0..WARM_UP {
        reload(&workers);
    }
    let base = Footprint::now();
    let start = Instant::now();
    for _ in 0..RELOADS {
        reload(&workers);
    }
    let seconds = start.elapsed().as_secs_f64();
    let after = Footprint::now();
    report(
        "thread-local destructors on 3 threads",
        base,
        after,
        seconds,
    );
    assert!(
        module.unload_blocked().is_empty(),
        "{:?}",
        module.unload_blocked()
    );
    assert_eq!(module.live_generations().len(), 2);
    assert_back_to_baseline("thread-local destructors", library, base, after);

    // The workers exit: the live generation's destructors run, the retired ones' were leaked
    // (their values had no heap data) and their records are freed.
    for worker in workers {
        drop(worker.jobs);
        worker.thread.join().expect("worker");
    }
    assert_eq!(tls::dropped(), 3);
    let exited = Footprint::now();
    println!(
        "memory[thread-local destructors on 3 threads]: after the threads exited: RSS {} KiB ({:+} KiB from the baseline)",
        exited.rss_kib,
        exited.rss_kib - base.rss_kib
    );
}
