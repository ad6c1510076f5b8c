//! A tiny blocking HTTP/1.1 client over `std::net::TcpStream`, enough for the tour and the
//! tests to talk to the example server without another dependency: one request per connection
//! ([`get`], [`request`]), or a keep-alive connection that several requests reuse
//! ([`KeepAlive`]).
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response: status, headers (names lower-cased) and body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body, as text.
    pub body: String,
}

impl Reply {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The generation that served the request, from the server's `x-hotmod-generation` header.
    pub fn generation(&self) -> Option<u64> {
        self.header("x-hotmod-generation")?.parse().ok()
    }

    /// The process that served the request, from the server's `x-hotmod-pid` header.
    pub fn pid(&self) -> Option<u32> {
        self.header("x-hotmod-pid")?.parse().ok()
    }

    /// The request's number, from the server's `x-request-count` header.
    pub fn count(&self) -> Option<u64> {
        self.header("x-request-count")?.parse().ok()
    }

    /// Whether the server closes the connection after this response (`Connection: close`).
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close"))
    }
}

/// A keep-alive connection: each request reuses the socket of the one before, until the server
/// answers one with `Connection: close` (a server handing over to its restarted successor does);
/// the next request then connects again. It does not retry: a request on a reused connection
/// that the server closes without an answer is an error.
#[derive(Debug)]
pub struct KeepAlive {
    addr: SocketAddr,
    timeout: Duration,
    stream: Option<TcpStream>,
    /// Connections opened so far.
    pub connections: u64,
}

impl KeepAlive {
    /// Connects at the first request.
    pub fn new(addr: SocketAddr, timeout: Duration) -> KeepAlive {
        KeepAlive {
            addr,
            timeout,
            stream: None,
            connections: 0,
        }
    }

    /// `GET target` on the connection (a new one if there is none), waiting at most `timeout`
    /// for each read or write.
    pub fn get(&mut self, target: &str) -> io::Result<Reply> {
        let result = self.exchange(target);
        if result.as_ref().map_or(true, Reply::closes) {
            self.stream = None;
        }
        result
    }

    fn exchange(&mut self, target: &str) -> io::Result<Reply> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect_timeout(&self.addr, self.timeout)?;
                stream.set_read_timeout(Some(self.timeout))?;
                stream.set_write_timeout(Some(self.timeout))?;
                self.connections += 1;
                self.stream.insert(stream)
            }
        };
        write!(
            stream,
            "GET {target} HTTP/1.1\r\nHost: {}\r\n\r\n",
            self.addr
        )?;
        stream.flush()?;
        // One response: its headers, then as many bytes as its content-length says.
        let mut raw = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..end]);
                let length = head
                    .split("\r\n")
                    .filter_map(|line| line.split_once(':'))
                    .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, value)| value.trim().parse::<usize>().ok())
                    .ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            "a keep-alive response without a content-length",
                        )
                    })?;
                if raw.len() >= end + 4 + length {
                    return parse(&raw[..end + 4 + length]);
                }
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the server closed the connection after {} byte(s) of the response",
                        raw.len()
                    ),
                ));
            }
            raw.extend_from_slice(&chunk[..n]);
        }
    }
}

/// `GET target` (path and query) from the server at `addr`, waiting at most `timeout` for each
/// read or write.
pub fn get(addr: SocketAddr, target: &str, timeout: Duration) -> io::Result<Reply> {
    request(addr, "GET", target, "", timeout)
}

/// One request with `body`; the connection is closed afterwards.
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    body: &str,
    timeout: Duration,
) -> io::Result<Reply> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse(&raw)
}

fn parse(raw: &[u8]) -> io::Result<Reply> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers in the response"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad("no status code in the response"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = &raw[end + 4..];
    if let Some(len) = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        if body.len() < len {
            return Err(bad("the response ended before its content-length"));
        }
        body = &body[..len];
    }
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}
