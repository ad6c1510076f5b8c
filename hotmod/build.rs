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

    // `hotmod_lease`: the watcher can take read leases (`F_SETLEASE`) on this target: Linux, on
    // the architectures whose `F_SETSIG` value `os/linux_lease.rs` knows. One cfg, so `os/mod.rs`
    // picks the lease module without writing the list twice.
    println!("cargo::rustc-check-cfg=cfg(hotmod_lease)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let lease_arches = [
        "x86",
        "x86_64",
        "arm",
        "aarch64",
        "riscv64",
        "loongarch64",
        "powerpc64",
        "s390x",
    ];
    if os == "linux" && lease_arches.contains(&arch.as_str()) {
        println!("cargo:rustc-cfg=hotmod_lease");
    }
    println!("cargo:rerun-if-env-changed=RUSTC");
    println!("cargo:rerun-if-changed=build.rs");
}
