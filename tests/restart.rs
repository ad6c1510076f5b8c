//! The kept-state restart (issue 20, `hotmod::restart`), with real processes: an edit that
//! changes a boundary type cannot be loaded, so the host opted in rebuilds itself and hands
//! over its state, its listening socket (a server, overlapping) or its terminal (in place,
//! `exec`); a failed host build or a new process that crashes at start leave the old one
//! serving.
//!
//! A user's workspace, written by the test under `target/hotmod-fixtures/restart` (kept between
//! runs, under its lock): `rs_counter` (hot module `api`: `hit()` counts in a
//! `#[hotmod::state]` and returns a `Reply`, a struct of the module, so adding a field to it
//! needs a restart) and the host `rs_host`, a tiny HTTP server on 127.0.0.1 (`--in-place`: a
//! line-driven terminal program instead).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use support::scratch::{hotmod_path, lines_from, manifest, write, Host, HostLines};

/// The workspace's first build compiles hotmod and its dependencies; a restart builds the
/// module and the host: generous on a busy 2-core machine.
const TIMEOUT: Duration = Duration::from_secs(1200);

/// The module's source: `edit` names a variant (`v1` is the pristine one).
fn counter_source(edit: &str) -> String {
    let (text, extra_field, extra_value, crash) = match edit {
        "v1" => ("v1", "", "", false),
        // A field more: another layout, refused as incompatible; the host compiles as is.
        "v2" => ("v2", "pub served_by: u32,", "served_by: 2,", false),
        // The host reads `text`, which this edit renames: the host's build fails.
        "broken-host" => ("v2", "", "", false),
        // As v2, and the new host panics at start.
        "crash" => ("v2", "pub served_by: u32,", "served_by: 2,", true),
        // As v2, and the state's version changes without a `migrate`: the new build cannot
        // take the old value.
        "bad-state" => ("v2", "pub served_by: u32,", "served_by: 2,", false),
        other => panic!("no variant {other}"),
    };
    let text_field = if edit == "broken-host" {
        "pub words"
    } else {
        "pub text"
    };
    let state_args = if edit == "bad-state" {
        "(version = 2)"
    } else {
        ""
    };
    let text_init = if edit == "broken-host" {
        "words"
    } else {
        "text"
    };
    format!(
        r#"#[hotmod::hot_module]
pub mod api {{
    /// What a request gets back.
    pub struct Reply {{
        pub count: u64,
        {text_field}: String,
        {extra_field}
    }}

    #[hotmod::state{state_args}]
    static HITS: hotmod::State<u64> = hotmod::State::new();

    pub fn hit() -> Reply {{
        let count = HITS.with(|hits| {{
            *hits += 1;
            *hits
        }});
        Reply {{ count, {text_init}: "{text}".to_owned(), {extra_value} }}
    }}
}}

/// Read by the host at start: a build that crashes there.
pub const CRASH_AT_START: bool = {crash};
"#
    )
}

/// The host. A server by default: one request per connection, `GET /hit` answers
/// `pid=… count=… text=…` from `api::hit()`, `GET /slow` waits until this process is told to
/// hand over, then answers the same. Once `restart::wait()` returns it stops accepting, waits
/// for its requests in flight, hands over and exits. With `--in-place`: reads lines from stdin,
/// answers each `hit` with `pid=… count=… frames=… text=…` (`frames`, a value the host owns, is
/// handed over too), and restarts in place between two lines.
const HOST: &str = r#"use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use hotmod::restart::{self, Shape};
use rs_counter::api;

static DRAINING: AtomicBool = AtomicBool::new(false);
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

fn main() {
    if rs_counter::CRASH_AT_START {
        panic!("this build crashes at start");
    }
    let in_place = std::env::args().any(|arg| arg == "--in-place");
    restart::on_incompatible(if in_place { Shape::InPlace } else { Shape::Overlap });
    let inherited = restart::inherited().map(|i| i.previous_pid);
    let events = api::module().subscribe();
    std::thread::spawn(move || {
        for event in events {
            println!("event: {}", event.to_string().replace('\n', " | "));
        }
    });
    if let Err(e) = api::module().rebuild().start() {
        println!("failed: {e}");
        return;
    }
    if in_place {
        terminal(inherited);
    } else {
        server(inherited);
    }
}

fn server(inherited: Option<u32>) {
    let listener = match restart::take_fd("listener") {
        Some(fd) => TcpListener::from(fd),
        None => TcpListener::bind("127.0.0.1:0").expect("bind"),
    };
    restart::keep_fd("listener", &listener).expect("keep the listener");
    // Shared with the other process (one open file description): both poll.
    listener.set_nonblocking(true).expect("nonblocking");
    restart::ready();
    println!(
        "serving {} pid={} inherited={inherited:?} tag={}",
        listener.local_addr().expect("address"),
        std::process::id(),
        cfg!(feature = "tag")
    );
    loop {
        let handover = std::thread::spawn(|| {
            let handover = restart::wait();
            DRAINING.store(true, Ordering::SeqCst);
            handover
        });
        while !DRAINING.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
                    std::thread::spawn(move || {
                        answer(stream);
                        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => eprintln!("accept: {e}"),
            }
        }
        while IN_FLIGHT.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let handover = handover.join().expect("the hand-over thread");
        let to = handover.new_pid();
        match handover.finish() {
            Ok(()) => {
                println!("handed over pid={} to={to:?}", std::process::id());
                return;
            }
            // The state is this process's again: serve on.
            Err(e) => {
                println!("handover refused: {e}");
                DRAINING.store(false, Ordering::SeqCst);
            }
        }
    }
}

fn answer(mut stream: TcpStream) {
    let _ = stream.set_nonblocking(false);
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => request.push(byte[0]),
            _ => return,
        }
    }
    let request = String::from_utf8_lossy(&request);
    if request.starts_with("GET /slow") {
        while !DRAINING.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let reply = api::hit();
    let body = format!("pid={} count={} text={}\n", std::process::id(), reply.count, reply.text);
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
}

fn terminal(inherited: Option<u32>) {
    restart::ready();
    let mut frames: u64 = match restart::take_value::<u64>("frames") {
        Some(Ok(frames)) => frames,
        Some(Err(e)) => panic!("{e}"),
        None => 0,
    };
    println!("started pid={} inherited={inherited:?}", std::process::id());
    let stdin = std::io::stdin();
    let mut lines = BufReader::new(stdin.lock());
    loop {
        if let Some(mut handover) = restart::poll() {
            handover.keep_value("frames", &frames).expect("keep frames");
            let error = handover.exec();
            println!("failed: {error}");
        }
        let mut line = String::new();
        if lines.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line.trim() == "hit" {
            frames += 1;
            let reply = api::hit();
            println!(
                "pid={} count={} frames={frames} text={}",
                std::process::id(),
                reply.count,
                reply.text
            );
        }
    }
}
"#;

struct Fixture {
    root: PathBuf,
    target: PathBuf,
    _lock: std::fs::File,
}

/// The workspace with the pristine sources, built with cargo's `args` added.
fn fixture(args: &[&str]) -> Fixture {
    let root = support::workspace()
        .join("target")
        .join("hotmod-fixtures")
        .join("restart");
    let target = root.join("target");
    let lock = support::crate_copy::lock(&target).expect("the scratch target's lock");
    let hotmod = hotmod_path();
    support::scratch::workspace_manifest(&root, &["host", "counter"], "");
    write(
        &root.join("counter/Cargo.toml"),
        &manifest(
            "rs_counter",
            "[lib]\ncrate-type = [\"rlib\", \"cdylib\"]\n",
            &format!("hotmod = {{ path = {hotmod}, features = [\"state\"] }}\n"),
        ),
    );
    write(&root.join("counter/src/lib.rs"), &counter_source("v1"));
    write(
        &root.join("host/Cargo.toml"),
        &manifest(
            "rs_host",
            // A feature off by default: a host built with it must restart with it.
            "[features]\ntag = []\n",
            &format!(
                "hotmod = {{ path = {hotmod}, features = [\"state\"] }}\nrs_counter = {{ path = \"../counter\" }}\n"
            ),
        ),
    );
    write(&root.join("host/src/main.rs"), HOST);
    support::scratch::build(&root, &target, args);
    Fixture {
        root,
        target,
        _lock: lock,
    }
}

impl Fixture {
    /// Starts the host; its stdout and stderr lines, merged, as they come.
    fn start(&self, args: &[&str]) -> (Host, HostLines, ChildStdin) {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        let mut child = Command::new(self.target.join("debug").join("rs_host"))
            .args(args)
            .current_dir(&self.root)
            .env("CARGO_NET_OFFLINE", "true")
            .env("HOTMOD_QUIET", "1")
            .env_remove("HOTMOD_REBUILD")
            .env_remove("HOTMOD_WATCH")
            .env_remove("HOTMOD_RESTART")
            .stdin(Stdio::piped())
            .stdout(writer.try_clone().expect("the pipe's writer"))
            .stderr(writer)
            .spawn()
            .expect("start the host");
        let lines = HostLines::new(
            lines_from(reader),
            "host",
            |line| line.starts_with("failed:"),
            |_| false,
        );
        let stdin = child.stdin.take().expect("stdin");
        (Host(child), lines, stdin)
    }

    fn edit(&self, variant: &str) {
        write(
            &self.root.join("counter/src/lib.rs"),
            &counter_source(variant),
        );
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // The pristine source for the next run (whose first build then compiles it again).
        write(&self.root.join("counter/src/lib.rs"), &counter_source("v1"));
    }
}

/// Sends one `hit` to the in-place host; its answer: the line with ` frames=<frames> ` (one
/// line per hit, each with its own `frames`).
fn hit(stdin: &mut ChildStdin, lines: &mut HostLines, frames: u64) -> String {
    writeln!(stdin, "hit").expect("write to the host");
    stdin.flush().expect("flush");
    lines.line(|line| line.starts_with("pid=") && line.contains(&format!(" frames={frames} ")))
}

/// The address in the server's `serving <address> …` line.
fn address(serving: &str) -> SocketAddr {
    serving
        .split_whitespace()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {serving:?}"))
}

/// `key=value`'s value in `line`.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// One request; the body, or why it failed.
fn get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no complete response: {response:?}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("not 200: {head}"));
    }
    Ok(body.trim_end().to_owned())
}

/// A process the test must not leave behind (the server's successor is not the test's child).
struct Pid(u32);

impl Drop for Pid {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.to_string()).status();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn a_server_restarts_with_its_socket_and_state_and_no_request_fails() {
    if !support::rebuilds_allowed_here(
        "a_server_restarts_with_its_socket_and_state_and_no_request_fails",
    ) {
        return;
    }
    // Built with a feature the package does not enable by default, as `cargo run --features`
    // would: the restarted host must be built with it too.
    let fixture = fixture(&["--features", "rs_host/tag"]);
    let (mut host, mut lines, _stdin) = fixture.start(&[]);
    let serving = lines.starting("serving ");
    let addr = address(&serving);
    let old_pid = field(&serving, "pid").to_owned();
    assert_eq!(field(&serving, "inherited"), "None", "a cold start");
    for expected in 1..=3 {
        let body = get(addr, "/hit").expect("a request before the edit");
        assert_eq!(body, format!("pid={old_pid} count={expected} text=v1"));
    }

    // A request in flight across the restart, and clients that never stop asking.
    let slow = std::thread::spawn(move || get(addr, "/slow"));
    let stop = Arc::new(AtomicBool::new(false));
    let answers: Arc<Mutex<Vec<Result<String, String>>>> = Arc::default();
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (stop, answers) = (Arc::clone(&stop), Arc::clone(&answers));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let answer = get(addr, "/hit");
                    lock(&answers).push(answer);
                }
            })
        })
        .collect();

    fixture.edit("v2");
    lines.event("the restarted host (pid");
    let new_serving = lines
        .line(|line| line.starts_with("serving ") && !line.contains(&format!("pid={old_pid} ")));
    let new_pid = field(&new_serving, "pid").to_owned();
    let _successor = Pid(new_pid.parse().expect("a pid"));
    assert_ne!(new_pid, old_pid);
    assert_eq!(
        field(&new_serving, "inherited"),
        format!("Some({old_pid})"),
        "the new process knows it was handed over"
    );
    assert!(
        new_serving.contains(&addr.to_string()),
        "the same socket: {new_serving}"
    );
    assert_eq!(field(&serving, "tag"), "true");
    assert_eq!(
        field(&new_serving, "tag"),
        "true",
        "the host was rebuilt with the features it was built with"
    );
    let handed = lines.starting("handed over ");
    assert_eq!(field(&handed, "to"), format!("Some({new_pid})"));

    // The request in flight was answered by the old process's code.
    let slow = slow
        .join()
        .expect("the slow request")
        .expect("the slow request's answer");
    assert!(
        slow.starts_with(&format!("pid={old_pid} ")) && slow.ends_with("text=v1"),
        "{slow}"
    );
    // New requests reach the new process, with the new code.
    support::wait_for("a request answered by the new process", || {
        lock(&answers).iter().any(|a| {
            a.as_ref()
                .is_ok_and(|b| b.contains(&format!("pid={new_pid} ")))
        })
    });
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().expect("a client");
    }
    let last = get(addr, "/hit").expect("a request after the restart");
    assert!(
        last.starts_with(&format!("pid={new_pid} ")) && last.ends_with("text=v2"),
        "{last}"
    );
    // The old process handed over and left `main`, but it is still there for whoever started it
    // (cargo, a shell, a supervisor): it waits for its successor, and ends as it ends.
    assert!(
        host.0
            .try_wait()
            .expect("the old process's status")
            .is_none(),
        "the old process waits for the new one"
    );
    let status = Command::new("kill")
        .arg(&new_pid)
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {new_pid}");
    let ended = host.0.wait().expect("the old process ends");
    assert_eq!(
        ended.code(),
        Some(128 + 15),
        "the old process ends as the new one did (SIGTERM): {ended}"
    );
    drop(host);

    // Not one request failed, and the count went on across the processes: every number from 1
    // to the last is answered exactly once.
    let answers = std::mem::take(&mut *lock(&answers));
    let failed: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    let mut counts: Vec<u64> = answers
        .iter()
        .flatten()
        .chain([&slow, &last])
        .map(|body| field(body, "count").parse().expect("a count"))
        .chain(1..=3)
        .collect();
    counts.sort_unstable();
    let total = counts.len() as u64;
    assert_eq!(
        counts,
        (1..=total).collect::<Vec<_>>(),
        "each count once, none lost"
    );
    assert!(
        answers
            .iter()
            .flatten()
            .any(|b| b.contains(&format!("pid={old_pid} "))),
        "the clients were answered by the old process before the restart"
    );
}

#[test]
fn a_terminal_program_restarts_in_place_with_its_state() {
    if !support::rebuilds_allowed_here("a_terminal_program_restarts_in_place_with_its_state") {
        return;
    }
    let fixture = fixture(&[]);
    let (_host, mut lines, mut stdin) = fixture.start(&["--in-place"]);
    let started = lines.starting("started ");
    let pid = field(&started, "pid").to_owned();
    assert_eq!(field(&started, "inherited"), "None");
    for expected in 1..=2 {
        let answer = hit(&mut stdin, &mut lines, expected);
        assert_eq!(
            answer,
            format!("pid={pid} count={expected} frames={expected} text=v1")
        );
    }

    fixture.edit("v2");
    lines.event("takes over in place");
    // The next line is served by the old code; then, before reading another, it restarts.
    let answer = hit(&mut stdin, &mut lines, 3);
    assert_eq!(answer, format!("pid={pid} count=3 frames=3 text=v1"));
    let restarted =
        lines.line(|line| line.starts_with("started ") && !line.ends_with("inherited=None"));
    assert_eq!(
        field(&restarted, "pid"),
        pid,
        "the same process: {restarted}"
    );
    assert_eq!(field(&restarted, "inherited"), format!("Some({pid})"));
    let answer = hit(&mut stdin, &mut lines, 4);
    assert_eq!(
        answer,
        format!("pid={pid} count=4 frames=4 text=v2"),
        "the state and the host's value went on, with the new code"
    );
}

#[test]
fn a_restart_that_fails_leaves_the_old_process_serving_with_its_state() {
    if !support::rebuilds_allowed_here(
        "a_restart_that_fails_leaves_the_old_process_serving_with_its_state",
    ) {
        return;
    }
    let fixture = fixture(&[]);
    let (_host, mut lines, _stdin) = fixture.start(&[]);
    let serving = lines.starting("serving ");
    let addr = address(&serving);
    let pid = field(&serving, "pid").to_owned();
    assert_eq!(get(addr, "/hit"), Ok(format!("pid={pid} count=1 text=v1")));

    // The host does not compile against the edit.
    fixture.edit("broken-host");
    let failed = lines.event("building the host failed");
    assert!(
        failed.contains("no field `text`"),
        "the compiler's error: {failed}"
    );
    assert_eq!(get(addr, "/hit"), Ok(format!("pid={pid} count=2 text=v1")));

    // The new host builds, and panics at start.
    fixture.edit("crash");
    let crashed = lines.event("before it was ready");
    assert!(crashed.contains("exited (exit status: 101)"), "{crashed}");
    assert_eq!(
        get(addr, "/hit"),
        Ok(format!("pid={pid} count=3 text=v1")),
        "the old process serves on, its state whole"
    );

    // The new host starts, and cannot take the state (version 2, no `migrate`): it says so and
    // exits, and the old one takes its state back and serves on.
    fixture.edit("bad-state");
    let refused = lines.starting("handover refused: ");
    assert!(
        refused.contains("no migrate function"),
        "the new build's reason: {refused}"
    );
    assert_eq!(
        get(addr, "/hit"),
        Ok(format!("pid={pid} count=4 text=v1")),
        "the old process serves on with its state"
    );
}

#[test]
fn an_in_place_restart_keeps_a_state_it_cannot_read_in_a_file() {
    if !support::rebuilds_allowed_here("an_in_place_restart_keeps_a_state_it_cannot_read_in_a_file")
    {
        return;
    }
    let fixture = fixture(&[]);
    let (_host, mut lines, mut stdin) = fixture.start(&["--in-place"]);
    let started = lines.starting("started ");
    let pid = field(&started, "pid").to_owned();
    for frames in 1..=3 {
        hit(&mut stdin, &mut lines, frames);
    }

    // A boundary type changes and the state's version too, without `migrate`: after `exec` the
    // new image cannot read the value, and there is no old process left to give it back to.
    fixture.edit("bad-state");
    lines.event("takes over in place");
    hit(&mut stdin, &mut lines, 4);
    let kept = lines.line(|line| line.contains("is kept in "));
    assert!(kept.contains("no migrate function"), "{kept}");
    let file = kept
        .rsplit("is kept in ")
        .next()
        .expect("a path")
        .trim()
        .to_owned();
    let value = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("reading {file}: {e}"));
    let _ = std::fs::remove_file(&file);
    assert_eq!(value, "4", "the value the old image handed over, kept");
    lines.line(|line| {
        line.starts_with("started ") && line.contains(&format!("inherited=Some({pid})"))
    });
    let answer = hit(&mut stdin, &mut lines, 5);
    assert_eq!(
        answer,
        format!("pid={pid} count=1 frames=5 text=v2"),
        "the state starts from its default, the host's own value goes on"
    );
}

#[test]
fn an_in_place_restart_whose_new_build_dies_at_start_goes_back_to_the_old_one() {
    if !support::rebuilds_allowed_here(
        "an_in_place_restart_whose_new_build_dies_at_start_goes_back_to_the_old_one",
    ) {
        return;
    }
    let fixture = fixture(&[]);
    let (_host, mut lines, mut stdin) = fixture.start(&["--in-place"]);
    let started = lines.starting("started ");
    let pid = field(&started, "pid").to_owned();
    for frames in 1..=2 {
        hit(&mut stdin, &mut lines, frames);
    }

    // The new build panics in `main`, before `restart::ready()`: there is no old process to
    // fall back on after `exec`, so this process runs the previous build again, in place, with
    // the state it handed over.
    fixture.edit("crash");
    lines.event("takes over in place");
    hit(&mut stdin, &mut lines, 3);
    lines.line(|line| line.contains("this build crashes at start"));
    lines.line(|line| line.contains("the previous build runs again, with its state"));
    let back = lines.line(|line| {
        line.starts_with("started ") && line.contains(&format!("inherited=Some({pid})"))
    });
    assert_eq!(field(&back, "pid"), pid, "the same process: {back}");
    let answer = hit(&mut stdin, &mut lines, 4);
    assert_eq!(
        answer,
        format!("pid={pid} count=4 frames=4 text=v1"),
        "the previous build serves on, with the state and the host's value"
    );
}
