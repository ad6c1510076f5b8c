//! Subscribers: a slow subscriber never blocks a reload or another subscriber, and (as
//! hotmod/src/events.rs documents) every subscriber has its own unbounded queue, so one that is
//! never read loses no event: it finds every event, in order, when it reads at last.

mod support;

use std::sync::mpsc;
use std::time::Duration;

use hello_fixture::hello;
use hotmod::Event;

/// Loads alternating v1 and v2.
const LOADS: usize = 100;

#[test]
fn an_unread_subscriber_blocks_no_load_and_no_other_subscriber_and_loses_nothing() {
    let _serial = support::serial();
    let module = hello::module();
    let (v1, v2) = (support::library("v1"), support::library("v2"));

    // Never read until every load is done.
    let unread = module.subscribe();
    // Read as the events come, on a thread of its own: every event it got before the loads
    // ended, and how many Loaded events.
    let reader = module.subscribe();
    let (got, seen) = mpsc::channel::<Event>();
    let reading = std::thread::spawn(move || {
        let mut loaded = 0;
        while loaded < LOADS {
            let event = reader
                .recv_timeout(support::EVENT_TIMEOUT)
                .expect("the reading subscriber gets the next event while the other is unread");
            loaded += usize::from(matches!(event, Event::Loaded { .. }));
            got.send(event).expect("send");
        }
        reader
    });

    // The loads, on another thread, so that a load blocked by a subscriber fails the test
    // instead of hanging it.
    let (done, finished) = mpsc::channel();
    let loader = std::thread::spawn(move || {
        let numbers: Vec<u64> = (0..LOADS)
            .map(|i| module.load(if i % 2 == 0 { v2 } else { v1 }).expect("load"))
            .collect();
        let _ = done.send(());
        numbers
    });
    finished
        .recv_timeout(Duration::from_secs(600))
        .expect("every load finished although a subscriber reads nothing");
    let numbers = loader.join().expect("loader");
    let reader = reading
        .join()
        .expect("the reading subscriber got every Loaded event");

    // The reader's events up to the last Loaded, then whatever followed (the last retirement).
    let mut read: Vec<String> = seen.try_iter().map(|e| format!("{e:?}")).collect();
    while let Some(event) = reader.try_recv() {
        read.push(format!("{event:?}"));
    }
    // The unread subscriber: the same events, none lost, in the same order.
    let mut queued = Vec::new();
    while let Some(event) = unread.try_recv() {
        queued.push(event);
    }
    let queued_text: Vec<String> = queued.iter().map(|e| format!("{e:?}")).collect();
    assert_eq!(
        queued_text.len(),
        read.len(),
        "the unread subscriber's queue holds as many events as the reader got"
    );
    assert_eq!(queued_text, read, "the same events, in the same order");
    let loaded: Vec<u64> = queued
        .iter()
        .filter_map(|e| match e {
            Event::Loaded { generation, .. } => Some(*generation),
            _ => None,
        })
        .collect();
    assert_eq!(
        loaded, numbers,
        "one Loaded event per load, in order, none dropped"
    );
    let retired = queued
        .iter()
        .filter(|e| matches!(e, Event::Retired { .. } | Event::RetireBlocked { .. }))
        .count();
    assert!(
        retired >= LOADS - 1,
        "{retired} retirements queued for {LOADS} loads"
    );
}

#[test]
fn a_dropped_subscriber_blocks_nothing() {
    let _serial = support::serial();
    let module = hello::module();
    drop(module.subscribe());
    let events = module.subscribe();
    let generation = module.load(support::library("v1")).expect("load");
    let loaded = events
        .wait_for(
            support::EVENT_TIMEOUT,
            |e| matches!(e, Event::Loaded { generation: g, .. } if *g == generation),
        )
        .expect("the live subscriber still gets its events");
    assert!(loaded.to_string().contains("live in"), "{loaded}");
}
