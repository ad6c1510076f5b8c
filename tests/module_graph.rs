//! Hot modules that call hot modules (issue 14), against real cdylibs: `graph_top`'s `a` calls
//! `graph_base`'s `b`, and `libgraph_top.so` embeds its own copy of `b`. A loaded generation of
//! `a` calls the host's `b` (one copy of its state), a new generation of `b` reaches it, and a
//! library whose copy of `b` differs from the host's is refused, naming `b` and the function.

mod support;

use graph_base::b;
use graph_top::a;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use hotmod::{Error, Event};

#[test]
fn a_loaded_generation_calls_the_hosts_module_and_its_new_generations() {
    let _serial = support::serial();
    let counted = b::count();
    assert_eq!(
        a::count_in_b(),
        counted + 1,
        "generation 0 of `a` calls the host's `b`"
    );

    let loaded = a::module()
        .load(support::library("graph-a2"))
        .expect("a2 loads");
    assert_eq!(a::module().generation(), loaded);
    // The loaded `a` (version 2) reaches the host's `b`: one count, not a private copy's.
    assert_eq!(a::versions(), (2, 1));
    assert_eq!(a::count_in_b(), counted + 2);
    assert_eq!(b::count(), counted + 3);
    // So does a `b::Handle` the loaded `a` makes.
    assert_eq!(a::count_in_b_through_a_handle(), counted + 4);
    assert_eq!(b::count(), counted + 5);

    // A new generation of `b`, loaded in the host, reaches the loaded `a`'s calls.
    b::module()
        .load(support::library("graph-b2"))
        .expect("b2 loads");
    assert_eq!(a::versions(), (2, 2));

    // An `a` built against b2 (compatible) calls the host's current `b` too; back to the
    // host's generation 0 of `b`, it sees version 1, whatever it was built against.
    a::module()
        .load(support::library("graph-a2-b2"))
        .expect("a2 built against b2 loads");
    assert_eq!(a::versions(), (2, 2));
    b::module()
        .load(support::library("graph-b1"))
        .expect("b1 loads");
    assert_eq!(a::versions(), (2, 1));
}

/// A loaded `a` calling a loaded `b` through the host's `b`: values that travel by pointer
/// arrive, and `b`'s panic reaches `a`'s caller with its message, `a` still callable after.
#[test]
fn a_loaded_generation_calling_a_loaded_one_passes_values_and_panics() {
    let _serial = support::serial();
    b::module()
        .load(support::library("graph-b2"))
        .expect("b2 loads");
    a::module()
        .load(support::library("graph-a2-b2"))
        .expect("a2 built against b2 loads");
    assert_eq!(a::greet_in_b("x".to_owned()), "hello x from b2");
    let panic = std::panic::catch_unwind(|| a::fail_in_b("b fails".to_owned()))
        .expect_err("`b`'s panic reaches the caller of `a`");
    assert_eq!(
        panic.downcast_ref::<String>().map(String::as_str),
        Some("b fails")
    );
    // Through a handle of `a` too (its calls run in the view it pins).
    let handle = a::Handle::current();
    assert_eq!(handle.greet_in_b("y".to_owned()), "hello y from b2");
    let panic = std::panic::catch_unwind(|| handle.fail_in_b("b fails again".to_owned()))
        .expect_err("`b`'s panic reaches the caller of `a`'s handle");
    assert_eq!(
        panic.downcast_ref::<String>().map(String::as_str),
        Some("b fails again")
    );
    drop(handle);
    assert_eq!(a::versions(), (2, 2));
    // Leave `b` at version 1, as the other tests of this file find it.
    b::module()
        .load(support::library("graph-b1"))
        .expect("b1 loads");
    assert_eq!(a::greet_in_b("z".to_owned()), "hello z from b1");
}

/// Loads b2 as `b`, then a2 (built against b1: its own copy of `b` would say "b1") as `a`;
/// b2's generation.
fn b2_then_a2() -> u64 {
    let b2 = b::module()
        .load(support::library("graph-b2"))
        .expect("b2 loads");
    a::module()
        .load(support::library("graph-a2"))
        .expect("a2 loads");
    b2
}

/// Waits (at most a minute) for `generation` of `b` to retire, as `events` tells.
fn wait_retired(events: &hotmod::Events, generation: u64, why: &str) {
    events
        .wait_for(Duration::from_secs(60), |e| {
            matches!(e, Event::Retired { generation: g, .. } | Event::RetireBlocked { generation: g, .. } if *g == generation)
        })
        .expect(why);
}

/// A function of `b` returning `Pinned`, called from a loaded `a`, runs the host's `b` too: the
/// value comes from `b`'s current generation with that generation's pin, which keeps it loaded
/// while `a`'s code holds the value, and goes back to the host's runtime when `a`'s code drops
/// it (a drop by the library's own copy of hotmod would miss the host's hazard slots).
#[test]
fn pinned_values_of_the_hosts_module_reach_a_loaded_generation_and_keep_theirs_loaded() {
    let _serial = support::serial();
    let events = b::module().subscribe();
    let b2 = b2_then_a2();
    assert_eq!(a::label_in_b(), ("b2".to_owned(), Some(b2)));
    let counted = b::count();
    assert_eq!(a::count_in_b_through_a_closure(), counted + 1);
    assert_eq!(
        b::count(),
        counted + 2,
        "the closure counted in the host's `b`"
    );

    // `a` keeps b2's label, and returns it to the host: the value keeps b2's pin (the
    // generation that made it), not `a`'s; b2 stays loaded while either lives, though b1 is
    // current.
    a::keep_label_in_b();
    let returned = a::label_of_b();
    assert_eq!((&*returned, returned.generation()), ("b2", Some(b2)));
    let b1 = b::module()
        .load(support::library("graph-b1"))
        .expect("b1 loads");
    assert_eq!(a::label_in_b(), ("b1".to_owned(), Some(b1)));
    assert!(
        b::module().live_generations().contains(&b2),
        "the label `a` keeps pins b2: {:?}",
        b::module().live_generations()
    );
    assert_eq!(a::kept_label().as_deref(), Some("b2"));
    a::drop_kept_label();
    assert!(
        b::module().live_generations().contains(&b2),
        "the label the host holds pins b2"
    );
    assert_eq!(&*returned, "b2");
    // The last one dropped (the host's, after `a`'s code dropped its own): b2 retires.
    drop(returned);
    wait_retired(&events, b2, "b2 retires once its labels are dropped");
    assert!(!b::module().live_generations().contains(&b2));
    assert_eq!(a::kept_label(), None);
}

/// A `b::Handle` that a loaded `a`'s code takes and keeps is the host's handle: it keeps
/// calling the generation of `b` it pinned, which stays loaded, however many reloads of `b`
/// happen, until `a`'s code drops it; then that generation retires.
#[test]
fn a_handle_kept_in_a_loaded_generations_code_pins_the_hosts_generation() {
    let _serial = support::serial();
    let events = b::module().subscribe();
    let b2 = b2_then_a2();
    assert_eq!(a::keep_b_handle(), b2);
    assert_eq!(a::through_kept_handle(), (2, b2, true, "b2".to_owned()));
    let b1 = b::module()
        .load(support::library("graph-b1"))
        .expect("b1 loads");
    assert_eq!(a::versions(), (2, 1), "plain calls see the new `b`");
    assert_eq!(
        a::through_kept_handle(),
        (2, b2, false, "b2".to_owned()),
        "the kept handle still calls b2"
    );
    assert!(b::module().live_generations().contains(&b2));
    a::drop_kept_handle();
    wait_retired(&events, b2, "b2 retires once `a` drops its handle");
    assert_eq!(b::module().generation(), b1);
}

/// `module()` in a loaded library's code is the host's `Module`: its generation, loads and
/// `load_all` run in the host's runtime, not in a second runtime inside the library that sees
/// none of the host's generations. A module of the library the host does not have is refused
/// a load, naming it.
#[test]
fn module_in_a_loaded_generations_code_controls_the_hosts_module() {
    let _serial = support::serial();
    let loaded = a::module()
        .load(support::library("graph-a2"))
        .expect("a2 loads");
    assert_eq!(
        a::generations_seen(),
        (loaded, b::module().generation()),
        "the library's `a::module()` and `b::module()` are the host's"
    );
    let from_a = a::load_b_from_module_code(support::library("graph-b2").display().to_string())
        .expect("a load of `b` from `a`'s code");
    assert_eq!(b::module().generation(), from_a, "the host's `b` loaded it");
    assert_eq!(a::versions(), (2, 2));
    assert_eq!(a::generations_seen(), (loaded, from_a));
    let all = a::load_all_b_from_module_code(support::library("graph-b1").display().to_string())
        .expect("load_all of `b` from `a`'s code");
    assert_eq!(all, [b::module().generation()]);
    assert_eq!(a::versions(), (2, 1));
    // A refused load from `a`'s code is the host's refusal, and leaves `b` as it was.
    let before = b::module().generation();
    let refused = a::load_b_from_module_code("/nonexistent/libgraph_base.so".to_owned())
        .expect_err("no such file");
    assert!(refused.contains("does not exist"), "{refused}");
    assert_eq!(b::module().generation(), before);
    // A setting of the process, from `a`'s code: the host's. A copy of `b` in a directory
    // anyone may write to is refused, until `a`'s code allows it.
    let open_dir = support::TempDir::new("graph-open");
    std::fs::set_permissions(open_dir.path(), std::fs::Permissions::from_mode(0o777))
        .expect("chmod 777");
    let exposed = open_dir.path().join("libgraph_base.so");
    std::fs::copy(support::library("graph-b2"), &exposed).expect("copy b2");
    let refused = b::module().load(&exposed).expect_err("an insecure path");
    assert!(matches!(refused, Error::InsecurePath { .. }), "{refused:?}");
    a::allow_insecure_paths_from_module_code(true);
    let allowed = b::module().load(&exposed);
    a::allow_insecure_paths_from_module_code(false);
    allowed.expect("allowed from `a`'s code");
    let refused = b::module().load(&exposed).expect_err("refused again");
    assert!(matches!(refused, Error::InsecurePath { .. }), "{refused:?}");
    // With a module of the host's in one `load_all`, whichever comes first: refused, naming
    // `extra`, and `b` unchanged.
    let before = b::module().generation();
    for extra_first in [true, false] {
        let refused = a::load_all_with_extra_from_module_code(
            support::library("graph-b2").display().to_string(),
            extra_first,
        )
        .expect_err("the library's own `extra` loads nothing");
        assert!(
            refused.contains("graph_top::extra") && refused.contains("the host has no hot module"),
            "{refused}"
        );
    }
    assert_eq!(b::module().generation(), before);
    // `extra`, which only the library has: its own copy, which loads nothing.
    let refused =
        a::load_extra_from_module_code(support::library("graph-a2").display().to_string())
            .expect_err("the library's own `extra` loads nothing");
    assert!(
        refused.contains("graph_top::extra") && refused.contains("the host has no hot module"),
        "{refused}"
    );
}

#[test]
fn a_library_whose_copy_of_a_called_module_differs_is_refused() {
    let _serial = support::serial();
    let before = a::module().generation();
    let error = a::module()
        .load(support::library("graph-a2-bwide"))
        .expect_err("a copy of `b` whose `version` takes a parameter");
    assert!(
        matches!(&error, Error::EmbeddedIncompatible { embedded, .. } if *embedded == "graph_base::b"),
        "{error:?}"
    );
    let message = error.to_string();
    eprintln!("{message}");
    assert!(
        message.contains("graph_base::b") && message.contains("function `version` changed"),
        "{message}"
    );
    assert_eq!(
        a::module().generation(),
        before,
        "the current `a` keeps serving"
    );
    let _ = a::versions();
}

#[test]
fn a_library_that_only_embeds_a_module_is_not_loaded_as_it() {
    let _serial = support::serial();
    // What `cargo build -p graph_top` writes: graph_top's library, with a copy of `b` in it.
    let dir = support::TempDir::new("embeds");
    let top = dir.path().join(format!(
        "{}graph_top{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    std::fs::copy(support::library("graph-a2"), &top).expect("copy graph_top's library");
    let before = b::module().generation();
    let error = b::module()
        .load(&top)
        .expect_err("graph_top's library offered as graph_base::b");
    assert!(
        matches!(&error, Error::OtherModule { found, .. } if found == &["graph_top::a"]),
        "{error:?}"
    );
    assert_eq!(b::module().generation(), before);
    // The same library loads as what it is.
    a::module()
        .load(&top)
        .expect("graph_top's library loads as graph_top::a");
}

/// `load_all` loads a module and its dependents as one step: no call sees the new `a` with the
/// old `b`.
#[test]
fn load_all_switches_a_module_and_its_dependents_together() {
    let _serial = support::serial();
    b::module()
        .load(support::library("graph-b1"))
        .expect("b1 loads");
    hotmod::load_all([
        (b::module(), support::library("graph-b2")),
        (a::module(), support::library("graph-a2-b2")),
    ])
    .expect("b2 and a2 load together");
    assert_eq!(a::versions(), (2, 2));
    // Leave `b` at version 1, as the other tests of this file find it.
    b::module()
        .load(support::library("graph-b1"))
        .expect("b1 loads");
}
