//! Plain calls keep their generation mapped through per-thread hazard slots (see
//! hotmod/src/pin.rs): a fast slot for the outermost call, a second slot for a call nested in
//! it, a count pin deeper down. These tests nest calls across reloads and let threads that made
//! calls exit, and check that no generation in use is unmapped and no dead thread's slot is read.

mod support;

use std::sync::{Arc, Barrier};

use hello_fixture::hello;
use support::Footprint;

/// Host code nested three plain calls deep inside module code, with a reload between each
/// level: every level's generation stays loaded (and mapped) until that level returns, though
/// the innermost call took the outer levels' second slot's turn.
#[test]
fn nested_calls_keep_every_level_loaded_across_reloads() {
    let _serial = support::serial();
    let module = hello::module();
    let outer = module.load(support::library("v2")).expect("load v2");

    let inside_outer = Arc::new(Barrier::new(2));
    let resume_outer = Arc::new(Barrier::new(2));
    let inside_middle = Arc::new(Barrier::new(2));
    let resume_middle = Arc::new(Barrier::new(2));
    let caller = {
        let (inside_outer, resume_outer) = (inside_outer.clone(), resume_outer.clone());
        let (inside_middle, resume_middle) = (inside_middle.clone(), resume_middle.clone());
        std::thread::spawn(move || {
            // Warm the thread so that the outer call takes the fast slot.
            assert_eq!((hello::version(), hello::version()), (2, 2));
            // Level 1, in v2: host code called back from module code.
            hello::call_back(&|| {
                inside_outer.wait();
                resume_outer.wait();
                // Level 2, in whatever is current now (v1): the thread's second slot.
                hello::call_back(&|| {
                    // Level 3: both slots are held, so this one pins by count.
                    let inner = hello::version();
                    inside_middle.wait();
                    resume_middle.wait();
                    inner
                })
            })
        })
    };

    inside_outer.wait();
    let middle = module.load(support::library("v1")).expect("load v1");
    resume_outer.wait();
    inside_middle.wait();
    // The middle level runs in v1 (its innermost call has returned); make v1 not current.
    let newest = module.load(support::library("v2")).expect("load v2 again");
    let live = module.live_generations();
    assert!(
        live.contains(&outer) && live.contains(&middle),
        "the outer ({outer}) and middle ({middle}) levels' generations stay while they run: {live:?}"
    );
    assert_eq!(
        Footprint::mapped_copies_of(support::library("v1")).len(),
        1,
        "the middle level's library stays mapped"
    );
    resume_middle.wait();

    // 1 (v1's version, level 3) + 100 × 1 (level 2, in v1) + 100 × 2 (level 1, in v2).
    assert_eq!(caller.join().expect("caller"), 301);
    assert_eq!(module.live_generations(), vec![0, newest]);
    assert!(
        Footprint::mapped_copies_of(support::library("v1")).is_empty(),
        "v1 unmapped once its call returned"
    );
}

/// Threads that made plain calls exit while generations come and go. Each thread's stack (which
/// holds its thread-locals, the fast slot among them) is larger than glibc keeps cached, so it is
/// unmapped at join: a collector that still read an exited thread's slot would fault.
#[test]
fn threads_that_made_calls_exit_and_their_slots_are_never_read_again() {
    let _serial = support::serial();
    let module = hello::module();
    let libraries = [support::library("v1"), support::library("v2")];
    for round in 0..8 {
        module.load(libraries[round % 2]).expect("load");
        let expected = if round % 2 == 0 { 1 } else { 2 };
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(move || {
                // The first call registers the thread's fast slot, the second one uses it.
                assert_eq!((hello::version(), hello::version()), (expected, expected));
            })
            .expect("spawn")
            .join()
            .expect("the calling thread");
        // Retires the previous generation: a hazard scan over every registered slot.
        module.load(libraries[(round + 1) % 2]).expect("load");
        assert_eq!(
            module.live_generations().len(),
            2,
            "generation 0 and the current one"
        );
    }
}
