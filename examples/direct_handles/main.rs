//! Direct handles: hotmod from a library user's side, asserting as it goes.
//!
//! Builds the `greeter` module twice (as written, and with `greet` edited to say "bonjour"),
//! then walks through capturing handles, comparing generations, holding an old handle while
//! loading a new file, subscribing to events, a refused file, and retiring a generation. Every
//! step checks what it claims; the first failed check ends the run with an error.
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
    println!("building {} …", copy.display());
    let built = crate_copy::build(&copy, &target, "greeter")?;
    // Keep this build aside: the next one lands at the same path.
    let first = scratch.join("direct-handles").join("greeter-first.so");
    std::fs::copy(&built, &first)?;
    crate_copy::edit(
        &copy.join("src/lib.rs"),
        &[(r#"format!("hello {name}")"#, r#"format!("bonjour {name}")"#)],
    )?;
    println!("building the edited copy …");
    let second = crate_copy::build(&copy, &target, "greeter")?;
    walkthrough::run(&first, &second, &mut std::io::stdout())
}
