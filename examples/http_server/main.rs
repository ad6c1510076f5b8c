//! The HTTP example: a server whose request handler (`examples/handler`) can be edited while it
//! runs, without a restart and without a failed request.
//!
//! ```sh
//! cargo run --example http_server -- --rebuild          # serves 127.0.0.1:3000
//! curl -i localhost:3000/hello?name=Ada                 # x-hotmod-generation: 0
//! curl -i 'localhost:3000/?delay_ms=10000' &            # a slow request, pinned now
//! $EDITOR examples/handler/src/lib.rs                   # change `greeting`, save
//! #   building handler … / built handler in 1.9 s / handler::app: generation 1 live in 3.2 ms
//! curl -i localhost:3000/hello?name=Ada                 # the new text, generation 1
//! #   … and the slow request still answers with generation 0's code
//! ```
//!
//! Options:
//!
//! - `--port N` (default 3000; 0 picks a free port);
//! - `--rebuild`: rebuild the handler crate whenever one of its sources is saved, and load it;
//! - `--watch`: load each new build of `target/<profile>/libhandler.so` as it lands (build it
//!   yourself with `cargo build -p handler`);
//! - `--quiet`: no line per request.
//!
//! The server part lives in `server.rs` (shared with the tour and the tests), a tiny client in
//! `client.rs`.

mod server;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use handler::app;

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

    let module = app::module();
    // Print every reload event as it comes: builds, loads, rejections, retirements.
    let events = module.subscribe();
    std::thread::spawn(move || {
        for event in events {
            println!("[hotmod] {event}");
        }
    });
    if rebuild {
        module
            .rebuild_on_save()
            .map_err(|e| format!("starting the rebuild: {e}"))?;
        println!(
            "rebuilding the handler on every save of {}/src",
            concat!(env!("CARGO_MANIFEST_DIR"), "/handler")
        );
    } else if watch {
        module
            .watch()
            .map_err(|e| format!("watching the handler: {e}"))?;
        println!(
            "loading each new build of {} (cargo build -p handler)",
            module.path().display()
        );
    }

    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let server = server::Server::start(server::Config {
        addr,
        log_requests: !quiet,
    })
    .map_err(|e| format!("listening on {addr}: {e}"))?;
    println!(
        "listening on http://{} (handler generation {})",
        server.addr(),
        module.generation()
    );
    println!("try: curl -i http://{}/hello?name=Ada", server.addr());
    // Serve until the process is stopped (Ctrl-C).
    loop {
        std::thread::park();
    }
}
