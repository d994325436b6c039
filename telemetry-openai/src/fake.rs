//! [`FakeServer`]: an in-process HTTP/1.1 server on loopback that replays scripted answers —
//! transcripts of real servers, split at any byte, with pauses, stalls and errors — so engines,
//! proxies and users' own code can be tested without a model.
//!
//! ```
//! use telemetry_openai::fake::{FakeServer, Reply};
//!
//! let server = FakeServer::start(|req| {
//!     assert_eq!(req.path, "/v1/models");
//!     Reply::json(200, r#"{"data":[{"id":"m","owned_by":"llamacpp"}]}"#)
//! })
//! .unwrap();
//! assert!(server.url().starts_with("http://127.0.0.1:"));
//! assert!(server.url().ends_with("/v1"));
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// A request the fake server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, with the query.
    pub path: String,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl FakeRequest {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One step of a scripted answer body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Bytes written (and flushed) at once; for a chunked answer, one HTTP chunk.
    Bytes(Vec<u8>),
    /// A pause before the next step.
    Pause(Duration),
}

/// How a scripted answer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The body ends properly (final chunk, or all `Content-Length` bytes).
    Complete,
    /// The connection is closed abruptly, without the body's proper end.
    Abort,
    /// Nothing more is sent for this long, then the connection is closed.
    Stall(Duration),
}

/// A scripted answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// Pause before the response head.
    pub head_delay: Duration,
    /// The body, step by step.
    pub parts: Vec<Part>,
    /// Chunked transfer encoding (else `Content-Length`).
    pub chunked: bool,
    /// How it ends.
    pub end: End,
}

impl Reply {
    /// A JSON answer with `Content-Length`.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Reply {
            status,
            content_type: "application/json; charset=utf-8".to_owned(),
            head_delay: Duration::ZERO,
            parts: vec![Part::Bytes(body.into())],
            chunked: false,
            end: End::Complete,
        }
    }

    /// An event stream, chunked, written in pieces of `split` bytes (a pause of `gap` between
    /// pieces), as a server that flushes at odd places would.
    pub fn sse(body: &[u8], split: usize, gap: Duration) -> Self {
        let mut parts = Vec::new();
        for piece in body.chunks(split.max(1)) {
            if !parts.is_empty() && !gap.is_zero() {
                parts.push(Part::Pause(gap));
            }
            parts.push(Part::Bytes(piece.to_vec()));
        }
        Reply {
            status: 200,
            content_type: "text/event-stream".to_owned(),
            head_delay: Duration::ZERO,
            parts,
            chunked: true,
            end: End::Complete,
        }
    }

    /// An event stream written one event (up to and including its blank line) at a time, with
    /// `gap` between events: token timing as a real server has it.
    pub fn sse_events(body: &[u8], gap: Duration) -> Self {
        let mut parts = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            let end = rest
                .windows(2)
                .position(|w| w == b"\n\n")
                .map_or(rest.len(), |p| p + 2);
            if !parts.is_empty() && !gap.is_zero() {
                parts.push(Part::Pause(gap));
            }
            parts.push(Part::Bytes(rest[..end].to_vec()));
            rest = &rest[end..];
        }
        Reply {
            parts,
            ..Reply::sse(b"", 1, Duration::ZERO)
        }
    }

    /// Waits `delay` before the response head.
    #[must_use]
    pub fn after(mut self, delay: Duration) -> Self {
        self.head_delay = delay;
        self
    }

    /// Ends the answer with `end`.
    #[must_use]
    pub fn ending(mut self, end: End) -> Self {
        self.end = end;
        self
    }
}

type Responder = dyn Fn(&FakeRequest) -> Reply + Send + Sync;

/// An HTTP/1.1 server on `127.0.0.1`, one thread per connection, answering every request with
/// what the responder scripts. Stops when dropped.
pub struct FakeServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<FakeRequest>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FakeServer {
    /// Starts a server on a free port.
    pub fn start(
        responder: impl Fn(&FakeRequest) -> Reply + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let responder: Arc<Responder> = Arc::new(responder);
        let (log, flag) = (Arc::clone(&requests), Arc::clone(&stop));
        let accept = std::thread::Builder::new()
            .name("fake-openai-server".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if flag.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (responder, log) = (Arc::clone(&responder), Arc::clone(&log));
                    let _ = std::thread::Builder::new()
                        .name("fake-openai-conn".into())
                        .spawn(move || serve(conn, &*responder, &log));
                }
            })?;
        Ok(FakeServer {
            addr,
            requests,
            stop,
            accept: Some(accept),
        })
    }

    /// `http://127.0.0.1:<port>/v1`.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<FakeRequest> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
    }
}

/// Serves requests on one connection until the client closes it or a reply ends it.
fn serve(conn: TcpStream, responder: &Responder, log: &Mutex<Vec<FakeRequest>>) {
    let _ = conn.set_nodelay(true);
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    while let Some(request) = read_request(&mut reader) {
        log.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request.clone());
        let reply = responder(&request);
        if write_reply(&mut writer, &reply).is_err() || reply.end != End::Complete {
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<FakeRequest> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut words = line.split_whitespace();
    let method = words.next()?.to_owned();
    let path = words.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(FakeRequest {
        method,
        path,
        headers,
        body,
    })
}

fn write_reply(w: &mut TcpStream, reply: &Reply) -> std::io::Result<()> {
    std::thread::sleep(reply.head_delay);
    let length: usize = reply
        .parts
        .iter()
        .map(|p| match p {
            Part::Bytes(b) => b.len(),
            Part::Pause(_) => 0,
        })
        .sum();
    let framing = if reply.chunked {
        "transfer-encoding: chunked".to_owned()
    } else {
        format!("content-length: {length}")
    };
    write!(
        w,
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\n{framing}\r\n\r\n",
        reply.status,
        reason(reply.status),
        reply.content_type
    )?;
    w.flush()?;
    for part in &reply.parts {
        match part {
            Part::Pause(d) => std::thread::sleep(*d),
            Part::Bytes(b) if reply.chunked => {
                if !b.is_empty() {
                    write!(w, "{:x}\r\n", b.len())?;
                    w.write_all(b)?;
                    w.write_all(b"\r\n")?;
                }
                w.flush()?;
            }
            Part::Bytes(b) => {
                w.write_all(b)?;
                w.flush()?;
            }
        }
    }
    match reply.end {
        End::Complete => {
            if reply.chunked {
                w.write_all(b"0\r\n\r\n")?;
            }
            w.flush()
        }
        End::Abort => w.shutdown(std::net::Shutdown::Both),
        End::Stall(d) => {
            std::thread::sleep(d);
            w.shutdown(std::net::Shutdown::Both)
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
