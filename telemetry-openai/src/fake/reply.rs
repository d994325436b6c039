//! [`Reply`]: what the fake server answers, step by step ([`Part`]), and how it ends ([`End`]).

use std::time::Duration;

use bytes::Bytes;

/// One step of a scripted answer body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Bytes sent at once; for a chunked answer, one HTTP chunk.
    Bytes(Bytes),
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
    /// Headers (name, value), `content-type` among them; the framing header is the server's.
    pub headers: Vec<(String, String)>,
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
    /// A whole JSON body with `Content-Length`.
    pub fn json(status: u16, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            head_delay: Duration::ZERO,
            parts: vec![Part::Bytes(body.into())],
            chunked: false,
            end: End::Complete,
        }
    }

    /// An event stream of `events`, each sent after its delay, one chunk each.
    pub fn events(events: Vec<(Duration, Bytes)>) -> Reply {
        let mut parts = Vec::with_capacity(events.len() * 2);
        for (delay, bytes) in events {
            if !delay.is_zero() {
                parts.push(Part::Pause(delay));
            }
            parts.push(Part::Bytes(bytes));
        }
        Reply {
            status: 200,
            headers: vec![
                ("content-type".into(), "text/event-stream".into()),
                ("cache-control".into(), "no-cache".into()),
            ],
            head_delay: Duration::ZERO,
            parts,
            chunked: true,
            end: End::Complete,
        }
    }

    /// An event stream, chunked, written in pieces of `split` bytes (a pause of `gap` between
    /// pieces), as a server that flushes at odd places would.
    pub fn sse(body: &[u8], split: usize, gap: Duration) -> Reply {
        let events = body.chunks(split.max(1)).enumerate().map(|(i, piece)| {
            let delay = if i == 0 { Duration::ZERO } else { gap };
            (delay, Bytes::copy_from_slice(piece))
        });
        Reply::events(events.collect())
    }

    /// An event stream written one event (up to and including its blank line) at a time, with
    /// `gap` between events: token timing as a real server has it.
    pub fn sse_events(body: &[u8], gap: Duration) -> Reply {
        let mut events = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            let end = rest
                .windows(2)
                .position(|w| w == b"\n\n")
                .map_or(rest.len(), |p| p + 2);
            let delay = if events.is_empty() {
                Duration::ZERO
            } else {
                gap
            };
            events.push((delay, Bytes::copy_from_slice(&rest[..end])));
            rest = &rest[end..];
        }
        Reply::events(events)
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Waits `delay` before the response head.
    #[must_use]
    pub fn after(mut self, delay: Duration) -> Reply {
        self.head_delay = delay;
        self
    }

    /// Ends the answer with `end`.
    #[must_use]
    pub fn ending(mut self, end: End) -> Reply {
        self.end = end;
        self
    }

    /// The body's length (the sum of its bytes).
    pub fn body_len(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Bytes(b) => b.len(),
                Part::Pause(_) => 0,
            })
            .sum()
    }
}
