//! `docs/first-project.md`, followed to the letter: its files are written into a fresh project
//! outside this workspace, with a checkout of hotmod beside it where the guide clones one (a
//! symbolic link to this workspace); the guide's command runs the host; its edit is made to the
//! module's source while the host runs; the host must then answer with the new code, from a
//! new generation, without a restart.
//!
//! What the test adds to the guide, none of which changes what the guide's files say: the
//! workspace's `Cargo.lock` and `CARGO_NET_OFFLINE` (no registry lookup), and a target directory
//! shared by every run (`target/hotmod-fixtures/first-project`, under its lock), so that only
//! the project's own crates are compiled again.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The first build compiles hotmod and its dependencies into a fresh target directory: generous
/// on a busy 2-core machine.
const FIRST_BUILD: Duration = Duration::from_secs(1200);
/// From the edit to the new code answering: one rebuild of the module crate, then a reload.
const RELOAD: Duration = Duration::from_secs(600);
/// How often the test asks the host again while it waits for the new code.
const POLL: Duration = Duration::from_millis(250);

/// What the guide says to do.
struct Guide {
    /// Each file the guide shows, by its path (`my-project/...`), with its contents.
    files: BTreeMap<String, String>,
    /// The command it runs, in `my-project/`.
    command: String,
    /// The edit, as `(line removed, line added)` pairs.
    edits: Vec<(String, String)>,
}

/// Reads `docs/first-project.md`: a fenced block right after a paragraph that names a file
/// `` `my-project/…` `` and ends with a colon is that file; the `sh` block is the command; the
/// `diff` block is the edit.
fn read_guide() -> Guide {
    let path = support::workspace().join("docs/first-project.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut guide = Guide {
        files: BTreeMap::new(),
        command: String::new(),
        edits: Vec::new(),
    };
    let mut lines = text.lines();
    // The last paragraph above the next block, and whether a blank line ended it.
    let mut paragraph = String::new();
    let mut ended = false;
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            if line.trim().is_empty() {
                ended = true;
            } else {
                if ended {
                    paragraph.clear();
                    ended = false;
                }
                paragraph.push_str(line);
                paragraph.push('\n');
            }
            continue;
        };
        let mut block = String::new();
        for line in lines.by_ref() {
            if line.starts_with("```") {
                break;
            }
            block.push_str(line);
            block.push('\n');
        }
        match info {
            "sh" => guide.command = block.trim().to_owned(),
            "diff" => {
                let removed = block.lines().filter_map(|l| l.strip_prefix('-'));
                let added = block.lines().filter_map(|l| l.strip_prefix('+'));
                guide.edits = removed
                    .zip(added)
                    .map(|(from, to)| (from.to_owned(), to.to_owned()))
                    .collect();
            }
            _ => {
                if let Some(file) = file_named_by(&paragraph) {
                    guide.files.insert(file, block);
                }
            }
        }
        paragraph.clear();
    }
    guide
}

/// The first `` `my-project/…` `` of a paragraph that ends with a colon.
fn file_named_by(paragraph: &str) -> Option<String> {
    if !paragraph.trim_end().ends_with(':') {
        return None;
    }
    paragraph
        .split('`')
        .skip(1)
        .step_by(2)
        .find(|name| name.starts_with("my-project/") && !name.ends_with('/'))
        .map(str::to_owned)
}

#[test]
fn the_guide_reads_as_the_test_follows_it() {
    let guide = read_guide();
    let files: Vec<&str> = guide.files.keys().map(String::as_str).collect();
    assert_eq!(
        files,
        [
            "my-project/Cargo.toml",
            "my-project/app/Cargo.toml",
            "my-project/app/src/main.rs",
            "my-project/logic/Cargo.toml",
            "my-project/logic/src/lib.rs",
        ]
    );
    assert!(
        guide.files["my-project/logic/Cargo.toml"]
            .contains("hotmod = { path = \"../../hotmod/hotmod\" }"),
        "the module crate depends on the checkout beside the project by path"
    );
    assert_eq!(guide.command, "HOTMOD_REBUILD=1 cargo run -p app");
    assert_eq!(guide.edits.len(), 1, "one line changes");
    let readme = std::fs::read_to_string(support::workspace().join("README.md")).expect("README");
    assert!(
        readme.contains("(docs/first-project.md)"),
        "the README links the guide"
    );
}

/// The host, started by the guide's command: its stdin, and its stdout and stderr lines.
struct Host {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Host {
    /// Runs `command` (`VAR=value … program args…`) in `dir` with `env` added.
    fn start(command: &str, dir: &Path, env: &[(&str, &Path)]) -> Host {
        let mut words = command.split_whitespace();
        let mut vars = Vec::new();
        let program = loop {
            let word = words.next().expect("a program in the command");
            match word.split_once('=') {
                Some((key, value)) => vars.push((key, value)),
                None => break word,
            }
        };
        let program = if program == "cargo" {
            std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
        } else {
            program.to_owned()
        };
        let mut command = Command::new(program);
        command
            .args(words)
            .current_dir(dir)
            .envs(vars)
            .env("CARGO_NET_OFFLINE", "true")
            // The guide's environment: nothing but what its command sets.
            .env_remove("HOTMOD_QUIET")
            .env_remove("HOTMOD_WATCH")
            .env_remove("HOTMOD_LOGIC_PATH")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("run the guide's command");
        let (sender, stdout) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let err = child.stderr.take().expect("stderr");
        let lines = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                lines
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
            }
        });
        let stdin = child.stdin.take();
        Host {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    /// What the host wrote on stderr so far (cargo's and hotmod's lines).
    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .join("\n")
    }

    /// The next stdout line, waiting until `deadline`.
    fn line(&self, deadline: Instant, what: &str) -> String {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.stdout.recv_timeout(left) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                panic!("timed out waiting for {what}; stderr:\n{}", self.stderr())
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!("the host ended before {what}; stderr:\n{}", self.stderr())
            }
        }
    }

    /// Types `name` and returns the host's answer line.
    fn ask(&mut self, name: &str, deadline: Instant) -> String {
        let stdin = self.stdin.as_mut().expect("the host's stdin is open");
        writeln!(stdin, "{name}").expect("type a name");
        stdin.flush().expect("flush");
        self.line(deadline, &format!("the answer to {name:?}"))
    }

    /// Ctrl-D: closes stdin and waits for the host to end.
    fn quit(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        support::wait_for("the host to end after its stdin closed", || {
            self.child.try_wait().expect("wait for the host")
        })
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // A failed test still ends the host: its input closes, as with Ctrl-D.
        drop(self.stdin.take());
    }
}

/// Writes the guide's files under `root`.
fn write_files(root: &Path, files: &BTreeMap<String, String>) {
    for (name, contents) in files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().expect("a directory")).expect("create directory");
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

#[test]
fn the_guide_followed_to_the_letter_reloads_an_edit() {
    if !support::rebuilds_allowed_here("the_guide_followed_to_the_letter_reloads_an_edit") {
        return;
    }
    let guide = read_guide();
    // Outside hotmod's workspace (the project is a workspace of its own), but not under `/tmp`:
    // the rebuild refuses crates below a directory every user may write.
    let dir = support::TempDir::in_target("first-project");
    // "hotmod/  git clone of hotmod", beside the project.
    std::os::unix::fs::symlink(support::workspace(), dir.path().join("hotmod"))
        .expect("link the hotmod checkout");
    write_files(dir.path(), &guide.files);
    let project = dir.path().join("my-project");
    std::fs::copy(
        support::workspace().join("Cargo.lock"),
        project.join("Cargo.lock"),
    )
    .expect("copy Cargo.lock");

    let target: PathBuf = support::workspace().join("target/hotmod-fixtures/first-project");
    // Other processes running this test build the same packages into the same directory.
    let _lock = support::crate_copy::lock(&target).expect("lock the target directory");
    let mut host = Host::start(
        &guide.command,
        &project,
        &[("CARGO_TARGET_DIR", target.as_path())],
    );

    // "Type `Ada`: the program answers `Hello, Ada! (generation 0)`."
    let deadline = Instant::now() + FIRST_BUILD;
    let prompt = host.line(deadline, "the host's first line");
    assert!(prompt.starts_with("Type a name"), "{prompt}");
    assert_eq!(host.ask("Ada", deadline), "Hello, Ada! (generation 0)");

    // "Leave it running and change the greeting in `logic/src/lib.rs`" … "Save."
    let edits: Vec<(&str, &str)> = guide
        .edits
        .iter()
        .map(|(from, to)| (from.as_str(), to.as_str()))
        .collect();
    support::crate_copy::edit(&project.join("logic/src/lib.rs"), &edits)
        .expect("make the guide's edit");

    // "Type `Ada` again: `Good morning, Ada! (generation 1)`." Asked again until the rebuilt
    // library answers; until then the old code does.
    let deadline = Instant::now() + RELOAD;
    support::wait_for_within("the edit to be served", RELOAD, POLL, || {
        let answer = host.ask("Ada", deadline);
        if answer == "Good morning, Ada! (generation 1)" {
            return Ok(());
        }
        assert_eq!(
            answer,
            "Hello, Ada! (generation 0)",
            "stderr:\n{}",
            host.stderr()
        );
        Err(format!("stderr:\n{}", host.stderr()))
    });
    // "… and says so on stderr, ending with `hotmod: logic::greeting: generation 1 live in … ms`"
    support::wait_for("hotmod's progress line on stderr", || {
        host.stderr()
            .lines()
            .any(|line| line.starts_with("hotmod: logic::greeting: generation 1 live in "))
    });
    println!("the host's stderr:\n{}", host.stderr());
    let status = host.quit();
    assert!(status.success(), "the host ended with {status}");
}
