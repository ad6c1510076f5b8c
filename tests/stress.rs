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
//!   this path): no crash, and every retired generation is unmapped.

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
                            // Plain calls: each in the generation current at the time.
                            assert!(tls::touch() >= 1);
                            // Handle calls: both in the pinned generation.
                            let pinned = tls::Handle::current();
                            let first = pinned.touch();
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
                while !stop.load(Ordering::Relaxed) {
                    assert!(tls::touch() >= 1);
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
    }
    println!(
        "stress: {reloads} reloads of a module with thread-local destructors in {seconds:.2} s, \
         {} threads came and went",
        threads.load(Ordering::Relaxed)
    );
    assert!(threads.load(Ordering::Relaxed) > 0);
    assert_eq!(support::Footprint::mapped_copies_of(library).len(), 1);
}
