//! The core promises against real cdylibs built by cargo: in-flight calls finish on their
//! generation, incompatible libraries are refused while the current one keeps serving, panics
//! reach the caller, bad files get distinct typed errors, and the usual types cross.

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Barrier};

use hello_fixture::hello;
use hotmod::{Error, Incompatibility};

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
    let v1 = module.load(support::library("v1")).expect("load v1");
    let entered = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    let caller = {
        let (entered, release) = (entered.clone(), release.clone());
        std::thread::spawn(move || hello::blocking_version(&entered, &release))
    };
    entered.wait(); // the call is now inside generation v1's code

    let v2 = serve_v2();
    // Another thread gets the new code while the first call is still running.
    assert_eq!(hello::version(), 2);
    assert_eq!(
        std::thread::spawn(|| hello::greet("bo")).join().unwrap(),
        "hi bo"
    );
    assert!(
        module.live_generations().contains(&v1),
        "v1 stays while its call runs"
    );

    release.wait();
    assert_eq!(
        caller.join().expect("caller"),
        1,
        "the in-flight call finished on v1"
    );
    assert!(
        !module.live_generations().contains(&v1),
        "v1 retired when its call ended"
    );
    assert!(module.live_generations().contains(&v2));
}

fn rejected(variant: &str) -> (u64, Error) {
    let module = hello::module();
    let before = serve_v2();
    let error = module
        .load(support::library(variant))
        .expect_err("must be refused");
    // The previous generation still serves.
    assert_eq!(module.generation(), before);
    assert_eq!(hello::version(), 2);
    assert_eq!(hello::greet("cy"), "hi cy");
    assert!(
        !module.live_generations().iter().any(|g| *g > before),
        "no generation was added"
    );
    let message = error.to_string();
    assert!(
        message.contains(&support::library(variant).display().to_string()),
        "{message}"
    );
    assert!(message.starts_with("hello_fixture::hello: "), "{message}");
    (before, error)
}

#[test]
fn a_changed_signature_is_refused_with_expected_and_found() {
    let _serial = support::serial();
    let (_, error) = rejected("sig");
    let Error::Incompatible { changes, .. } = &error else {
        panic!("wrong error: {error:?}")
    };
    assert_eq!(
        changes,
        &[Incompatibility::FunctionChanged {
            name: "greet".into(),
            expected: "fn(&str) -> String".into(),
            found: "fn(&str, bool) -> String".into(),
        }]
    );
    assert!(
        error.to_string().contains(
            "function `greet` changed from fn(&str) -> String to fn(&str, bool) -> String; restart the host"
        ),
        "{error}"
    );
}

#[test]
fn a_removed_function_is_refused() {
    let _serial = support::serial();
    let (_, error) = rejected("removed");
    let Error::Incompatible { changes, .. } = &error else {
        panic!("wrong error: {error:?}")
    };
    assert_eq!(
        changes,
        &[Incompatibility::FunctionRemoved {
            name: "answer".into(),
            expected: "fn() -> u32".into()
        }]
    );
    assert!(
        error
            .to_string()
            .contains("function `answer` (fn() -> u32) is missing"),
        "{error}"
    );
}

#[test]
fn a_struct_whose_size_changed_is_refused() {
    let _serial = support::serial();
    let (_, error) = rejected("layout");
    let Error::Incompatible { changes, .. } = &error else {
        panic!("wrong error: {error:?}")
    };
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Incompatibility::TypeChanged { name, .. } if name == "Reply")),
        "{error}"
    );
    assert!(
        error.to_string().contains("extra: u64"),
        "the message shows the new field: {error}"
    );
}

#[test]
fn a_struct_whose_fields_moved_is_refused() {
    let _serial = support::serial();
    let (_, error) = rejected("reorder");
    assert!(
        error.to_string().contains("type `Reply` changed"),
        "{error}"
    );
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
fn bad_files_get_distinct_errors_naming_the_file() {
    let _serial = support::serial();
    let module = hello::module();
    let before = serve_v2();
    let dir = support::TempDir::new("bad-files");

    let missing = dir.path().join("libmissing.so");
    let error = module.load(&missing).unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&missing.display().to_string()),
        "{error}"
    );

    let text = dir.path().join("libtext.so");
    std::fs::write(&text, "this is not a library\n").unwrap();
    let error = module.load(&text).unwrap_err();
    assert!(matches!(error, Error::NotALibrary { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&text.display().to_string()),
        "{error}"
    );

    let error = module.load(dir.path()).unwrap_err();
    assert!(matches!(error, Error::NotAFile { .. }), "{error:?}");

    let plain = support::library("plain");
    let error = module.load(plain).unwrap_err();
    assert!(matches!(error, Error::NoDescriptor { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&plain.display().to_string()),
        "{error}"
    );

    let other = support::library("greeter");
    let error = module.load(other).unwrap_err();
    let Error::OtherModule { found, .. } = &error else {
        panic!("wrong error: {error:?}")
    };
    assert_eq!(found, &["greeter::hello".to_string()]);
    assert!(
        error
            .to_string()
            .contains("another hot module (greeter::hello)"),
        "{error}"
    );

    assert_eq!(
        module.generation(),
        before,
        "the live generation kept serving throughout"
    );
    assert_eq!(hello::version(), 2);
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
}
