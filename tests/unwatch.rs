//! `unwatch()` stops both the artifact watcher and the built-in rebuild: afterwards neither a
//! library published at the module's path nor a saved source makes a new generation.
//!
//! Rather than waiting some time and seeing nothing happen, the test waits until the inotify
//! instances the watcher and the rebuild held are closed: from then on no file event can reach
//! either of them. It then publishes a library and saves a source, and an explicit `reload()`
//! shows the library was ready and had not been loaded by anyone else.

mod support;

use hello_fixture::hello;
use hotmod::Event;

#[test]
fn unwatch_stops_the_watcher_and_the_rebuild() {
    let _serial = support::serial();
    let module = hello::module();
    let dir = support::TempDir::new("unwatch");
    let artifact = dir.path().join("libhello_fixture.so");
    let copy = support::copy_fixture("hello_fixture", &dir.path().join("hello_fixture"));
    let baseline = support::inotify_instances();

    module.set_path(&artifact);
    let events = module.subscribe();
    module.watch().expect("watch starts");
    support::start_hello_rebuild(&copy, &support::workspace().join("target/hotmod-rebuild"));
    assert_eq!(
        support::inotify_instances(),
        baseline + 2,
        "the watcher and the rebuild each hold an inotify instance"
    );

    // The watcher runs: a published library becomes the next generation. (Published with one
    // file event, so the watcher has nothing left to do once it is loaded.)
    support::link_library(support::library("v2"), &artifact);
    let event = events
        .wait_for(support::EVENT_TIMEOUT, |e| {
            matches!(e, Event::Loaded { .. })
        })
        .expect("the watcher loads v2");
    assert!(
        matches!(&event, Event::Loaded { generation: 1, path, .. } if *path == artifact),
        "{event:?}"
    );
    assert_eq!(hello::version(), 2);

    module.unwatch();
    support::wait_for("unwatch to close both inotify instances", || {
        support::inotify_instances() == baseline
    });

    // A new library at the path and a saved source: nothing is listening any more.
    support::publish_library(support::library("v1"), &artifact);
    support::crate_copy::edit(
        &copy.join("src/lib.rs"),
        &[("{ 2 } else { 1 }", "{ 2 } else { 9 }")],
    )
    .expect("save an edited source");
    // The library was ready: an explicit reload loads it as the very next generation.
    assert_eq!(module.reload().expect("reload v1"), 2);
    assert_eq!(hello::version(), 1);
    assert_eq!(module.generation(), 2);
    // Every event since the watcher's load came from that reload.
    let mut after = Vec::new();
    while let Some(event) = events.try_recv() {
        after.push(event);
    }
    assert!(
        after.iter().all(|e| match e {
            Event::Loaded {
                generation, path, ..
            } => *generation == 2 && *path == artifact,
            Event::Retired { .. } => true,
            _ => false,
        }),
        "events after unwatch other than the explicit reload's: {after:?}"
    );
}
