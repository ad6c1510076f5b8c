//! A load refused after the library was mapped (by its `#[hotmod::on_load]` function, or by
//! the hand-over of `#[hotmod::state]`) leaves nothing behind: no shadow copy on disk, and the
//! refused library unmapped. (tests/bad_input.rs covers the refusals at verification.)

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hello_fixture::hello;
use hotmod::{Error, Event, Module};
use state_fixture::world;
use support::Footprint;

/// What this process has of hotmod's private copies: on disk, and mapped.
#[derive(Debug, PartialEq)]
struct Copies {
    on_disk: BTreeSet<PathBuf>,
    mapped: BTreeSet<String>,
}

impl Copies {
    fn now() -> Copies {
        Copies {
            on_disk: support::shadow_copies().into_iter().collect(),
            mapped: Footprint::mapped_copies(),
        }
    }
}

/// Offers `bad` to `module` (whose current generation is a good library), checks that it is
/// refused with an error `is_expected` accepts, and that the copies on disk and mapped are what
/// they were before, none of them made from `bad`; returns the error.
fn refused_without_a_trace(
    module: &'static Module,
    bad: &Path,
    is_expected: impl Fn(&Error) -> bool,
) -> Error {
    let generation = module.generation();
    let before = Copies::now();
    assert!(
        !before.mapped.is_empty(),
        "the current generation's copy is mapped: {before:?}"
    );

    let error = module.load(bad).expect_err("the load must be refused");
    assert!(is_expected(&error), "unexpected error: {error:?}");
    assert_eq!(module.generation(), generation, "the current one stays");

    assert_eq!(
        Copies::now(),
        before,
        "a refused load left a copy behind (on disk or mapped); its mappings:\n{}",
        maps_of(bad).join("\n")
    );
    assert_eq!(
        Footprint::mapped_copies_of(bad),
        BTreeSet::new(),
        "the refused library is unmapped"
    );
    error
}

/// The lines of /proc/self/maps that map a shadow copy made from `library`.
fn maps_of(library: &Path) -> Vec<String> {
    let copies = Footprint::mapped_copies_of(library);
    std::fs::read_to_string("/proc/self/maps")
        .expect("read /proc/self/maps")
        .lines()
        .filter(|line| copies.iter().any(|copy| line.contains(copy.as_str())))
        .map(str::to_owned)
        .collect()
}

fn on_hello_v1() -> &'static Module {
    let module = hello::module();
    module.set_staged(false);
    module.load(support::library("v1")).expect("v1 loads");
    module
}

fn on_world_s1() -> &'static Module {
    let module = world::module();
    module.set_staged(false);
    module.load(support::library("s1")).expect("s1 loads");
    module
}

#[test]
fn a_load_whose_on_load_returns_an_error_leaves_no_copy() {
    let _serial = support::serial();
    let module = on_hello_v1();
    let error = refused_without_a_trace(module, support::library("badinit"), |e| {
        matches!(e, Error::OnLoad { .. })
    });
    assert!(error.to_string().contains("returned an error"), "{error}");
    assert_eq!(hello::version(), 1, "v1 keeps serving");
}

/// Runs the test `name` of this binary in a child process with `RUST_BACKTRACE=backtrace`
/// (the value changes what the panic hook of the module's own std does) and checks it passed.
fn in_child(name: &str, backtrace: &str) {
    support::library("v1");
    support::library("panicinit");
    let output = support::run_child(name, &[("RUST_BACKTRACE", backtrace.as_ref())]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("no copy left"),
        "with RUST_BACKTRACE={backtrace}:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The body of the two tests below, in a child process.
fn on_load_panics_and_leaves_no_copy() {
    let module = on_hello_v1();
    let error = refused_without_a_trace(module, support::library("panicinit"), |e| {
        matches!(e, Error::OnLoad { .. })
    });
    assert!(error.to_string().contains("panicked"), "{error}");
    assert_eq!(hello::version(), 1, "v1 keeps serving");
    println!("no copy left");
}

#[test]
fn a_load_whose_on_load_panics_leaves_no_copy() {
    const NAME: &str = "a_load_whose_on_load_panics_leaves_no_copy";
    if support::is_child() {
        return on_load_panics_and_leaves_no_copy();
    }
    in_child(NAME, "0");
}

/// The same with backtraces on: the module's panic hook prints one, and the module's std
/// symbolises it from the library file.
#[test]
fn a_load_whose_on_load_panics_with_backtraces_on_leaves_no_copy() {
    const NAME: &str = "a_load_whose_on_load_panics_with_backtraces_on_leaves_no_copy";
    if support::is_child() {
        return on_load_panics_and_leaves_no_copy();
    }
    in_child(NAME, "1");
}

#[test]
fn a_load_whose_state_migration_fails_leaves_no_copy() {
    let _serial = support::serial();
    let module = on_world_s1();
    let before = world::describe();
    let error = refused_without_a_trace(module, support::library("s2badmigrate"), |e| {
        matches!(e, Error::State { .. })
    });
    assert!(error.to_string().contains("refusing to migrate"), "{error}");
    assert_eq!(world::describe(), before);
}

#[test]
fn a_load_whose_state_has_no_migration_leaves_no_copy() {
    let _serial = support::serial();
    let module = on_world_s1();
    let before = world::describe();
    let error = refused_without_a_trace(module, support::library("s2nomigrate"), |e| {
        matches!(e, Error::State { .. })
    });
    assert!(
        error.to_string().contains("has no migrate function"),
        "{error}"
    );
    assert_eq!(world::describe(), before);
}

/// In staged mode the state is handed over at `apply_staged`: a staged generation refused
/// there is dropped, and its copy goes with it.
#[test]
fn a_staged_generation_refused_by_its_state_at_apply_leaves_no_copy() {
    let _serial = support::serial();
    let module = on_world_s1();
    let bad = support::library("s2badmigrate");
    let before = Copies::now();
    let events = module.subscribe();
    module.set_staged(true);
    let staged = module.load(bad).expect("verified and staged");
    assert_eq!(module.staged_generation(), Some(staged));
    assert_eq!(
        Footprint::mapped_copies_of(bad).len(),
        1,
        "the staged generation is mapped until it is applied or dropped"
    );

    assert_eq!(module.apply_staged(), None, "the hand-over fails");
    module.set_staged(false);
    let rejected = events
        .wait_for(support::EVENT_TIMEOUT, |e| {
            matches!(e, Event::Rejected { .. })
        })
        .expect("a Rejected event");
    assert!(
        rejected.to_string().contains("refusing to migrate"),
        "{rejected}"
    );
    assert!(!module.live_generations().contains(&staged));
    assert_eq!(
        Copies::now(),
        before,
        "the refused staged generation left a copy behind (on disk or mapped)"
    );
    assert_eq!(Footprint::mapped_copies_of(bad), BTreeSet::new());
}
