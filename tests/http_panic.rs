//! The HTTP example's server answers a request whose handler panicked with a 500 that names
//! the panic and the generation, and keeps serving: a real server on 127.0.0.1, real HTTP
//! requests, and a build of the handler edited so that one route panics.

mod support;

#[path = "../examples/http_server/client.rs"]
mod client;
#[path = "../examples/http_server/server.rs"]
mod server;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use handler::app;

/// Generous: a busy 2-core machine may be slow, but a hang still fails the test.
const TIMEOUT: Duration = Duration::from_secs(120);
/// The edit: `GET /health` panics.
const PANICS: (&str, &str) = (
    r#"("GET", "/health") => text(200, "ok\n".to_owned()),"#,
    r#"("GET", "/health") => panic!("the handler refuses /health on purpose"),"#,
);

#[test]
fn a_handler_panic_is_answered_with_500_and_the_server_keeps_serving() {
    let _serial = support::serial();
    let library =
        support::edited_library("examples/handler", "handler", "handler-panics", &[PANICS]);
    let generation = app::module()
        .load(&library)
        .expect("the edited handler loads");
    let server = server::Server::start(server::Config {
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        log_requests: false,
    })
    .expect("the server starts on an ephemeral port");
    let addr = server.addr();

    let reply = client::get(addr, "/health", TIMEOUT).expect("an answer to the panicking route");
    assert_eq!(reply.status, 500, "{reply:?}");
    assert_eq!(
        reply.body, "the handler panicked: the handler refuses /health on purpose\n",
        "{reply:?}"
    );
    assert_eq!(reply.generation(), Some(generation), "{reply:?}");

    // The same server, the same generation, still answers the other routes, and the panicking
    // one again.
    let hello = client::get(addr, "/hello?name=after", TIMEOUT).expect("a request after the panic");
    assert_eq!(
        (hello.status, hello.generation(), hello.body.as_str()),
        (200, Some(generation), "Hello, after!\n")
    );
    let again = client::get(addr, "/health", TIMEOUT).expect("the panicking route again");
    assert_eq!(again.status, 500, "{again:?}");
    assert_eq!(app::module().generation(), generation);
    assert_eq!(server.in_flight(), 0);
    server.shutdown().expect("the server shuts down");
}
