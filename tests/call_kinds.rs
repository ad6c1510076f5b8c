//! The two trampoline kinds (hotmod's `abi.rs`): functions whose arguments and result fit in
//! registers get register trampolines, the others memory trampolines. Both must return values,
//! and re-raise the module's panic message, through every call path and across a reload; and a
//! library whose kind for a function differs from the host's must be refused.

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};

use hello_fixture::hello;
use hotmod::{Error, Incompatibility};

/// The panic message a call re-raised.
fn message(payload: Box<dyn std::any::Any + Send>) -> String {
    *payload
        .downcast::<String>()
        .expect("a module panic's payload is its message")
}

/// Calls of every shape, through a plain call and a handle, expecting `version`'s behaviour.
fn check_calls(version: u32) {
    let handle = hello::Handle::current();
    let v = u64::from(version);
    // Registers: integers, a `&mut`, a fat `&str` beside a float, a float result, `()`.
    assert_eq!(hello::checked(3), 3 * version);
    assert_eq!(handle.checked(3), 3 * version);
    assert_eq!(hello::weigh("abcd", 0.5), 2.0 * f64::from(version));
    assert_eq!(handle.weigh("abcd", 0.5), 2.0 * f64::from(version));
    let mut counter = 10;
    hello::bump(&mut counter);
    handle.bump(&mut counter);
    assert_eq!(counter, 10 + 2 * v);
    // Memory: an owned `String` result, a `Vec` argument.
    assert_eq!(hello::described(7), format!("v{version}: 7"));
    assert_eq!(handle.described(7), format!("v{version}: 7"));
    assert_eq!(hello::sum(vec![1, 2]), 3 * v);

    // A panic in each kind, by plain call and by handle: the module's message arrives.
    let expected = format!("fixture v{version} refuses zero");
    let plain = catch_unwind(|| hello::checked(0)).expect_err("register call panics");
    assert_eq!(message(plain), expected);
    let pinned = catch_unwind(AssertUnwindSafe(|| handle.checked(0))).expect_err("panics");
    assert_eq!(message(pinned), expected);
    let weighed = catch_unwind(|| hello::weigh("", 1.0)).expect_err("register call panics");
    assert_eq!(
        message(weighed),
        format!("fixture v{version} weighs no empty word")
    );
    let expected = format!("fixture v{version} describes no zero");
    let plain = catch_unwind(|| hello::described(0)).expect_err("memory call panics");
    assert_eq!(message(plain), expected);
    let pinned = catch_unwind(AssertUnwindSafe(|| handle.described(0))).expect_err("panics");
    assert_eq!(message(pinned), expected);

    // Still callable after the panics.
    assert_eq!(hello::checked(1), version);
    assert_eq!(handle.described(1), format!("v{version}: 1"));
}

#[test]
fn both_kinds_work_across_reloads_and_panics_reach_the_host() {
    let _serial = support::serial();
    let module = hello::module();
    // Generation 0: the compiled-in code.
    check_calls(1);
    module.load(support::library("v1")).expect("load v1");
    let v1 = hello::Handle::current();
    check_calls(1);
    module.load(support::library("v2")).expect("load v2");
    check_calls(2);
    // The older generation's handle still calls its own code, of both kinds.
    assert_eq!(v1.checked(5), 5);
    assert_eq!(v1.described(5), "v1: 5");
    assert_eq!(
        message(catch_unwind(AssertUnwindSafe(|| v1.weigh("", 2.0))).expect_err("panics")),
        "fixture v1 weighs no empty word"
    );
    drop(v1);
    module.load(support::library("v1")).expect("reload v1");
    check_calls(1);
}

#[test]
fn a_library_whose_trampoline_kinds_differ_is_refused() {
    let _serial = support::serial();
    let module = hello::module();
    let before = module.generation();
    // Built with every function on memory trampolines: same signatures and layouts, so only
    // the kind tells the register functions apart.
    let error = module
        .load(support::library("memabi"))
        .expect_err("a library with other trampoline kinds is refused");
    let Error::Incompatible { changes, .. } = &error else {
        panic!("expected an incompatibility, got {error}");
    };
    let changed = |name: &str| {
        changes.iter().any(|c| {
            matches!(c, Incompatibility::FunctionChanged { name: n, expected, found }
                if n == name
                    && expected.ends_with(" (registers trampoline)")
                    && found.ends_with(" (memory trampoline)"))
        })
    };
    for name in ["checked", "weigh", "version", "bump", "answer"] {
        assert!(changed(name), "{name} not reported in {changes:?}");
    }
    // Memory functions are the same kind on both sides: not reported.
    assert!(
        !changes.iter().any(|c| matches!(c,
            Incompatibility::FunctionChanged { name, .. } if name == "greet" || name == "described")),
        "{changes:?}"
    );
    assert_eq!(module.generation(), before, "nothing was loaded");
    assert_eq!(hello::checked(2), 2 * hello::version());
}
