//! The README's main command, `cargo run --example tour`, as a test: the same script, with its
//! builds in the shared fixture target directory.

mod support;

#[path = "../examples/http_server/client.rs"]
mod client;
#[path = "../examples/http_server/server.rs"]
mod server;
#[path = "../examples/tour/tour.rs"]
mod tour;

// The tour script reaches the crate-copy helpers as `crate::crate_copy`.
use support::crate_copy;

#[test]
fn the_tour_tells_its_story() {
    if !support::rebuilds_allowed_here("the_tour_tells_its_story") {
        return;
    }
    let fixtures = support::workspace().join("target").join("hotmod-fixtures");
    // Outside the target directory: the rebuild ignores changes inside it.
    let copy = support::workspace()
        .join("target")
        .join("hotmod-copies")
        .join("tour")
        .join("handler");
    let report = tour::run(&copy, &fixtures).expect("the tour runs to its end");

    let slow = report
        .rows
        .iter()
        .find(|r| r.what == "slow request")
        .expect("a slow request");
    assert_eq!(slow.generation, Some(report.old));
    assert_eq!(slow.body, "Hello, slow!\n");
    let new: Vec<_> = report
        .rows
        .iter()
        .filter(|r| r.what == "new request")
        .collect();
    assert_eq!(new.len(), 3);
    for row in new {
        assert_eq!(row.generation, Some(report.new));
        assert!(
            row.body.contains("(edited while the server ran)"),
            "{row:?}"
        );
    }
    assert_eq!(report.new, report.old + 1);
    assert!(!report.live.contains(&report.old), "{:?}", report.live);
    assert!(report.refusal.contains("Response"), "{}", report.refusal);
}
