//! The HTTP example's server, shared by the example's `main`, the tour and the tests.
//!
//! axum on a tokio runtime of its own thread. Every request pins the handler's current
//! generation with [`app::Handle::current`] as it starts and runs [`app::Handle::handle`]
//! through that handle at the end, so a request that began before a reload finishes on the code
//! it started with, while requests that begin after the reload run the new code. Nothing is
//! restarted, refused or failed. Every response carries the generation that served it in the
//! [`GENERATION_HEADER`] header, the process that served it in [`PID_HEADER`], and the
//! request's number (the handler's `#[hotmod::state]` counter) in [`COUNT_HEADER`].
//!
//! When an edit cannot be reloaded and the example restarts with its state (`--restart`,
//! `hotmod::restart`), the new process serves on the same listening socket
//! ([`Server::start_on`]) and the old one drains ([`Server::drain`]): it stops accepting (the
//! socket stays open: it is the new process's too), finishes its requests in flight on their
//! generations, answers each further request of a keep-alive connection with
//! `Connection: close`, and closes the connections left idle after a grace period.
//!
//! Query parameters the server (not the handler) understands, to simulate slow requests:
//!
//! - `delay_ms=N`: hold the request N milliseconds, its generation pinned, before answering;
//! - `until_reload=1` (with `delay_ms`): stop holding as soon as a newer generation is live,
//!   here or in the process this one hands over to (the drain begins).
#![allow(dead_code)]

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use handler::app;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{oneshot, watch};

/// The response header that names the generation that served the request.
pub const GENERATION_HEADER: &str = "x-hotmod-generation";
/// The response header that names the process that served the request (a kept-state restart
/// hands over to another one).
pub const PID_HEADER: &str = "x-hotmod-pid";
/// The response header with the request's number, counted by the handler in a
/// `#[hotmod::state]`: it goes on across reloads and kept-state restarts.
pub const COUNT_HEADER: &str = "x-request-count";

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
#[derive(Debug)]
struct Stats {
    /// Requests that pinned a generation and have not answered yet.
    in_flight: AtomicUsize,
    /// Requests being held by `delay_ms` (a subset of `in_flight`).
    held: AtomicUsize,
    /// Requests answered.
    answered: AtomicU64,
    log_requests: bool,
    /// Set by [`Server::drain`]: accept no more connections, release the held requests, close
    /// each connection after its next response.
    draining: watch::Sender<bool>,
    /// Connections accepted and not closed yet.
    open: Mutex<usize>,
    /// Signalled when a connection closes.
    closed: Condvar,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            in_flight: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
            answered: AtomicU64::new(0),
            log_requests: false,
            draining: watch::Sender::new(false),
            open: Mutex::new(0),
            closed: Condvar::new(),
        }
    }
}

impl Stats {
    fn open(&self) -> std::sync::MutexGuard<'_, usize> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn draining(&self) -> bool {
        *self.draining.borrow()
    }
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
        Server::start_on(listener, config.log_requests)
    }

    /// Starts serving on `listener`, bound already (a listening socket handed over by a
    /// kept-state restart, say), on a thread of its own.
    pub fn start_on(listener: TcpListener, log_requests: bool) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(Stats {
            log_requests,
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
        let for_listener = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("http-server".into())
            .spawn(move || {
                let served = runtime.block_on(async move {
                    let listener = Handoff {
                        listener: tokio::net::TcpListener::from_std(listener)?,
                        draining: for_listener.draining.subscribe(),
                        stats: for_listener,
                    };
                    axum::serve(listener, router)
                        .with_graceful_shutdown(async move {
                            // Either a shutdown request or the Server being dropped.
                            let _ = stop.await;
                        })
                        .await
                });
                // A request released from its hold may leave its blocking wait behind
                // (`hold`): not worth waiting for.
                runtime.shutdown_timeout(Duration::from_secs(1));
                served
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

    /// Connections accepted and not closed yet.
    pub fn connections(&self) -> usize {
        *self.stats.open()
    }

    /// Drains the server for a hand-over to another process serving on the same listening
    /// socket, and returns once it is done: stops accepting (its descriptor stays open until the
    /// drain is done, and closing it then leaves the socket open: the other process holds it
    /// too and accepts on it), releases the requests held by `until_reload`, answers every
    /// request from now on with `Connection: close` (so a keep-alive connection is closed after
    /// its next response, and its client connects again, to the other process), waits for the
    /// connections to close that way for at most `grace`, then closes the ones left idle and
    /// waits for the requests still in flight. Returns how many connections were still open
    /// when the grace period ended.
    pub fn drain(mut self, grace: Duration) -> io::Result<usize> {
        self.stats.draining.send_replace(true);
        let left = {
            let open = self.stats.open();
            let (left, _) = self
                .stats
                .closed
                .wait_timeout_while(open, grace, |open| *open > 0)
                .unwrap_or_else(PoisonError::into_inner);
            *left
        };
        self.stop()?;
        Ok(left)
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

/// The listening socket, as axum accepts from it: until [`Server::drain`], then never again (the
/// socket itself stays open until the server stops: it is shared with the process this one hands
/// over to). Each connection is counted while it is open ([`Counted`]).
struct Handoff {
    listener: tokio::net::TcpListener,
    draining: watch::Receiver<bool>,
    stats: Arc<Stats>,
}

impl axum::serve::Listener for Handoff {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        loop {
            tokio::select! {
                // First: once draining, not one more connection is taken from the queue.
                biased;
                () = draining_begins(&mut self.draining) => {
                    std::future::pending::<()>().await;
                }
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, addr)) => {
                        *self.stats.open() += 1;
                        let stats = Arc::clone(&self.stats);
                        return (Counted { stream, stats }, addr);
                    }
                    // As axum's own listener: a connection that failed before it was accepted
                    // is nothing to wait for; anything else (too many open files) may pass.
                    Err(e) if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) => {}
                    Err(e) => {
                        eprintln!("http_server: accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// Returns once [`Server::drain`] has begun (or the server is gone).
async fn draining_begins(draining: &mut watch::Receiver<bool>) {
    let _ = draining.wait_for(|draining| *draining).await;
}

/// An accepted connection, counted in [`Stats::open`] until it is closed (dropped).
struct Counted {
    stream: tokio::net::TcpStream,
    stats: Arc<Stats>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        *self.stats.open() -= 1;
        self.stats.closed.notify_all();
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
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
        if stats.log_requests {
            println!(
                "{} {}?{query}: held (generation {}, pid {})",
                parts.method,
                parts.uri.path(),
                handle.generation(),
                std::process::id()
            );
        }
        hold(&stats, &handle, Duration::from_millis(ms), until_reload).await;
    }

    let request = app::Request {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query,
        body,
    };
    let mut response = match catch_unwind(AssertUnwindSafe(|| handle.handle(&request))) {
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
    // A plain call, not through `handle`: the current generation holds the counter (a request
    // pinned before a reload runs a generation whose state has moved on).
    if let Ok(count) = catch_unwind(app::count_request) {
        response
            .headers_mut()
            .insert(COUNT_HEADER, HeaderValue::from(count));
    }
    if stats.draining() {
        // Handing over: this connection's next request goes to the new process.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
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
/// newer generation is live, here or in the process this one hands over to ([`Server::drain`]).
async fn hold(stats: &Stats, handle: &app::Handle, delay: Duration, until_reload: bool) {
    if !until_reload {
        tokio::time::sleep(delay).await;
        return;
    }
    let newer = handle.generation() + 1;
    let mut draining = stats.draining.subscribe();
    tokio::select! {
        // `wait_for_generation` blocks, so it runs on tokio's blocking pool.
        _ = tokio::task::spawn_blocking(move || app::module().wait_for_generation(newer, delay)) => {}
        () = draining_begins(&mut draining) => {}
    }
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
    headers.insert(PID_HEADER, HeaderValue::from(std::process::id()));
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
