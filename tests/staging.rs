//! Staged mode end to end: turning it off applies what is staged, and generations that arrive
//! through the watcher or the built-in rebuild are staged like loaded ones, until
//! `apply_staged()`.

mod support;

use std::path::Path;
use std::time::Duration;

use hello_fixture::hello;
use hotmod::{Event, Events};

/// The rebuild's first build compiles hotmod's dependencies in its target directory.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// Starts each test from v1 as a freshly loaded, current generation, with nothing running.
fn start_from_v1() -> u64 {
    let module = hello::module();
    module.unwatch();
    module.set_staged(false);
    module.load(support::library("v1")).expect("v1 loads")
}

/// The next event that is a load's outcome: staged, loaded or rejected (or a failed build).
fn next_outcome(events: &Events, timeout: Duration) -> Event {
    events
        .wait_for(timeout, |e| {
            matches!(
                e,
                Event::Staged { .. }
                    | Event::Loaded { .. }
                    | Event::Rejected { .. }
                    | Event::BuildFailed { .. }
            )
        })
        .expect("a load outcome")
}

/// Checks that `staged` waits: staged, not current, and v1 (generation `current`) serves.
fn waits_for_apply(staged: u64, current: u64) {
    let module = hello::module();
    assert_eq!(module.staged_generation(), Some(staged));
    assert_eq!(module.generation(), current);
    assert_eq!(hello::version(), 1);
    assert_eq!(hello::Handle::current().generation(), current);
    assert!(module.live_generations().contains(&staged));
}

#[test]
fn turning_staging_off_applies_the_staged_generation() {
    let _serial = support::serial();
    let module = hello::module();
    let current = start_from_v1();
    let events = module.subscribe();

    module.set_staged(true);
    let staged = module.load(support::library("v2")).expect("v2 verifies");
    waits_for_apply(staged, current);

    module.set_staged(false);
    assert_eq!(module.generation(), staged);
    assert_eq!(module.staged_generation(), None);
    assert_eq!(hello::version(), 2);
    let event = events
        .wait_for(support::EVENT_TIMEOUT, |e| {
            matches!(e, Event::Loaded { .. })
        })
        .expect("a loaded event");
    assert!(
        matches!(event, Event::Loaded { generation, .. } if generation == staged),
        "{event:?}"
    );

    // And staging is off: the next load is current at once.
    let next = module.load(support::library("v1")).expect("v1 loads");
    assert_eq!(module.generation(), next);
    assert_eq!(module.staged_generation(), None);
    assert_eq!(hello::version(), 1);
}

#[test]
fn a_library_the_watcher_loads_is_staged_until_applied() {
    let _serial = support::serial();
    let module = hello::module();
    let current = start_from_v1();
    let dir = support::TempDir::new("staging-watch");
    let artifact = dir.path().join("libhello_fixture.so");
    module.set_path(&artifact);
    let events = module.subscribe();
    module.set_staged(true);
    module.watch().expect("watch starts");

    support::publish_library(support::library("v2"), &artifact);
    let event = next_outcome(&events, support::EVENT_TIMEOUT);
    let Event::Staged {
        generation, path, ..
    } = &event
    else {
        panic!("expected the watcher's load to be staged, got {event:?}")
    };
    assert_eq!(*generation, current + 1);
    assert_eq!(path, &artifact);
    waits_for_apply(*generation, current);

    assert_eq!(module.apply_staged(), Some(*generation));
    assert_eq!(module.generation(), *generation);
    assert_eq!(module.staged_generation(), None);
    assert_eq!(hello::version(), 2);
    module.unwatch();
    module.set_staged(false);
}

#[test]
fn a_library_the_rebuild_builds_is_staged_until_applied() {
    let _serial = support::serial();
    let module = hello::module();
    let current = start_from_v1();
    if !support::rebuilds_allowed_here("a_library_the_rebuild_builds_is_staged_until_applied") {
        return;
    }
    let dir = support::TempDir::in_target("staging-rebuild");
    let copy = support::copy_fixture("hello_fixture", &dir.path().join("hello_fixture"));
    let target_dir = support::workspace().join("target/hotmod-rebuild");
    let events = module.subscribe();
    module.set_staged(true);
    support::start_hello_rebuild(&copy, &target_dir);

    support::crate_copy::edit(
        &copy.join("src/lib.rs"),
        &[("{ 2 } else { 1 }", "{ 2 } else { 6 }")],
    )
    .expect("save an edited source");
    let event = next_outcome(&events, BUILD_TIMEOUT);
    let Event::Staged {
        generation, path, ..
    } = &event
    else {
        panic!("expected the rebuilt library to be staged, got {event}")
    };
    assert_eq!(*generation, current + 1);
    assert_eq!(
        path,
        &target_dir
            .join("debug")
            .join(Path::new("libhello_fixture.so"))
    );
    waits_for_apply(*generation, current);

    assert_eq!(module.apply_staged(), Some(*generation));
    assert_eq!(module.generation(), *generation);
    assert_eq!(module.staged_generation(), None);
    assert_eq!(hello::version(), 6);
    module.unwatch();
    module.set_staged(false);
}
