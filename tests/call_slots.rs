//! Plain calls keep their generation mapped through per-thread slots (see hotmod/src/pin.rs):
//! the outermost call announces a view (the epoch it began at) in the thread's fast slot, and
//! every call nested in it runs the generation that was current then. These tests nest calls
//! across reloads and let threads that made calls exit, and check that no generation in use is
//! unmapped, that nested calls keep the outer call's view, and that no dead thread's slot is
//! read.

mod support;

use std::sync::{Arc, Barrier};

use hello_fixture::hello;
use support::Footprint;

/// Host code nested three plain calls deep inside module code, with a reload between each
/// level: every level runs the generation that was current when the outermost call began (its
/// view), which stays loaded (and mapped) until that call returns, while calls that begin after
/// a reload run the new generation.
#[test]
fn nested_calls_keep_the_outer_calls_view_across_reloads() {
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
                // Level 2: v1 is current now, but this call is inside level 1's view: v2.
                hello::call_back(&|| {
                    // Level 3: the same view.
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
    // A call that begins after the load runs v1.
    assert_eq!(hello::version(), 1);
    resume_outer.wait();
    inside_middle.wait();
    let newest = module.load(support::library("v2")).expect("load v2 again");
    let live = module.live_generations();
    assert!(
        live.contains(&outer),
        "the outer call's generation ({outer}) stays while its view lasts: {live:?}"
    );
    assert!(
        !live.contains(&middle),
        "v1 ({middle}) was current only between the outer call's start and now; nothing ran in \
         it, so it retired: {live:?}"
    );
    resume_middle.wait();

    // 2 (v2's version, level 3) + 100 × 2 (level 2, in v2) + 100 × 2 (level 1, in v2).
    assert_eq!(caller.join().expect("caller"), 402);
    assert_eq!(module.live_generations(), vec![0, newest]);
    assert!(
        Footprint::mapped_copies_of(support::library("v1")).is_empty(),
        "v1 unmapped"
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
