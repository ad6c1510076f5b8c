//! Shared by the integration tests: real cdylibs built by cargo, once per test process, into
//! one target directory shared by every test binary (`target/hotmod-fixtures`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// Copying, editing and building module crates, shared with the examples.
#[path = "../../examples/shared/crate_copy.rs"]
pub mod crate_copy;

/// The variants of `fixtures/hello_fixture` (see its build.rs).
pub const VARIANTS: &[&str] = &[
    "v1",
    "v2",
    "sig",
    "removed",
    "added",
    "layout",
    "reorder",
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

/// A build of a copy of the workspace crate at `crate_dir` (e.g. `examples/handler`) with
/// `edits` applied to its `src/lib.rs` (none: the crate as written), the way a user edits a
/// module while the host runs. Built once per process under `label`, in the shared fixture
/// target directory (under the same file lock as the other fixtures); returns
/// `variants/<label>.so`.
pub fn edited_library(
    crate_dir: &str,
    lib_name: &str,
    label: &str,
    edits: &[(&str, &str)],
) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(path) = built.get_or_insert_with(HashMap::new).get(label) {
        return path.clone();
    }
    std::fs::create_dir_all(fixtures_dir()).expect("create fixture dir");
    let lock = File::create(fixtures_dir().join(".lock")).expect("create lock file");
    lock.lock().expect("lock fixture dir");
    // One copy directory per crate, rewritten for every variant: cargo's fingerprints follow
    // the sources of the copy they last built, so a variant built from another directory
    // could be taken for fresh.
    let name = Path::new(crate_dir).file_name().expect("a crate directory");
    let copy = fixtures_dir().join("copies").join(name);
    crate_copy::copy_crate(&workspace().join(crate_dir), &copy)
        .unwrap_or_else(|e| panic!("copying {crate_dir}: {e}"));
    if !edits.is_empty() {
        crate_copy::edit(&copy.join("src/lib.rs"), edits)
            .unwrap_or_else(|e| panic!("editing the copy of {crate_dir}: {e}"));
    }
    let artifact = crate_copy::build(&copy, &fixtures_dir(), lib_name)
        .unwrap_or_else(|e| panic!("building variant {label}: {e}"));
    let dir = fixtures_dir().join("variants");
    std::fs::create_dir_all(&dir).expect("create variants dir");
    let dest = dir.join(format!("{label}{}", std::env::consts::DLL_SUFFIX));
    let tmp = dir.join(format!(".{label}.{}.tmp", std::process::id()));
    std::fs::copy(&artifact, &tmp).expect("copy variant");
    std::fs::rename(&tmp, &dest).expect("publish variant");
    drop(lock);
    built
        .get_or_insert_with(HashMap::new)
        .insert(label.to_owned(), dest.clone());
    dest
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
