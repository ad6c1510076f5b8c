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
}

/// Plays the tour: copies `examples/handler` to `copy_dir` (replacing it; keep it outside
/// `target_dir`, where the rebuild ignores changes), builds it into `target_dir`, and goes
/// through the story, printing as it goes. Fails if any request is answered by another
/// generation than the story says.
pub fn run(copy_dir: &Path, target_dir: &Path) -> Result<Report> {
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
    let live = module.live_generations();
    println!("live generations: {live:?} (generation {g1} retired once its last request was done)");
    server.shutdown()?;

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
        "done: no restart, no failed request ({:.1} s after the first build)",
        after_first_build.elapsed().as_secs_f64()
    );
    Ok(Report {
        rows,
        old: g1,
        new: g2,
        live,
        refusal,
    })
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
