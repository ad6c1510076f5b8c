//! Reloading under load. Bounded for CI (about ten seconds on a busy 2-core machine); a longer
//! soak runs with `HOTMOD_SOAK=<reloads>`:
//!
//! ```text
//! HOTMOD_SOAK=20000 cargo test --release --test stress -- --nocapture
//! ```
//!
//! - Four threads make plain and handle calls in a loop while the module is reloaded 500 times,
//!   alternating v1 and v2: no call fails, every plain call's answer comes from a generation
//!   that was current during the call (exactly that one when no reload overlapped it), and every
//!   handle call from the generation the handle pinned, however many reloads happened since.
//! - Threads that use a module's thread-locals are born and exit while its generations unload
//!   (their destructors race with the unloading; glibc 2.34–2.36 also had a TLS-reuse bug on
//!   this path): no crash, every retired generation is unmapped, and each thread's value in a
//!   generation counts that thread's calls in it (1, 2, 3 …; 1 again in a newer generation).

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Instant;

use hello_fixture::hello;
use tls_fixture::tls;

/// Reloads per test: `HOTMOD_SOAK`, else `default`.
fn reloads(default: usize) -> usize {
    std::env::var("HOTMOD_SOAK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What each of the two fixture versions answers.
fn greeting(version: u32, name: &str) -> String {
    match version {
        1 => format!("hello {name}"),
        2 => format!("hi {name}"),
        other => panic!("no fixture version {other}"),
    }
}

#[test]
fn calls_stay_on_one_generation_while_the_module_is_reloaded() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 5;
    let _serial = support::serial();
    let module = hello::module();
    let (v1, v2) = (support::library("v1"), support::library("v2"));
    let reloads = reloads(500);

    // Generation `first + i` is v1 for even `i`, v2 for odd `i`: only this test loads.
    let first = module.load(v1).expect("load v1");
    let version_of = move |generation: u64| -> u32 {
        assert!(
            generation >= first,
            "generation {generation} predates the test"
        );
        if (generation - first) % 2 == 1 {
            2
        } else {
            1
        }
    };

    let plain_calls = Arc::new(AtomicUsize::new(0));
    let handle_calls = Arc::new(AtomicUsize::new(0));
    let mut seen_by = [[false; 2]; THREADS];
    let mut loaded = 0;
    let mut seconds = 0.0;
    // In rounds: each ends with every thread stopped, when only the current generation may be
    // left (a missed collection shows up there; the next reload would hide it).
    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(Barrier::new(THREADS + 1));
        let workers: Vec<_> = (0..THREADS)
            .map(|worker| {
                let (stop, started) = (stop.clone(), started.clone());
                let (plain_calls, handle_calls) = (plain_calls.clone(), handle_calls.clone());
                std::thread::spawn(move || {
                    let name = format!("w{worker}");
                    let mut seen = [false; 2];
                    let mut pinned = hello::Handle::current();
                    let mut until_repin = 64 + worker;
                    started.wait();
                    while !stop.load(Ordering::Relaxed) {
                        // Plain calls, bracketed by the current generation before and after.
                        let before = module.generation();
                        let version = hello::version();
                        let greeted = hello::greet(&name);
                        let after = module.generation();
                        let possible: Vec<u32> = (before..=after).map(version_of).collect();
                        assert!(
                            possible.contains(&version),
                            "plain call answered version {version} during generations {before}..={after}"
                        );
                        if before == after {
                            assert_eq!(version, version_of(before), "generation {before}");
                        }
                        assert!(
                            (before..=after).any(|g| greeting(version_of(g), &name) == greeted),
                            "greet answered {greeted:?} during generations {before}..={after}"
                        );
                        seen[version as usize - 1] = true;
                        plain_calls.fetch_add(2, Ordering::Relaxed);

                        // Handle calls: always the pinned generation, however old.
                        let expected = version_of(pinned.generation());
                        assert_eq!(pinned.version(), expected);
                        assert_eq!(pinned.greet(&name), greeting(expected, &name));
                        let mut counter = 0;
                        pinned.bump(&mut counter);
                        assert_eq!(counter, u64::from(expected));
                        handle_calls.fetch_add(3, Ordering::Relaxed);
                        // Re-pin now and then, so that handles hold old generations across reloads.
                        until_repin -= 1;
                        if until_repin == 0 {
                            pinned = hello::Handle::current();
                            until_repin = 64 + worker;
                        }
                    }
                    seen
                })
            })
            .collect();

        started.wait();
        let start = Instant::now();
        let this_round = reloads / ROUNDS + usize::from(round < reloads % ROUNDS);
        for _ in 0..this_round {
            loaded += 1;
            let library = if loaded % 2 == 0 { v1 } else { v2 };
            let generation = module.load(library).expect("reload");
            assert_eq!(generation, first + loaded as u64);
        }
        seconds += start.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for (worker, thread) in workers.into_iter().enumerate() {
            let seen = thread.join().expect("a worker's call failed");
            seen_by[worker][0] |= seen[0];
            seen_by[worker][1] |= seen[1];
        }
        assert!(
            module.unload_blocked().is_empty(),
            "{:?}",
            module.unload_blocked()
        );
        assert_eq!(
            module.live_generations(),
            [0, first + loaded as u64],
            "round {round}: every generation but the current one retired once its users were gone"
        );
    }
    assert_eq!(
        seen_by,
        [[true, true]; THREADS],
        "each worker saw both versions"
    );
    let (plain, handle) = (
        plain_calls.load(Ordering::Relaxed),
        handle_calls.load(Ordering::Relaxed),
    );
    println!(
        "stress: {reloads} reloads in {seconds:.2} s with {THREADS} threads calling: \
         {plain} plain and {handle} handle calls, none failed"
    );
    assert_eq!(
        support::Footprint::mapped_copies_of(v1).len()
            + support::Footprint::mapped_copies_of(v2).len(),
        1
    );
}

/// A thread's plain `tls::touch()` calls, each bracketed by the current generation before and
/// after it. `touch` counts the calling thread's calls in the generation that runs it (each
/// generation has its own thread-locals), and a thread's calls in one generation are
/// consecutive (generations only move forward). So a call answers one more than the thread's
/// previous call when both ran in the same generation, and 1 when it is the thread's first in
/// its generation; a bracket of one generation says which it was.
#[derive(Default)]
struct Touches {
    /// The previous call's bracket and answer.
    previous: Option<(u64, u64, usize)>,
}

impl Touches {
    fn touch(&mut self, module: &hotmod::Module) -> usize {
        let before = module.generation();
        let count = tls::touch();
        let after = module.generation();
        match self.previous {
            None => assert_eq!(count, 1, "a thread's first call creates its value"),
            Some((b, a, previous)) if b == a && before == after => {
                let expected = if b == before { previous + 1 } else { 1 };
                assert_eq!(
                    count, expected,
                    "call in generation {before} after one in generation {b} that answered {previous}"
                );
            }
            Some((b, a, previous)) => assert!(
                count == 1 || count == previous + 1,
                "call in generations {before}..={after} answered {count} after one in \
                 {b}..={a} that answered {previous}"
            ),
        }
        self.previous = Some((before, after, count));
        count
    }
}

#[test]
fn threads_using_thread_locals_come_and_go_while_generations_unload() {
    const SPAWNERS: usize = 3;
    let _serial = support::serial();
    let module = tls::module();
    let library = support::library("tls");
    let reloads = reloads(300);
    module.load(library).expect("load tls");

    const ROUNDS: usize = 5;
    let threads = Arc::new(AtomicUsize::new(0));
    let mut seconds = 0.0;
    // In rounds, each ending with every thread gone: then only the current generation may be
    // left.
    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let spawners: Vec<_> = (0..SPAWNERS)
            .map(|i| {
                let (stop, threads) = (stop.clone(), threads.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        // A short-lived thread: registers destructors in whatever generation is
                        // current, and runs them (or has them leaked) as it exits, concurrently
                        // with reloads.
                        std::thread::spawn(move || {
                            // A plain call, in the generation current at the time: the thread's
                            // first, so 1.
                            let before = module.generation();
                            assert_eq!(tls::touch(), 1, "a new thread's first call");
                            let after = module.generation();
                            // Handle calls: in the pinned generation, which has this thread's
                            // value from the plain call only if that call ran in it.
                            let pinned = tls::Handle::current();
                            let pinned_generation = pinned.generation();
                            let first = pinned.touch();
                            if before == after && pinned_generation == after {
                                assert_eq!(first, 2, "the plain call ran in generation {after}");
                            } else if pinned_generation > after {
                                assert_eq!(first, 1, "the plain call ran in {before}..={after}");
                            } else {
                                assert!(
                                    pinned_generation == after && (first == 1 || first == 2),
                                    "pinned {pinned_generation} after {before}..={after}: {first}"
                                );
                            }
                            assert_eq!(pinned.touch(), first + 1);
                            drop(pinned);
                            if i == 0 {
                                assert_eq!(tls::thread_name(), "<unnamed>");
                            }
                        })
                        .join()
                        .expect("short-lived thread");
                        threads.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        // A long-lived thread too, accumulating one registration per generation.
        let long_lived = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut touches = Touches::default();
                while !stop.load(Ordering::Relaxed) {
                    touches.touch(module);
                    let _ = tls::thread_name();
                }
            })
        };

        let start = Instant::now();
        for _ in 0..reloads / ROUNDS + usize::from(round < reloads % ROUNDS) {
            module.load(library).expect("reload");
        }
        seconds += start.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for spawner in spawners {
            spawner.join().expect("spawner");
        }
        long_lived.join().expect("long-lived thread");
        assert!(
            module.unload_blocked().is_empty(),
            "{:?}",
            module.unload_blocked()
        );
        assert_eq!(module.live_generations().len(), 2, "round {round}");
        // No reload runs now: a new thread's calls all run the current generation and count
        // 1, 2, 3, whether plain or through a handle.
        std::thread::spawn(move || {
            let mut touches = Touches::default();
            assert_eq!(touches.touch(module), 1);
            assert_eq!(touches.touch(module), 2);
            assert_eq!(tls::Handle::current().touch(), 3);
        })
        .join()
        .expect("a thread calling between rounds");
    }
    println!(
        "stress: {reloads} reloads of a module with thread-local destructors in {seconds:.2} s, \
         {} threads came and went",
        threads.load(Ordering::Relaxed)
    );
    assert!(threads.load(Ordering::Relaxed) > 0);
    assert_eq!(support::Footprint::mapped_copies_of(library).len(), 1);
}
