//! A retired generation whose library cannot be unmapped is reported: `Event::RetireBlocked`
//! says why, and `Module::unload_blocked()` lists it.
//!
//! - fixtures/tss_fixture uses C11 `tss_create`, whose destructors glibc calls at thread exit
//!   and which hotmod does not redirect: hotmod keeps such a library mapped on purpose (see
//!   docs/guarantees.md, "What hotmod cannot promise", and hotmod/src/os/linux_tls.rs), and
//!   the destructor still runs, from the kept library, when its thread exits.
//! - With the thread-exit redirect switched off (a test-only switch), glibc itself keeps a
//!   library whose thread-local destructors are pending (fixtures/tls_fixture): hotmod sees it
//!   still mapped after `dlclose` and reports that too. In a child process, whose libraries
//!   stay loaded.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use hotmod::{Event, Events, Module};
use support::Footprint;
use tss_fixture::tss;

/// Waits for `generation`'s retirement and returns the event (`Retired` or `RetireBlocked`).
fn retirement(events: &Events, generation: u64) -> Event {
    events
        .wait_for(support::EVENT_TIMEOUT, |e| {
            matches!(
                e,
                Event::Retired { generation: g, .. } | Event::RetireBlocked { generation: g, .. }
                    if *g == generation
            )
        })
        .unwrap_or_else(|| panic!("generation {generation} did not retire"))
}

/// The reason of a `RetireBlocked` event for `generation` of `module`, checking the rest of it.
fn blocked_reason(event: Event, module: &Module, generation: u64) -> String {
    let line = event.to_string();
    let Event::RetireBlocked {
        module: name,
        generation: g,
        reason,
    } = event
    else {
        panic!("generation {generation} was unloaded: {event:?}");
    };
    assert_eq!((name, g), (module.name(), generation));
    assert!(
        line.contains(&format!(
            "generation {generation} retired but its library stays mapped: "
        )) && line.ends_with(&reason),
        "{line}"
    );
    reason
}

#[test]
fn a_generation_that_uses_tss_create_stays_mapped_and_is_reported() {
    let _serial = support::serial();
    let module = tss::module();
    let library = support::library("tss");
    let events = module.subscribe();
    let first = module.load(library).expect("the tss fixture loads");

    // A thread gives itself a value of the first generation's key, then waits.
    let drops = Arc::new(AtomicUsize::new(0));
    let (exit, exit_now) = mpsc::channel::<()>();
    let (set, value_set) = mpsc::channel();
    let thread = {
        let drops = Arc::clone(&drops);
        std::thread::spawn(move || {
            let had = tss::set_counted(drops);
            set.send(had).expect("send");
            let _ = exit_now.recv();
        })
    };
    let had = value_set
        .recv_timeout(support::EVENT_TIMEOUT)
        .expect("the thread set its value");
    assert!(!had, "a fresh thread has no value");
    let mapped_first = Footprint::mapped_copies_of(library);

    let second = module.load(library).expect("a second generation loads");
    let reason = blocked_reason(retirement(&events, first), module, first);
    assert!(
        reason.contains("tss_create"),
        "the reason names it: {reason}"
    );
    assert!(
        module.unload_blocked().contains(&first),
        "unload_blocked() lists it: {:?}",
        module.unload_blocked()
    );
    assert!(!module.live_generations().contains(&first), "it retired");
    assert_eq!(module.generation(), second);
    assert!(
        Footprint::mapped_copies_of(library).is_superset(&mapped_first),
        "the first generation's library is still mapped"
    );

    // Which is why: glibc runs the first generation's destructor when the thread exits.
    exit.send(()).expect("the thread waits");
    thread.join().expect("the thread exits cleanly");
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the kept library's destructor ran"
    );
    assert_eq!(tss::version(), 1);
}

#[test]
fn a_library_the_dynamic_loader_keeps_mapped_is_reported() {
    const NAME: &str = "a_library_the_dynamic_loader_keeps_mapped_is_reported";
    if !support::is_child() {
        support::library("tls");
        let output = support::run_child(NAME, &[]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("reported as blocked"),
            "child failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    }
    use tls_fixture::tls;
    hotmod::__private::set_thread_exit_redirect(false);
    let module = tls::module();
    let library = support::library("tls");
    let events = module.subscribe();
    let first = module.load(library).expect("load");
    // A thread that lives on registers a thread-local destructor of the first generation with
    // glibc, which then keeps that library loaded until the thread exits.
    let (exit, exit_now) = mpsc::channel::<()>();
    let (touched, was_touched) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        touched.send(tls::touch()).expect("send");
        let _ = exit_now.recv();
    });
    assert_eq!(
        was_touched
            .recv_timeout(support::EVENT_TIMEOUT)
            .expect("touched"),
        1
    );

    module.load(library).expect("a second generation loads");
    let reason = blocked_reason(retirement(&events, first), module, first);
    assert!(
        reason.contains("the dynamic loader kept it mapped"),
        "{reason}"
    );
    assert_eq!(module.unload_blocked(), vec![first]);
    assert_eq!(Footprint::mapped_copies_of(library).len(), 2);
    exit.send(()).expect("the thread waits");
    thread.join().expect("the thread exits");
    println!("reported as blocked: {reason}");
}
