//! `#[hot_module(watch)]` and `#[hot_module(rebuild)]` take effect at the module's first use:
//! the watcher loads a library published at the module's path, the rebuild builds the crate
//! after a source change and loads the result. (`path = "…"` is checked in
//! `tests/artifact_path.rs`.) The fixture is `fixtures/attr_fixture`, one module per argument.

mod support;

use attr_fixture::{rebuilt, watched};
use hotmod::Event;

#[test]
fn the_watch_argument_starts_watching_at_first_use() {
    let _serial = support::serial();
    let module = watched::module();
    let dir = support::TempDir::new("attr-watch");
    let artifact = dir.path().join("libattr_fixture.so");
    // Before first use: naming the module does not start anything.
    module.set_path(&artifact);
    let events = module.subscribe();
    let watching_before = support::inotify_instances();

    // First use: generation 0 answers, and the watcher starts (one more inotify instance).
    assert_eq!(watched::answer(), 3);
    assert_eq!(module.generation(), 0);
    assert_eq!(
        support::inotify_instances(),
        watching_before + 1,
        "the first call started a watcher"
    );

    support::publish_library(support::attr_library(), &artifact);
    let generation = module
        .wait_for_generation(1, support::EVENT_TIMEOUT)
        .expect("the watcher loads the published library");
    assert_eq!(generation, 1);
    let event = events
        .wait_for(support::EVENT_TIMEOUT, |e| {
            matches!(e, Event::Loaded { .. })
        })
        .expect("a loaded event");
    assert!(
        matches!(&event, Event::Loaded { generation: 1, path, .. } if *path == artifact),
        "{event:?}"
    );
    assert_eq!(watched::answer(), 3);
    module.unwatch();
    // Leave nothing running for the next test's count.
    support::wait_for("the watcher to close", || {
        support::inotify_instances() == watching_before
    });
}

#[test]
fn the_rebuild_argument_starts_rebuilding_at_first_use() {
    if !support::rebuilds_allowed_here("the_rebuild_argument_starts_rebuilding_at_first_use") {
        return;
    }
    let _serial = support::serial();
    support::first_use_starts_the_attr_rebuild(rebuilt::module(), || {
        assert_eq!(rebuilt::answer(), 4);
    });
    assert_eq!(rebuilt::answer(), 4);
}
