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
    lines_from(child.stdout.take().expect("the host's stdout"))
}

/// The lines read from `reader` (a pipe a host writes to), as they come.
pub fn lines_from(reader: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// A host's stdout, line by line, with everything it said so far. The old and the new process
/// of a restart write to one pipe, so their lines may come in either order: a line is looked for
/// among all of them, not only after the last one found.
pub struct HostLines {
    lines: Receiver<String>,
    seen: Vec<String>,
    /// Names the host in what is printed (`host: …`) and in a failure's message.
    who: &'static str,
    /// A line that means the run failed, whatever the test waits for.
    failed: fn(&str) -> bool,
    /// A line not worth keeping (one per request).
    noise: fn(&str) -> bool,
}

impl HostLines {
    /// How long a line may take: builds of a cold target directory included.
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1200);

    pub fn new(
        lines: Receiver<String>,
        who: &'static str,
        failed: fn(&str) -> bool,
        noise: fn(&str) -> bool,
    ) -> HostLines {
        HostLines {
            lines,
            seen: Vec::new(),
            who,
            failed,
            noise,
        }
    }

    /// The first line, of those said so far and then of those to come, that `wanted` accepts.
    pub fn line(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        if let Some(found) = self.seen.iter().find(|line| wanted(line)) {
            return found.clone();
        }
        loop {
            let line = self.lines.recv_timeout(Self::TIMEOUT).unwrap_or_else(|_| {
                panic!(
                    "the line waited for never came; the {} said:\n{}",
                    self.who,
                    self.seen.join("\n")
                )
            });
            if (self.noise)(&line) {
                continue;
            }
            eprintln!("{}: {line}", self.who);
            self.seen.push(line.clone());
            assert!(
                !(self.failed)(&line),
                "the {} failed: {line}\nit said:\n{}",
                self.who,
                self.seen.join("\n")
            );
            if wanted(&line) {
                return line;
            }
        }
    }

    /// The first line that starts with `prefix` (see [`HostLines::line`]).
    pub fn starting(&mut self, prefix: &str) -> String {
        self.line(|line| line.starts_with(prefix))
    }

    /// The first event line (`event: …`) that contains `text` (see [`HostLines::line`]).
    pub fn event(&mut self, text: &str) -> String {
        self.line(|line| line.starts_with("event: ") && line.contains(text))
    }
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
