//! The HTTP example's server, headless on 127.0.0.1: a request in flight across a reload is
//! answered by the generation it started on, and none of the hundreds of requests sent while
//! the handler is reloaded fails; the handler's calls into the price list (`examples/pricing`,
//! another crate's hot module) reach the server's current price list, whichever of the two
//! reloads.

mod support;

#[path = "../examples/http_server/client.rs"]
mod client;
#[path = "../examples/http_server/server.rs"]
mod server;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use handler::app;
use hotmod::Event;
use pricing::prices;

/// Generous: a busy 2-core machine may be slow, but a hang still fails the test.
const TIMEOUT: Duration = Duration::from_secs(120);
/// The edit the reloaded build carries.
const EDIT: (&str, &str) = (
    r#"format!("Hello, {name}!\n")"#,
    r#"format!("Hello again, {name}!\n")"#,
);
/// The edit the reloaded price list carries: tea costs more.
const TEA_PRICE: (&str, &str) = (r#"("tea", 250)"#, r#"("tea", 300)"#);
const CLIENTS: usize = 4;
/// Responses wanted from each generation before the load stops.
const PER_GENERATION: u64 = 150;
/// A bound on each client, so the test stops by itself whatever happens.
const MAX_PER_CLIENT: u64 = 5_000;

fn start_server() -> server::Server {
    server::Server::start(server::Config {
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        log_requests: false,
    })
    .expect("the server starts on an ephemeral port")
}

#[derive(Default)]
struct Tally {
    old: AtomicU64,
    new: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    /// Waits until `condition` holds; on timeout, fails with the counts so far.
    fn wait(&self, what: &str, condition: impl Fn(&Tally) -> bool) {
        support::wait_for_within(what, TIMEOUT, support::POLL, || {
            if condition(self) {
                return Ok(());
            }
            let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            Err(format!(
                "{} old, {} new, failures {:?}",
                self.old.load(Ordering::SeqCst),
                self.new.load(Ordering::SeqCst),
                &failures[..failures.len().min(5)]
            ))
        });
    }
}

#[test]
fn a_request_in_flight_finishes_on_its_generation_and_no_request_fails_during_a_reload() {
    let _serial = support::serial();
    let v1 = support::edited_library("examples/handler", "handler", "handler-v1", &[]);
    let v2 = support::edited_library("examples/handler", "handler", "handler-v2", &[EDIT]);
    let module = app::module();
    let events = module.subscribe();
    let g1 = module.load(&v1).expect("the handler as written loads");

    let server = start_server();
    let addr = server.addr();
    let first = client::get(addr, "/hello?name=first", TIMEOUT).expect("first request");
    assert_eq!(
        (first.status, first.generation(), first.body.as_str()),
        (200, Some(g1), "Hello, first!\n")
    );

    // A slow request: pinned to g1 as it arrives, held until a newer generation is live.
    let slow = std::thread::spawn(move || {
        client::get(
            addr,
            "/hello?name=slow&delay_ms=300000&until_reload=1",
            Duration::from_secs(600),
        )
    });
    // `held` counts requests held by `delay_ms`: only the slow one sends it.
    support::wait_for("the slow request to be held, its generation pinned", || {
        server.held() == 1
    });

    // Clients hammering the server before, during and after the reload.
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (tally, stop) = (Arc::clone(&tally), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut seen_new = false;
                let mut sent = 0;
                while !stop.load(Ordering::SeqCst) && sent < MAX_PER_CLIENT {
                    sent += 1;
                    let target = format!("/hello?name=c{c}");
                    let outcome = client::get(addr, &target, TIMEOUT);
                    let old_body = format!("Hello, c{c}!\n");
                    let new_body = format!("Hello again, c{c}!\n");
                    let failure = match outcome {
                        Ok(r) if r.status == 200 && r.body == old_body && !seen_new => {
                            tally.old.fetch_add(1, Ordering::SeqCst);
                            continue;
                        }
                        Ok(r) if r.status == 200 && r.body == new_body => {
                            seen_new = true;
                            tally.new.fetch_add(1, Ordering::SeqCst);
                            continue;
                        }
                        Ok(r) => format!(
                            "GET {target}: {} generation {:?} {:?} (seen new: {seen_new})",
                            r.status,
                            r.generation(),
                            r.body
                        ),
                        Err(e) => format!("GET {target}: {e}"),
                    };
                    tally
                        .failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(failure);
                }
            })
        })
        .collect();

    tally.wait("requests served by the old generation", |t| {
        t.old.load(Ordering::SeqCst) >= PER_GENERATION
    });
    assert_eq!(server.held(), 1, "the slow request is still held");
    assert!(!slow.is_finished(), "the slow request is not answered yet");
    let g2 = module.load(&v2).expect("the edited handler loads");
    assert_eq!(g2, g1 + 1);
    tally.wait("requests served by the new generation", |t| {
        t.new.load(Ordering::SeqCst) >= PER_GENERATION
    });
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().expect("a client thread panicked");
    }

    let failures = tally.failures.lock().unwrap_or_else(|e| e.into_inner());
    let (old, new) = (
        tally.old.load(Ordering::SeqCst),
        tally.new.load(Ordering::SeqCst),
    );
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        old + new + failures.len() as u64,
        &failures[..failures.len().min(5)]
    );
    assert!(old + new >= 2 * PER_GENERATION, "{old} + {new} requests");

    let slow = slow
        .join()
        .expect("the slow request's thread")
        .expect("the slow request is answered");
    assert_eq!(slow.status, 200);
    assert_eq!(
        slow.generation(),
        Some(g1),
        "the request that began before the reload finishes on its generation"
    );
    assert_eq!(
        slow.body, "Hello, slow!\n",
        "… and runs that generation's code"
    );

    let after = client::get(addr, "/hello?name=after", TIMEOUT).expect("a request after");
    assert_eq!(after.generation(), Some(g2));
    assert_eq!(after.body, "Hello again, after!\n");

    // Nothing holds g1 any more: it retires.
    let retired = events
        .wait_for(TIMEOUT, |e| {
            matches!(e, Event::Retired { generation, .. } | Event::RetireBlocked { generation, .. } if *generation == g1)
        })
        .expect("generation 1 retires once the slow request is done");
    assert!(!module.live_generations().contains(&g1), "{retired}");
    server.shutdown().expect("the server shuts down");
}

#[test]
fn every_response_names_its_generation_and_the_routes_work() {
    let _serial = support::serial();
    let server = start_server();
    let addr = server.addr();
    let current = app::module().generation();

    let hello = client::get(addr, "/hello?name=Ada", TIMEOUT).expect("GET /hello");
    assert_eq!(hello.status, 200);
    assert_eq!(hello.generation(), Some(current));
    assert!(hello.body.contains("Ada"), "{}", hello.body);
    assert_eq!(
        hello.header("content-type"),
        Some("text/plain; charset=utf-8")
    );

    let echo = client::request(addr, "POST", "/echo", "ping", TIMEOUT).expect("POST /echo");
    assert_eq!((echo.status, echo.body.as_str()), (200, "ping"));

    let missing = client::get(addr, "/nowhere", TIMEOUT).expect("GET /nowhere");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.generation(), Some(current));

    // `delay_ms` holds the request with its generation pinned, then answers normally.
    let slow = client::get(addr, "/health?delay_ms=50", TIMEOUT).expect("GET /health slowly");
    assert_eq!((slow.status, slow.body.as_str()), (200, "ok\n"));
    server.shutdown().expect("the server shuts down");
}

#[test]
fn the_handler_calls_the_servers_price_list_whichever_of_the_two_reloads() {
    let _serial = support::serial();
    // The same builds as the test above (built once per process), and a price list whose tea
    // costs 3.00 instead of 2.50.
    let handler_v1 = support::edited_library("examples/handler", "handler", "handler-v1", &[]);
    let handler_v2 = support::edited_library("examples/handler", "handler", "handler-v2", &[EDIT]);
    let pricing_v2 =
        support::edited_library("examples/pricing", "pricing", "pricing-v2", &[TEA_PRICE]);
    let (handler, pricing) = (app::module(), prices::module());
    assert_eq!(
        pricing.generation(),
        0,
        "no other test of this process loads the price list"
    );
    // A loaded handler: its library carries its own copy of `pricing` (tea at 2.50), linked
    // to the server's.
    let g1 = handler
        .load(&handler_v1)
        .expect("the handler as written loads");

    let server = start_server();
    let addr = server.addr();
    let price = |target: &str| {
        let reply =
            client::get(addr, target, TIMEOUT).unwrap_or_else(|e| panic!("GET {target}: {e}"));
        (reply.status, reply.generation(), reply.body)
    };

    // 1. Generation 0 of the price list, compiled into the server.
    assert_eq!(
        price("/price?item=tea&qty=3"),
        (200, Some(g1), "3 x tea: 7.50\n".to_owned())
    );
    assert_eq!(
        price("/price?item=cake"),
        (200, Some(g1), "1 x cake: 4.75\n".to_owned())
    );
    assert_eq!(
        price("/price?item=scone&qty=2"),
        (404, Some(g1), "scone is not on the price list\n".to_owned())
    );
    let (status, _, body) = price("/price?qty=2");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("tea, coffee, cake"), "{body}");

    // 2. A new price list, loaded in the server: the loaded handler's next request sees it,
    //    and the handler did not reload.
    let p1 = pricing.load(&pricing_v2).expect("the new price list loads");
    assert_eq!(
        price("/price?item=tea&qty=3"),
        (200, Some(g1), "3 x tea: 9.00\n".to_owned()),
        "the handler's call reaches the server's current price list, not its library's copy"
    );
    assert_eq!(handler.generation(), g1, "the handler did not reload");

    // 3. A new handler, built against the price list as written (tea at 2.50): it calls the
    //    server's price list too, generation p1, which did not reload.
    let g2 = handler.load(&handler_v2).expect("the edited handler loads");
    assert_eq!(
        price("/hello?name=Ada"),
        (200, Some(g2), "Hello again, Ada!\n".to_owned())
    );
    assert_eq!(
        price("/price?item=tea&qty=3"),
        (200, Some(g2), "3 x tea: 9.00\n".to_owned()),
        "the reloaded handler calls the server's price list, not its library's copy"
    );
    assert_eq!(pricing.generation(), p1, "the price list did not reload");
    server.shutdown().expect("the server shuts down");
}
