//! Static builds: `fixtures/static_mode` is built with hotmod's `reload` feature off, in its own
//! target directory (inside this workspace, feature unification would turn `reload` on), and
//! its `static_check` binary verifies generation 0, direct calls, `ReloadDisabled` errors and
//! that no library is ever mapped. Then this (reloading) host's loader is pointed at the static
//! cdylib and finds no descriptor in it.

mod support;

use std::path::PathBuf;
use std::process::Command;

use hello_fixture::hello;

fn static_target() -> PathBuf {
    support::workspace().join("target").join("hotmod-static")
}

fn build_static_mode() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(support::workspace())
        .args([
            "build",
            "--quiet",
            "--manifest-path",
            "fixtures/static_mode/Cargo.toml",
            "--target-dir",
        ])
        .arg(static_target())
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("run cargo");
    assert!(
        output.status.success(),
        "building fixtures/static_mode failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    static_target().join("debug")
}

#[test]
fn a_static_build_calls_directly_and_never_loads() {
    let dir = build_static_mode();
    let cdylib = dir.join(format!(
        "{}static_mode{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(cdylib.is_file(), "{} was built", cdylib.display());

    let output = Command::new(dir.join(format!("static_check{}", std::env::consts::EXE_SUFFIX)))
        .arg(&cdylib)
        .output()
        .expect("run static_check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("static_check: ok"),
        "static_check failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );

    // A reloading host refuses the static cdylib: it carries no descriptor at all.
    let _serial = support::serial();
    let before = hello::module().generation();
    match hello::module().load(&cdylib) {
        Err(hotmod::Error::NoDescriptor { .. }) => {}
        other => panic!("expected NoDescriptor for the static cdylib, got {other:?}"),
    }
    assert_eq!(hello::module().generation(), before);
}
