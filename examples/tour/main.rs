//! The self-driving tour: `cargo run --example tour`.
//!
//! It plays the HTTP example's whole story by itself, on 127.0.0.1, with nothing else to
//! install:
//!
//! 1. copies the handler crate (`examples/handler`) to `target/hotmod-examples/tour/handler`
//!    and builds it with cargo; loads it as generation 1;
//! 2. starts the HTTP example's server in this process and sends a request;
//! 3. starts a slow request, which pins generation 1 as it arrives;
//! 4. edits the copy's `greeting`, lets hotmod's built-in rebuild build and load it as
//!    generation 2 while the slow request is still in flight;
//! 5. collects the slow request (generation 1 answers it: it finishes on the code it started
//!    with), sees generation 1 retire, and sends new requests (generation 2 answers);
//! 6. tries an edit that changes a type crossing the boundary: hotmod refuses that build and
//!    generation 2 keeps serving;
//! 7. makes the same edit with a kept-state restart: the HTTP example, written as a project of
//!    its own to `target/hotmod-examples/tour-restart` and started with `--rebuild --restart`,
//!    builds a new server with the edit and hands it its socket and its request counter while
//!    a slow request is in flight (the old server answers it; new requests go to the new one,
//!    and the count goes on);
//! 8. prints the requests side by side and exits.
//!
//! Every hotmod event is printed as the tour reaches it, with the time since the start. The
//! first run compiles hotmod for the copy (under a minute on two cores); later runs take a few
//! seconds. The script is `tour.rs`; the tests run it too.

#[path = "../http_server/client.rs"]
mod client;
#[path = "../shared/crate_copy.rs"]
mod crate_copy;
#[path = "../http_server/server.rs"]
mod server;
mod tour;

use std::process::ExitCode;

fn main() -> ExitCode {
    let scratch = crate_copy::workspace()
        .join("target")
        .join("hotmod-examples");
    // The copy sits outside the target directory: the rebuild ignores changes inside it.
    match tour::run(
        &scratch.join("tour").join("handler"),
        &scratch.join("target"),
        &scratch.join("tour-restart"),
    ) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tour failed: {error}");
            ExitCode::FAILURE
        }
    }
}
