//! Records the toolchain identity that every descriptor carries: a library built by another
//! rustc, for another target, with other target features, or against another hotmod may lay
//! out the same types differently or pass them in other registers (register trampolines follow
//! the platform's C ABI, which target features such as `soft-float` or `sse2` change), so the
//! loader refuses it before any call.

use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(&rustc)
        .arg("-vV")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .unwrap_or_default();
    let field = |key: &str| {
        version
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .map(str::trim)
            .unwrap_or("unknown")
            .to_owned()
    };
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    // What `-C target-feature`/`-C target-cpu` enabled, in cargo's order (sorted).
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let identity = format!(
        "rustc {} ({}) {} [{}] hotmod {}",
        field("release:"),
        field("commit-hash:").get(..9).unwrap_or("unknown"),
        target,
        features,
        std::env::var("CARGO_PKG_VERSION").unwrap_or_default(),
    );
    println!("cargo:rustc-env=HOTMOD_TOOLCHAIN={identity}");
    println!("cargo:rerun-if-env-changed=RUSTC");
    println!("cargo:rerun-if-changed=build.rs");
}
