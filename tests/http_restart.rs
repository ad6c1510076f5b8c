//! The HTTP example's kept-state restart (issue 20, `--restart`), with real processes: an edit
//! of the handler that adds a field to `Response`, a type that crosses the boundary, cannot be
//! reloaded; the server, started with `--rebuild --restart`, builds itself again with the edit
//! and hands over to the new process its listening socket and the handler's request counter (a
//! `#[hotmod::state]`), while clients keep asking: some open a connection per request, some
//! keep theirs alive and connect again when the old process answers with `Connection: close`.
//! Not one request fails, a slow request started before the edit is answered by the old
//! process, later requests by the new one with the new code, and the counter goes on: every
//! number once, none lost.
//!
//! The example's crates (the handler, the price list, and the server's sources as an example
//! `http_server` of a package of their own) are copied into a user's workspace under
//! `target/hotmod-fixtures/http-restart` (kept between runs, under its lock, so only what
//! changed compiles again), where the test edits the handler while the server runs.

mod support;

#[path = "../examples/http_server/client.rs"]
mod client;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use support::scratch::{lines_of, write, Host, HostLines};

/// The workspace's first build compiles hotmod, axum, tokio and the rest; a restart builds the
/// handler and the server: generous on a busy 2-core machine.
const TIMEOUT: Duration = Duration::from_secs(1200);
/// One request's wait for its answer: a request the new process takes waits until the old one
/// has drained and handed its state over.
const HTTP_TIMEOUT: Duration = Duration::from_secs(300);
/// Clients that open a connection per request, and clients that keep theirs alive.
const FRESH_CLIENTS: usize = 2;
const KEEP_ALIVE_CLIENTS: usize = 2;
/// Answers wanted from the new process before the load stops.
const AFTER: usize = 50;

/// The edit: a field more in `Response` (another layout: refused for a reload, so the server
/// restarts), filled in by the one function that builds a `Response`, and a new greeting, to
/// see which code answered.
const EDIT: [(&str, &str); 3] = [
    (
        "        /// The response body.\n        pub body: String,\n",
        "        /// The response body.\n        pub body: String,\n        /// Added by tests/http_restart.rs.\n        pub edition: u32,\n",
    ),
    (
        "            body,\n        }",
        "            body,\n            edition: 2,\n        }",
    ),
    (
        r#"format!("Hello, {name}!\n")"#,
        r#"format!("Hello again, {name}!\n")"#,
    ),
];

/// The user's workspace: its root, and the handler's source as the workspace has it.
struct Fixture {
    root: PathBuf,
    pristine: String,
    _lock: std::fs::File,
}

/// The workspace with the example's sources as written, built.
fn fixture() -> Fixture {
    let root = support::workspace()
        .join("target")
        .join("hotmod-fixtures")
        .join("http-restart");
    let target = root.join("target");
    let lock = support::crate_copy::lock(&target).expect("the scratch target's lock");
    let handler = support::crate_copy::http_project(&root).expect("the project written");
    let pristine = std::fs::read_to_string(handler).expect("the handler's source");
    support::crate_copy::build_http_project(&root, &target).expect("the project built");
    Fixture {
        root,
        pristine,
        _lock: lock,
    }
}

impl Fixture {
    /// The server, on a free port of 127.0.0.1, rebuilding its hot crates on every save and
    /// restarting with its state when a build needs it.
    fn start(&self) -> (Group, Host, HostLines) {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(
            self.root
                .join("target")
                .join("debug")
                .join("examples")
                .join("http_server"),
        )
        .args(["--rebuild", "--restart", "--port", "0"])
        .current_dir(&self.root)
        .env("CARGO_NET_OFFLINE", "true")
        .env("HOTMOD_QUIET", "1")
        .env_remove("HOTMOD_REBUILD")
        .env_remove("HOTMOD_WATCH")
        .env_remove("HOTMOD_RESTART")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start the server");
        let lines = HostLines::new(
            lines_of(&mut child),
            "server",
            |line| line.contains("restarting failed"),
            // The line per request (`GET /hello?name=c0 -> 200 (…)`) is not worth keeping.
            |line| line.starts_with("GET ") && line.contains(" -> "),
        );
        (Group(child.id()), Host(child), lines)
    }

    fn edit(&self) {
        let mut source = self.pristine.clone();
        for (from, to) in EDIT {
            assert!(source.contains(from), "the handler no longer has {from:?}");
            source = source.replacen(from, to, 1);
        }
        write(&self.root.join("handler/src/lib.rs"), &source);
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // The pristine source for the next run (whose first build then compiles it again).
        write(&self.root.join("handler/src/lib.rs"), &self.pristine);
    }
}

/// The number after `key ` in `line` (`pid 4242`).
fn number_after(line: &str, key: &str) -> u32 {
    let at = line
        .find(key)
        .unwrap_or_else(|| panic!("no {key:?} in {line:?}"));
    line[at + key.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after {key:?} in {line:?}"))
}

/// The server's processes, which the test must not leave behind however it ends: the one it
/// started, in a process group of its own, and what that one starts in it: its successor (not
/// the test's child) and their builds. Killed, and waited for, so that no rebuild of theirs
/// sees the pristine source written back.
struct Group(u32);

impl Group {
    /// The processes of the group that still run (a zombie does not).
    fn alive(&self) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| {
                let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
                // `pid (command) state ppid pgrp …`: the command may hold spaces and parentheses.
                let (_, rest) = stat.rsplit_once(')')?;
                let mut fields = rest.split_whitespace();
                let state = fields.next()?;
                let group: u32 = fields.nth(1)?.parse().ok()?;
                (group == self.0 && state != "Z").then_some(pid)
            })
            .collect()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .status();
        // Not `wait_for`: a panic here, while a failed test unwinds, would abort.
        let deadline = std::time::Instant::now() + TIMEOUT;
        while !self.alive().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(support::POLL);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One answer a client got.
#[derive(Debug, Clone)]
struct Answer {
    client: usize,
    /// The client's connection it came on (keep-alive clients; 0 for the others).
    connection: u64,
    pid: u32,
    count: u64,
    body: String,
    closes: bool,
}

/// What the clients got: answers in order, and failures.
#[derive(Default)]
struct Load {
    answers: Mutex<Vec<Answer>>,
    failures: Mutex<Vec<String>>,
}

impl Load {
    fn record(
        &self,
        client: usize,
        connection: u64,
        target: &str,
        reply: std::io::Result<client::Reply>,
    ) {
        let answer = reply.map_err(|e| e.to_string()).and_then(|reply| {
            match (reply.status, reply.pid(), reply.count()) {
                (200, Some(pid), Some(count)) => Ok(Answer {
                    client,
                    connection,
                    pid,
                    count,
                    closes: reply.closes(),
                    body: reply.body,
                }),
                _ => Err(format!("{reply:?}")),
            }
        });
        match answer {
            Ok(answer) => lock(&self.answers).push(answer),
            Err(e) => lock(&self.failures).push(format!("client {client}: GET {target}: {e}")),
        }
    }

    /// How many answers came from process `pid`, and whether every client got one.
    fn answered_by(&self, pid: u32) -> (usize, bool) {
        let answers = lock(&self.answers);
        let count = answers.iter().filter(|a| a.pid == pid).count();
        let every = (0..FRESH_CLIENTS + KEEP_ALIVE_CLIENTS)
            .all(|c| answers.iter().any(|a| a.client == c && a.pid == pid));
        (count, every)
    }
}

#[test]
fn the_http_example_restarts_with_its_socket_and_counter_and_no_request_fails() {
    if !support::rebuilds_allowed_here(
        "the_http_example_restarts_with_its_socket_and_counter_and_no_request_fails",
    ) {
        return;
    }
    let fixture = fixture();
    let (group, mut host, mut lines) = fixture.start();
    let listening = lines.line(|line| line.starts_with("listening on "));
    let addr: SocketAddr = listening
        .split_whitespace()
        .nth(2)
        .and_then(|url| url.strip_prefix("http://"))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {listening:?}"));
    let old_pid = number_after(&listening, "(pid ");
    assert_eq!(old_pid, host.0.id());
    assert!(
        !listening.contains("taken over"),
        "a cold start: {listening}"
    );
    for expected in 1..=3 {
        let reply = client::get(addr, "/hello?name=before", HTTP_TIMEOUT).expect("a request");
        assert_eq!(
            (
                reply.status,
                reply.pid(),
                reply.count(),
                reply.body.as_str()
            ),
            (200, Some(old_pid), Some(expected), "Hello, before!\n")
        );
    }

    // A slow request, held by the old process until it hands over.
    let slow_target = "/hello?name=slow&delay_ms=1200000&until_reload=1";
    let slow = std::thread::spawn(move || client::get(addr, slow_target, TIMEOUT));
    lines.line(|line| *line == format!("GET {slow_target}: held (generation 0, pid {old_pid})"));

    // Clients that never stop asking.
    let load = Arc::new(Load::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..FRESH_CLIENTS {
        let (load, stop) = (Arc::clone(&load), Arc::clone(&stop));
        clients.push(std::thread::spawn(move || {
            let target = format!("/hello?name=c{c}");
            while !stop.load(Ordering::SeqCst) {
                load.record(c, 0, &target, client::get(addr, &target, HTTP_TIMEOUT));
            }
        }));
    }
    for c in FRESH_CLIENTS..FRESH_CLIENTS + KEEP_ALIVE_CLIENTS {
        let (load, stop) = (Arc::clone(&load), Arc::clone(&stop));
        clients.push(std::thread::spawn(move || {
            let target = format!("/hello?name=c{c}");
            let mut connection = client::KeepAlive::new(addr, HTTP_TIMEOUT);
            while !stop.load(Ordering::SeqCst) {
                let reply = connection.get(&target);
                load.record(c, connection.connections, &target, reply);
            }
        }));
    }
    // Every client answered by the old process before the edit (the keep-alive ones hold a
    // connection to it from now on).
    support::wait_for_within(
        "every client answered by the old process",
        TIMEOUT,
        support::POLL,
        || {
            let failures = lock(&load.failures).clone();
            assert!(failures.is_empty(), "failed requests: {failures:?}");
            load.answered_by(old_pid).1
        },
    );

    fixture.edit();
    lines.line(|line| line.contains("this change needs a restart"));
    let handing = lines.line(|line| line.starts_with("handing over to pid "));
    let new_pid = number_after(&handing, "handing over to pid ");
    assert_ne!(new_pid, old_pid);
    assert!(
        group.alive().contains(&new_pid),
        "the successor runs in the server's process group"
    );
    let taken = lines.line(|line| {
        line.starts_with("listening on ") && line.contains(&format!("(pid {new_pid}, "))
    });
    assert!(
        taken.contains(&format!("taken over from pid {old_pid}"))
            && taken.contains(&addr.to_string()),
        "the new process serves on the same socket, handed over: {taken}"
    );
    let handed = lines.line(|line| line.starts_with("handed over to "));
    assert_eq!(handed, format!("handed over to pid {new_pid}: exiting"));

    // The request in flight was answered by the old process, with the old code.
    let slow = slow
        .join()
        .expect("the slow request's thread")
        .expect("the slow request's answer");
    assert_eq!(
        (slow.status, slow.pid(), slow.body.as_str()),
        (200, Some(old_pid), "Hello, slow!\n"),
        "{slow:?}"
    );
    // New requests reach the new process, with the new code.
    support::wait_for_within(
        "answers from the new process, to every client",
        TIMEOUT,
        support::POLL,
        || {
            let (count, every) = load.answered_by(new_pid);
            count >= AFTER && every
        },
    );
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().expect("a client");
    }
    let last = client::get(addr, "/hello?name=after", HTTP_TIMEOUT).expect("a request after");
    assert_eq!(
        (last.status, last.pid(), last.body.as_str()),
        (200, Some(new_pid), "Hello again, after!\n")
    );

    let answers = std::mem::take(&mut *lock(&load.answers));
    let failures = std::mem::take(&mut *lock(&load.failures));
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        failures.len() + answers.len(),
        &failures[..failures.len().min(10)]
    );
    for c in 0..FRESH_CLIENTS + KEEP_ALIVE_CLIENTS {
        let mine: Vec<&Answer> = answers.iter().filter(|a| a.client == c).collect();
        // Old process and old code, then new process and new code; never back.
        let switch = mine
            .iter()
            .position(|a| a.pid == new_pid)
            .unwrap_or_else(|| panic!("client {c} was never answered by the new process"));
        assert!(
            switch > 0,
            "client {c} was never answered by the old process"
        );
        for (i, answer) in mine.iter().enumerate() {
            let (pid, greeting) = if i < switch {
                (old_pid, "Hello")
            } else {
                (new_pid, "Hello again")
            };
            assert_eq!(
                (answer.pid, answer.body.clone()),
                (pid, format!("{greeting}, c{c}!\n")),
                "client {c}'s answer {i} of {} (the new process answered from {switch} on)",
                mine.len()
            );
        }
        if c >= FRESH_CLIENTS {
            // A keep-alive client: its connection to the old process was reused, then closed by
            // the old process's last answer on it (`Connection: close`), and it connected again.
            let before = &mine[..switch];
            let last_old = before.last().expect("an answer of the old process");
            assert!(
                last_old.closes,
                "client {c}: the old process's last answer closes the connection: {last_old:?}"
            );
            assert!(
                before
                    .iter()
                    .filter(|a| a.connection == last_old.connection)
                    .count()
                    > 1,
                "client {c} reused its connection to the old process"
            );
            assert!(
                before[..switch - 1].iter().all(|a| !a.closes),
                "client {c}: only the last answer of the old process closes"
            );
            assert!(
                mine[switch].connection > last_old.connection,
                "client {c} connected again"
            );
        }
    }

    // The handler's counter went on across the processes: every number from 1 to the last is
    // answered exactly once.
    let mut counts: Vec<u64> = answers
        .iter()
        .map(|a| a.count)
        .chain([&slow, &last].map(|r| r.count().expect("a count")))
        .chain(1..=3)
        .collect();
    counts.sort_unstable();
    let total = counts.len() as u64;
    let expected: Vec<u64> = (1..=total).collect();
    if counts != expected {
        let missing: Vec<u64> = expected
            .iter()
            .filter(|n| !counts.contains(n))
            .copied()
            .collect();
        let mut twice = counts.clone();
        twice.dedup();
        panic!(
            "each count once, none lost: {total} answers, missing {:?}, {} duplicates",
            &missing[..missing.len().min(10)],
            counts.len() - twice.len()
        );
    }
    eprintln!(
        "{} answers: {} by the old process, {} by the new one",
        total,
        answers.iter().filter(|a| a.pid == old_pid).count() + 4,
        answers.iter().filter(|a| a.pid == new_pid).count() + 1,
    );
    // The old process left `main` but stays, as a small waiter, for whoever started it (`cargo
    // run`, a shell): it ends as its successor ends.
    assert!(
        host.0
            .try_wait()
            .expect("the old process's status")
            .is_none(),
        "the old process waits for its successor"
    );
    let killed = Command::new("kill")
        .arg(new_pid.to_string())
        .status()
        .expect("run kill");
    assert!(killed.success(), "kill {new_pid}");
    let status = support::wait_for_within("the old process to end", TIMEOUT, support::POLL, || {
        host.0.try_wait().expect("the old process's status")
    });
    assert_eq!(
        status.code(),
        Some(128 + 15),
        "the old process ends as its successor did (SIGTERM): {status}"
    );
    drop(host);
    // Anything left ends with the group, before the fixture writes the pristine source back.
    drop(group);
}
