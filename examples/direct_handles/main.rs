//! Direct handles: hotmod from a library user's side, asserting as it goes.
//!
//! Builds the `greeter` module three times (as written, with `greet` edited to say "bonjour",
//! and edited again to say "hola"), then walks through loading, capturing handles, comparing
//! generations, holding old handles while loading new files, subscribing to events, a refused
//! file, and retiring a generation. Every step checks what it claims; the first failed check
//! ends the run with an error.
//!
//! Run with `cargo run --example direct_handles` (the first run builds hotmod for the copies,
//! later runs take seconds). The walkthrough itself is `walkthrough.rs`; the tests run it too.

#[path = "../shared/crate_copy.rs"]
mod crate_copy;
mod walkthrough;

use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("direct_handles: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> crate_copy::Result<()> {
    let workspace = crate_copy::workspace();
    let scratch = workspace.join("target").join("hotmod-examples");
    let target = scratch.join("target");
    // The copy lives beside the target directory and is rewritten every run (see
    // `crate_copy::copy_crate` for why not a fresh temporary directory).
    let copy = crate_copy::copy_crate(
        &workspace.join("examples/greeter"),
        &scratch.join("direct-handles").join("greeter"),
    )?;
    // Each build lands at the same path: keep each aside before the next edit. Until then the
    // lock keeps other processes that build into this target directory (the tour) waiting.
    let lock = crate_copy::lock(&target)?;
    let keep = |built: &std::path::Path, name: &str| -> crate_copy::Result<std::path::PathBuf> {
        let kept = scratch.join("direct-handles").join(name);
        std::fs::copy(built, &kept)?;
        Ok(kept)
    };
    println!("building {} …", copy.display());
    let first = keep(
        &crate_copy::build(&copy, &target, "greeter")?,
        "greeter-hello.so",
    )?;
    let lib_rs = copy.join("src/lib.rs");
    crate_copy::edit(
        &lib_rs,
        &[(r#"format!("hello {name}")"#, r#"format!("bonjour {name}")"#)],
    )?;
    println!("building the edited copy …");
    let second = keep(
        &crate_copy::build(&copy, &target, "greeter")?,
        "greeter-bonjour.so",
    )?;
    crate_copy::edit(
        &lib_rs,
        &[(r#"format!("bonjour {name}")"#, r#"format!("hola {name}")"#)],
    )?;
    println!("building it edited again …");
    let third = keep(
        &crate_copy::build(&copy, &target, "greeter")?,
        "greeter-hola.so",
    )?;
    drop(lock);
    walkthrough::run(&first, &second, &third, &mut std::io::stdout())
}
