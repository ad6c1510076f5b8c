//! The core promises against real cdylibs built by cargo: in-flight calls finish on their
//! generation, a library that only adds is accepted, panics reach the caller, and the usual
//! types cross. (Refused libraries and bad files: tests/bad_input.rs.)

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Barrier};

use hello_fixture::hello;
use hotmod::Event;

/// Loads v2 so the current generation is a real library, and returns its number.
fn serve_v2() -> u64 {
    hello::module()
        .load(support::library("v2"))
        .expect("load v2")
}

#[test]
fn a_call_in_flight_finishes_on_its_generation() {
    let _serial = support::serial();
    let module = hello::module();
    // The held call runs in v2, the only build that answers 2: generation 0 and v1 answer 1, so
    // its answer tells which generation it finished on.
    let held = serve_v2();
    let entered = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    let caller = {
        let (entered, release) = (entered.clone(), release.clone());
        std::thread::spawn(move || {
            // Warm the thread first: its first plain call takes the slow path and registers the
            // thread's fast slot, so the call held below runs on the fast path, the one every
            // call but a thread's first takes.
            assert_eq!((hello::version(), hello::version()), (2, 2));
            hello::blocking_version(&entered, &release)
        })
    };
    entered.wait(); // the call is now inside v2's code
    let held_copies = support::Footprint::mapped_copies_of(support::library("v2"));
    assert_eq!(held_copies.len(), 1, "v2 is mapped while it serves");

    let v1 = module.load(support::library("v1")).expect("load v1");
    // Another thread gets the new code while the first call is still running.
    assert_eq!(hello::version(), 1);
    assert_eq!(
        std::thread::spawn(|| hello::greet("bo")).join().unwrap(),
        "hello bo"
    );
    assert!(
        module.live_generations().contains(&held),
        "v2 stays while its call runs"
    );
    assert_eq!(
        support::Footprint::mapped_copies_of(support::library("v2")),
        held_copies,
        "v2's library stays mapped while its call runs"
    );

    release.wait();
    assert_eq!(
        caller.join().expect("caller"),
        2,
        "the in-flight call finished on v2"
    );
    assert!(
        !module.live_generations().contains(&held),
        "v2 retired when its call ended"
    );
    assert!(
        support::Footprint::mapped_copies_of(support::library("v2")).is_empty(),
        "v2's library was unmapped when its call ended"
    );
    assert_eq!(module.generation(), v1);
}

#[test]
fn an_added_function_is_accepted() {
    let _serial = support::serial();
    let module = hello::module();
    let before = serve_v2();
    let added = module
        .load(support::library("added"))
        .expect("a library that only adds is accepted");
    assert_eq!(added, before + 1);
    assert_eq!(hello::version(), 1);
    assert_eq!(hello::greet("di"), "hello di");
}

/// A library that changed code the host runs its own copy of (a public constant, a method
/// marked `not_hot`) is accepted, and the load says which items keep their old code; one that
/// changed only hot functions says nothing.
#[test]
fn a_load_that_changes_code_the_host_keeps_running_names_it() {
    let _serial = support::serial();
    let module = hello::module();
    serve_v2();
    let events = module.subscribe();
    let stale = module
        .load(support::library("stale"))
        .expect("a changed constant or method does not refuse a load");
    let reported: Vec<Event> = std::iter::from_fn(|| events.try_recv()).collect();
    let items = support::stale_items(&reported, stale);
    assert_eq!(
        items,
        Some(vec![
            "const GREETING".to_owned(),
            "Visitor::initial".to_owned(),
            "<Visitor as std::fmt::Display>::fmt".to_owned(),
        ]),
        "{reported:?}"
    );
    let line = reported
        .iter()
        .find(|event| matches!(event, Event::StaleItems { .. }))
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        line.contains("const GREETING, Visitor::initial, <Visitor as std::fmt::Display>::fmt; restart the host"),
        "{line}"
    );
    // The host's copies keep their old code, as the event says; a hot method (`Reply::label`,
    // changed too) runs the new code (tests/hot_methods.rs has the rest).
    assert_eq!(hello::GREETING, "hi");
    assert_eq!(hello::Visitor::new("cy").initial(), 'c');
    assert_eq!(hello::reply("a", 2).label(), "aa ×2");

    // v2 changes hot functions only (and a private constant): nothing to report.
    let v2 = serve_v2();
    let quiet: Vec<Event> = std::iter::from_fn(|| events.try_recv()).collect();
    assert!(
        !quiet
            .iter()
            .any(|event| matches!(event, Event::StaleItems { .. })),
        "generation {v2}: {quiet:?}"
    );
}

#[test]
fn a_panic_in_module_code_reaches_the_caller() {
    let _serial = support::serial();
    serve_v2();
    let handle = hello::Handle::current();
    let payload = catch_unwind(|| hello::checked(0)).expect_err("plain call panics");
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("fixture v2 refuses zero")
    );
    let payload =
        catch_unwind(AssertUnwindSafe(|| handle.checked(0))).expect_err("handle call panics");
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("fixture v2 refuses zero")
    );
    // The module keeps working, on this thread and others.
    assert_eq!(hello::checked(3), 6);
    assert_eq!(handle.checked(4), 8);
    let from_thread = std::thread::spawn(|| hello::checked(0))
        .join()
        .expect_err("thread panicked");
    assert_eq!(
        from_thread.downcast_ref::<String>().map(String::as_str),
        Some("fixture v2 refuses zero")
    );
    assert_eq!(hello::checked(5), 10);
}

#[test]
fn the_usual_types_cross_the_boundary() {
    let _serial = support::serial();
    serve_v2();
    let h = hello::Handle::current();
    assert_eq!(h.generation(), hello::module().generation());
    assert_eq!(h.greet("ed"), "hi ed"); // &str in, String out
    assert_eq!(h.echo(String::from("yo")), "yo!!"); // String in
    let mut counter = 40;
    h.bump(&mut counter); // &mut T
    assert_eq!(counter, 42);
    assert_eq!(h.sum(vec![1, 2, 3]), 12); // Vec<T> in
    assert_eq!(h.evens(7), vec![0, 2, 4, 6]); // Vec<T> out
    let words = vec!["a".to_string(), "b".to_string()];
    assert_eq!(h.position(&words, "b"), Some(1)); // &[T], Option
    assert_eq!(h.position(&words, "z"), None);
    assert_eq!(h.parse(" 17 "), Ok(17)); // Result
    assert!(h.parse("x").unwrap_err().contains("invalid digit"));
    assert_eq!(h.swap((21, "s".into())), ("s".to_string(), 42)); // tuples
    let reply = h.reply("ab", 2); // a user struct defined in the module
    assert_eq!((reply.text.as_str(), reply.count), ("abab", 4));
    // Plain calls take the same path.
    assert_eq!(hello::swap((1, "t".into())), ("t".to_string(), 2));
    assert_eq!(hello::reply("z", 3).text, "zzz");
    // Behind aliases, in a submodule, as an opaque newtype, an enum with discriminants from a
    // constant, a trait object with a supertrait: each verified by its description.
    assert_eq!(h.token(7), 7);
    assert_eq!(h.rename("ann".into()), "ann");
    let point = h.point();
    assert_eq!((point.x, point.y), (1, 2));
    let moment = hello::Moment(std::time::Duration::from_millis(5));
    assert_eq!(h.moment_millis(&moment), 5);
    assert!(matches!(h.level(true), hello::Level::High));
    assert_eq!(hello::Level::Low as u8, 1);
    assert_eq!(h.greeter().greeting(), "porter greets");
    let tree = h.tree(2); // a recursive type
    assert_eq!(
        (tree.value, tree.kids.len(), tree.kids[1].kids.len()),
        (2, 2, 2)
    );
}

/// With backtraces on, std's default panic hook would resolve one inside the library and map
/// the library's file into a cache that outlives it. A generation whose code panicked still
/// unmaps completely when it retires. (In a child, so `RUST_BACKTRACE=1` holds whatever the
/// environment says.)
#[test]
fn a_generation_that_panicked_unmaps_with_backtraces_on() {
    if !support::is_child() {
        support::library("v1");
        support::library("v2");
        let output = support::run_child(
            "a_generation_that_panicked_unmaps_with_backtraces_on",
            &[("RUST_BACKTRACE", std::ffi::OsStr::new("1"))],
        );
        let (stdout, stderr) = (
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        assert!(
            output.status.success() && stdout.contains("child: done"),
            "{stdout}\n{stderr}"
        );
        // The module's panic is still reported where it happened, without a backtrace.
        assert!(
            stderr.contains("hot module code panicked at fixtures/hello_fixture/src/lib.rs")
                && stderr.contains("fixture v2 refuses zero")
                && stderr.contains("does not capture backtraces in hot module code"),
            "{stderr}"
        );
        return;
    }
    let module = hello::module();
    module.load(support::library("v2")).expect("load v2");
    catch_unwind(|| hello::checked(0)).expect_err("plain call panics");
    assert_eq!(
        support::Footprint::mapped_copies_of(support::library("v2")).len(),
        1
    );
    module.load(support::library("v1")).expect("load v1");
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read maps");
    assert!(
        support::Footprint::mapped_copies_of(support::library("v2")).is_empty(),
        "the generation that panicked stays mapped:\n{maps}"
    );
    println!("child: done");
}
