//! An old handle and a new one, side by side.
//!
//! 1. Copies the `greeter` module crate, builds its cdylib and loads it as generation 1.
//! 2. Pins generation 1 in a `Handle`, as a request would at its start.
//! 3. Edits the copy (`hello` becomes `bonjour`), builds it, and loads it
//!    as generation 2 — the host keeps running.
//! 4. Shows the old handle still answering with generation 1 while plain calls and new handles
//!    get generation 2; then drops the old handle and watches generation 1 retire.
//!
//! Run with `cargo run --example side_by_side` (the copies build into
//! `target/hotmod-examples/target`, which the tour and direct_handles share).

#[path = "shared/crate_copy.rs"]
mod crate_copy;

use greeter::hello;

fn main() -> crate_copy::Result<()> {
    let workspace = crate_copy::workspace();
    // The examples' one scratch directory and target directory (the tour's and
    // direct_handles' too): hotmod is compiled there once for all of their copies.
    let scratch = workspace.join("target").join("hotmod-examples");
    let target = scratch.join("target");
    let module = hello::module();

    println!(
        "generation {} (built into the binary): {}",
        module.generation(),
        hello::greet("world")
    );

    // A copy of the module crate, built as written and then edited; each build lands at the
    // same path, so each is kept aside, under the target directory's lock, before the next.
    let dir = scratch.join("side-by-side");
    let copy = crate_copy::copy_crate(&workspace.join("examples/greeter"), &dir.join("greeter"))?;
    let lock = crate_copy::lock(&target)?;
    let keep = |name: &str| -> crate_copy::Result<std::path::PathBuf> {
        let built = crate_copy::build(&copy, &target, "greeter")?;
        let kept = dir.join(name);
        std::fs::copy(&built, &kept)?;
        Ok(kept)
    };
    println!("building {} ...", copy.display());
    let v1 = keep("greeter-hello.so")?;
    // `hello` becomes `bonjour`.
    crate_copy::edit(
        &copy.join("src/lib.rs"),
        &[(r#"format!("hello {name}")"#, r#"format!("bonjour {name}")"#)],
    )?;
    println!("building the edited copy ...");
    let v2 = keep("greeter-bonjour.so")?;
    drop(lock);

    let g1 = module.load(&v1)?;
    println!("loaded {} as generation {g1}", v1.display());
    let old = hello::Handle::current();

    let g2 = module.load(&v2)?;
    println!("loaded the edited module as generation {g2}");

    let new = hello::Handle::current();
    println!();
    println!(
        "  old handle  (generation {}): {}",
        old.generation(),
        old.greet("world")
    );
    println!(
        "  new handle  (generation {}): {}",
        new.generation(),
        new.greet("world")
    );
    println!(
        "  plain call  (generation {}): {}",
        module.generation(),
        hello::greet("world")
    );
    println!();
    println!(
        "live generations while the old handle is held: {:?}",
        module.live_generations()
    );
    drop(old);
    println!(
        "live generations after it is dropped:          {:?}",
        module.live_generations()
    );
    Ok(())
}
