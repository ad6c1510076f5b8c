//! Opt-in rollback: a new generation whose calls keep panicking right after it goes live is
//! replaced by the generation before it.

mod support;

use std::panic::catch_unwind;

use hello_fixture::hello;
use hotmod::{Event, Rollback};

fn panics(call: impl FnOnce() -> u32 + std::panic::UnwindSafe) -> bool {
    catch_unwind(call).is_err()
}

#[test]
fn a_new_generation_that_keeps_panicking_is_rolled_back() {
    let _serial = support::serial();
    let module = hello::module();
    module.set_rollback(None);
    let good = module.load(support::library("v1")).expect("v1 loads");
    module.set_rollback(Some(Rollback {
        panics_in_a_row: 3,
        within_first_calls: 10,
    }));
    let events = module.subscribe();
    let bad = module.load(support::library("v2")).expect("v2 loads");
    assert_eq!(hello::version(), 2); // call 1

    // Two panics, a good call, two panics: never three in a row.
    assert!(panics(|| hello::checked(0)));
    assert!(panics(|| hello::Handle::current().checked(0)));
    assert_eq!(hello::checked(4), 8);
    assert!(panics(|| hello::checked(0)));
    assert!(panics(|| hello::checked(0)));
    assert_eq!(module.generation(), bad);

    // The third in a row: back to the generation before.
    assert!(panics(|| hello::checked(0)));
    assert_eq!(module.generation(), good);
    assert_eq!(hello::version(), 1);
    let event = events
        .wait_for(support::EVENT_TIMEOUT, |e| {
            matches!(e, Event::RolledBack { .. })
        })
        .expect("a rolled-back event");
    let Event::RolledBack { from, to, .. } = &event else {
        unreachable!()
    };
    assert_eq!((*from, *to), (bad, good));
    assert!(
        event
            .to_string()
            .contains("3 calls in a row panicked among its first 7"),
        "{event}"
    );
    support::wait_for("the rolled-back generation to retire", || {
        !module.live_generations().contains(&bad)
    });
    module.set_rollback(None);
}

#[test]
fn a_generation_that_passed_its_first_calls_is_trusted() {
    let _serial = support::serial();
    let module = hello::module();
    module.set_rollback(None);
    module.load(support::library("v1")).expect("v1 loads");
    module.set_rollback(Some(Rollback {
        panics_in_a_row: 2,
        within_first_calls: 5,
    }));
    let trusted = module.load(support::library("v2")).expect("v2 loads");
    for n in 1..=5 {
        assert_eq!(hello::checked(n), 2 * n);
    }
    for _ in 0..3 {
        assert!(panics(|| hello::checked(0)));
    }
    assert_eq!(
        module.generation(),
        trusted,
        "panics after probation do not roll back"
    );
    module.set_rollback(None);
}
