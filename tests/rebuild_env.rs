//! `HOTMOD_REBUILD=1` starts the built-in rebuild at the module's first use, for a module whose
//! attribute asks for nothing. (Its own test binary: the environment is read once per process.)

mod support;

use std::path::Path;
use std::time::Duration;

use attr_fixture::plain;
use hotmod::Event;

/// The rebuild's first build may compile hotmod's dependencies for the fixture crate alone.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

#[test]
fn the_environment_starts_rebuilding_at_first_use() {
    if !support::rebuilds_allowed_here("the_environment_starts_rebuilding_at_first_use") {
        return;
    }
    let module = plain::module();
    let events = module.subscribe();
    let watching_before = support::inotify_instances();
    // The only test in this binary: nothing else reads the environment concurrently.
    std::env::remove_var("HOTMOD_WATCH");
    std::env::set_var("HOTMOD_REBUILD", "1");

    // First use: generation 0 answers, and the rebuild starts watching the crate's sources.
    assert_eq!(plain::answer(), 1);
    assert_eq!(module.generation(), 0);
    assert_eq!(
        support::inotify_instances(),
        watching_before + 1,
        "the first call started the rebuild"
    );

    // A source change (a new file no module refers to) builds the crate and loads it.
    let crate_dir = support::workspace().join("fixtures/attr_fixture");
    let trigger = support::SourceTrigger::create(&crate_dir);
    let started = events
        .wait_for(support::EVENT_TIMEOUT, |e| {
            matches!(e, Event::BuildStarted { .. })
        })
        .expect("the source change starts a build");
    assert!(
        matches!(&started, Event::BuildStarted { package, .. } if package == "attr_fixture"),
        "{started:?}"
    );
    let outcome = events
        .wait_for(BUILD_TIMEOUT, |e| {
            matches!(
                e,
                Event::Loaded { .. } | Event::BuildFailed { .. } | Event::Rejected { .. }
            )
        })
        .expect("a build outcome");
    let Event::Loaded {
        generation, path, ..
    } = &outcome
    else {
        panic!("expected the build to be loaded, got {outcome}")
    };
    assert_eq!(*generation, 1);
    // The host's target directory and profile: target/<profile>/libattr_fixture.so.
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("a cargo layout");
    assert_eq!(*path, profile_dir.join("libattr_fixture.so"));
    assert_eq!(module.generation(), 1);
    assert_eq!(plain::answer(), 1);
    // Stop before the trigger file goes, so its removal builds nothing.
    module.unwatch();
    drop(trigger);
}
