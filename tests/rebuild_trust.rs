//! The built-in rebuild runs nothing another user could have written (docs/guarantees.md, "Who
//! could have written the library"): before each `cargo build` it checks the crate's directory
//! and sources and every file cargo and rustup look for on the way, by the library rules without
//! the sticky-directory exception. A refusal is an `Event::Rejected` carrying
//! `Error::InsecureBuildInput`, cargo does not run, and the current generation keeps serving.
//!
//! Each test builds a copy of `fixtures/hello_fixture` whose `build.rs` first writes a marker
//! file: after a refusal the marker must not exist (cargo did not run), after a build it must.
//! The copies live under the workspace's target directory, not under the temporary directory:
//! the rebuild refuses anything below the sticky `/tmp`, where anyone can create the
//! `/tmp/.cargo/config.toml` cargo would read. Giving a file to another user needs root (as
//! here and in CI); run as another user, those cases are skipped, saying so.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hello_fixture::hello;
use hotmod::{Error, Event, Events};

/// The first build compiles hotmod and its dependencies into this test's target directory.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);
/// A user and group that are neither this process's nor root's.
const NOBODY: u32 = 65534;

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid))
        .unwrap_or_else(|e| panic!("chown {uid} {}: {e}", path.display()));
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

fn rebuild_root() -> PathBuf {
    support::workspace().join("target/hotmod-rebuild-trust")
}

/// A directory of this test's under `target/hotmod-rebuild-trust`, mode 0755, removed on drop
/// (given back to this user first, whatever a test gave away).
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Scratch {
        let dir = rebuild_root().join(format!("{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        chmod(&dir, 0o755);
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The crate copy in `scratch/hello_fixture` (every directory 0755, every file 0644), whose
/// build script writes `scratch/cargo-ran` first. Returns the copy and the marker's path.
fn crate_copy(scratch: &Scratch) -> (PathBuf, PathBuf) {
    let copy = support::copy_fixture("hello_fixture", &scratch.0.join("hello_fixture"));
    let marker = scratch.0.join("cargo-ran");
    support::crate_copy::edit(
        &copy.join("build.rs"),
        &[(
            "fn main() {",
            &format!(
                "fn main() {{\n    std::fs::write({:?}, \"cargo ran this build script\\n\")\
                 .expect(\"write the marker\");",
                marker.display().to_string()
            ),
        )],
    )
    .expect("make the build script leave a marker");
    close(&copy);
    (copy, marker)
}

/// Directories 0755, files 0644, whatever the umask.
fn close(path: &Path) {
    if path.is_dir() {
        chmod(path, 0o755);
        for entry in std::fs::read_dir(path).expect("read_dir") {
            close(&entry.expect("entry").path());
        }
    } else {
        chmod(path, 0o644);
    }
}

/// Stops the module's rebuild however the test ends.
struct Unwatch;

impl Drop for Unwatch {
    fn drop(&mut self) {
        hello::module().unwatch();
    }
}

/// From v1, subscribes and starts the rebuild of `copy`.
fn start_rebuild(copy: &Path) -> (Events, Unwatch) {
    let module = hello::module();
    module.unwatch();
    module.load(support::library("v1")).expect("v1 loads");
    let events = module.subscribe();
    support::start_hello_rebuild(copy, &rebuild_root().join("target"));
    (events, Unwatch)
}

/// Saves `src/lib.rs` with `version()` answering `version`, and returns the events up to the
/// build's outcome (loaded, failed or rejected), that one last.
fn save(copy: &Path, events: &Events, version: u32) -> Vec<Event> {
    let lib = copy.join("src/lib.rs");
    let text = std::fs::read_to_string(&lib).expect("read lib.rs");
    let at = text.find("{ 2 } else { ").expect("the version expression") + "{ 2 } else { ".len();
    let end = at + text[at..].find(' ').expect("the end of the number");
    std::fs::write(&lib, format!("{}{version}{}", &text[..at], &text[end..])).expect("save lib.rs");
    let mut seen = Vec::new();
    events
        .wait_for(BUILD_TIMEOUT, |event| {
            seen.push(event.clone());
            support::is_build_outcome(event)
        })
        .expect("the save has an outcome");
    seen
}

/// The rebuild refused without running cargo: returns the `InsecureBuildInput`'s path and
/// reason, after checking the rest of the promise.
fn refused(seen: &[Event], marker: &Path, live: u64) -> (PathBuf, String) {
    let Some(Event::Rejected { error, .. }) = seen.last() else {
        panic!("expected a refusal, got {seen:?}")
    };
    assert!(
        !seen.iter().any(|e| matches!(e, Event::BuildStarted { .. })),
        "no build started: {seen:?}"
    );
    assert!(
        !marker.exists(),
        "cargo ran the build script: {}",
        marker.display()
    );
    assert_eq!(hello::module().generation(), live, "the generation stays");
    assert_eq!(hello::version(), 1);
    let message = error.to_string();
    eprintln!("refused as expected: {message}");
    let Error::InsecureBuildInput {
        module,
        package,
        path,
        reason,
    } = error
    else {
        panic!("wrong error: {error:?}")
    };
    assert_eq!(*module, "hello_fixture::hello");
    assert_eq!(package, "hello_fixture");
    assert_eq!(error.path(), Some(path.as_path()));
    assert!(
        message.starts_with(&format!(
            "hello_fixture::hello: hello_fixture was not rebuilt: {} {reason}, so another user \
             could have written code the build would compile or run",
            path.display()
        )),
        "{message}"
    );
    assert!(
        message.contains("hotmod::allow_insecure_paths(true)"),
        "{message}"
    );
    (path.clone(), reason.clone())
}

/// The save was built (cargo ran the build script) and loaded.
fn built(seen: &[Event], marker: &Path, version: u32) {
    assert!(
        matches!(seen.last(), Some(Event::Loaded { .. })),
        "expected a load, got {seen:?}"
    );
    assert!(
        marker.exists(),
        "cargo ran, so the build script wrote {}",
        marker.display()
    );
    assert_eq!(hello::version(), version);
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).expect("canonicalize")
}

#[test]
fn a_world_writable_source_is_refused_without_running_cargo_and_a_clean_copy_builds() {
    if !support::rebuilds_allowed_here(
        "a_world_writable_source_is_refused_without_running_cargo_and_a_clean_copy_builds",
    ) {
        return;
    }
    let _serial = support::serial();
    let scratch = Scratch::new("world-writable-source");
    let (copy, marker) = crate_copy(&scratch);
    let lib = copy.join("src/lib.rs");
    chmod(&lib, 0o666);
    let (events, _unwatch) = start_rebuild(&copy);
    let live = hello::module().generation();

    let seen = save(&copy, &events, 7);
    let (path, reason) = refused(&seen, &marker, live);
    assert_eq!(path, canonical(&lib));
    assert_eq!(reason, "is a file every user can write to (mode 666)");

    // Closed again, the same copy builds and loads: the marker shows cargo ran.
    chmod(&lib, 0o644);
    let seen = save(&copy, &events, 8);
    built(&seen, &marker, 8);
}

#[test]
fn a_cargo_config_another_user_owns_above_the_crate_is_refused() {
    if !support::rebuilds_allowed_here(
        "a_cargo_config_another_user_owns_above_the_crate_is_refused",
    ) {
        return;
    }
    let _serial = support::serial();
    if !is_root() {
        eprintln!("skipped: only root can give a .cargo/config.toml to another user");
        return;
    }
    let scratch = Scratch::new("foreign-config");
    let (copy, marker) = crate_copy(&scratch);
    let cargo_dir = scratch.0.join(".cargo");
    std::fs::create_dir(&cargo_dir).expect("mkdir .cargo");
    chmod(&cargo_dir, 0o755);
    let config = cargo_dir.join("config.toml");
    std::fs::write(&config, "# another user's cargo configuration\n").expect("write config");
    chmod(&config, 0o644);
    chown(&config, NOBODY);
    let (events, _unwatch) = start_rebuild(&copy);
    let live = hello::module().generation();

    let (path, reason) = refused(&save(&copy, &events, 7), &marker, live);
    assert_eq!(path, canonical(&config));
    assert!(
        reason.starts_with(&format!(
            "is a file owned by user {NOBODY}, not by this process's user (0) or root"
        )),
        "{reason}"
    );

    // The file back to root, its directory another user's: that user could put a config there.
    chown(&config, 0);
    chown(&cargo_dir, NOBODY);
    let (path, reason) = refused(&save(&copy, &events, 7), &marker, live);
    assert_eq!(path, canonical(&cargo_dir));
    assert!(
        reason.starts_with(&format!("is a directory owned by user {NOBODY}")),
        "{reason}"
    );

    // The documented override lets the build run.
    let _allow = support::AllowInsecure::on();
    built(&save(&copy, &events, 9), &marker, 9);
}

#[test]
fn toolchain_files_and_workspace_manifests_another_user_owns_above_the_crate_are_refused() {
    if !support::rebuilds_allowed_here(
        "toolchain_files_and_workspace_manifests_another_user_owns_above_the_crate_are_refused",
    ) {
        return;
    }
    let _serial = support::serial();
    if !is_root() {
        eprintln!("skipped: only root can give a file to another user");
        return;
    }
    let scratch = Scratch::new("foreign-toolchain");
    let (copy, marker) = crate_copy(&scratch);
    let (events, _unwatch) = start_rebuild(&copy);
    let live = hello::module().generation();

    for name in ["rust-toolchain.toml", "rust-toolchain"] {
        let file = scratch.0.join(name);
        std::fs::write(&file, "[toolchain]\nchannel = \"stable\"\n").expect("write");
        chown(&file, NOBODY);
        let (path, reason) = refused(&save(&copy, &events, 7), &marker, live);
        assert_eq!(path, canonical(&file));
        assert!(
            reason.starts_with(&format!("is a file owned by user {NOBODY}")),
            "{reason}"
        );
        std::fs::remove_file(&file).expect("remove");
    }

    // A package without a `[workspace]` of its own makes cargo read the manifests above it
    // until one declares a workspace.
    let manifest = copy.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("read the manifest");
    std::fs::write(&manifest, text.replace("\n[workspace]\n", "\n")).expect("write manifest");
    let root = scratch.0.join("Cargo.toml");
    std::fs::write(&root, "[workspace]\nmembers = [\"hello_fixture\"]\n").expect("write");
    chown(&root, NOBODY);
    let (path, reason) = refused(&save(&copy, &events, 7), &marker, live);
    assert_eq!(path, canonical(&root));
    assert!(
        reason.starts_with(&format!("is a file owned by user {NOBODY}")),
        "{reason}"
    );
}

#[test]
fn a_sticky_directory_everyone_may_write_above_the_crate_is_refused() {
    if !support::rebuilds_allowed_here(
        "a_sticky_directory_everyone_may_write_above_the_crate_is_refused",
    ) {
        return;
    }
    let _serial = support::serial();
    let scratch = Scratch::new("sticky");
    let (copy, marker) = crate_copy(&scratch);
    // Like /tmp: anyone may create `.cargo/config.toml` or `rust-toolchain.toml` in it. The
    // library rules accept a sticky directory; the rebuild's do not.
    chmod(&scratch.0, 0o1777);
    let (events, _unwatch) = start_rebuild(&copy);
    let live = hello::module().generation();

    let (path, reason) = refused(&save(&copy, &events, 7), &marker, live);
    assert_eq!(path, canonical(&scratch.0));
    assert!(
        reason.starts_with(
            "is a directory every user can write to (mode 1777; the rebuild makes no exception \
             for sticky directories"
        ),
        "{reason}"
    );
    chmod(&scratch.0, 0o755);
}
