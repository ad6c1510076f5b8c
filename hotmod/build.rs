//! Records the toolchain identity that every descriptor carries: a library built by another
//! rustc, for another target, with other target features, or against another hotmod (another
//! version, or other source of its interface: see `INTERFACE`) may lay out the same types
//! differently or pass them in other registers (register trampolines follow
//! the platform's C ABI, which target features such as `soft-float` or `sse2` change), so the
//! loader refuses it before any call.

use std::process::Command;

/// hotmod's own source of what a library and its host share beyond the toolchain: the
/// descriptor, trampolines and host links (`abi.rs`), type descriptions (`describe.rs`), the
/// call kinds (`invocation.rs`), `Pinned` (`pinned.rs`), the state hand-over (`state.rs`), and
/// the `Module` whose operations table a library's copy of hotmod calls in the host, with what
/// those operations take and return (`module.rs`, `error.rs`, `events.rs`, `rollback.rs`).
/// A path or git dependency on hotmod changes without a version bump, so the version alone does
/// not tell two builds of it apart; a digest of these files does (doc edits included: a rebuild
/// of the module is all they cost).
const INTERFACE: &[&str] = &[
    "src/abi.rs",
    "src/describe.rs",
    "src/invocation.rs",
    "src/pinned.rs",
    "src/state.rs",
    "src/module.rs",
    "src/error.rs",
    "src/events.rs",
    "src/rollback.rs",
];

/// FNV-1a, 64 bits, over the interface files in order (a missing one counts as empty).
fn interface_digest() -> u64 {
    let dir = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for file in INTERFACE {
        println!("cargo:rerun-if-changed={file}");
        let bytes = std::fs::read(dir.join(file)).unwrap_or_default();
        for byte in bytes.iter().chain(b"\0") {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

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
        "rustc {} ({}) {} [{}] hotmod {} interface {:016x}",
        field("release:"),
        field("commit-hash:").get(..9).unwrap_or("unknown"),
        target,
        features,
        std::env::var("CARGO_PKG_VERSION").unwrap_or_default(),
        interface_digest(),
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
    // `hotmod_restart`: the kept-state restart's machinery (`handover.rs`) is built: reloading
    // on, on Unix (descriptors inherited across `exec`).
    println!("cargo::rustc-check-cfg=cfg(hotmod_restart)");
    if std::env::var_os("CARGO_FEATURE_RELOAD").is_some()
        && std::env::var_os("CARGO_CFG_UNIX").is_some()
    {
        println!("cargo:rustc-cfg=hotmod_restart");
    }
    println!("cargo:rerun-if-env-changed=RUSTC");
    println!("cargo:rerun-if-changed=build.rs");
}
