//! Values that point into a generation's library keep that generation loaded while they live;
//! a trait whose vtable changed is refused like a changed struct.

mod support;

use hello_fixture::hello;
use hotmod::Error;

#[test]
fn a_trait_object_outlives_reloads_and_its_generation_retires_when_it_drops() {
    let _serial = support::serial();
    let module = hello::module();
    let v1 = module.load(support::library("v1")).expect("v1 loads");
    let speaker = hello::speaker();
    assert_eq!(speaker.generation(), Some(v1));
    let from_handle = hello::Handle::current().speaker();
    assert_eq!(from_handle.generation(), Some(v1));

    let v2 = module.load(support::library("v2")).expect("v2 loads");
    assert_eq!(hello::speaker().speak(), "v2 speaking");
    // No handle of v1 is left; the values alone keep it loaded, and still work.
    assert!(module.live_generations().contains(&v1));
    assert_eq!(speaker.speak(), "v1 speaking");
    assert_eq!(from_handle.speak(), "v1 speaking");

    let v1_mapped = support::Footprint::mapped_copies_of(support::library("v1"));
    assert_eq!(
        v1_mapped.len(),
        1,
        "v1's library stays mapped: {v1_mapped:?}"
    );
    drop(speaker);
    assert!(module.live_generations().contains(&v1), "one value left");
    assert_eq!(
        support::Footprint::mapped_copies_of(support::library("v1")),
        v1_mapped,
        "one value keeps v1's library mapped"
    );
    drop(from_handle);
    assert!(
        !module.live_generations().contains(&v1),
        "v1 retires with its last value: {:?}",
        module.live_generations()
    );
    assert!(
        support::Footprint::mapped_copies_of(support::library("v1")).is_empty(),
        "v1's library was unmapped with its last value"
    );
    assert_eq!(module.generation(), v2);
}

/// A `&'static str` literal of the library, returned in a `Pinned`: what it lends is a `&str`
/// borrowed from the value (the old `let s: &'static str = *p; drop(p);` no longer compiles,
/// tests/ui/pinned_str_*.rs), valid across reloads while the value keeps its generation mapped.
#[test]
fn a_static_str_of_the_library_is_lent_while_its_generation_stays_loaded() {
    let _serial = support::serial();
    let module = hello::module();
    let v1 = module.load(support::library("v1")).expect("v1 loads");
    let motto = hello::motto();
    assert_eq!(motto.generation(), Some(v1));
    let lent: &str = &motto;
    assert_eq!(lent, "v1's literal");

    let v2 = module.load(support::library("v2")).expect("v2 loads");
    assert_eq!(&*hello::motto(), "v2's literal");
    assert!(
        module.live_generations().contains(&v1),
        "the value keeps v1"
    );
    // The bytes are v1's read-only data, still mapped.
    assert_eq!(lent, "v1's literal");
    assert_eq!(motto.get().len(), "v1's literal".len());

    drop(motto);
    assert!(
        !module.live_generations().contains(&v1),
        "v1 retires with the value: {:?}",
        module.live_generations()
    );
    assert!(
        support::Footprint::mapped_copies_of(support::library("v1")).is_empty(),
        "v1's library was unmapped with the value"
    );
    assert_eq!(module.generation(), v2);
}

#[test]
fn a_trait_whose_methods_changed_is_refused() {
    let _serial = support::serial();
    let module = hello::module();
    module.load(support::library("v1")).expect("v1 loads");
    let current = module.generation();
    let error = module
        .load(support::library("trait"))
        .expect_err("Speaker gained a method");
    assert!(matches!(error, Error::Incompatible { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("type `hello_fixture::hello::Speaker` changed"),
        "{message}"
    );
    assert!(message.contains("fn volume(&self) -> u32"), "{message}");
    assert_eq!(module.generation(), current);
}
