//! The direct-handles example's walkthrough, run with real builds of the greeter module: it
//! asserts every step itself (load, capture, hold old handles across loads of builds that answer
//! differently, events, a refused file, retirement while an older generation stays pinned).

mod support;

#[path = "../examples/direct_handles/walkthrough.rs"]
mod walkthrough;

#[test]
fn the_direct_handles_walkthrough_passes_every_check() {
    let first = support::edited_library("examples/greeter", "greeter", "greeter-first", &[]);
    let second = support::edited_library(
        "examples/greeter",
        "greeter",
        "greeter-bonjour",
        &[(r#"format!("hello {name}")"#, r#"format!("bonjour {name}")"#)],
    );
    let third = support::edited_library(
        "examples/greeter",
        "greeter",
        "greeter-hola",
        &[(r#"format!("hello {name}")"#, r#"format!("hola {name}")"#)],
    );
    let mut out = Vec::new();
    let result = walkthrough::run(&first, &second, &third, &mut out);
    let text = String::from_utf8_lossy(&out);
    println!("{text}");
    assert!(result.is_ok(), "{result:?}\n{text}");
    assert!(text.contains("All checks passed."), "{text}");
    assert!(!text.contains("FAILED"), "{text}");
}
