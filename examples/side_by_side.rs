//! An old handle and a new one, side by side.
//!
//! 1. Builds the `greeter` module's cdylib and loads it as generation 1.
//! 2. Pins generation 1 in a `Handle`, as a request would at its start.
//! 3. Writes an edited copy of the module (`hello` becomes `bonjour`), builds it, and loads it
//!    as generation 2 — the host keeps running.
//! 4. Shows the old handle still answering with generation 1 while plain calls and new handles
//!    get generation 2; then drops the old handle and watches generation 1 retire.
//!
//! Run with `cargo run --example side_by_side`.

use std::path::{Path, PathBuf};
use std::process::Command;

use greeter::hello;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // This example's package is `examples/`, in the workspace's root.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("the examples' package has no parent directory")?;
    let target = workspace.join("target").join("side-by-side");
    let module = hello::module();

    println!(
        "generation {} (built into the binary): {}",
        module.generation(),
        hello::greet("world")
    );

    let v1 = build(&workspace.join("examples/greeter"), &target)?;
    let g1 = module.load(&v1)?;
    println!("loaded {} as generation {g1}", v1.display());
    let old = hello::Handle::current();

    let edited = edited_copy(workspace, &target)?;
    let v2 = build(&edited, &target)?;
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

/// `cargo build` of the module crate at `dir` into `target`; returns the cdylib's path.
fn build(dir: &Path, target: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("building {} ...", dir.display());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--lib", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target)
        .status()?;
    if !status.success() {
        return Err(format!("cargo build of {} failed", dir.display()).into());
    }
    let file = format!(
        "{}greeter{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    Ok(target.join("debug").join(file))
}

/// A copy of `examples/greeter` with `greet` edited, outside the workspace.
fn edited_copy(workspace: &Path, target: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let dir = target.join("greeter-edited");
    std::fs::create_dir_all(dir.join("src"))?;
    let manifest = std::fs::read_to_string(workspace.join("examples/greeter/Cargo.toml"))?;
    let hotmod = workspace.join("hotmod");
    let manifest = manifest.replace(
        "\"../../hotmod\"",
        &format!("{:?}", hotmod.display().to_string()),
    );
    // An empty workspace table keeps the copy out of hotmod's workspace.
    std::fs::write(dir.join("Cargo.toml"), format!("{manifest}\n[workspace]\n"))?;
    // The workspace's lock file: the same dependency versions, and no registry lookup.
    std::fs::copy(workspace.join("Cargo.lock"), dir.join("Cargo.lock"))?;
    let source = std::fs::read_to_string(workspace.join("examples/greeter/src/lib.rs"))?;
    let edited = source.replace("format!(\"hello {name}\")", "format!(\"bonjour {name}\")");
    if edited == source {
        return Err(
            "examples/greeter/src/lib.rs no longer contains the line this demo edits".into(),
        );
    }
    std::fs::write(dir.join("src/lib.rs"), edited)?;
    Ok(dir)
}
