//! `#[hotmod::on_load]` runs once for each loaded generation, before it goes live, and never for
//! generation 0 (the code compiled into the host): fixtures/on_load_fixture counts its runs in a
//! static of each copy of the crate; the host's copy is generation 0's.

mod support;

use std::sync::atomic::Ordering;

use on_load_fixture::{counted, ON_LOAD_RUNS};

fn load() -> u64 {
    counted::module()
        .load(support::library("on_load"))
        .expect("the on_load fixture loads")
}

/// Generation 0's counter: the host's copy of the static, which only generation 0's on_load
/// could change.
fn generation_0_runs() -> u32 {
    ON_LOAD_RUNS.load(Ordering::SeqCst)
}

/// Runs in a child process, so that generation 0 is current when it starts whatever the other
/// tests of this binary loaded.
#[test]
fn on_load_never_runs_for_generation_0() {
    const NAME: &str = "on_load_never_runs_for_generation_0";
    if !support::is_child() {
        support::library("on_load");
        let output = support::run_child(NAME, &[]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("generation 0 checked"),
            "child failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    }
    let module = counted::module();
    assert_eq!(module.generation(), 0, "nothing loaded yet in the child");
    // Everything a host does with the module before loading a library: the control surface,
    // events, plain calls and handles of the built-in code.
    let _events = module.subscribe();
    let _ = (module.name(), module.path(), module.live_generations());
    assert_eq!(counted::on_load_runs(), 0, "a plain call of generation 0");
    let gen0 = counted::Handle::current();
    assert_eq!(gen0.generation(), 0);
    assert_eq!(gen0.on_load_runs(), 0, "a handle call of generation 0");
    assert_eq!(generation_0_runs(), 0, "generation 0's on_load ran");

    // Loading libraries runs theirs, never generation 0's.
    let first = load();
    assert_eq!(counted::on_load_runs(), 1, "generation {first}'s ran");
    load();
    assert_eq!(
        generation_0_runs(),
        0,
        "generation 0's on_load ran at a load"
    );
    assert_eq!(gen0.on_load_runs(), 0, "generation 0, still pinned");
    println!("generation 0 checked");
}

#[test]
fn on_load_runs_exactly_once_for_each_loaded_generation() {
    let _serial = support::serial();
    let module = counted::module();
    let first = load();
    let pinned = counted::Handle::current();
    assert_eq!(pinned.generation(), first);
    assert_eq!(
        counted::on_load_runs(),
        1,
        "generation {first}'s on_load ran once, before it went live"
    );
    // Calls, handles and more handles do not run it again.
    for _ in 0..10 {
        assert_eq!(counted::on_load_runs(), 1);
        assert_eq!(counted::Handle::current().on_load_runs(), 1);
    }

    // The same file again is a new generation with its own statics: its on_load runs once, and
    // the older generation's does not run again.
    let second = load();
    assert_eq!(second, first + 1);
    assert_eq!(counted::on_load_runs(), 1, "generation {second}");
    assert_eq!(pinned.on_load_runs(), 1, "generation {first}, still pinned");
    assert_eq!(module.generation(), second);
    assert_eq!(generation_0_runs(), 0, "and never generation 0's");
}

/// An on_load function that asks for a load of its own module (`module()` in a loaded library's
/// code is the host's, whose loading lock the load under way holds on this thread) gets
/// `Error::LoadReentered` instead of waiting for itself; the load it ran in fails with its
/// message, and the current generation stays.
#[test]
fn an_on_load_that_loads_its_own_module_is_refused_not_deadlocked() {
    let _serial = support::serial();
    let before = counted::module().generation();
    let error = counted::module()
        .load(support::library("on_load-reenter"))
        .expect_err("its on_load fails");
    let message = error.to_string();
    assert!(
        matches!(&error, hotmod::Error::OnLoad { .. })
            && message.contains("its reload failed")
            && message.contains("cannot be loaded from inside one of its own loads"),
        "{message}"
    );
    assert_eq!(counted::module().generation(), before);
}
