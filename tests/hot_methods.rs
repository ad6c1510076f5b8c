//! Hot methods (issue 19): the methods of a hot module's public types, written in the module's
//! own impl blocks (inherent and trait impls), reload like its functions, against real cdylibs
//! built by cargo. `hello_fixture`'s variant `stale` changes every method body of `Visitor` and
//! `Reply::label`; the methods marked `#[hotmod::not_hot]` keep the host's copy, and the load
//! names them. (Methods that cannot be hot are compile errors: tests/ui/hot_method_*.rs.)

mod support;

use hello_fixture::hello::{self, Named, Visitor};
use hotmod::Event;

/// Makes v1 the current generation (a real library, not the compiled-in code).
fn serve_v1() -> u64 {
    hello::module()
        .load(support::library("v1"))
        .expect("load v1")
}

#[test]
fn methods_of_public_types_run_the_current_generation() {
    let _serial = support::serial();
    let module = hello::module();
    serve_v1();
    let mut visitor = Visitor::new("ann");
    assert_eq!(visitor.visits, 0);
    assert_eq!(visitor.welcome(), "welcome, ann");
    assert_eq!(visitor.visit(), 1);
    assert_eq!(visitor.name(), "ann");
    assert_eq!(hello::reply("a", 2).label(), "aa x2");

    let events = module.subscribe();
    let stale = module
        .load(support::library("stale"))
        .expect("changed method bodies load");

    // Inherent methods taking `&self`, `&mut self`, `self`, and none (`new`), a private method
    // reached from a hot one, and a trait impl's method, directly and through `dyn Trait`: all
    // run the new generation.
    assert_eq!(visitor.welcome(), "welcome back, ann");
    assert_eq!(visitor.visit(), 11);
    assert_eq!(Named::name(&visitor), "ANN");
    let named: &dyn Named = &visitor;
    assert_eq!(named.name(), "ANN");
    assert_eq!(Visitor::new("bo").visits, 100);
    assert_eq!(hello::reply("a", 2).label(), "aa ×2");
    assert_eq!(visitor.leave(), "welcome back, ann (left after 11)");

    // What is marked `not_hot` runs the host's copy, and the load said so, naming each item.
    let cy = Visitor::new("cy");
    assert_eq!(cy.initial(), 'c');
    assert_eq!(cy.to_string(), "cy");
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

    // And back: a load of v1 brings the old bodies back to every method.
    serve_v1();
    let mut visitor = Visitor::new("ann");
    assert_eq!(
        (visitor.welcome(), visitor.visit(), visitor.name()),
        ("welcome, ann".to_owned(), 1, "ann".to_owned())
    );
}

#[test]
fn a_handle_runs_methods_on_the_generation_it_pinned() {
    let _serial = support::serial();
    let module = hello::module();
    let v1 = serve_v1();
    let pinned = hello::Handle::current();
    let stale = module
        .load(support::library("stale"))
        .expect("changed method bodies load");
    assert_eq!(pinned.generation(), v1);

    // The handle's methods are named `type_method` (`type_trait_method` for a trait impl's) and
    // take the receiver as their first argument.
    let mut visitor = Visitor::new("dee");
    assert_eq!(visitor.visits, 100, "a plain call runs the newest");
    assert_eq!(pinned.visitor_new("eve").visits, 0);
    assert_eq!(pinned.visitor_welcome(&visitor), "welcome, dee");
    assert_eq!(pinned.visitor_visit(&mut visitor), 101);
    assert_eq!(pinned.visitor_named_name(&visitor), "dee");
    assert_eq!(pinned.reply_label(&hello::reply("a", 2)), "aa x2");

    let newest = hello::Handle::current();
    assert_eq!(newest.generation(), stale);
    assert_eq!(newest.visitor_welcome(&visitor), "welcome back, dee");
    assert_eq!(visitor.welcome(), "welcome back, dee");
    assert_eq!(
        pinned.visitor_leave(visitor),
        "welcome, dee (left after 101)"
    );
}
