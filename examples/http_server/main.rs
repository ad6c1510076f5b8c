//! The HTTP example: a server whose request handler (`examples/handler`) can be edited while it
//! runs, without a restart and without a failed request; and the price list the handler calls
//! (`examples/pricing`, another crate's hot module), which reloads on its own. An edit that
//! cannot be reloaded (a changed signature, or a field added to `Response`, a type that crosses
//! the boundary) restarts the server with its state under `--restart`: a new process takes the
//! listening socket and the handler's request counter, and no request fails.
//!
//! ```sh
//! cargo run --example http_server -- --rebuild          # serves 127.0.0.1:3000
//! curl -i localhost:3000/hello?name=Ada                 # x-hotmod-generation: 0
//! curl -i 'localhost:3000/?delay_ms=10000' &            # a slow request, pinned now
//! $EDITOR examples/handler/src/lib.rs                   # change `greeting`, save
//! #   building handler … / built handler in 1.9 s / handler::app: generation 1 live in 3.2 ms
//! curl -i localhost:3000/hello?name=Ada                 # the new text, generation 1
//! #   … and the slow request still answers with generation 0's code
//! curl 'localhost:3000/price?item=tea&qty=3'            # 3 x tea: 7.50
//! $EDITOR examples/pricing/src/lib.rs                   # change a price, save
//! #   building pricing … / built pricing in … / pricing::prices: generation 1 live in … ms
//! curl -i 'localhost:3000/price?item=tea&qty=3'         # the new price; the handler did not
//! #   reload (still x-hotmod-generation: 1): its calls reach the server's current price list
//! ```
//!
//! With `--restart`:
//!
//! ```sh
//! cargo run --example http_server -- --rebuild --restart
//! curl -i localhost:3000/hello                          # x-hotmod-pid: 4242, x-request-count: 1
//! $EDITOR examples/handler/src/lib.rs                   # add a field to `Response`, save
//! #   [hotmod] … needs a restart … / building the host … / the restarted host (pid 4250) …
//! #   handing over to pid 4250: not accepting any more, draining 0 connection(s)
//! curl -i localhost:3000/hello                          # x-hotmod-pid: 4250, x-request-count: 2
//! ```
//!
//! Options:
//!
//! - `--port N` (default 3000; 0 picks a free port);
//! - `--rebuild`: rebuild the handler crate whenever one of its sources is saved, and load it;
//!   the same for the pricing crate, on its own (saving the price list reloads `pricing` only);
//! - `--restart` (with `--rebuild`): an edit that cannot be reloaded restarts the server with
//!   its state (`hotmod::restart`, shape `Overlap`): the rebuild builds this example again with
//!   the edit and starts it beside this process with the same arguments; the new process takes
//!   over the listening socket and serves; this one then stops accepting (the socket stays
//!   open: it is the new process's too), finishes its requests in flight on their generations,
//!   answers each further request of a keep-alive connection with `Connection: close`, closes
//!   the connections still idle after a grace period ([`HANDOVER_GRACE`]), hands its state
//!   (the handler's request counter, a `#[hotmod::state]`) to the new process and exits. Every
//!   response names the process that served it (`x-hotmod-pid`) and its number
//!   (`x-request-count`), which goes on across the restart (`tests/http_restart.rs`);
//! - `--watch`: load each new build of `target/<profile>/libhandler.so` and
//!   `target/<profile>/libpricing.so` as it lands (build them yourself with
//!   `cargo build -p handler` or `cargo build -p pricing`);
//! - `--quiet`: no line per request.
//!
//! The server part lives in `server.rs` (shared with the tour and the tests), a tiny client in
//! `client.rs`.

mod server;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::ExitCode;
use std::time::Duration;

use handler::app;
use hotmod::restart::{self, Shape};
use pricing::prices;

/// How long a process handing over to its restarted successor keeps the keep-alive connections
/// that stay idle: a client that sends its next request meanwhile gets its answer (with
/// `Connection: close`) rather than a closed connection.
const HANDOVER_GRACE: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("http_server: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut port: u16 = 3000;
    let (mut rebuild, mut restart, mut watch, mut quiet) = (false, false, false, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let value = args.next().ok_or("--port needs a number")?;
                port = value
                    .parse()
                    .map_err(|_| format!("--port {value}: not a port number"))?;
            }
            "--rebuild" => rebuild = true,
            "--restart" => restart = true,
            "--watch" => watch = true,
            "--quiet" => quiet = true,
            "-h" | "--help" => {
                println!(
                    "usage: http_server [--port N] [--rebuild [--restart] | --watch] [--quiet]"
                );
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}; try --help")),
        }
    }
    if restart && !rebuild {
        return Err("--restart needs --rebuild: the rebuild builds the restarted server".into());
    }
    if restart {
        // Before the rebuild starts: a build refused only because it needs a restart restarts.
        restart::on_incompatible(Shape::Overlap);
    }

    // The two hot modules of the server: the handler, and the price list it calls. Each is
    // watched (or rebuilt) on its own, so a change to one reloads that one only.
    let modules = [
        ("handler", app::module(), "handler"),
        ("price list", prices::module(), "pricing"),
    ];
    for (_, module, _) in modules {
        // Print every reload event as it comes: builds, loads, rejections, retirements.
        let events = module.subscribe();
        std::thread::spawn(move || {
            for event in events {
                println!("[hotmod] {event}");
            }
        });
    }
    for (what, module, dir) in modules {
        if rebuild {
            module
                .rebuild_on_save()
                .map_err(|e| format!("starting the rebuild of the {what}: {e}"))?;
            println!("rebuilding the {what} on every save of its crate's sources ({dir})");
        } else if watch {
            module
                .watch()
                .map_err(|e| format!("watching the {what}: {e}"))?;
            println!(
                "loading each new build of {} (cargo build -p {dir})",
                module.path().display()
            );
        }
    }

    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    // Restarted: the listening socket of the process before, the same one (its queue of
    // connections too); else a new one.
    let listener = match restart.then(|| restart::take_fd("listener")).flatten() {
        Some(fd) => TcpListener::from(fd),
        None => TcpListener::bind(addr).map_err(|e| format!("listening on {addr}: {e}"))?,
    };
    if restart {
        restart::keep_fd("listener", &listener)
            .map_err(|e| format!("keeping the listening socket for a restart: {e}"))?;
    }
    let server = server::Server::start_on(listener, !quiet)
        .map_err(|e| format!("serving on {addr}: {e}"))?;
    let taken_over = restart::inherited()
        .map(|previous| format!(", taken over from pid {}", previous.previous_pid))
        .unwrap_or_default();
    println!(
        "listening on http://{} (pid {}{taken_over}, handler generation {}, price list generation {})",
        server.addr(),
        std::process::id(),
        app::module().generation(),
        prices::module().generation()
    );
    println!("try: curl -i http://{}/hello?name=Ada", server.addr());
    println!(
        "     curl -i 'http://{}/price?item=tea&qty=3'",
        server.addr()
    );
    if !restart {
        // Serve until the process is stopped (Ctrl-C).
        loop {
            std::thread::park();
        }
    }
    // Serving: a process this one took over from may stop now (a cold start: nothing to do).
    restart::ready();
    // Until an edit needs a restart and the new process serves.
    let handover = std::thread::Builder::new()
        .name("restart".into())
        .spawn(restart::wait)
        .map_err(|e| format!("starting the restart thread: {e}"))?
        .join()
        .map_err(|_| "the restart thread panicked")?;
    let successor = handover
        .new_pid()
        .map_or_else(|| "the new process".to_owned(), |pid| format!("pid {pid}"));
    println!(
        "handing over to {successor}: not accepting any more, draining {} connection(s)",
        server.connections()
    );
    let left = server
        .drain(HANDOVER_GRACE)
        .map_err(|e| format!("draining the server: {e}"))?;
    if left > 0 {
        println!(
            "{left} connection(s) still open after {HANDOVER_GRACE:?}: closed the idle ones, \
             finished the others' requests"
        );
    }
    handover
        .finish()
        .map_err(|e| format!("handing the state over to {successor}: {e}"))?;
    println!("handed over to {successor}: exiting");
    Ok(())
}
