//! The HTTP example: a server whose request handler (`examples/handler`) can be edited while it
//! runs, without a restart and without a failed request; and the price list the handler calls
//! (`examples/pricing`, another crate's hot module), which reloads on its own.
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
//! Options:
//!
//! - `--port N` (default 3000; 0 picks a free port);
//! - `--rebuild`: rebuild the handler crate whenever one of its sources is saved, and load it;
//!   the same for the pricing crate, on its own (saving the price list reloads `pricing` only);
//! - `--watch`: load each new build of `target/<profile>/libhandler.so` and
//!   `target/<profile>/libpricing.so` as it lands (build them yourself with
//!   `cargo build -p handler` or `cargo build -p pricing`);
//! - `--quiet`: no line per request.
//!
//! The server part lives in `server.rs` (shared with the tour and the tests), a tiny client in
//! `client.rs`.

mod server;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use handler::app;
use pricing::prices;

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
    let (mut rebuild, mut watch, mut quiet) = (false, false, false);
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
            "--watch" => watch = true,
            "--quiet" => quiet = true,
            "-h" | "--help" => {
                println!("usage: http_server [--port N] [--rebuild | --watch] [--quiet]");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}; try --help")),
        }
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
            println!(
                "rebuilding the {what} on every save of {}/{dir}/src",
                env!("CARGO_MANIFEST_DIR")
            );
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
    let server = server::Server::start(server::Config {
        addr,
        log_requests: !quiet,
    })
    .map_err(|e| format!("listening on {addr}: {e}"))?;
    println!(
        "listening on http://{} (handler generation {}, price list generation {})",
        server.addr(),
        app::module().generation(),
        prices::module().generation()
    );
    println!("try: curl -i http://{}/hello?name=Ada", server.addr());
    println!(
        "     curl -i 'http://{}/price?item=tea&qty=3'",
        server.addr()
    );
    // Serve until the process is stopped (Ctrl-C).
    loop {
        std::thread::park();
    }
}
