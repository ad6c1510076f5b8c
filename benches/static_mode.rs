//! Static builds: runs `fixtures/static_mode`'s criterion bench (`static_calls`), which compares
//! a hot module's functions with hotmod's `reload` feature off against the same functions
//! written without the attribute. That crate is built in its own target directory
//! (`target/hotmod-static`): inside this workspace, Cargo's feature unification would turn
//! `reload` back on. Arguments (filters, `--warm-up-time`, …) are passed through.
//!
//! `cargo bench -p hotmod-benches --bench static_mode`

use std::path::Path;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    // The benches' package is the workspace's `benches/` directory.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the benches' package is inside the workspace")
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&workspace)
        .args([
            "bench",
            "--quiet",
            "--bench",
            "static_calls",
            "--manifest-path",
        ])
        .arg(workspace.join("fixtures/static_mode/Cargo.toml"))
        .arg("--target-dir")
        .arg(workspace.join("target/hotmod-static"))
        // Criterion writes beside the target directory, not into the fixture's source tree.
        .env(
            "CRITERION_HOME",
            workspace.join("target/hotmod-static/criterion"),
        )
        .arg("--")
        // The inner `cargo bench` passes its own `--bench`; criterion rejects it twice.
        .args(std::env::args_os().skip(1).filter(|arg| arg != "--bench"))
        .status();
    match status {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("static_mode: the static-build bench failed ({status})");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("static_mode: cannot run cargo: {error}");
            ExitCode::FAILURE
        }
    }
}
