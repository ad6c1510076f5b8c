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
    // The HTTP example as a project of its own: the one tests/http_restart.rs builds too.
    let project = fixtures.join("http-restart");
    let report = tour::run(&copy, &fixtures, &project).expect("the tour runs to its end");

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

    // The same edit by a kept-state restart: the slow request by the old server, new ones by
    // the new server, and the request counter went on.
    let restart = &report.restart;
    assert_ne!(restart.old_pid, restart.new_pid);
    let whats: Vec<&str> = restart.rows.iter().map(|r| r.what).collect();
    assert_eq!(
        whats,
        [
            "first request",
            "first request",
            "slow request",
            "new request",
            "new request"
        ]
    );
    for (n, row) in restart.rows.iter().enumerate() {
        let pid = if row.what == "new request" {
            restart.new_pid
        } else {
            restart.old_pid
        };
        assert_eq!(row.pid, Some(pid), "{row:?}");
        assert_eq!(row.count, Some(n as u64 + 1), "{row:?}");
    }
}
