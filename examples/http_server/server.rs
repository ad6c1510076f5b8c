//! The HTTP example's server, shared by the example's `main`, the tour and the tests.
//!
//! axum on a tokio runtime of its own thread. Every request pins the handler's current
//! generation with [`app::Handle::current`] as it starts and runs [`app::Handle::handle`]
//! through that handle at the end, so a request that began before a reload finishes on the code
//! it started with, while requests that begin after the reload run the new code. Nothing is
//! restarted, refused or failed. Every response carries the generation that served it in the
//! [`GENERATION_HEADER`] header.
//!
//! Query parameters the server (not the handler) understands, to simulate slow requests:
//!
//! - `delay_ms=N`: hold the request N milliseconds, its generation pinned, before answering;
//! - `until_reload=1` (with `delay_ms`): stop holding as soon as a newer generation is live.
#![allow(dead_code)]

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use handler::app;
use tokio::sync::oneshot;

/// The response header that names the generation that served the request.
pub const GENERATION_HEADER: &str = "x-hotmod-generation";

/// The largest request body the server reads.
const MAX_BODY: usize = 1 << 20;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen; port 0 picks a free port (see [`Server::addr`]).
    pub addr: SocketAddr,
    /// Print one line per request to stdout.
    pub log_requests: bool,
}

/// A running server; dropping it (or [`Server::shutdown`]) stops it after the requests in flight.
pub struct Server {
    addr: SocketAddr,
    stats: Arc<Stats>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

/// What the server counts.
#[derive(Debug, Default)]
struct Stats {
    /// Requests that pinned a generation and have not answered yet.
    in_flight: AtomicUsize,
    /// Requests being held by `delay_ms` (a subset of `in_flight`).
    held: AtomicUsize,
    /// Requests answered.
    answered: AtomicU64,
    log_requests: bool,
}

/// Counts a request in flight until dropped.
struct InFlight<'s>(&'s Stats);

/// Counts a request being held until dropped.
struct Held<'s>(&'s Stats);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.answered.fetch_add(1, Ordering::SeqCst);
    }
}

impl Server {
    /// Binds `config.addr` and starts serving on a thread of its own.
    pub fn start(config: Config) -> io::Result<Server> {
        let listener = TcpListener::bind(config.addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(Stats {
            log_requests: config.log_requests,
            ..Stats::default()
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("http-server")
            .enable_io()
            .enable_time()
            .build()?;
        let (shutdown, stop) = oneshot::channel::<()>();
        let router = Router::new().fallback(serve).with_state(Arc::clone(&stats));
        let thread = std::thread::Builder::new()
            .name("http-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    axum::serve(listener, router)
                        .with_graceful_shutdown(async move {
                            // Either a shutdown request or the Server being dropped.
                            let _ = stop.await;
                        })
                        .await
                })
            })?;
        Ok(Server {
            addr,
            stats,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests that have pinned their generation and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.stats.in_flight.load(Ordering::SeqCst)
    }

    /// Requests being held by `delay_ms` now, their generation pinned: only the slow requests,
    /// where [`Server::in_flight`] counts every request.
    pub fn held(&self) -> usize {
        self.stats.held.load(Ordering::SeqCst)
    }

    /// Requests answered so far.
    pub fn answered(&self) -> u64 {
        self.stats.answered.load(Ordering::SeqCst)
    }

    /// Stops accepting connections, lets the requests in flight finish, and returns.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the server thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Every request: pin, (maybe) hold, run the handler through the pinned handle, answer.
async fn serve(State(stats): State<Arc<Stats>>, request: Request) -> Response {
    let started = Instant::now();
    // Pin first: whatever happens from here on, this request runs this generation.
    let handle = app::Handle::current();
    stats.in_flight.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight(&stats);

    let (parts, body) = request.into_parts();
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("bad body: {e}\n"), &handle),
    };
    if let Some(ms) = param(&query, "delay_ms").and_then(|v| v.parse::<u64>().ok()) {
        let until_reload = param(&query, "until_reload") == Some("1");
        stats.held.fetch_add(1, Ordering::SeqCst);
        let _held = Held(&stats);
        hold(&handle, Duration::from_millis(ms), until_reload).await;
    }

    let request = app::Request {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query,
        body,
    };
    let response = match catch_unwind(AssertUnwindSafe(|| handle.handle(&request))) {
        Ok(response) => {
            let status =
                StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut reply = plain(status, response.body, &handle);
            if let Ok(value) = HeaderValue::from_str(&response.content_type) {
                reply.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            reply
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the handler panicked: {message}\n"),
                &handle,
            )
        }
    };
    if stats.log_requests {
        println!(
            "{} {}{} -> {} (generation {}, {:.1} ms)",
            request.method,
            request.path,
            if request.query.is_empty() {
                String::new()
            } else {
                format!("?{}", request.query)
            },
            response.status().as_u16(),
            handle.generation(),
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    response
}

/// Holds a request for `delay` with its generation pinned; with `until_reload`, only until a
/// newer generation is live.
async fn hold(handle: &app::Handle, delay: Duration, until_reload: bool) {
    if !until_reload {
        tokio::time::sleep(delay).await;
        return;
    }
    let newer = handle.generation() + 1;
    // `wait_for_generation` blocks, so it runs on tokio's blocking pool.
    let _ =
        tokio::task::spawn_blocking(move || app::module().wait_for_generation(newer, delay)).await;
}

/// A response with `body`, a `text/plain` type and the generation header.
fn plain(status: StatusCode, body: String, handle: &app::Handle) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(GENERATION_HEADER, HeaderValue::from(handle.generation()));
    response
}

/// The value of `key` in a query string.
fn param<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}
