//! The tour's script, shared by `main.rs` and the tests: see `main.rs` for the story.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use handler::app;
use hotmod::{Event, Events};

use crate::{client, crate_copy, server};

/// The edit that step 4 makes: the greeting gets a suffix.
const GREETING: &str = r#"format!("Hello, {name}!\n")"#;
const EDITED_GREETING: &str = r#"format!("Hello, {name}! (edited while the server ran)\n")"#;
/// The edit that step 6 makes: a new field in `Response`, a struct that crosses the boundary
/// (and the constructor that fills it in).
const NEW_FIELD: [(&str, &str); 2] = [
    (
        "/// The response body.\n        pub body: String,\n",
        "/// The response body.\n        pub body: String,\n        /// Added by the tour.\n        pub max_age: u32,\n",
    ),
    ("            body,\n        }", "            body,\n            max_age: 60,\n        }"),
];

/// Generous: a busy machine may be slow, but the tour still ends by itself.
const WAIT: Duration = Duration::from_secs(180);
const HTTP_TIMEOUT: Duration = Duration::from_secs(120);

/// Every error says what failed.
pub type Result<T> = crate_copy::Result<T>;

/// Seconds since the tour started, for the progress lines.
fn clock() -> String {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    format!("[{:5.1}s]", start.elapsed().as_secs_f64())
}

macro_rules! say {
    ($($arg:tt)*) => { println!("{} {}", clock(), format!($($arg)*)) };
}

/// Prints the events that arrived since the last look.
fn drain(events: &Events) {
    while let Some(event) = events.try_recv() {
        say!("hotmod: {event}");
    }
}

/// One request the tour made, for the table at the end.
#[derive(Debug, Clone)]
pub struct Row {
    /// Which request.
    pub what: &'static str,
    /// When it started, in the story.
    pub started: &'static str,
    /// The generation that answered it.
    pub generation: Option<u64>,
    /// The answer.
    pub body: String,
}

/// What the tour saw.
#[derive(Debug, Clone)]
pub struct Report {
    /// Every request, in the order they were made.
    pub rows: Vec<Row>,
    /// The generation the slow request pinned.
    pub old: u64,
    /// The generation the edit became.
    pub new: u64,
    /// Live generations at the end.
    pub live: Vec<u64>,
    /// Why the last edit was refused.
    pub refusal: String,
    /// The same edit, applied by a kept-state restart.
    pub restart: Restarted,
}

/// What the tour's kept-state restart saw: the server's pid before and after, and each request
/// with the process that answered it and the request counter (`#[hotmod::state]`) it read.
#[derive(Debug, Clone)]
pub struct Restarted {
    /// The server that was running when the edit was saved.
    pub old_pid: u32,
    /// The server it handed over to.
    pub new_pid: u32,
    /// Every request of the step, in order.
    pub rows: Vec<RestartRow>,
}

/// One request of the restart step.
#[derive(Debug, Clone)]
pub struct RestartRow {
    /// Which request.
    pub what: &'static str,
    /// The process that answered.
    pub pid: Option<u32>,
    /// The request counter it read.
    pub count: Option<u64>,
    /// The answer.
    pub body: String,
}

/// Plays the tour: copies `examples/handler` to `copy_dir` (replacing it; keep it outside
/// `target_dir`, where the rebuild ignores changes), builds it into `target_dir`, and goes
/// through the story, printing as it goes; its last step writes the HTTP example as a project
/// of its own to `project_dir` and restarts it with its state. Fails if any request is answered by another
/// generation than the story says.
pub fn run(copy_dir: &Path, target_dir: &Path, project_dir: &Path) -> Result<Report> {
    clock();
    println!(
        "hotmod tour: the handler of a running HTTP server changes while a request is in flight\n"
    );
    let module = app::module();
    // Events are printed from this thread, as the tour reaches them, so the log reads in order.
    let events = module.subscribe();

    // 1. A copy of the handler crate, built.
    let target = target_dir;
    let copy = crate_copy::copy_crate(&crate_copy::workspace().join("examples/handler"), copy_dir)?;
    say!(
        "copied examples/handler to {} (rewritten every run)",
        copy.display()
    );
    say!(
        "building it into {} (the first build compiles hotmod too; later ones take seconds) …",
        target.display()
    );
    // Every build into the target directory, and the load of what it wrote, happens under its
    // lock: other processes (the tests) build into it too and would replace the library.
    let lock = crate_copy::lock(target)?;
    let built = Instant::now();
    let library = crate_copy::build(&copy, target, "handler")?;
    say!("built in {:.1} s", built.elapsed().as_secs_f64());
    let after_first_build = Instant::now();
    let g1 = module.load(&library)?;
    drop(lock);
    expect_event(
        &events,
        "generation 1 live",
        |e| matches!(e, Event::Loaded { generation, .. } if *generation == g1),
    )?;

    // 2. The server, and a first request.
    let server = server::Server::start(server::Config {
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        log_requests: false,
    })?;
    let addr = server.addr();
    say!("server listening on http://{addr}");
    let mut rows = Vec::new();
    let first = request(&events, addr, "/hello?name=tour")?;
    rows.push(row("first request", "before the edit", &first));

    // 3. A slow request: it pins generation 1 as it arrives and is held until a newer
    //    generation is live (at most a minute).
    let slow_target = "/hello?name=slow&delay_ms=60000&until_reload=1";
    say!("slow request: GET {slow_target}");
    let slow = std::thread::spawn(move || client::get(addr, slow_target, HTTP_TIMEOUT));
    wait_until("the slow request to be held by the server", || {
        server.held() == 1
    })?;
    say!(
        "the server holds 1 request, pinned to generation {}; live generations {:?}",
        module.generation(),
        module.live_generations()
    );

    // 4. Edit the copy; the built-in rebuild builds and loads it.
    module
        .rebuild()
        .manifest_dir(&copy)
        .target_dir(target)
        .profile("dev")
        .start()?;
    let lib_rs = copy.join("src/lib.rs");
    say!("editing {}:", lib_rs.display());
    say!("    - {GREETING}");
    say!("    + {EDITED_GREETING}");
    // The rebuild builds and loads as the edit lands: under the lock until it is done.
    let lock = crate_copy::lock(target)?;
    crate_copy::edit(&lib_rs, &[(GREETING, EDITED_GREETING)])?;
    let outcome = expect_event(&events, "the edit to be built and loaded", build_outcome);
    drop(lock);
    let g2 = match outcome? {
        Event::Loaded { generation, .. } => generation,
        other => return Err(format!("the edited handler was not loaded: {other}").into()),
    };

    // 5. The slow request finishes on generation 1, then generation 1 retires; new requests
    //    run generation 2.
    let slow = slow
        .join()
        .map_err(|_| "the slow request's thread panicked")??;
    say!(
        "slow request answered by generation {}: {:?}",
        show(slow.generation()),
        slow.body.trim_end()
    );
    rows.push(row("slow request", "before the edit", &slow));
    let retired = expect_event(
        &events,
        "generation 1 to retire",
        |e| matches!(e, Event::Retired { generation, .. } | Event::RetireBlocked { generation, .. } if *generation == g1),
    )?;
    if matches!(retired, Event::RetireBlocked { .. }) {
        say!("(generation 1's library stays mapped on this platform; see docs/reload-model.md)");
    }
    for n in 1..=3 {
        let reply = request(&events, addr, &format!("/hello?name=new{n}"))?;
        rows.push(row("new request", "after the reload", &reply));
    }

    // 6. An edit that needs a restart is refused; generation 2 keeps serving.
    say!("editing the Response struct, a type that crosses the boundary: + pub max_age: u32");
    let lock = crate_copy::lock(target)?;
    crate_copy::edit(&lib_rs, &NEW_FIELD)?;
    let outcome = expect_event(&events, "the refused build's outcome", build_outcome);
    drop(lock);
    let refusal = match outcome? {
        Event::Rejected { error, .. } => error.to_string(),
        other => return Err(format!("expected hotmod to refuse the build, got: {other}").into()),
    };
    let after = request(&events, addr, "/hello?name=again")?;
    rows.push(row("later request", "after the refusal", &after));
    module.unwatch();
    server.shutdown()?;
    let live = module.live_generations();

    // 7. The same edit, applied by a kept-state restart.
    let restart = restart_step(project_dir)?;

    // 7. Side by side.
    println!();
    println!(
        "  {:<18} {:<18} {:<13} body",
        "request", "started", "answered by"
    );
    for r in &rows {
        println!(
            "  {:<18} {:<18} generation {:<2} {:?}",
            r.what,
            r.started,
            show(r.generation),
            r.body.trim_end()
        );
    }
    println!();
    println!("live generations: {live:?} (generation {g1} retired once its last request was done)");
    println!();
    println!(
        "  {:<18} {:<13} {:<8} body",
        "request", "answered by", "count"
    );
    for r in &restart.rows {
        println!(
            "  {:<18} pid {:<9} {:<8} {:?}",
            r.what,
            r.pid.map_or_else(|| "?".to_owned(), |p| p.to_string()),
            r.count.map_or_else(|| "?".to_owned(), |c| c.to_string()),
            r.body.trim_end()
        );
    }
    println!();

    let ok = slow.generation() == Some(g1)
        && first.generation() == Some(g1)
        && rows
            .iter()
            .filter(|r| r.started != "before the edit")
            .all(|r| r.generation == Some(g2))
        && !live.contains(&g1);
    if !ok {
        return Err("the requests were not answered by the generations expected above".into());
    }
    println!(
        "done: the handler changed twice while requests were in flight, once by a reload and \
         once by a restart with its state; no failed request ({:.1} s after the first build)",
        after_first_build.elapsed().as_secs_f64()
    );
    Ok(Report {
        rows,
        old: g1,
        new: g2,
        live,
        refusal,
        restart,
    })
}

/// Step 7: the edit step 6 could not load, applied by a kept-state restart. The server that
/// restarts must be built with the edited handler, so it runs as a project of its own (the
/// HTTP example written to `root`), as a child process started with `--rebuild --restart`;
/// its lines are printed as they come.
fn restart_step(root: &Path) -> Result<Restarted> {
    say!(
        "the same edit with a kept-state restart: the HTTP example as a project of its own, \
         started with --rebuild --restart, whose rebuild builds a new server with the edit"
    );
    let target = root.join("target");
    // Under the lock: the tests build this project too.
    let _lock = crate_copy::lock(&target)?;
    let lib_rs = crate_copy::http_project(root)?;
    let pristine = std::fs::read_to_string(&lib_rs)
        .map_err(|e| format!("reading {}: {e}", lib_rs.display()))?;
    say!(
        "building it in {} (the first run compiles the server's dependencies: minutes on two \
         cores; later runs take seconds) …",
        root.display()
    );
    let built = Instant::now();
    let exe = crate_copy::build_http_project(root, &target)?;
    say!("built in {:.1} s", built.elapsed().as_secs_f64());
    let result = restart_story(root, &exe, &lib_rs);
    // The pristine handler for the next run, whatever happened.
    crate_copy::write_if_changed(&lib_rs, &pristine)?;
    result
}

fn restart_story(root: &Path, exe: &Path, lib_rs: &Path) -> Result<Restarted> {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let mut child = std::process::Command::new(exe)
        .args(["--rebuild", "--restart", "--port", "0"])
        .current_dir(root)
        .env("HOTMOD_QUIET", "1")
        .env_remove("HOTMOD_REBUILD")
        .env_remove("HOTMOD_WATCH")
        .env_remove("HOTMOD_RESTART")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        // Its own group: the server and the one it hands over to end together with the tour.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", exe.display()))?;
    let group = ProcessGroup(child.id());
    let stdout = child.stdout.take().ok_or("the server's stdout")?;
    let (sender, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(|l| l.ok())
        {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    // Prints the server's lines until one satisfies `wanted`.
    let until = |what: &str, wanted: &dyn Fn(&str) -> bool| -> Result<String> {
        loop {
            let line = lines
                .recv_timeout(WAIT)
                .map_err(|_| format!("waited {WAIT:?} for the server: {what}"))?;
            say!("server: {line}");
            if line.contains("restarting failed") {
                return Err(format!("the restart failed: {line}").into());
            }
            if wanted(&line) {
                return Ok(line);
            }
        }
    };
    let listening = until("listening", &|l| l.starts_with("listening on http://"))?;
    let addr: SocketAddr = listening
        .trim_start_matches("listening on http://")
        .split(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("no address in {listening:?}"))?;
    let old_pid = child.id();
    let mut rows = Vec::new();
    let ask = |what: &'static str, target: &str, rows: &mut Vec<RestartRow>| -> Result<()> {
        let reply = client::get(addr, target, HTTP_TIMEOUT)?;
        if reply.status != 200 {
            return Err(format!("GET {target} answered {}: {}", reply.status, reply.body).into());
        }
        rows.push(RestartRow {
            what,
            pid: reply.pid(),
            count: reply.count(),
            body: reply.body.clone(),
        });
        Ok(())
    };
    for n in 1..=2 {
        ask(
            "first request",
            &format!("/hello?name=before{n}"),
            &mut rows,
        )?;
    }
    let slow_target = "/hello?name=slow&delay_ms=60000&until_reload=1";
    say!("slow request: GET {slow_target}");
    let slow = std::thread::spawn(move || client::get(addr, slow_target, HTTP_TIMEOUT));
    until("the slow request held", &|l| {
        l.contains("name=slow") && l.contains("held")
    })?;

    say!(
        "editing {}: + pub max_age: u32 in Response (refused for a reload, as above)",
        lib_rs.display()
    );
    crate_copy::edit(lib_rs, &NEW_FIELD)?;
    let handed = until("the hand-over", &|l| l.starts_with("handed over to pid "))?;
    let new_pid: u32 = handed
        .trim_start_matches("handed over to pid ")
        .split(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("no pid in {handed:?}"))?;
    let slow = slow
        .join()
        .map_err(|_| "the slow request's thread panicked")??;
    rows.push(RestartRow {
        what: "slow request",
        pid: slow.pid(),
        count: slow.count(),
        body: slow.body.clone(),
    });
    for n in 1..=2 {
        ask("new request", &format!("/hello?name=after{n}"), &mut rows)?;
    }
    say!(
        "the old server (pid {old_pid}) answered the slow request and waits for the new one \
         (pid {new_pid}); stopping it"
    );
    let _ = std::process::Command::new("kill")
        .arg(new_pid.to_string())
        .status();
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the server: {e}"))?;
    say!("the old server ended as the new one did: {status}");
    drop(group);

    let counts: Vec<Option<u64>> = rows.iter().map(|r| r.count).collect();
    let expected: Vec<Option<u64>> = (1..=rows.len() as u64).map(Some).collect();
    let ok = rows.iter().all(|r| {
        r.pid
            == Some(if r.what == "new request" {
                new_pid
            } else {
                old_pid
            })
    }) && new_pid != old_pid
        && counts == expected;
    if !ok {
        return Err(format!(
            "the restart did not go as the story says: old pid {old_pid}, new pid {new_pid}, {rows:?}"
        )
        .into());
    }
    Ok(Restarted {
        old_pid,
        new_pid,
        rows,
    })
}

/// A process group killed when dropped (the restart step's server and its successor).
struct ProcessGroup(u32);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn request(events: &Events, addr: SocketAddr, target: &str) -> Result<client::Reply> {
    let reply = client::get(addr, target, HTTP_TIMEOUT)?;
    drain(events);
    if reply.status != 200 {
        return Err(format!("GET {target} answered {}: {}", reply.status, reply.body).into());
    }
    say!(
        "GET {target} -> generation {}: {:?}",
        show(reply.generation()),
        reply.body.trim_end()
    );
    Ok(reply)
}

fn row(what: &'static str, started: &'static str, reply: &client::Reply) -> Row {
    Row {
        what,
        started,
        generation: reply.generation(),
        body: reply.body.clone(),
    }
}

fn show(generation: Option<u64>) -> String {
    generation.map_or_else(|| "?".to_owned(), |g| g.to_string())
}

fn build_outcome(event: &Event) -> bool {
    matches!(
        event,
        Event::Loaded { .. } | Event::Rejected { .. } | Event::BuildFailed { .. }
    )
}

/// Prints events as they come until one satisfies `wanted`; returns it.
fn expect_event(
    events: &Events,
    what: &str,
    mut wanted: impl FnMut(&Event) -> bool,
) -> Result<Event> {
    let event = events.wait_for(WAIT, |event| {
        say!("hotmod: {event}");
        wanted(event)
    });
    event.ok_or_else(|| format!("waited {WAIT:?} for {what}").into())
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        if Instant::now() > deadline {
            return Err(format!("waited {WAIT:?} for {what}").into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}
