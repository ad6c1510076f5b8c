//! Issue 14's consistency rule, against real cdylibs of `graph_top` (`a`, which calls `b`)
//! and `graph_base` (`b`): one call into hot code sees one generation of every hot module it
//! can reach, for its whole duration; what it can reach is its generation's hot imports. One
//! test, in one process of its own, because its first part needs `a`'s generation 0 current.

mod support;

use graph_base::b;
use graph_top::a;

#[test]
fn calls_see_one_generation_of_what_they_reach() {
    a_call_that_spans_a_reload_of_what_it_calls_sees_one_generation_throughout();
    a_long_call_keeps_only_what_it_can_reach();
    a_handle_pins_one_world();
}

/// A `Handle` pins a view: every call through it (and its clones) sees the generations of what
/// its generation reaches that were current when it was taken, kept loaded until the last of
/// them is dropped; plain calls meanwhile see the newest.
fn a_handle_pins_one_world() {
    a::module()
        .load(support::library("graph-a2"))
        .expect("a loads");
    b::module()
        .load(support::library("graph-b1"))
        .expect("b1 loads");
    let handle = a::Handle::current();
    assert_eq!(handle.versions(), (2, 1));
    let old_b = b::module().generation();
    let new_b = b::module()
        .load(support::library("graph-b2"))
        .expect("b2 loads");
    assert_eq!(a::versions(), (2, 2), "a plain call sees the new b");
    assert_eq!(handle.versions(), (2, 1), "the handle's world keeps b1");
    let clone = handle.clone();
    drop(handle);
    assert_eq!(clone.versions(), (2, 1), "and so does its clone");
    assert!(
        b::module().live_generations().contains(&old_b),
        "b1 stays loaded while a handle that reaches it lives"
    );
    drop(clone);
    support::wait_for("b1 to retire once the last handle went", || {
        b::module().live_generations() == [0, new_b]
    });
}

/// Opens `gate` for the call held at it, once it is there.
fn open_gate(gate: &std::path::Path) {
    let entered = gate.with_extension("entered");
    support::wait_for("the call to reach its gate", || entered.exists());
    std::fs::write(gate.with_extension("go"), b"").expect("open the gate");
}

/// The consistency rule: one call into hot code sees one generation of every module it
/// reaches. A call in `a` that spans a reload of `b` sees the old `b` throughout, and keeps it
/// loaded until it returns; a call that begins after the reload sees the new `b` throughout.
/// For `a`'s generation 0 (compiled into the host) and a loaded `a`, each by a plain call and
/// through a `Handle`.
fn a_call_that_spans_a_reload_of_what_it_calls_sees_one_generation_throughout() {
    let dir = support::TempDir::new("spans");
    // A fresh thread each round: a handle's first call on a thread registers its slot first.
    let rounds = [
        (None, false),
        (None, true),
        (Some("graph-a2"), false),
        (Some("graph-a2-b2"), true),
    ];
    for (round, (top, through_handle)) in rounds.into_iter().enumerate() {
        match top {
            // First `a`'s generation 0: no generation of `a` was loaded yet in this process.
            None => assert_eq!(a::module().generation(), 0),
            Some(top) => {
                a::module().load(support::library(top)).expect("a loads");
            }
        }
        let old_b = b::module()
            .load(support::library("graph-b1"))
            .expect("b1 loads");
        let gate = dir.path().join(format!("gate{round}"));
        let held = {
            let gate = gate.to_string_lossy().into_owned();
            std::thread::spawn(move || {
                if through_handle {
                    a::Handle::current().versions_across(gate)
                } else {
                    a::versions_across(gate)
                }
            })
        };
        support::wait_for("the call to reach its gate", || {
            gate.with_extension("entered").exists()
        });
        let new_b = b::module()
            .load(support::library("graph-b2"))
            .expect("b2 loads");
        assert_eq!(
            a::versions().1,
            2,
            "a call that begins after the load sees b2"
        );
        assert!(
            b::module().live_generations().contains(&old_b),
            "round {round}: b1 (generation {old_b}) stays loaded while a call that can reach it \
             runs: {:?}",
            b::module().live_generations()
        );
        open_gate(&gate);
        assert_eq!(
            held.join().expect("the held call"),
            (1, 1),
            "round {round}: the call that spanned the load saw b1 throughout"
        );
        support::wait_for("b1 to retire once the call returned", || {
            b::module().live_generations() == [0, new_b]
        });
    }
}

/// What a call can reach is its generation's hot imports: a long call in `b` (which imports no
/// hot module) keeps `b`'s generation, and no generation of `a`.
fn a_long_call_keeps_only_what_it_can_reach() {
    let dir = support::TempDir::new("reach");
    let held_b = b::module()
        .load(support::library("graph-b2"))
        .expect("b2 loads");
    let gate = dir.path().join("gate");
    let held = {
        let gate = gate.to_string_lossy().into_owned();
        std::thread::spawn(move || b::held_until(gate))
    };
    support::wait_for("the call to reach its gate", || {
        gate.with_extension("entered").exists()
    });
    let first_a = a::module()
        .load(support::library("graph-a2"))
        .expect("a2 loads");
    let second_a = a::module()
        .load(support::library("graph-a2-b2"))
        .expect("a2 built against b2 loads");
    assert_eq!(
        a::module().live_generations(),
        [0, second_a],
        "a's generation {first_a} retired at once: the call in b cannot reach `a`"
    );
    let newer_b = b::module()
        .load(support::library("graph-b1"))
        .expect("b1 loads");
    assert!(
        b::module().live_generations().contains(&held_b),
        "the call's own generation of b stays"
    );
    open_gate(&gate);
    assert_eq!(held.join().expect("the held call"), 2);
    support::wait_for("b2 to retire once its call returned", || {
        b::module().live_generations() == [0, newer_b]
    });
}
