//! The built-in rebuild builds a library like the host's own dependencies (docs/guarantees.md,
//! "Watching, rebuilding and staging"): a dependency shared by host and module gets the host's
//! features. `fixtures/feature_fixture` depends on `fixtures/feature_dep` without its feature
//! `wide`; this test's package enables `wide`. Built for the module's package alone (cargo's
//! resolver 2 unifies features per selection), the reloaded library's copy of `feature_dep` would
//! lack `wide`: another build of the same crate than the host links, whose types may have other
//! layouts. (Its own test binary: the rebuild selects this binary's target, `--test
//! rebuild_features`, so that this package's dev-dependencies count, and relinks it.)

mod support;

use std::time::Duration;

use feature_fixture::shared;
use hotmod::Event;

/// The first build may compile what this test binary links again, with other features, when
/// the test binary was built in a larger selection (a whole-workspace `cargo test`).
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// Stops the module's rebuild however the test ends.
struct Unwatch;

impl Drop for Unwatch {
    fn drop(&mut self) {
        shared::module().unwatch();
    }
}

#[test]
fn a_rebuilt_library_shares_the_hosts_dependency_features() {
    if !support::rebuilds_allowed_here("a_rebuilt_library_shares_the_hosts_dependency_features") {
        return;
    }
    let _serial = support::serial();
    // The host's build: feature_dep with `wide`, in this binary and in generation 0.
    assert!(feature_dep::wide());
    assert!(shared::wide(), "generation 0 links the host's feature_dep");
    let config = feature_dep::Config {
        id: 1,
        extra: 7,
        scale: 3,
    };
    assert_eq!(shared::scale(&config), 3);
    let module = shared::module();
    let events = module.subscribe();
    // The host's target directory and profile, as `#[hot_module(rebuild)]` has them.
    module.rebuild().start().expect("the rebuild starts");
    let _unwatch = Unwatch;

    // `cargo test` built the fixture's cdylib too, as a dependency of this binary, with this
    // package's features: make cargo compile it again, or the rebuild would find it fresh. A
    // newer modification time on its lib.rs (the text stays as committed) makes it stale; a new
    // source file no module refers to wakes the rebuild.
    let crate_dir = support::workspace().join("fixtures/feature_fixture");
    let before = std::time::SystemTime::now();
    std::fs::OpenOptions::new()
        .append(true)
        .open(crate_dir.join("src/lib.rs"))
        .and_then(|lib| lib.set_modified(before))
        .expect("touch the fixture's lib.rs");
    let trigger = support::SourceTrigger::create(&crate_dir);
    let mut seen = Vec::new();
    events
        .wait_for(BUILD_TIMEOUT, |event| {
            seen.push(event.clone());
            support::is_build_outcome(event)
        })
        .expect("the source change has an outcome");
    let Some(Event::Loaded {
        generation, path, ..
    }) = seen.last()
    else {
        panic!("expected the build to be loaded, got {seen:?}")
    };
    assert_eq!(*generation, 1);
    let built = std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .expect("the loaded library's modification time");
    assert!(built >= before, "the rebuild compiled the crate again");
    assert_eq!(module.generation(), 1);
    assert!(
        shared::wide(),
        "generation 1's copy of feature_dep was built without the host's feature `wide`"
    );
    assert_eq!(
        shared::scale(&config),
        3,
        "generation 1 reads the host's layout"
    );
    // Stop before the trigger file goes, so its removal builds nothing.
    module.unwatch();
    drop(trigger);
}

/// The same crate built with other features is another type: a library built for the module's
/// package alone (`cargo build -p feature_fixture`, without `wide`) is refused, naming the type
/// and the field the host has and the library lacks, and generation 0 keeps serving.
#[test]
fn a_library_whose_shared_crate_has_other_features_is_refused() {
    let _serial = support::serial();
    let (error, changes) = refused_by_another_build(shared::module());
    assert!(
        changes.iter().any(|c| matches!(c,
            hotmod::Incompatibility::TypeChanged { name, expected, found }
                if name == "feature_dep::Config"
                    && expected.contains("extra: u64")
                    && !found.contains("extra"))),
        "{error}"
    );
    assert_eq!(shared::square(2.0).area(), 4.0);
    let config = feature_dep::Config {
        id: 1,
        extra: 7,
        scale: 3,
    };
    assert_eq!(shared::scale(&config), 3);
}

/// An opaque newtype is compared by the wrapped type's `TypeId`, which differs between two builds
/// of its crate with other features: refused, naming the newtype and saying why.
#[test]
fn an_opaque_type_from_another_build_of_its_crate_is_refused() {
    let _serial = support::serial();
    let (error, changes) = refused_by_another_build(feature_fixture::opaque::module());
    assert!(
        matches!(changes.as_slice(), [hotmod::Incompatibility::TypeChanged { name, found, .. }]
            if name == "feature_fixture::opaque::Wrapped"
                && found.contains("another build of its crate")),
        "{error}"
    );
    let wrapped = feature_fixture::opaque::Wrapped(feature_dep::Plain(5));
    assert_eq!(feature_fixture::opaque::unwrap(&wrapped), 5);
}

/// Offers `module` the fixture built for its own package alone (its feature_dep without `wide`),
/// checks that the load is refused as incompatible and the module's generation stays, and
/// returns the error and its changes.
fn refused_by_another_build(
    module: &'static hotmod::Module,
) -> (hotmod::Error, Vec<hotmod::Incompatibility>) {
    let before = module.generation();
    let error = module
        .load(support::library("feature"))
        .expect_err("another build of feature_dep");
    let hotmod::Error::Incompatible { changes, .. } = &error else {
        panic!("expected an incompatibility, got {error}");
    };
    let changes = changes.clone();
    assert_eq!(
        module.generation(),
        before,
        "a refused load changes nothing"
    );
    (error, changes)
}
