//! A user's workspace written by a test (under `target/hotmod-fixtures/<name>`, kept between
//! runs), and a host process started in it: what `tests/first_save.rs` and
//! `tests/graph_rebuild.rs` share.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::mpsc::{self, Receiver};

/// A package manifest: `[package]` named `name`, then `lib` (a `[lib]` section or nothing),
/// then `[dependencies]` with `deps`.
pub fn manifest(name: &str, lib: &str, deps: &str) -> String {
    format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\
         {lib}\n[dependencies]\n{deps}"
    )
}

/// `hotmod = { path = "…" }`'s path value, quoted: this checkout's hotmod.
pub fn hotmod_path() -> String {
    format!(
        "{:?}",
        super::workspace().join("hotmod").display().to_string()
    )
}

/// Writes `text` to `path` unless it already holds it (an unchanged file keeps its time, so
/// cargo keeps what it built from it).
pub fn write(path: &Path, text: &str) {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return;
    }
    let dir = path.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// A host process, killed however the test ends.
pub struct Host(pub Child);

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lines the child writes to its (piped) stdout, as they come.
pub fn lines_of(child: &mut Child) -> Receiver<String> {
    let out = child.stdout.take().expect("the host's stdout");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// The user's workspace manifest at `root`: `[workspace]` with `members` (and `extra`, more of
/// the manifest), and this workspace's `Cargo.lock` the first time (the same dependency
/// versions, no registry lookup).
pub fn workspace_manifest(root: &Path, members: &[&str], extra: &str) {
    let members = members
        .iter()
        .map(|m| format!("{m:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    write(
        &root.join("Cargo.toml"),
        &format!("[workspace]\nmembers = [{members}]\nresolver = \"2\"\n{extra}"),
    );
    if !root.join("Cargo.lock").exists() {
        let lock =
            std::fs::read_to_string(super::workspace().join("Cargo.lock")).expect("Cargo.lock");
        write(&root.join("Cargo.lock"), &lock);
    }
}

/// `cargo build <args>` of the user's workspace at `root` into `target`, offline; panics with
/// cargo's errors if it fails.
pub fn build(root: &Path, target: &Path, args: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--color", "never", "--target-dir"])
        .arg(target)
        .args(args)
        .env("CARGO_NET_OFFLINE", "true")
        .output()
        .expect("run cargo");
    assert!(
        built.status.success(),
        "building the workspace failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
}
