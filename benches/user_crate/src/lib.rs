//! The user-crate harness's host code: what an application would write around its hot module.
//! The bench (`user_calls.rs`) times these against host-local `extern "C"` functions.

use std::path::{Path, PathBuf};
use std::process::Command;

pub use bench_module::ops;

/// The host's own `add`, the floor: a C-ABI function of this crate, never inlined (the bench
/// calls it through a `black_box`ed pointer).
#[inline(never)]
pub extern "C" fn host_add(a: u64, b: u64) -> u64 {
    a.wrapping_add(b)
}

/// The host's own `greet`. `&str` and `String` are not C types; caller and callee are this
/// crate, which is all the baseline needs.
#[allow(improper_ctypes_definitions)]
#[inline(never)]
pub extern "C" fn host_greet(name: &str) -> String {
    format!("hello {name}")
}

/// The workspace's root (this package is `benches/user_crate`).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("benches/user_crate is inside the workspace")
        .to_path_buf()
}

/// Builds the bench module's cdylib in release (its own target directory: the one `cargo bench`
/// holds stays locked) and returns its path, as a user's build step would.
pub fn build_library() -> PathBuf {
    let target = workspace().join("target").join("hotmod-user-bench");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(workspace())
        .args([
            "build",
            "--quiet",
            "--release",
            "--lib",
            "-p",
            "bench_module",
        ])
        .arg("--target-dir")
        .arg(&target)
        .output()
        .expect("run cargo");
    assert!(
        output.status.success(),
        "building the bench module failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    target.join("release").join(format!(
        "{}bench_module{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}
