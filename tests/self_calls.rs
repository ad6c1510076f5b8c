//! Module code that calls its own module's `pub fn`s runs its own generation: a call in flight
//! in generation N that calls another function of the module gets generation N's answer, even
//! when another generation became current meanwhile; and a plain call from module code whose
//! generation is current gets that generation.

mod support;

use std::sync::{Arc, Barrier};

use hello_fixture::hello;

/// Loads `outer`, starts `version_after` on another thread (in `outer`'s generation), holds it
/// inside module code while `inner` is loaded and current, then lets it call `version()`;
/// returns what that inner call answered.
fn inner_answer_after_a_reload(outer: &str, inner: &str) -> u32 {
    let module = hello::module();
    let held = module.load(support::library(outer)).expect("load outer");
    let (entered, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let call = {
        let (entered, release) = (Arc::clone(&entered), Arc::clone(&release));
        std::thread::spawn(move || hello::version_after(&entered, &release))
    };
    entered.wait();
    // The outer call is inside generation `held` now; another one becomes current.
    let current = module.load(support::library(inner)).expect("load inner");
    assert_ne!(current, held);
    assert_eq!(module.generation(), current);
    assert!(
        module.live_generations().contains(&held),
        "the call in flight keeps its generation"
    );
    release.wait();
    call.join().expect("the outer call returns")
}

#[test]
fn a_call_in_flight_calls_its_own_generation_after_a_reload() {
    let _serial = support::serial();
    assert_eq!(
        inner_answer_after_a_reload("v2", "v1"),
        2,
        "a v2 call's own call of version() ran another generation"
    );
    assert_eq!(hello::version(), 1, "v1 is current");
    assert_eq!(
        inner_answer_after_a_reload("v1", "v2"),
        1,
        "a v1 call's own call of version() ran another generation"
    );
    assert_eq!(hello::version(), 2, "v2 is current");
}

#[test]
fn a_plain_call_from_module_code_runs_the_current_generation() {
    let _serial = support::serial();
    let module = hello::module();
    for variant in ["v1", "v2", "v1", "v2"] {
        let generation = module.load(support::library(variant)).expect("load");
        let expected = if variant == "v2" { 2 } else { 1 };
        assert_eq!(
            hello::version_from_inside(),
            expected,
            "generation {generation} ({variant}) called its own version()"
        );
        assert_eq!(
            hello::Handle::current().version_from_inside(),
            expected,
            "through a handle of generation {generation}"
        );
    }
}
