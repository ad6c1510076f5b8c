//! The HTTP example's request handler: a hot module the server calls once per request.
//!
//! The server (`examples/http_server`) turns each HTTP request into a [`app::Request`], pins the
//! current generation with [`app::Handle::current`] and calls [`app::Handle::handle`] through
//! that handle, so a request runs one generation from start to end even if a reload happens
//! while it is in flight. Edit [`app::handle`] (or anything it calls), rebuild the crate, and
//! the next requests run the new code; the server never restarts.
//!
//! The handler calls a second hot module, of another crate: `GET /price?item=tea&qty=3` asks
//! `pricing::prices` (`examples/pricing`) for the price. The server depends on both crates, and
//! each reloads on its own: a new price list reaches the handler's next requests without the
//! handler reloading, and a reloaded handler still calls the server's current price list (its
//! library's own copy of `pricing` is linked to the server's, not run on its own).
//!
//! The types that cross the boundary ([`app::Request`], [`app::Response`]) are plain structs
//! of owned data: their layout must stay the same for a reload to be accepted, while the
//! function bodies may change freely. A change to their layout needs a restart: the server
//! started with `--restart` does one that keeps state (`hotmod::restart`).
//!
//! The server counts every request it answers with [`app::count_request`], a
//! `#[hotmod::state]` counter, and sends the number as the `x-request-count` header: the count
//! goes on across reloads, and across the server's kept-state restarts.
//!
//! ```
//! use handler::app::{self, Request};
//!
//! let request = Request::get("/hello", "name=Ada");
//! let response = app::handle(&request);
//! assert_eq!(response.status, 200);
//! assert_eq!(response.body, "Hello, Ada!\n");
//!
//! let price = app::handle(&Request::get("/price", "item=tea&qty=3"));
//! assert_eq!((price.status, price.body.as_str()), (200, "3 x tea: 7.50\n"));
//!
//! assert_eq!((app::count_request(), app::count_request()), (1, 2));
//! ```

#![warn(missing_docs)]

/// The request handler.
#[hotmod::hot_module]
pub mod app {
    /// An HTTP request as the server hands it to the handler.
    #[derive(Debug)]
    pub struct Request {
        /// `GET`, `POST`, …
        pub method: String,
        /// The path, without the query string: `/hello`.
        pub path: String,
        /// The query string without the `?`: `name=Ada`.
        pub query: String,
        /// The request body, as text (lossily decoded).
        pub body: String,
    }

    /// What the handler answers; the server adds the headers that say which generation served.
    #[derive(Debug)]
    pub struct Response {
        /// The HTTP status code.
        pub status: u16,
        /// The `content-type` header.
        pub content_type: String,
        /// The response body.
        pub body: String,
    }

    /// The requests answered so far: state that survives reloads and kept-state restarts.
    #[hotmod::state]
    static REQUESTS: hotmod::State<u64> = hotmod::State::new();

    /// Counts one answered request and returns its number: 1 for the first request the server
    /// ever answered. Call it with a plain call, which runs the current generation (the one that
    /// holds the state), not through a handle pinned before a reload: the state has moved on to
    /// the new generation then, and the old one's access is refused.
    pub fn count_request() -> u64 {
        REQUESTS.with(|requests| {
            *requests += 1;
            *requests
        })
    }

    impl Request {
        /// A `GET` request for `path` with query string `query` (without the `?`). A hot
        /// method, like every `pub` method of the module's public types: a call runs the
        /// current generation.
        pub fn get(path: &str, query: &str) -> Request {
            Request {
                method: "GET".to_owned(),
                path: path.to_owned(),
                query: query.to_owned(),
                body: String::new(),
            }
        }
    }

    /// Answers one request. Routes: `GET /` and `GET /hello?name=…` greet, `POST /echo` returns
    /// the body, `GET /health` says `ok`, `GET /price?item=…&qty=…` asks the pricing crate's hot
    /// module for a price; anything else is a 404.
    pub fn handle(request: &Request) -> Response {
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/" | "/hello") => {
                let name = param(&request.query, "name").unwrap_or("world");
                text(200, greeting(name))
            }
            ("POST", "/echo") => text(200, request.body.clone()),
            ("GET", "/health") => text(200, "ok\n".to_owned()),
            ("GET", "/price") => price(&request.query),
            (method, path) => text(404, format!("no route for {method} {path}\n")),
        }
    }

    /// The greeting of `GET /` and `GET /hello`: the line to edit to see a reload.
    fn greeting(name: &str) -> String {
        format!("Hello, {name}!\n")
    }

    /// `GET /price?item=tea&qty=3` (`qty` defaults to 1): the price of `qty` of `item`, from
    /// `pricing::prices`, another crate's hot module. A plain call: it runs the generation of
    /// the price list that is current in the server when the call is made.
    fn price(query: &str) -> Response {
        let Some(item) = param(query, "item") else {
            let items = pricing::prices::items().join(", ");
            return text(400, format!("which item? /price?item=…&qty=… ({items})\n"));
        };
        let quantity = match param(query, "qty").map(str::parse::<u32>) {
            None => 1,
            Some(Ok(quantity)) => quantity,
            Some(Err(_)) => return text(400, "qty must be a whole number\n".to_owned()),
        };
        match pricing::prices::price_cents(item, quantity) {
            Some(cents) => text(
                200,
                format!("{quantity} x {item}: {}.{:02}\n", cents / 100, cents % 100),
            ),
            None => text(404, format!("{item} is not on the price list\n")),
        }
    }

    /// A `text/plain` response.
    fn text(status: u16, body: String) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8".to_owned(),
            body,
        }
    }

    /// The value of `key` in a query string (no percent-decoding: this is an example).
    fn param<'q>(query: &'q str, key: &str) -> Option<&'q str> {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}
