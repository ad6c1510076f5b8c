//! Generation numbering and handle pinning, in a process of its own so the numbers are exact.

mod support;

use hello_fixture::hello;

#[test]
fn handles_keep_the_generation_they_captured() {
    let module = hello::module();
    assert_eq!(
        module.generation(),
        0,
        "before any load, the built-in code is current"
    );
    assert_eq!(module.live_generations(), vec![0]);

    let builtin = hello::Handle::current();
    assert_eq!(builtin.generation(), 0);
    assert_eq!(builtin.greet("ann"), "hello ann");

    assert_eq!(module.load(support::library("v1")).expect("load v1"), 1);
    let first = hello::Handle::current();
    assert_eq!(first.generation(), 1);
    assert!(!builtin.is_current());
    assert!(first.is_current());

    assert_eq!(module.load(support::library("v2")).expect("load v2"), 2);
    assert_eq!(module.generation(), 2);
    let second = hello::Handle::current();

    // Old handles keep their code; new captures and plain calls get the newest.
    assert_eq!(builtin.greet("ann"), "hello ann");
    assert_eq!(first.greet("ann"), "hello ann");
    assert_eq!(first.version(), 1);
    assert_eq!(second.greet("ann"), "hi ann");
    assert_eq!(second.version(), 2);
    assert_eq!(hello::greet("ann"), "hi ann");
    assert_eq!(hello::version(), 2);
    assert_eq!((first.generation(), second.generation()), (1, 2));
    assert!(!first.is_current() && second.is_current());
    // What a handle shows in logs: its module, its generation, whether that is current.
    assert_eq!(
        format!("{first:?}"),
        "Handle { module: \"hello_fixture::hello\", generation: 1, is_current: false }"
    );
    assert_eq!(
        format!("{second:?}"),
        "Handle { module: \"hello_fixture::hello\", generation: 2, is_current: true }"
    );

    // A clone pins too.
    let first_clone = first.clone();
    assert_eq!(module.live_generations(), vec![0, 1, 2]);
    drop(first);
    assert_eq!(
        module.live_generations(),
        vec![0, 1, 2],
        "the clone still pins generation 1"
    );
    assert_eq!(first_clone.version(), 1);
    drop(first_clone);
    assert_eq!(
        module.live_generations(),
        vec![0, 2],
        "generation 1 retires with its last handle"
    );
    // Retired means unmapped, not just forgotten: the copy of v1 is gone from the address space.
    assert!(
        support::Footprint::mapped_copies_of(support::library("v1")).is_empty(),
        "generation 1's library was unmapped"
    );
    assert_eq!(
        support::Footprint::mapped_copies_of(support::library("v2")).len(),
        1,
        "generation 2's library is mapped"
    );

    // Generation 0 is the compiled-in code and never goes away.
    assert_eq!(builtin.version(), 1);
    drop(builtin);
    assert_eq!(module.live_generations(), vec![0, 2]);

    // Reloading the same file makes a new generation; the previous one retires at once.
    assert_eq!(
        module.load(support::library("v2")).expect("load v2 again"),
        3
    );
    drop(second);
    assert_eq!(module.live_generations(), vec![0, 3]);
    assert_eq!(
        support::Footprint::mapped_copies().len(),
        1,
        "only generation 3's library is mapped: {:?}",
        support::Footprint::mapped_copies()
    );
    assert!(
        module.unload_blocked().is_empty(),
        "every retired generation was unmapped"
    );
}
