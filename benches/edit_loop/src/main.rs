//! Save → new code serving, end to end, with hotmod's built-in rebuild (see Cargo.toml).
//!
//! For each module (the HTTP example's `handler`, the game loop's `game_logic`) the harness
//!
//! 1. copies the module crate to `target/hotmod-edit-loop/<variant>/<crate>` with a workspace of
//!    its own (`examples/shared/crate_copy.rs`, as the tour does: absolute path dependencies, an
//!    empty `[workspace]`, the workspace's `Cargo.lock`) plus the variant's build settings, and
//!    builds it once into `target/hotmod-edit-loop/<variant>/target`, so the timed builds are
//!    incremental ones, as after a user's first save. The repository's own sources are never
//!    written;
//! 2. starts a host — this executable again, `host handler` or `host game` — in a process of
//!    its own, with the rebuild of that copy on (`module().rebuild().manifest_dir(copy)
//!    .target_dir(..)`: what `HOTMOD_REBUILD=1` does for the crate's own directory). The
//!    handler host is the HTTP example's server (`examples/http_server/server.rs`, included as
//!    it is) on 127.0.0.1; the game host calls `update` once per frame at 60 Hz in staged mode,
//!    like the game loop, and prints the score each frame adds whenever it changes;
//! 3. after untimed warm-up edits, edits the copy's source N times (a new greeting, a new
//!    `POINTS_PER_FRAME`), noting the time just before each write, and waits for the new
//!    code: polls `GET /hello` until the body has the new text, or reads the game host's lines
//!    until it reports the new score per frame. That interval is one sample.
//!
//! The host's hotmod events (build started, cargo's build time, load time) are printed by the
//! host as lines the harness stamps on arrival, so each sample is split into watch + settle,
//! cargo, and load. Hosts die with the harness: dropped (normal exit, panic) they are killed;
//! if the harness is killed, `PR_SET_PDEATHSIG` kills them; Ctrl-C reaches the whole
//! foreground process group anyway.

#[path = "../../../examples/http_server/client.rs"]
mod client;
#[path = "../../../examples/shared/crate_copy.rs"]
mod crate_copy;
#[path = "../../../examples/http_server/server.rs"]
mod server;

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// How long any one step may take before the harness gives up: a first build of hotmod and its
/// dependencies on a busy 2-core machine takes minutes.
const GENEROUS: Duration = Duration::from_secs(600);

/// The pause between two polls of the server: the resolution of a handler sample. Polling
/// back to back would take a core from cargo on this 2-core machine.
const POLL_EVERY: Duration = Duration::from_millis(2);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("host") => host::run(&args[1..]),
        _ => harness(&args),
    };
    if let Err(error) = result {
        eprintln!("hotmod-edit-loop: {error}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// The hosts.

mod host {
    use super::*;
    use game_logic::game;
    use handler::app;
    use hotmod::Event;

    pub fn run(args: &[String]) -> Result<(), Failure> {
        let [which, manifest_dir, target_dir] = args else {
            return Err("usage: host handler|game MANIFEST_DIR TARGET_DIR".into());
        };
        let (manifest_dir, target_dir) = (PathBuf::from(manifest_dir), PathBuf::from(target_dir));
        match which.as_str() {
            "handler" => handler(&manifest_dir, &target_dir),
            "game" => game(&manifest_dir, &target_dir),
            other => Err(format!("unknown host {other}").into()),
        }
    }

    /// Prints every event of `module` as one `event …` line (subscribing also keeps hotmod's
    /// own progress lines off stderr).
    fn print_events(module: &'static hotmod::Module) {
        let events = module.subscribe();
        std::thread::spawn(move || {
            for event in events {
                let line = match &event {
                    Event::BuildStarted { .. } => "started".to_owned(),
                    Event::BuildFinished { took, direct, .. } => format!(
                        "built {:.3} {}",
                        took.as_secs_f64() * 1e3,
                        if *direct { "rustc" } else { "cargo" }
                    ),
                    Event::Loaded {
                        generation, took, ..
                    } => format!("loaded {generation} {:.3}", took.as_secs_f64() * 1e3),
                    Event::Staged { generation, .. } => format!("staged {generation}"),
                    Event::BuildFailed { message, .. } => {
                        eprintln!("{event}");
                        format!("failed {}", message.lines().next().unwrap_or_default())
                    }
                    other => format!("other {}", other.to_string().replace('\n', " | ")),
                };
                println!("event {line}");
            }
        });
    }

    fn handler(manifest_dir: &Path, target_dir: &Path) -> Result<(), Failure> {
        let module = app::module();
        print_events(module);
        module
            .rebuild()
            .manifest_dir(manifest_dir)
            .target_dir(target_dir)
            .start()?;
        let server = server::Server::start(server::Config {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            log_requests: false,
        })?;
        println!("ready {}", server.addr());
        // Serve until killed by the harness.
        loop {
            std::thread::park();
        }
    }

    fn game(manifest_dir: &Path, target_dir: &Path) -> Result<(), Failure> {
        let module = game::module();
        print_events(module);
        // As the game loop: a new generation goes live at the top of a frame only.
        module.set_staged(true);
        module
            .rebuild()
            .manifest_dir(manifest_dir)
            .target_dir(target_dir)
            .start()?;
        let mut state = game::new_state(40, 12);
        let frame_time = Duration::from_secs(1) / 60;
        let mut next = Instant::now();
        let mut per_frame = None;
        println!("ready");
        loop {
            module.apply_staged();
            let before = state.score;
            game::update(&mut state, 1.0 / 60.0);
            let _rows = game::render(&state);
            let added = state.score - before;
            if per_frame != Some(added) {
                per_frame = Some(added);
                println!("value {added} {}", module.generation());
            }
            next += frame_time;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            } else {
                next = now;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The harness.

/// Build settings a user can set: `(name, added to the copy's Cargo.toml, the copy's
/// .cargo/config.toml)`. The copy is its own workspace root, so its profiles apply, and cargo
/// runs in its directory, so it reads that config. Each variant has a target directory of its
/// own: switching settings in one would rebuild every dependency.
const VARIANTS: &[(&str, &str, &str)] = &[
    ("default", "", ""),
    (
        "line-tables",
        "[profile.dev]\ndebug = \"line-tables-only\"\n",
        "",
    ),
    ("no-debug", "[profile.dev]\ndebug = false\n", ""),
    (
        "deps-no-debug",
        "[profile.dev.package.\"*\"]\ndebug = false\n",
        "",
    ),
    (
        "line-tables+deps-no-debug",
        "[profile.dev]\ndebug = \"line-tables-only\"\n[profile.dev.package.\"*\"]\ndebug = false\n",
        "",
    ),
    (
        "split-unpacked",
        "[profile.dev]\nsplit-debuginfo = \"unpacked\"\n",
        "",
    ),
    (
        "split-unpacked+deps-no-debug",
        "[profile.dev]\nsplit-debuginfo = \"unpacked\"\n[profile.dev.package.\"*\"]\ndebug = false\n",
        "",
    ),
    // Settings for the module's package alone (`{module}`: its name), what the rebuild can pass
    // with `--config` without touching how any other crate is built. The rebuild now passes
    // `module-strip+no-debug`'s itself (builder.rs, `module_settings`), so with a hotmod since
    // then these measure the rebuild's settings plus the variant's, and that one is `default`.
    (
        "module-strip",
        "[profile.dev.package.{module}]\nstrip = \"debuginfo\"\n",
        "",
    ),
    (
        "module-strip+no-debug",
        "[profile.dev.package.{module}]\nstrip = \"debuginfo\"\ndebug = false\n",
        "",
    ),
    (
        "module-no-debug",
        "[profile.dev.package.{module}]\ndebug = false\n",
        "",
    ),
    // rustc ≥ 1.90 links x86_64 Linux with its own lld already; this is the system linker
    // (GNU ld through cc) it replaced, for comparison.
    (
        "bfd",
        "",
        "[build]\nrustflags = [\"-C\", \"linker-features=-lld\"]\n",
    ),
];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Handler,
    Game,
}

impl Kind {
    fn crate_name(self) -> &'static str {
        match self {
            Kind::Handler => "handler",
            Kind::Game => "game_logic",
        }
    }
    fn source(self, original: &str, edit: &str, n: u64) -> Result<String, Failure> {
        let (from, to) = match self {
            Kind::Handler => (
                "format!(\"Hello, {name}!\\n\")".to_owned(),
                format!("format!(\"Hello, {{name}}! ({edit} {n})\\n\")"),
            ),
            Kind::Game => (
                "const POINTS_PER_FRAME: u64 = 1;".to_owned(),
                format!("const POINTS_PER_FRAME: u64 = {n};"),
            ),
        };
        if !original.contains(&from) {
            return Err(
                format!("the {} source no longer contains {from}", self.crate_name()).into(),
            );
        }
        Ok(original.replacen(&from, &to, 1))
    }
}

/// A host process, killed when dropped.
struct Host {
    child: Child,
    lines: Receiver<(Instant, String)>,
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Host {
    fn start(kind: Kind, copy: &Path, target: &Path) -> Result<Host, Failure> {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(std::env::current_exe()?);
        command
            .arg("host")
            .arg(match kind {
                Kind::Handler => "handler",
                Kind::Game => "game",
            })
            .arg(copy)
            .arg(target)
            .stdout(Stdio::piped());
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs in the forked child before exec and calls only prctl,
        // getppid and errno reads, which are async-signal-safe; it allocates nothing (its errors
        // are raw OS errors) and takes no lock.
        unsafe {
            command.pre_exec(move || {
                // The host is killed when the harness dies, however it dies.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The harness died before the prctl: nobody would kill this host.
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().ok_or("the host has no stdout")?;
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Stamped on arrival: the reader does nothing else, so this is when the host
                // printed it, give or take a pipe wake-up.
                if sender.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Ok(Host { child, lines })
    }

    /// The next line, or an error after `timeout` or if the host exited.
    fn line(&mut self, timeout: Duration) -> Result<(Instant, String), Failure> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => Err("the host said nothing in time".into()),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait()?;
                Err(format!("the host exited: {status}").into())
            }
        }
    }
}

/// One edit's times, in ms from the write.
#[derive(Debug, Default, Clone)]
struct Sample {
    serving: f64,
    build_started: Option<f64>,
    /// When the host printed cargo's `built` line.
    built_at: Option<f64>,
    cargo: Option<f64>,
    load: Option<f64>,
    /// Built by the module's rustc command alone, without cargo (`BuildFinished::direct`).
    direct: bool,
}

impl Sample {
    /// Takes what an `event …` line says.
    fn note(&mut self, saved: Instant, at: Instant, line: &str) -> Result<(), Failure> {
        let since = at.saturating_duration_since(saved).as_secs_f64() * 1e3;
        if std::env::var_os("HOTMOD_EDIT_LOOP_VERBOSE").is_some() {
            println!("    {since:8.1} ms  {line}");
        }
        let mut words = line.split(' ');
        match (words.next(), words.next()) {
            (Some("event"), Some("started")) => self.build_started = Some(since),
            (Some("event"), Some("built")) => {
                self.built_at = Some(since);
                self.cargo = words.next().and_then(|w| w.parse().ok());
                self.direct = words.next() == Some("rustc");
            }
            (Some("event"), Some("loaded")) => {
                self.load = words.nth(1).and_then(|w| w.parse().ok())
            }
            (Some("event"), Some("failed")) => {
                return Err(format!("the build failed: {line}").into())
            }
            (Some("event"), Some("other"))
                if line.contains("refused") || line.contains("reject") =>
            {
                return Err(format!("the load was refused: {line}").into())
            }
            _ => {}
        }
        Ok(())
    }
}

struct Options {
    edits: u64,
    warmup: u64,
    kinds: Vec<Kind>,
    variants: Vec<&'static str>,
}

fn options(args: &[String]) -> Result<Options, Failure> {
    let mut options = Options {
        edits: 10,
        warmup: 2,
        kinds: vec![Kind::Handler, Kind::Game],
        variants: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--edits" => options.edits = value()?.parse()?,
            "--warmup" => options.warmup = value()?.parse()?,
            "--only" => {
                options.kinds = match value()?.as_str() {
                    "handler" => vec![Kind::Handler],
                    "game" => vec![Kind::Game],
                    other => return Err(format!("--only {other}: handler or game").into()),
                }
            }
            "--variant" => {
                let name = value()?;
                let (name, _, _) = VARIANTS
                    .iter()
                    .find(|(n, _, _)| n == name)
                    .ok_or_else(|| format!("no variant {name}; try --help"))?;
                options.variants.push(name);
            }
            _ => {
                let names: Vec<&str> = VARIANTS.iter().map(|(n, _, _)| *n).collect();
                println!(
                    "usage: hotmod-edit-loop [--edits N] [--warmup N] [--only handler|game] \
                     [--variant NAME]…\nvariants: {}",
                    names.join(", ")
                );
                if arg == "-h" || arg == "--help" {
                    std::process::exit(0);
                }
                return Err(format!("unknown argument {arg}").into());
            }
        }
    }
    if options.variants.is_empty() {
        options.variants.push("default");
    }
    if options.edits == 0 {
        return Err("--edits must be at least 1".into());
    }
    Ok(options)
}

fn harness(args: &[String]) -> Result<(), Failure> {
    let options = options(args)?;
    let profile = if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    };
    println!(
        "host profile: {profile}; {} timed edits after {} warm-up edits; load average: {}",
        options.edits,
        options.warmup,
        loadavg()
    );
    for variant in &options.variants {
        for &kind in &options.kinds {
            measure(kind, variant, &options)?;
        }
    }
    Ok(())
}

fn measure(kind: Kind, variant: &str, options: &Options) -> Result<(), Failure> {
    let name = kind.crate_name();
    let (settings, config) = VARIANTS
        .iter()
        .find(|(n, _, _)| *n == variant)
        .map(|(_, s, c)| (*s, *c))
        .unwrap_or_default();
    let scratch = crate_copy::workspace()
        .join("target")
        .join("hotmod-edit-loop")
        .join(variant);
    // The copy sits outside its target directory: the rebuild ignores changes inside that.
    // A module-only variant builds into the default variant's target directory: its settings
    // leave every other crate's build as it is, so its first build compiles the module alone.
    let target = match variant.strip_prefix("module-") {
        Some(_) => scratch.with_file_name("default").join("target"),
        None => scratch.join("target"),
    };
    let copy = scratch.join(name);
    crate_copy::copy_crate(&crate_copy::workspace().join("examples").join(name), &copy)?;
    if !settings.is_empty() {
        let manifest = copy.join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)?;
        let settings = settings.replace("{module}", name);
        std::fs::write(&manifest, format!("{text}\n{settings}"))?;
    }
    if !config.is_empty() {
        std::fs::create_dir_all(copy.join(".cargo"))?;
        std::fs::write(copy.join(".cargo").join("config.toml"), config)?;
    }
    let source = copy.join("src").join("lib.rs");
    let original = std::fs::read_to_string(&source)?;
    println!("\n== {name}, variant {variant} ==");
    let started = Instant::now();
    crate_copy::build(&copy, &target, name)?;
    let artifact = target.join("debug").join(crate_copy::dylib(name));
    let size = std::fs::metadata(&artifact).map(|m| m.len()).unwrap_or(0);
    println!(
        "first build of the copy: {:.1} s; {} is {:.1} MB",
        started.elapsed().as_secs_f64(),
        artifact.display(),
        size as f64 / 1e6
    );

    let mut host = Host::start(kind, &copy, &target)?;
    let addr = loop {
        let (_, line) = host.line(GENEROUS)?;
        if let Some(rest) = line.strip_prefix("ready") {
            break match kind {
                Kind::Handler => Some(rest.trim().parse::<SocketAddr>()?),
                Kind::Game => None,
            };
        }
    };
    let mut samples = Vec::new();
    println!("load average before: {}", loadavg());
    for n in 1..=options.warmup + options.edits {
        let warm = n <= options.warmup;
        // Distinct values for every edit: the handler's text, the game's points per frame.
        let value = 100 + n;
        let text = kind.source(&original, if warm { "warm-up" } else { "edit" }, value)?;
        let want = match kind {
            Kind::Handler => format!("({} {value})", if warm { "warm-up" } else { "edit" }),
            Kind::Game => format!("value {value} "),
        };
        let mut sample = Sample::default();
        let saved = Instant::now();
        std::fs::write(&source, text)?;
        let served_at = match addr {
            Some(addr) => {
                let at = poll(addr, &want)?;
                // The new code answered, so its generation is live and its `Loaded` event has
                // been printed or is about to be.
                drain(&mut host, saved, &mut sample, |(_, line)| {
                    !line.starts_with("event loaded")
                })?;
                at
            }
            None => {
                let mut at = None;
                drain(&mut host, saved, &mut sample, |(time, line)| {
                    if line.starts_with(&want) {
                        at = Some(*time);
                        false
                    } else {
                        true
                    }
                })?;
                at.ok_or("the game host never reported the new value")?
            }
        };
        sample.serving = (served_at - saved).as_secs_f64() * 1e3;
        println!(
            "{} {n:>2}: save → serving {:7.1} ms (build started at {} ms, cargo {} ms, \
             after cargo {} ms, of which load {} ms){}",
            if warm { "warm-up" } else { "edit   " },
            sample.serving,
            fmt(sample.build_started),
            fmt(sample.cargo),
            fmt(sample.built_at.map(|at| sample.serving - at)),
            fmt(sample.load),
            if sample.direct { "; rustc alone" } else { "" },
        );
        if !warm {
            samples.push(sample);
        }
    }
    println!("load average after: {}", loadavg());
    report(name, variant, &samples);
    Ok(())
}

/// Reads the host's lines into `sample` while `more` says so (for every line read), and, once
/// `more` has said stop or when `more` never does, returns after the host has been quiet for a
/// moment without a build in progress. Waits at most [`GENEROUS`] in all.
fn drain(
    host: &mut Host,
    saved: Instant,
    sample: &mut Sample,
    mut more: impl FnMut(&(Instant, String)) -> bool,
) -> Result<(), Failure> {
    let deadline = Instant::now() + GENEROUS;
    let mut wanted = true;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("the host did not get there in time".into());
        }
        // Still waiting for the line we want: block. Afterwards only take what is already
        // there (the loaded event, printed around the first new answer).
        let line = if wanted {
            host.line(left)?
        } else {
            match host.lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => line,
                Err(_) => return Ok(()),
            }
        };
        sample.note(saved, line.0, &line.1)?;
        if wanted && !more(&line) {
            wanted = false;
        }
    }
}

/// Polls `GET /hello?name=e2e` at `addr` until the body contains `want`; returns when it did.
fn poll(addr: SocketAddr, want: &str) -> Result<Instant, Failure> {
    let deadline = Instant::now() + GENEROUS;
    loop {
        // A refused or failed request is not the answer yet; only the deadline ends the wait.
        if let Ok(reply) = client::get(addr, "/hello?name=e2e", Duration::from_secs(10)) {
            if reply.body.contains(want) {
                return Ok(Instant::now());
            }
        }
        if Instant::now() > deadline {
            return Err(format!("the server never answered with {want:?}").into());
        }
        std::thread::sleep(POLL_EVERY);
    }
}

fn fmt(ms: Option<f64>) -> String {
    ms.map_or_else(|| "?".into(), |ms| format!("{ms:.0}"))
}

/// Nearest-rank percentile of sorted values: with 10 samples, p50 is the 5th and p99 the 10th
/// (the maximum).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn report(name: &str, variant: &str, samples: &[Sample]) {
    let mut serving: Vec<f64> = samples.iter().map(|s| s.serving).collect();
    serving.sort_by(f64::total_cmp);
    let median = |values: Vec<f64>| {
        let mut values = values;
        values.sort_by(f64::total_cmp);
        (!values.is_empty()).then(|| percentile(&values, 0.5))
    };
    let cargo = median(samples.iter().filter_map(|s| s.cargo).collect());
    let started = median(samples.iter().filter_map(|s| s.build_started).collect());
    let load = median(samples.iter().filter_map(|s| s.load).collect());
    let after = median(
        samples
            .iter()
            .filter_map(|s| s.built_at.map(|at| s.serving - at))
            .collect(),
    );
    let share: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.cargo.map(|c| c / s.serving))
        .collect();
    let share = share.iter().sum::<f64>() / share.len().max(1) as f64;
    println!(
        "RESULT {name} [{variant}]: save → serving over {} edits: p50 {:.1} ms, p99 {:.1} ms \
         (nearest rank; with 10 samples p99 = max), min {:.1} ms; medians: build started {} ms \
         after the save, cargo {} ms, cargo done → serving {} ms (load {} ms); cargo's share of \
         save → serving {:.0} % (mean); built by rustc alone (no cargo): {} of {}",
        serving.len(),
        percentile(&serving, 0.5),
        percentile(&serving, 0.99),
        serving[0],
        fmt(started),
        fmt(cargo),
        fmt(after),
        fmt(load),
        share * 100.0,
        samples.iter().filter(|s| s.direct).count(),
        samples.len()
    );
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(|_| "?".into(), |s| s.trim().into())
}
