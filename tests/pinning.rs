//! The plain-call pinning protocol (hotmod/src/pin.rs) against a real cdylib: calls nested inside
//! module code (thread-local slot, then the heap slot, then a counted pin), a reload while calls
//! are nested, and many threads calling while generations are replaced — every replaced
//! generation must retire once its last call is over, and thread exits must unregister their
//! slots.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use pin_fixture::ops;

fn load() -> u64 {
    ops::module()
        .load(support::library("pin"))
        .expect("load pin_fixture")
}

/// Only generation 0 and the current one are left: nothing else is pinned or in a call.
fn assert_only_current_is_live() {
    let module = ops::module();
    let current = module.generation();
    support::wait_for("the replaced generations to retire", || {
        let live = module.live_generations();
        if live == [0, current] {
            Ok(())
        } else {
            Err(format!("live {live:?}, current {current}"))
        }
    });
    assert!(
        module.unload_blocked().is_empty(),
        "blocked: {:?}",
        module.unload_blocked()
    );
}

#[test]
fn nested_plain_calls_run_and_release_every_level() {
    let _serial = support::serial();
    let first = load();
    // Four plain calls deep, each from module code: the first holds the thread-local slot, the
    // second the heap slot, the deeper ones pin by count.
    let result = ops::apply(
        &|x| {
            ops::apply(
                &|y| ops::apply(&|z| ops::apply(&|w| ops::add(w, 10), z), y),
                x,
            )
        },
        1,
    );
    assert_eq!(result, 1 + 10 + 4);

    // Nothing is left holding `first`: a reload retires it at once.
    let second = load();
    assert!(second > first);
    assert!(
        !ops::module().live_generations().contains(&first),
        "{:?}",
        ops::module().live_generations()
    );
    assert_only_current_is_live();
}

#[test]
fn a_reload_inside_a_nested_call_keeps_the_outer_generation_until_it_returns() {
    let _serial = support::serial();
    let outer = load();
    let inner = std::cell::Cell::new(0);
    let result = ops::apply(
        &|x| {
            // Running inside generation `outer`'s code: load the next generation now.
            inner.set(load());
            assert!(
                ops::module().live_generations().contains(&outer),
                "the running call keeps it"
            );
            // A plain call from here runs the new current generation.
            assert_eq!(ops::Handle::current().generation(), inner.get());
            ops::add(x, 100)
        },
        1,
    );
    assert_eq!(result, 102);
    assert!(inner.get() > outer);
    // The outer call has returned: its generation retired when it did.
    assert!(
        !ops::module().live_generations().contains(&outer),
        "{:?}",
        ops::module().live_generations()
    );
    assert_only_current_is_live();
}

#[test]
fn threads_calling_through_reloads_never_see_a_retired_generation() {
    let _serial = support::serial();
    load();
    const WORKERS: u64 = 3;
    // Several rounds of fresh threads: slots are registered, unregistered at exit and reused.
    for _round in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let calling = Arc::new(AtomicU64::new(0));
        let workers: Vec<_> = (0..WORKERS)
            .map(|t| {
                let (stop, calling) = (stop.clone(), calling.clone());
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    loop {
                        assert_eq!(ops::add(n, t), n + t);
                        assert_eq!(ops::apply(&|x| ops::add(x, 1), n), n + 2, "a nested call");
                        if n == 0 {
                            calling.fetch_add(1, Ordering::SeqCst);
                        }
                        n += 1;
                        if stop.load(Ordering::Relaxed) {
                            return n;
                        }
                    }
                })
            })
            .collect();
        // Once every worker is calling, replace the generation under them.
        support::wait_for("the workers to start calling", || {
            calling.load(Ordering::SeqCst) == WORKERS
        });
        for _ in 0..10 {
            load();
        }
        stop.store(true, Ordering::Relaxed);
        for worker in workers {
            assert!(worker.join().expect("worker") > 0);
        }
        assert_only_current_is_live();
    }
}
