//! Reloads never wait for snapshots: neither for the handles a `snapshot!` returned, nor for a
//! snapshot being taken at that very moment (hotmod/src/snapshot.rs: readers never block
//! writers). Each load runs on another thread and must finish, within a generous timeout, while
//! the snapshot is held; a load that waited would time out and fail the test.

mod support;

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;

use hello_fixture::{hello, other};

fn load_pair(variant: &str) -> Vec<u64> {
    let library = support::library(variant);
    hotmod::load_all([(hello::module(), library), (other::module(), library)])
        .expect("the pair loads")
}

#[test]
fn a_load_completes_while_a_snapshots_handles_are_held() {
    let _serial = support::serial();
    let old = load_pair("v1");
    support::library("v2"); // built before the timed part
    let (h, o) = hotmod::snapshot!(hello_fixture::hello, hello_fixture::other);
    assert_eq!((h.generation(), o.generation()), (old[0], old[1]));

    // Not joined unless it finished: a load stuck behind the snapshot fails the test by the
    // timeout instead of hanging it.
    let (done, finished) = mpsc::channel();
    let loader = thread::spawn(move || {
        let single = hello::module().load(support::library("v2")).expect("load");
        let pair = load_pair("v2");
        let _ = done.send(());
        (single, pair)
    });
    finished
        .recv_timeout(support::EVENT_TIMEOUT)
        .expect("the loads finished while the snapshot was held");
    let (single, pair) = loader.join().expect("loader");
    assert_eq!(hello::module().generation(), pair[0]);
    assert!(single < pair[0]);
    // The snapshot still runs what it captured.
    assert_eq!((h.version(), o.version()), (1, 1));
    assert_eq!((hello::version(), other::version()), (2, 2));
}

#[test]
fn a_load_completes_while_a_snapshot_is_being_taken() {
    let _serial = support::serial();
    let old = load_pair("v1");
    support::library("v2"); // built before the timed part
    let entered = Arc::new(Barrier::new(2));
    let (done, finished) = mpsc::channel();
    let mut attempts = 0;

    let loader = {
        let entered = Arc::clone(&entered);
        thread::spawn(move || {
            entered.wait();
            let numbers = load_pair("v2");
            let _ = done.send(numbers.clone());
            numbers
        })
    };
    let (h, o) = hotmod::snapshot(|| {
        attempts += 1;
        let h = hello::Handle::current();
        if attempts == 1 {
            // Inside the capture: a joint load of both modules starts and must finish before
            // the second handle is even taken.
            entered.wait();
            let numbers = finished
                .recv_timeout(support::EVENT_TIMEOUT)
                .expect("the load finished while a snapshot was being taken");
            assert_eq!(hello::module().generation(), numbers[0]);
        }
        (h, other::Handle::current())
    });
    let new = loader.join().expect("loader");
    // The capture saw the swap and started again: the snapshot is the new pair, never a mix.
    assert_eq!(attempts, 2, "the interrupted capture was retried");
    assert!(h.generation() > old[0] && o.generation() > old[1]);
    assert_eq!(vec![h.generation(), o.generation()], new);
    assert_eq!((h.version(), o.version()), (2, 2));
}
