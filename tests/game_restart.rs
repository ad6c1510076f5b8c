//! The game-loop example restarts in place with its state (issue 20, `hotmod::restart`): a
//! change of `update`'s signature cannot be reloaded, so the game, run with `--rebuild`, builds
//! itself again and `exec`s the new build at the top of a frame — the same process, which goes
//! on from the next frame with the game's state and the new code.
//!
//! A user's workspace, written by the test under `target/hotmod-fixtures/game-restart` (kept
//! between runs, under its lock): copies of the example's two packages as they are in this
//! checkout, `examples/game_logic` (the hot module) and `examples/game_loop` (the host,
//! `hotmod-game-loop`'s example `game_loop`), with the workspace's `Cargo.lock`. The game runs
//! headless and paced, and prints one line per frame with its state (`--print-frames`); and in a
//! terminal, a pseudo-terminal the test opens, where it must enter the alternate screen once,
//! leave it once when the player quits, and give the terminal its mode back.

mod support;

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::scratch::{hotmod_path, lines_of, write, Host};

/// The workspace's first build compiles hotmod, crossterm and serde; the restart builds the
/// module and the host: generous on a busy 2-core machine.
const TIMEOUT: Duration = Duration::from_secs(1200);

/// The example's packages, copied: (directory in this checkout, directory in the scratch
/// workspace, the files of the package).
const PACKAGES: [(&str, &str, &[&str]); 2] = [
    (
        "examples/game_logic",
        "game_logic",
        &["Cargo.toml", "src/lib.rs"],
    ),
    (
        "examples/game_loop",
        "game_loop",
        &["Cargo.toml", "main.rs", "engine.rs"],
    ),
];

/// The host's call, edited first: `update` gains a parameter, the points a frame scores.
const HOST_EDIT: [(&str, &str); 1] = [(
    "handle.update(&mut state, 1.0 / FPS as f32);",
    "handle.update(&mut state, 1.0 / FPS as f32, 7);",
)];

/// The module's edit, saved next: the new signature, and the points it is given count.
const MODULE_EDIT: [(&str, &str); 2] = [
    (
        "pub fn update(state: &mut State, dt: f32) {",
        "pub fn update(state: &mut State, dt: f32, points: u64) {",
    ),
    (
        "state.score += POINTS_PER_FRAME;",
        "state.score += POINTS_PER_FRAME * points;",
    ),
];

struct Fixture {
    root: PathBuf,
    target: PathBuf,
    _lock: std::fs::File,
}

/// A file of the example as it is in this checkout, ready for the scratch workspace: its
/// manifest's path to hotmod made absolute.
fn pristine(package: &str, file: &str) -> String {
    let path = support::workspace().join(package).join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    if file == "Cargo.toml" {
        assert!(text.contains("path = \"../../hotmod\""), "{text}");
        text.replace("\"../../hotmod\"", &hotmod_path())
    } else {
        text
    }
}

/// Writes every file of the example's packages as they are in this checkout.
fn write_pristine(root: &Path) {
    for (package, dir, files) in PACKAGES {
        for file in files {
            write(&root.join(dir).join(file), &pristine(package, file));
        }
    }
}

/// The workspace with the example's sources, built.
fn fixture() -> Fixture {
    let root = support::workspace()
        .join("target")
        .join("hotmod-fixtures")
        .join("game-restart");
    let target = root.join("target");
    let lock = support::crate_copy::lock(&target).expect("the scratch target's lock");
    support::scratch::workspace_manifest(
        &root,
        &["game_loop", "game_logic"],
        "\n[workspace.package]\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    write_pristine(&root);
    support::scratch::build(&root, &target, &["--example", "game_loop"]);
    Fixture {
        root,
        target,
        _lock: lock,
    }
}

impl Fixture {
    /// The game, headless and paced (60 frames a second), printing every frame, with the
    /// built-in rebuild (and so the restart in place). It would run for years: the test ends it.
    fn start(&self) -> (Host, Receiver<String>) {
        let mut child = Command::new(self.target.join("debug/examples/game_loop"))
            .args(["--rebuild", "--headless", "--print-frames"])
            .args(["--frames", "1000000000"])
            .current_dir(&self.root)
            .env("CARGO_NET_OFFLINE", "true")
            .env("HOTMOD_QUIET", "1")
            .env_remove("HOTMOD_REBUILD")
            .env_remove("HOTMOD_WATCH")
            .env_remove("HOTMOD_RESTART")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the game");
        let lines = lines_of(&mut child);
        (Host(child), lines)
    }

    fn edit(&self, file: &str, edits: &[(&str, &str)]) {
        support::crate_copy::edit(&self.root.join(file), edits)
            .unwrap_or_else(|e| panic!("editing the copy's {file}: {e}"));
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // The pristine sources for the next run (whose first build then compiles them again).
        write_pristine(&self.root);
    }
}

/// The game's lines, as they come, each checked: frames follow each other one by one (across
/// the restart too), and no event says something failed.
struct Game {
    lines: Receiver<String>,
    /// The last frame line.
    last: Option<String>,
    /// Every line so far, for a failure's message.
    seen: Vec<String>,
}

impl Game {
    /// The next line that `wanted` accepts.
    fn line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        loop {
            let Ok(line) = self.lines.recv_timeout(TIMEOUT) else {
                panic!("{what} never came; the game's last lines:\n{}", self.tail())
            };
            self.seen.push(line.clone());
            if line.starts_with("event: ") {
                eprintln!("game: {line}");
                // A build or the restart failed (a refusal says "was not loaded").
                assert!(
                    !line.contains(" failed;") && !line.contains("restart in place failed"),
                    "{line}\nthe game's last lines:\n{}",
                    self.tail()
                );
            }
            if line.starts_with("frame=") {
                if let Some(last) = &self.last {
                    let number =
                        |line: &str| -> u64 { field(line, "frame").parse().expect("a frame") };
                    assert_eq!(
                        number(&line),
                        number(last) + 1,
                        "frames follow each other: {line} after {last}"
                    );
                }
                self.last = Some(line.clone());
            }
            if wanted(&line) {
                return line;
            }
        }
    }

    /// The frame line of frame `frame`.
    fn frame(&mut self, frame: u64) -> String {
        self.line(&format!("frame {frame}"), |line| {
            line.starts_with(&format!("frame={frame} "))
        })
    }

    fn tail(&self) -> String {
        let from = self.seen.len().saturating_sub(40);
        self.seen[from..].join("\n")
    }
}

/// `key=value`'s value in `line`.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// `key=value`'s value in `line`, a number.
fn number(line: &str, key: &str) -> u64 {
    field(line, key)
        .parse()
        .unwrap_or_else(|_| panic!("{key} in {line:?} is not a number"))
}

/// What a frame line says of the game's state, the frame and the pid aside.
fn state_of(line: &str) -> [&str; 4] {
    ["ticks", "score", "bounces", "ball"].map(|key| field(line, key))
}

#[test]
fn a_changed_update_signature_restarts_the_game_in_place_with_its_state() {
    if !support::rebuilds_allowed_here(
        "a_changed_update_signature_restarts_the_game_in_place_with_its_state",
    ) {
        return;
    }
    let fixture = fixture();
    let (host, lines) = fixture.start();
    let pid = host.0.id().to_string();
    let mut game = Game {
        lines,
        last: None,
        seen: Vec::new(),
    };
    let first = game.frame(1);
    assert_eq!(field(&first, "pid"), pid);
    assert_eq!(field(&first, "restarts"), "0", "a cold start: {first}");
    // The first build's code: one point a frame.
    let before = game.frame(30);
    assert_eq!(number(&before, "score"), 30, "{before}");
    assert_eq!(number(&before, "ticks"), 30, "{before}");

    // The host's call first (nothing rebuilds on its save), then the module's signature.
    fixture.edit("game_loop/engine.rs", &HOST_EDIT);
    fixture.edit("game_logic/src/lib.rs", &MODULE_EDIT);
    // The module's build is refused (it needs a restart), and the host is built. (The event
    // that it is ready comes in the frame it takes over in, after the hand-over: not printed.)
    game.line("the refusal", |line| {
        line.starts_with("event: ") && line.contains("was not loaded")
    });
    game.line("the host's build", |line| {
        line.starts_with("event: ") && line.contains("building the host")
    });
    let restarting = game.line("the restart's line", |line| line.starts_with("restarting "));
    assert_eq!(field(&restarting, "pid"), pid);
    let last_old = game.last.clone().expect("frames before the restart");
    assert_eq!(
        field(&restarting, "frame"),
        field(&last_old, "frame"),
        "it hands over at the top of the frame after the last one run: {last_old}"
    );
    assert_eq!(state_of(&restarting), state_of(&last_old));
    let old_frame = number(&restarting, "frame");
    let old_score = number(&restarting, "score");
    assert_eq!(
        old_score, old_frame,
        "the old code ran until then: {restarting}"
    );

    // The same process, in place, with the state as it was handed over.
    let resumed = game.line("the restarted game", |line| line.starts_with("resumed "));
    assert_eq!(field(&resumed, "pid"), pid, "the same process: {resumed}");
    assert_eq!(field(&resumed, "restarts"), "1", "{resumed}");
    assert_eq!(field(&resumed, "frame"), field(&restarting, "frame"));
    assert_eq!(
        state_of(&resumed),
        state_of(&restarting),
        "the state, the ball's position to the bit"
    );

    // It goes on from the next frame, with the new code: seven points a frame.
    let next = game.frame(old_frame + 1);
    assert_eq!(field(&next, "pid"), pid, "{next}");
    assert_eq!(field(&next, "restarts"), "1", "{next}");
    assert_eq!(
        field(&next, "generation"),
        "0",
        "the new build's own code: {next}"
    );
    assert_eq!(
        number(&next, "ticks"),
        number(&restarting, "ticks") + 1,
        "{next}"
    );
    assert_eq!(number(&next, "score"), old_score + 7, "{next}");
    let later = game.frame(old_frame + 30);
    assert_eq!(field(&later, "pid"), pid);
    assert_eq!(number(&later, "ticks"), old_frame + 30, "{later}");
    assert_eq!(number(&later, "score"), old_score + 30 * 7, "{later}");
    let mut host = host;
    assert!(
        host.0.try_wait().expect("the game's status").is_none(),
        "the game runs on"
    );
}

/// A pseudo-terminal 80 × 24: (master, slave).
fn open_pty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize {
        ws_row: 24,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: out-pointers to two ints, no name, default modes, a valid winsize.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty opened both; nothing else owns them.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// The terminal's local modes (`c_lflag`), read through the master.
fn local_modes(master: &OwnedFd) -> libc::tcflag_t {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed termios is a valid out-parameter for tcgetattr.
    let mut modes: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: an open terminal descriptor and a termios to fill.
    let rc = unsafe { libc::tcgetattr(master.as_raw_fd(), &mut modes) };
    assert_eq!(rc, 0, "tcgetattr: {}", std::io::Error::last_os_error());
    modes.c_lflag
}

/// The numbers that follow each `before` and are followed by `after` in `text`, in order.
fn numbers_between(text: &str, before: &str, after: &str) -> Vec<u64> {
    text.match_indices(before)
        .filter_map(|(at, _)| {
            let rest = &text[at + before.len()..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let number = rest[..digits].parse().ok()?;
            rest[digits..].starts_with(after).then_some(number)
        })
        .collect()
}

#[test]
fn in_a_terminal_the_restart_keeps_one_alternate_screen_and_gives_the_mode_back() {
    if !support::rebuilds_allowed_here(
        "in_a_terminal_the_restart_keeps_one_alternate_screen_and_gives_the_mode_back",
    ) {
        return;
    }
    let fixture = fixture();
    let (master, slave) = open_pty();
    let cooked = local_modes(&master);
    assert!(
        cooked & libc::ICANON != 0 && cooked & libc::ECHO != 0,
        "a new terminal is in its usual mode"
    );
    let stdio = || Stdio::from(slave.try_clone().expect("the terminal's descriptor"));
    let mut command = Command::new(fixture.target.join("debug/examples/game_loop"));
    command
        .arg("--rebuild")
        .current_dir(&fixture.root)
        .env("TERM", "xterm")
        .env("CARGO_NET_OFFLINE", "true")
        .env("HOTMOD_QUIET", "1")
        .env_remove("HOTMOD_REBUILD")
        .env_remove("HOTMOD_WATCH")
        .env_remove("HOTMOD_RESTART")
        .stdin(stdio())
        .stdout(stdio())
        .stderr(stdio());
    // SAFETY: between fork and exec, only async-signal-safe calls: a session of its own whose
    // controlling terminal is the pseudo-terminal (its stdin), as a shell would start it.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let host = Host(command.spawn().expect("start the game"));
    drop(slave);
    let pid = host.0.id();
    let exe = || std::fs::metadata(format!("/proc/{pid}/exe")).map(|m| m.ino());
    let first_exe = exe().expect("the game's executable");

    // Everything the game writes to the terminal.
    let screen: Arc<Mutex<Vec<u8>>> = Arc::default();
    let mut reader = std::fs::File::from(master.try_clone().expect("the master's descriptor"));
    let written = Arc::clone(&screen);
    std::thread::spawn(move || {
        let mut buffer = [0u8; 65536];
        // Ends with an error (EIO) once the game has closed the terminal.
        while let Ok(n @ 1..) = reader.read(&mut buffer) {
            written
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(&buffer[..n]);
        }
    });
    let text = || {
        String::from_utf8_lossy(
            &screen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_owned()
    };
    // The frame numbers of the host's status line, and the game's (frame, score), each frame.
    let frames = |text: &str| numbers_between(text, "frame ", " \u{b7} generation");
    let scores = |text: &str| -> Vec<(u64, u64)> {
        numbers_between(text, " score ", "  bounces")
            .into_iter()
            .zip(numbers_between(text, "  frame ", " "))
            .map(|(score, frame)| (frame, score))
            .collect()
    };
    // The screen grows by a few kB a frame: looked at now and then.
    let every = Duration::from_millis(200);
    support::wait_for_within("frame 30 on the screen", TIMEOUT, every, || {
        frames(&text()).last().is_some_and(|frame| *frame >= 30)
    });

    fixture.edit("game_loop/engine.rs", &HOST_EDIT);
    fixture.edit("game_logic/src/lib.rs", &MODULE_EDIT);
    // The new build runs in this process, and draws frames that score seven points.
    support::wait_for_within("the new build's frames", TIMEOUT, every, || {
        let scores = scores(&text());
        let sevens = scores
            .windows(2)
            .filter(|pair| pair[1].0 == pair[0].0 + 1 && pair[1].1 == pair[0].1 + 7)
            .count();
        if sevens >= 30 {
            Ok(())
        } else {
            let seen = text();
            Err(format!(
                "{sevens} frames of the new code; the last screen: {:?}",
                &seen[seen.len().saturating_sub(3000)..]
            ))
        }
    });
    assert_ne!(exe().ok(), Some(first_exe), "the game runs the new build");
    let mut host = host;
    assert!(host.0.try_wait().expect("the game's status").is_none());
    // Raw mode again: the new build took the terminal.
    let raw = local_modes(&master);
    assert!(raw & libc::ICANON == 0 && raw & libc::ECHO == 0, "{raw:o}");

    let mut keys = std::fs::File::from(master.try_clone().expect("the master's descriptor"));
    keys.write_all(b"q").expect("the q key");
    let status = support::wait_for_within("the game to quit", TIMEOUT, every, || {
        host.0.try_wait().expect("the game's status")
    });
    assert!(status.success(), "{status}");
    let seen = text();
    assert_eq!(
        seen.matches("\x1b[?1049h").count(),
        1,
        "the alternate screen is entered once"
    );
    assert_eq!(seen.matches("\x1b[?1049l").count(), 1, "and left once");
    assert!(seen.contains("restarts in place: 1"), "{seen:?}");
    // Every frame was drawn once, in order, across the restart.
    let drawn = frames(&seen);
    assert!(
        drawn.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "frames in order: {drawn:?}"
    );
    let modes = local_modes(&master);
    assert!(
        modes & libc::ICANON != 0 && modes & libc::ECHO != 0,
        "the terminal's mode is given back: {modes:o}"
    );
}
