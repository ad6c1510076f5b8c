//! Shared by the integration tests: real cdylibs built by cargo, once per test process, into
//! one target directory shared by every test binary (`target/hotmod-fixtures`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// How long tests wait for an event: generous for a busy 2-core machine; a missing event still
/// fails the test.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The variants of `fixtures/state_fixture` (see its build.rs).
pub const STATE_VARIANTS: &[&str] = &["s1", "s2", "s2nomigrate", "s2badmigrate"];

/// The variants of `fixtures/hello_fixture` (see its build.rs).
pub const VARIANTS: &[&str] = &[
    "v1",
    "v2",
    "sig",
    "removed",
    "added",
    "layout",
    "reorder",
    "trait",
    "badinit",
    "panicinit",
];

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures_dir() -> PathBuf {
    workspace().join("target").join("hotmod-fixtures")
}

fn dylib(name: &str) -> String {
    format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Runs `cargo build -p <package>` in the shared fixture target directory and copies the
/// cdylib to `variants/<label>.so`, so variants built one after another do not overwrite
/// each other.
fn build(package: &str, lib_name: &str, label: &str, env: &[(&str, &str)]) -> PathBuf {
    let target = fixtures_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace())
        .args(["build", "--quiet", "--lib", "-p", package, "--target-dir"])
        .arg(&target)
        .env_remove("HOTMOD_FIXTURE");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run cargo");
    assert!(
        output.status.success(),
        "building fixture {label} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let built = target.join("debug").join(dylib(lib_name));
    let dir = target.join("variants");
    std::fs::create_dir_all(&dir).expect("create variants dir");
    let dest = dir.join(format!("{label}{}", std::env::consts::DLL_SUFFIX));
    let tmp = dir.join(format!(".{label}.{}.tmp", std::process::id()));
    std::fs::copy(&built, &tmp).expect("copy fixture");
    std::fs::rename(&tmp, &dest).expect("publish fixture");
    dest
}

/// Every fixture library, built once per process (under a file lock, so test processes that
/// run at the same time take turns).
fn all() -> &'static HashMap<String, PathBuf> {
    static ALL: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    ALL.get_or_init(|| {
        std::fs::create_dir_all(fixtures_dir()).expect("create fixture dir");
        let lock = File::create(fixtures_dir().join(".lock")).expect("create lock file");
        lock.lock().expect("lock fixture dir");
        let mut all = HashMap::new();
        for variant in VARIANTS {
            let path = build(
                "hello_fixture",
                "hello_fixture",
                variant,
                &[("HOTMOD_FIXTURE", variant)],
            );
            all.insert(variant.to_string(), path);
        }
        for variant in STATE_VARIANTS {
            let env = [("HOTMOD_FIXTURE", *variant)];
            let path = build("state_fixture", "state_fixture", variant, &env);
            all.insert(variant.to_string(), path);
        }
        all.insert(
            "greeter".into(),
            build("greeter", "greeter", "greeter", &[]),
        );
        all.insert(
            "plain".into(),
            build("plain_cdylib", "plain_cdylib", "plain", &[]),
        );
        drop(lock);
        all
    })
}

/// The path of a built fixture: a `hello_fixture` variant, `greeter` (another hot module's
/// library) or `plain` (a cdylib without hotmod).
pub fn library(name: &str) -> &'static Path {
    all()
        .get(name)
        .unwrap_or_else(|| panic!("no fixture named {name}"))
}

/// Tests in one binary share the fixture module's generations: take this first.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Polls `condition` until it holds or a generous timeout passes.
pub fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("hotmod-test-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
