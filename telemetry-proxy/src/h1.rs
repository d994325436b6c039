//! The proxy's own HTTP/1.1 client to its upstreams: a connection ([`Conn`]: the connector's IO
//! and one read buffer) driven inline by the request's own future — no connection task, no
//! channel — and the codec it speaks.
//!
//! - Writing: the request line, the `Host`, the client's fields (copied as they came) and those
//!   the proxy sets ([`RequestHead`]) are serialized once into one buffer; the body's
//!   frames that are ready (a body read ahead whole: all of them) go with it in one vectored
//!   write, the rest as they come, framed as the client framed them (its `Content-Length`, else
//!   chunked; a body known whole gets its length).
//! - Reading: the response head is parsed with `httparse` in the read buffer, its header fields
//!   kept as spans of it ([`Fields`]: no copies, no `HeaderMap`), its hop-by-hop headers read
//!   (framing, keep-alive) and left out; interim `1xx` responses are skipped. The body's framing
//!   follows RFC 9112 §6.3 ([`Framing`]): none for `HEAD`, `204`, `304`; chunked; a length; else
//!   to the connection's close (not reused). [`BodyDecoder`] takes each piece of a body as a
//!   slice of the read buffer, and looks past a piece for the body's end, so that the last
//!   piece is known to be the last.
//! - Malformed heads and chunk framing are typed errors ([`ParseError`]), never panics.

use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::pin::{Pin, pin};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::HeaderValue;
use http::{Method, StatusCode, Uri, Version};
use hyper::body::Body;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::time::{Instant, Sleep};

use crate::fields::{self, Fields, same_name};
use crate::hop;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Largest response head read (status line and headers, interim responses each).
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// Headers parsed with a table on the stack; a head with more is parsed again with
/// [`MAX_HEADERS`] slots.
const HEADERS: usize = 48;
/// Most headers a response head may have.
pub(crate) const MAX_HEADERS: usize = 256;
/// Free bytes the read buffer has before each read: an answer up to this size is read whole
/// (a smaller room, left by the last answer, split answers of a few KiB in two reads, two
/// writes to the client and two segments).
const READ_SIZE: usize = 8 * 1024;
/// Longest chunk-size line (extensions included), and longest trailer section.
pub(crate) const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;
/// Pieces passed to one vectored write.
const MAX_IOVECS: usize = 64;

/// What is wrong with an upstream's response.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// The status line or a header could not be parsed.
    #[error("malformed response head: {0}")]
    Head(httparse::Error),
    /// The head did not end within [`MAX_HEAD`] bytes.
    #[error("response head longer than {MAX_HEAD} bytes")]
    HeadTooLong,
    /// A status code outside 100–999... that `http` refuses.
    #[error("invalid status code {0}")]
    Status(u16),
    /// `101 Switching Protocols`, though the proxy never asks for an upgrade.
    #[error("101 Switching Protocols to a request that asked for no upgrade")]
    Upgrade,
    /// The connection closed in the middle of the head.
    #[error("the connection closed in the middle of the response head")]
    Truncated,
    /// `Content-Length` is not a number, or its values disagree.
    #[error("invalid Content-Length")]
    ContentLength,
    /// The chunked body's framing is broken.
    #[error("malformed chunked body: {0}")]
    Chunk(&'static str),
}

/// Why an exchange on an upstream connection failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    /// The request could not be written.
    #[error("sending the request failed")]
    Write(#[source] io::Error),
    /// The request's body failed (the client's: see
    /// [`ClientBodyError`](crate::body::ClientBodyError)).
    #[error("the request body failed")]
    Body(#[source] BoxError),
    /// The request's body did not have the length its `Content-Length` said.
    #[error("the request body was not the {0} bytes its Content-Length says")]
    BodyLength(u64),
    /// The request's own `Content-Length` is not a number.
    #[error("the request's Content-Length is invalid")]
    RequestLength,
    /// Reading the response failed.
    #[error("reading the response failed")]
    Read(#[source] io::Error),
    /// The upstream closed the connection before the response head was complete.
    #[error("the upstream closed the connection before a complete response head")]
    ClosedBeforeHead,
    /// The upstream closed the connection before the response body's end.
    #[error("the upstream closed the connection before the end of the response body")]
    ClosedInBody,
    /// The response is malformed.
    #[error("invalid response from the upstream")]
    Parse(#[source] ParseError),
    /// No response head within the first-byte timeout of the request having gone.
    #[error("no response head within {0:?} of the request")]
    FirstByteTimeout(Duration),
    /// The upstream took none of the request for this long (its socket would take no more
    /// bytes): it stopped reading.
    #[error("the upstream read none of the request for {0:?}")]
    WriteStalled(Duration),
}

impl ConnError {
    /// Whether the request may be sent again on another connection: the failure came before
    /// any byte of a response (the connection was closed under the request).
    fn before_response(&self) -> bool {
        matches!(
            self,
            ConnError::Write(_) | ConnError::Read(_) | ConnError::ClosedBeforeHead
        )
    }
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (`HEAD`, `204`, `304`, `Content-Length: 0`).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the upstream closes the connection.
    ToClose,
}

/// A response head.
#[derive(Debug)]
pub(crate) struct Head {
    /// The status.
    pub status: StatusCode,
    /// The header fields but the hop-by-hop ones, as they came.
    pub headers: Fields,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the connection may carry another request once the body has ended.
    pub keep_alive: bool,
}

/// Where a header's name and value lie in the read buffer.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    name: (u32, u32),
    value: (u32, u32),
}

enum Parsed {
    Partial,
    Interim(usize),
    Final {
        len: usize,
        count: usize,
        code: u16,
        minor: u8,
    },
}

/// Parses the response head at the start of `buf`, taking it (and the interim `1xx` responses
/// before it) out of `buf`. `Ok(None)`: the head is not complete yet. The head's headers are
/// those of the response but the hop-by-hop ones (`hop.rs`), which describe this connection.
pub(crate) fn parse_head(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<Head>, ParseError> {
    loop {
        let mut spans = [Span::default(); HEADERS];
        let mut slots = [httparse::EMPTY_HEADER; HEADERS];
        let parsed = match locate(buf, &mut slots, &mut spans) {
            Err(ParseError::Head(httparse::Error::TooManyHeaders)) => {
                let mut spans = vec![Span::default(); MAX_HEADERS];
                let mut slots = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
                match locate(buf, &mut slots, &mut spans)? {
                    Parsed::Interim(len) => {
                        buf.advance(len);
                        continue;
                    }
                    parsed => return finish_head(buf, parsed, &spans, head_request),
                }
            }
            parsed => parsed?,
        };
        match parsed {
            Parsed::Interim(len) => buf.advance(len),
            parsed => return finish_head(buf, parsed, &spans, head_request),
        }
    }
}

/// Parses the head at the start of `buf` into `slots`, noting where each header lies.
fn locate<'b>(
    buf: &'b [u8],
    slots: &mut [httparse::Header<'b>],
    spans: &mut [Span],
) -> Result<Parsed, ParseError> {
    let mut response = httparse::Response::new(slots);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(ParseError::HeadTooLong);
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(e) => return Err(ParseError::Head(e)),
    };
    if len > MAX_HEAD {
        return Err(ParseError::HeadTooLong);
    }
    // A complete response has its code.
    let code = response.code.unwrap_or_default();
    if (100..200).contains(&code) {
        if code == 101 {
            return Err(ParseError::Upgrade);
        }
        return Ok(Parsed::Interim(len));
    }
    let base = buf.as_ptr() as usize;
    let at = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        (start as u32, (start + s.len()) as u32)
    };
    let count = response.headers.len();
    for (span, h) in spans.iter_mut().zip(response.headers.iter()) {
        span.name = at(h.name.as_bytes());
        span.value = at(h.value);
    }
    Ok(Parsed::Final {
        len,
        count,
        code,
        minor: response.version.unwrap_or(1),
    })
}

/// Builds the head `locate` found: takes it out of `buf`; its fields stay in its bytes.
fn finish_head(
    buf: &mut BytesMut,
    parsed: Parsed,
    spans: &[Span],
    head_request: bool,
) -> Result<Option<Head>, ParseError> {
    let Parsed::Final {
        len,
        count,
        code,
        minor,
    } = parsed
    else {
        // Interim responses are taken by parse_head before it gets here.
        return Ok(None);
    };
    let head = buf.split_to(len).freeze();
    let version = if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let status = StatusCode::from_u16(code).map_err(|_| ParseError::Status(code))?;

    let spans = spans.get(..count).unwrap_or_default();
    let mut kept = Vec::with_capacity(spans.len());
    let mut length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive = false;
    let mut names_more = false;
    let at = |r: (u32, u32)| head.get(r.0 as usize..r.1 as usize).unwrap_or_default();
    for span in spans {
        // `httparse` has checked the name (a token) and the value (no control bytes but
        // HTAB): all that `HeaderName` and `HeaderValue` would check again.
        let (name, value) = (at(span.name), at(span.value));
        // Hop-by-hop headers describe this connection: they are not kept.
        let hop = if same_name(name, b"content-length") {
            let n = content_length(value)?;
            if length.is_some_and(|l| l != n) {
                return Err(ParseError::ContentLength);
            }
            length = Some(n);
            false
        } else if same_name(name, b"transfer-encoding") {
            transfer_encoding = true;
            // The last coding of the last Transfer-Encoding header decides.
            chunked = value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            true
        } else if same_name(name, b"connection") {
            for token in value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                let (c, k) = (
                    token.eq_ignore_ascii_case(b"close"),
                    token.eq_ignore_ascii_case(b"keep-alive"),
                );
                close |= c;
                keep_alive |= k;
                names_more |= !(c || k || token.is_empty());
            }
            true
        } else {
            hop::is_always_name(name)
        };
        if !hop {
            kept.push(fields::Span::new(span.name, span.value));
        }
    }
    let mut headers = Fields::new(head.clone(), kept);
    if names_more {
        // And those a `Connection` header names (rare: looked at only then).
        let connection = spans
            .iter()
            .filter(|s| same_name(at(s.name), b"connection"))
            .map(|s| at(s.value));
        let named: Vec<&[u8]> = hop::listed(connection).collect();
        headers.retain(|name, _| !named.iter().any(|n| same_name(n, name)));
    }
    let framing =
        if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Empty
        } else if transfer_encoding {
            // A length beside a transfer coding is ignored (RFC 9112 §6.3): it goes too.
            if length.is_some() {
                headers.remove("content-length");
            }
            if chunked {
                Framing::Chunked
            } else {
                Framing::ToClose
            }
        } else {
            match length {
                Some(0) => Framing::Empty,
                Some(n) => Framing::Length(n),
                None => Framing::ToClose,
            }
        };
    let keep_alive =
        !close && (version == Version::HTTP_11 || keep_alive) && framing != Framing::ToClose;
    Ok(Some(Head {
        status,
        headers,
        framing,
        keep_alive,
    }))
}

/// A `Content-Length` value: digits, or a list of equal ones.
fn content_length(value: &[u8]) -> Result<u64, ParseError> {
    let mut found = None;
    for part in value.split(|&b| b == b',') {
        let n = fields::parse_length(part).ok_or(ParseError::ContentLength)?;
        if found.is_some_and(|f| f != n) {
            return Err(ParseError::ContentLength);
        }
        found = Some(n);
    }
    found.ok_or(ParseError::ContentLength)
}

/// Where a chunked body's reading is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// In the chunk-size's hex digits (`digits` read so far).
    Size {
        size: u64,
        digits: u8,
    },
    /// After the size: whitespace, then `;` and the extensions, up to the line's CR (`len`
    /// bytes so far; `named`: the `;` was met).
    Ext {
        size: u64,
        len: usize,
        named: bool,
    },
    /// The size line's LF.
    SizeLf {
        size: u64,
    },
    /// In a chunk's data.
    Data {
        left: u64,
    },
    /// The CR, then the LF, after a chunk's data.
    DataCr,
    DataLf,
    /// In the trailer section: `line` bytes into a line, `total` bytes of trailers so far.
    Trailer {
        line: usize,
        total: usize,
    },
    /// A trailer line's LF (`line`: the length of the line it ends; 0 ends the body).
    TrailerLf {
        line: usize,
        total: usize,
    },
}

/// Reads a response body's pieces out of a read buffer, by its [`Framing`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BodyDecoder {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    Chunked(Chunk),
    ToClose,
    Done,
}

impl BodyDecoder {
    /// A decoder for a body framed by `framing`.
    pub fn new(framing: Framing) -> BodyDecoder {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(Chunk::Size { size: 0, digits: 0 }),
            Framing::ToClose => State::ToClose,
        };
        BodyDecoder { state }
    }

    /// Whether the body has ended.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes of the body still to come, when known.
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// The connection has closed: the end of a body read to the close, else an error.
    pub fn eof(&mut self) -> Result<(), ConnError> {
        match self.state {
            State::ToClose | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(ConnError::ClosedInBody),
        }
    }

    /// The next piece of the body in `buf` (taken out of it), if `buf` holds one; framing
    /// bytes after it are taken too, as far as `buf` goes, so that [`is_done`](Self::is_done)
    /// says whether this piece was the last.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, ParseError> {
        self.framing(buf)?;
        let piece = match &mut self.state {
            State::Length(left) if !buf.is_empty() => {
                let n = (*left).min(buf.len() as u64);
                *left -= n;
                if *left == 0 {
                    self.state = State::Done;
                }
                buf.split_to(n as usize).freeze()
            }
            State::Chunked(Chunk::Data { left }) if !buf.is_empty() => {
                let n = (*left).min(buf.len() as u64);
                *left -= n;
                if *left == 0 {
                    self.state = State::Chunked(Chunk::DataCr);
                }
                buf.split_to(n as usize).freeze()
            }
            State::ToClose if !buf.is_empty() => buf.split().freeze(),
            _ => return Ok(None),
        };
        self.framing(buf)?;
        Ok(Some(piece))
    }

    /// Takes the chunked framing bytes at the start of `buf`, up to a chunk's data, the
    /// body's end, or the end of `buf`.
    fn framing(&mut self, buf: &mut BytesMut) -> Result<(), ParseError> {
        let State::Chunked(mut chunk) = self.state else {
            return Ok(());
        };
        let mut taken = 0;
        let bad = ParseError::Chunk;
        let end = loop {
            if let Chunk::Data { left } = chunk
                && left > 0
            {
                break false;
            }
            let Some(&b) = buf.get(taken) else {
                break false;
            };
            taken += 1;
            chunk = match chunk {
                Chunk::Size { size, digits } => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if digits == 16 {
                            return Err(bad("chunk size too large"));
                        }
                        let d = (b as char).to_digit(16).unwrap_or_default();
                        Chunk::Size {
                            size: size << 4 | u64::from(d),
                            digits: digits + 1,
                        }
                    }
                    _ if digits == 0 => return Err(bad("chunk size is not hexadecimal")),
                    b'\r' => Chunk::SizeLf { size },
                    b';' | b' ' | b'\t' => Chunk::Ext {
                        size,
                        len: 1,
                        named: b == b';',
                    },
                    _ => return Err(bad("invalid byte after the chunk size")),
                },
                Chunk::Ext { size, len, named } => match b {
                    b'\r' => Chunk::SizeLf { size },
                    b'\n' => return Err(bad("bare LF in a chunk-size line")),
                    _ if len >= MAX_CHUNK_LINE => return Err(bad("chunk-size line too long")),
                    // Only whitespace between the size and the first `;` (RFC 9112 §7.1.1).
                    b';' | b' ' | b'\t' => Chunk::Ext {
                        size,
                        len: len + 1,
                        named: named || b == b';',
                    },
                    _ if !named => return Err(bad("invalid chunk-size line")),
                    0..0x20 | 0x7f => return Err(bad("control character in a chunk extension")),
                    _ => Chunk::Ext {
                        size,
                        len: len + 1,
                        named,
                    },
                },
                Chunk::SizeLf { size } => match b {
                    b'\n' if size == 0 => Chunk::Trailer { line: 0, total: 0 },
                    b'\n' => Chunk::Data { left: size },
                    _ => return Err(bad("chunk-size line not ended by CRLF")),
                },
                Chunk::Data { .. } | Chunk::DataCr => match b {
                    b'\r' => Chunk::DataLf,
                    _ => return Err(bad("chunk data not followed by CRLF")),
                },
                Chunk::DataLf => match b {
                    b'\n' => Chunk::Size { size: 0, digits: 0 },
                    _ => return Err(bad("chunk data not followed by CRLF")),
                },
                Chunk::Trailer { line, total } => match b {
                    _ if total >= MAX_TRAILERS => return Err(bad("trailers too long")),
                    b'\r' => Chunk::TrailerLf { line, total },
                    b'\n' => return Err(bad("bare LF in the trailers")),
                    _ => Chunk::Trailer {
                        line: line + 1,
                        total: total + 1,
                    },
                },
                Chunk::TrailerLf { line, total } => match b {
                    b'\n' if line == 0 => break true,
                    b'\n' => Chunk::Trailer {
                        line: 0,
                        total: total + line + 2,
                    },
                    _ => return Err(bad("trailer line not ended by CRLF")),
                },
            };
        };
        buf.advance(taken);
        self.state = if end {
            State::Done
        } else {
            State::Chunked(chunk)
        };
        Ok(())
    }
}

/// How a request body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framed {
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked.
    Chunked,
}

/// A request head to send to an upstream.
#[derive(Debug, Clone)]
pub(crate) struct RequestHead {
    /// The method.
    pub method: Method,
    /// The request target, in origin form.
    pub uri: Uri,
    /// The `Host` field, written first.
    pub host: Option<HeaderValue>,
    /// The client's fields, written as they came (the caller has taken out those not to be
    /// forwarded: hop-by-hop ones, `Host`, the agent's, and those set below).
    pub fields: Fields,
    /// A `Content-Length` of the proxy's (the body was rewritten), in place of the client's.
    pub length: Option<u64>,
    /// `Accept-Encoding: identity`, in place of the client's.
    pub identity: bool,
}

/// Serializes a request's line and headers, adding the body's framing when the headers do not
/// give it: a `Content-Length` for a body of known length, else chunked.
pub(crate) fn encode_head(
    head: &RequestHead,
    body: &impl Body,
) -> Result<(Bytes, Framed), ConnError> {
    let target = head.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut given = head.length;
    if given.is_none() {
        for value in head.fields.get_all("content-length") {
            given = Some(content_length(value).map_err(|_| ConnError::RequestLength)?);
        }
    }
    let method = head.method.as_str();
    let len = method.len() + target.len() + head.fields.bytes_len() + 128;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(host) = &head.host {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    head.fields.write_to(&mut out, |_| false);
    if let Some(n) = head.length {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(n.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if head.identity {
        out.extend_from_slice(b"accept-encoding: identity\r\n");
    }
    let send = match given {
        Some(n) => Framed::Length(n),
        None if body.is_end_stream() => Framed::Length(0),
        None => match body.size_hint().exact() {
            Some(n) => {
                if n > 0 || !matches!(head.method, Method::GET | Method::HEAD) {
                    out.extend_from_slice(b"content-length: ");
                    out.extend_from_slice(n.to_string().as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                Framed::Length(n)
            }
            None => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Framed::Chunked
            }
        },
    };
    out.extend_from_slice(b"\r\n");
    Ok((Bytes::from(out), send))
}

/// A request on its way out: the pieces to write, and what is known of its body.
#[derive(Debug)]
pub(crate) struct Outgoing {
    send: Framed,
    /// Body bytes taken so far.
    taken: u64,
    /// Pieces to write next.
    pub pieces: Vec<Bytes>,
    /// Whether the body has ended (its last piece is in `pieces` or written).
    pub ended: bool,
}

impl Outgoing {
    /// A request whose head is `head`, its body framed by `send`.
    pub fn new(head: Bytes, send: Framed) -> Outgoing {
        let mut pieces = Vec::with_capacity(4);
        pieces.push(head);
        Outgoing {
            send,
            taken: 0,
            pieces,
            ended: false,
        }
    }

    /// Adds the frames `body` has ready to the pieces to write (framed); notes its end.
    pub fn gather<B>(&mut self, body: &mut B, cx: &mut Context<'_>) -> Result<(), ConnError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<BoxError>,
    {
        while !self.ended {
            if body.is_end_stream() {
                self.end()?;
                break;
            }
            match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Pending => break,
                Poll::Ready(None) => self.end()?,
                Poll::Ready(Some(Err(e))) => return Err(ConnError::Body(e.into())),
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers of a client's chunked body are not forwarded.
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        self.data(data)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn data(&mut self, data: Bytes) -> Result<(), ConnError> {
        self.taken += data.len() as u64;
        match self.send {
            Framed::Length(n) if self.taken > n => return Err(ConnError::BodyLength(n)),
            Framed::Length(_) => self.pieces.push(data),
            Framed::Chunked => {
                let mut size = Vec::with_capacity(18);
                chunk_size_line(&mut size, data.len());
                self.pieces.push(Bytes::from(size));
                self.pieces.push(data);
                self.pieces.push(Bytes::from_static(b"\r\n"));
            }
        }
        Ok(())
    }

    fn end(&mut self) -> Result<(), ConnError> {
        self.ended = true;
        match self.send {
            Framed::Length(n) if self.taken != n => Err(ConnError::BodyLength(n)),
            Framed::Length(_) => Ok(()),
            Framed::Chunked => {
                self.pieces.push(Bytes::from_static(b"0\r\n\r\n"));
                Ok(())
            }
        }
    }
}

/// A connection to an upstream: its IO and the bytes read and not yet taken.
pub(crate) struct Conn<I> {
    io: I,
    buf: BytesMut,
    /// The first-byte timer, kept across the connection's requests (see
    /// [`Conn::head_timer_fired`]); made at the first wait for a head.
    head_timer: Option<Pin<Box<Sleep>>>,
}

impl<I> std::fmt::Debug for Conn<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> Conn<I> {
    /// A connection over `io`.
    pub fn new(io: I) -> Conn<I> {
        Conn {
            io,
            buf: BytesMut::with_capacity(READ_SIZE),
            head_timer: None,
        }
    }

    /// Whether an idle connection can take a request: the upstream has neither closed it nor
    /// sent anything (which would be out of turn). Reads at most once, without waiting.
    pub fn is_open(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        self.poll_fill(&mut cx).is_pending()
    }

    /// Reads what the IO has into the buffer ([`READ_SIZE`] free bytes made first).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_SIZE {
            self.buf.reserve(READ_SIZE);
        }
        let read = pin!(self.io.read_buf(&mut self.buf));
        read.poll(cx)
    }

    /// Writes `pieces` whole (vectored when the IO can, else gathered in one buffer).
    /// Fails with [`ConnError::WriteStalled`] once the IO has taken nothing for `stall` (a
    /// request that fits the socket's buffers never waits, and sets no timer).
    pub async fn write_all(&mut self, pieces: &[Bytes], stall: Duration) -> Result<(), ConnError> {
        let gathered;
        let pieces = if self.io.is_write_vectored() || pieces.len() < 2 {
            pieces
        } else {
            let mut all = BytesMut::with_capacity(pieces.iter().map(Bytes::len).sum());
            for p in pieces {
                all.extend_from_slice(p);
            }
            gathered = [all.freeze()];
            &gathered[..]
        };
        let (mut index, mut offset) = (0, 0);
        // When the stall limit runs out: set at the first wait after bytes were taken.
        let mut due = None;
        poll_fn(|cx| {
            while index < pieces.len() {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let mut n = 0;
                for (i, p) in pieces[index..].iter().take(MAX_IOVECS).enumerate() {
                    slices[i] = IoSlice::new(if i == 0 { &p[offset..] } else { p });
                    n = i + 1;
                }
                let mut written = match Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n])
                {
                    Poll::Ready(written) => written.map_err(ConnError::Write)?,
                    Poll::Pending => return self.stalled(&mut due, stall, cx),
                };
                due = None;
                if written == 0 {
                    return Poll::Ready(Err(ConnError::Write(io::ErrorKind::WriteZero.into())));
                }
                while written > 0 && index < pieces.len() {
                    let left = pieces[index].len() - offset;
                    if written >= left {
                        written -= left;
                        index += 1;
                        offset = 0;
                    } else {
                        offset += written;
                        written = 0;
                    }
                }
                // Skip empty pieces, so that the loop ends when all is written.
                while index < pieces.len() && pieces[index].len() == offset {
                    index += 1;
                    offset = 0;
                }
            }
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(flushed) => Poll::Ready(flushed.map_err(ConnError::Write)),
                Poll::Pending => self.stalled(&mut due, stall, cx),
            }
        })
        .await
    }

    /// A write waits: `Pending`, or [`ConnError::WriteStalled`] once `stall` has passed since
    /// the IO last took bytes (`due`, set here at the first wait after they were taken). The
    /// connection's one timer serves (see [`Conn::head_timer_fired`]): a connection writes its
    /// request and waits for the answer's head one after the other.
    fn stalled(
        &mut self,
        due: &mut Option<Instant>,
        stall: Duration,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), ConnError>> {
        let at = *due.get_or_insert_with(|| Instant::now() + stall);
        if self.head_timer_fired(at, cx) {
            return Poll::Ready(Err(ConnError::WriteStalled(stall)));
        }
        Poll::Pending
    }

    /// Sends the rest of a request whose first pieces have been written: the body's frames as
    /// they come, each written within `stall` (see [`Conn::write_all`]).
    pub async fn write_rest<B>(
        &mut self,
        out: &mut Outgoing,
        body: &mut B,
        stall: Duration,
    ) -> Result<(), ConnError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<BoxError>,
    {
        while !out.ended {
            out.pieces.clear();
            poll_fn(|cx| match out.gather(body, cx) {
                Ok(()) if out.pieces.is_empty() && !out.ended => Poll::Pending,
                done => Poll::Ready(done),
            })
            .await?;
            let pieces = std::mem::take(&mut out.pieces);
            self.write_all(&pieces, stall).await?;
        }
        Ok(())
    }

    /// Reads the response head (after any interim responses); with `first_byte`, fails with
    /// [`ConnError::FirstByteTimeout`] if it has not come within that time from now.
    pub async fn read_head(
        &mut self,
        head_request: bool,
        first_byte: Option<Duration>,
    ) -> Result<Head, ConnError> {
        let due = first_byte.map(|limit| (Instant::now() + limit, limit));
        poll_fn(|cx| {
            loop {
                if !self.buf.is_empty()
                    && let Some(head) =
                        parse_head(&mut self.buf, head_request).map_err(ConnError::Parse)?
                {
                    return Poll::Ready(Ok(head));
                }
                let filled = match self.poll_fill(cx) {
                    Poll::Ready(filled) => filled,
                    Poll::Pending => {
                        if let Some((due, limit)) = due
                            && self.head_timer_fired(due, cx)
                        {
                            return Poll::Ready(Err(ConnError::FirstByteTimeout(limit)));
                        }
                        return Poll::Pending;
                    }
                };
                match filled {
                    Ok(0) if self.buf.is_empty() => {
                        return Poll::Ready(Err(ConnError::ClosedBeforeHead));
                    }
                    Ok(0) => return Poll::Ready(Err(ConnError::Parse(ParseError::Truncated))),
                    Ok(_) => {}
                    Err(e) => return Poll::Ready(Err(ConnError::Read(e))),
                }
            }
        })
        .await
    }

    /// Whether `due` has passed; if not, the connection's timer wakes this task by then.
    ///
    /// One timer serves all of the connection's requests. A request's deadline is later than
    /// the one before it (the limit is the proxy's), so the timer, once set, fires early and is
    /// moved on to the current deadline then: most requests only poll it (which gives it this
    /// task's waker), where a timer made per request is put into the runtime's timer wheel and
    /// taken out again every time.
    fn head_timer_fired(&mut self, due: Instant, cx: &mut Context<'_>) -> bool {
        let timer = self
            .head_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if timer.deadline() > due {
            // A shorter limit than the last request's: the timer must not fire late.
            timer.as_mut().reset(due);
        }
        while timer.as_mut().poll(cx).is_ready() {
            if Instant::now() >= due {
                return true;
            }
            timer.as_mut().reset(due);
        }
        false
    }

    /// The next piece of a body read by `decoder`; `None` at its end.
    pub fn poll_body(
        &mut self,
        decoder: &mut BodyDecoder,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, ConnError>>> {
        loop {
            match decoder.next(&mut self.buf) {
                Err(e) => return Poll::Ready(Some(Err(ConnError::Parse(e)))),
                Ok(Some(piece)) => return Poll::Ready(Some(Ok(piece))),
                Ok(None) if decoder.is_done() => return Poll::Ready(None),
                Ok(None) => {}
            }
            match ready!(self.poll_fill(cx)) {
                Ok(0) => {
                    return Poll::Ready(match decoder.eof() {
                        Ok(()) => None,
                        Err(e) => Some(Err(e)),
                    });
                }
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(ConnError::Read(e)))),
            }
        }
    }

    /// Whether bytes beyond the response have been read (the connection cannot be reused).
    pub fn has_extra(&self) -> bool {
        !self.buf.is_empty()
    }
}

/// Sends a whole request on `conn` and reads its response head: whether a failure came before
/// any response (the request may go again on another connection) is the error's to say.
pub(crate) async fn exchange<I, B>(
    conn: &mut Conn<I>,
    out: &mut Outgoing,
    body: &mut B,
    head_request: bool,
    first_byte: Duration,
) -> Result<Head, (ConnError, bool)>
where
    I: AsyncRead + AsyncWrite + Unpin,
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let again = |e: ConnError, whole: bool| {
        let retry = whole && e.before_response();
        (e, retry)
    };
    let whole = out.ended;
    let first = std::mem::take(&mut out.pieces);
    // An upstream that stops taking the request is given as long as one that has it all is
    // given to answer.
    let written = conn.write_all(&first, first_byte).await;
    out.pieces = first;
    if let Err(e) = written {
        return early_answer(conn, head_request, e)
            .await
            .map_err(|e| again(e, whole));
    }
    if !whole && let Err(e) = conn.write_rest(out, body, first_byte).await {
        return early_answer(conn, head_request, e)
            .await
            .map_err(|e| (e, false));
    }
    // The whole request has gone: the first-byte timeout runs from now.
    conn.read_head(head_request, Some(first_byte))
        .await
        .map_err(|e| again(e, whole))
}

/// How long a request whose sending failed waits for an answer the upstream gave before it
/// stopped reading (a `413` to a body too large, say): such an answer has already arrived.
const EARLY_ANSWER_WAIT: Duration = Duration::from_millis(200);

/// The answer the upstream sent before it stopped reading the request, if the request could
/// not be written for that (the connection is not reused after it); else the error.
async fn early_answer<I>(
    conn: &mut Conn<I>,
    head_request: bool,
    e: ConnError,
) -> Result<Head, ConnError>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    if !matches!(e, ConnError::Write(_)) {
        return Err(e);
    }
    match conn.read_head(head_request, Some(EARLY_ANSWER_WAIT)).await {
        Ok(mut head) => {
            head.keep_alive = false;
            Ok(head)
        }
        _ => Err(e),
    }
}

/// Appends a chunk's size line (hex, CRLF) to `out`.
pub(crate) fn chunk_size_line(out: &mut Vec<u8>, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    let mut n = len;
    loop {
        at -= 1;
        digits[at] = HEX[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn buf(s: &[u8]) -> BytesMut {
        BytesMut::from(s)
    }

    fn head(s: &[u8]) -> Result<Option<Head>, ParseError> {
        parse_head(&mut buf(s), false)
    }

    /// Where a connection's first-byte timer lives (the same one across requests, or not).
    fn timer_at<I>(conn: &Conn<I>) -> Option<*const Sleep> {
        conn.head_timer
            .as_ref()
            .map(|t| std::ptr::from_ref::<Sleep>(t))
    }

    const OK_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

    /// Answers `OK_HEAD` on `server` after `after`.
    fn answer_later(
        mut server: tokio::io::DuplexStream,
        after: Duration,
    ) -> tokio::task::JoinHandle<tokio::io::DuplexStream> {
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            tokio::io::AsyncWriteExt::write_all(&mut server, OK_HEAD)
                .await
                .unwrap();
            server
        })
    }

    /// A connection whose first request, with `first_byte`, waited 20 ms for its `200` head;
    /// its upstream end, kept open.
    async fn answered_once(
        first_byte: Option<Duration>,
    ) -> (Conn<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
        let (client, server) = tokio::io::duplex(4096);
        let mut conn = Conn::new(client);
        let answering = answer_later(server, Duration::from_millis(20));
        let head = conn.read_head(false, first_byte).await.unwrap();
        assert_eq!(head.status, StatusCode::OK);
        (conn, answering.await.unwrap())
    }

    #[tokio::test]
    async fn the_first_byte_timer_is_kept_across_requests_and_never_fires_early() {
        let limit = Duration::from_millis(150);
        // The first request waits for its head: the timer is made, due `limit` from then.
        let (mut conn, _server) = answered_once(Some(limit)).await;
        let first = timer_at(&conn);
        assert!(first.is_some(), "a wait for a head sets the timer");
        // The next request starts later and is never answered: the timer, due earlier, fires
        // early and is moved on; the request times out `limit` after it began, not before.
        tokio::time::sleep(Duration::from_millis(60)).await;
        let began = Instant::now();
        let got = conn.read_head(false, Some(limit)).await;
        let waited = began.elapsed();
        assert!(
            matches!(got, Err(ConnError::FirstByteTimeout(l)) if l == limit),
            "{got:?}"
        );
        assert!(
            waited >= limit,
            "timed out after {waited:?}, before {limit:?}"
        );
        assert!(
            waited < Duration::from_secs(5),
            "timed out after {waited:?}"
        );
        assert_eq!(
            timer_at(&conn),
            first,
            "the same timer served both requests"
        );
    }

    #[tokio::test]
    async fn a_shorter_first_byte_limit_than_the_last_one_is_kept() {
        let (mut conn, _server) = answered_once(Some(Duration::from_secs(60))).await;
        // The timer is set for a minute from the first request: a 100 ms limit must still hold.
        let limit = Duration::from_millis(100);
        let began = Instant::now();
        let got = conn.read_head(false, Some(limit)).await;
        let waited = began.elapsed();
        assert!(
            matches!(got, Err(ConnError::FirstByteTimeout(_))),
            "{got:?}"
        );
        assert!(
            waited >= limit && waited < Duration::from_secs(5),
            "{waited:?}"
        );
    }

    /// 16 pieces of 1 KiB, written over a pipe that holds 1 KiB.
    fn pieces() -> (Vec<Bytes>, usize) {
        let pieces: Vec<Bytes> = (0..16u8).map(|i| Bytes::from(vec![i; 1024])).collect();
        let len = pieces.iter().map(Bytes::len).sum();
        (pieces, len)
    }

    #[tokio::test]
    async fn a_write_the_peer_takes_none_of_fails_once_the_stall_limit_has_passed() {
        let (io, _deaf) = tokio::io::duplex(1024);
        let mut conn = Conn::new(io);
        let (pieces, _) = pieces();
        let limit = Duration::from_millis(100);
        let began = Instant::now();
        let got = conn.write_all(&pieces, limit).await;
        let waited = began.elapsed();
        assert!(
            matches!(got, Err(ConnError::WriteStalled(l)) if l == limit),
            "{got:?}"
        );
        assert!(
            !got.unwrap_err().before_response(),
            "a stalled request is not sent again"
        );
        assert!(
            waited >= limit && waited < Duration::from_secs(5),
            "{waited:?}"
        );
    }

    #[tokio::test]
    async fn a_write_the_peer_takes_slowly_is_not_stalled_however_long_it_takes() {
        let (io, mut peer) = tokio::io::duplex(1024);
        let mut conn = Conn::new(io);
        let (pieces, len) = pieces();
        // The peer takes 1 KiB every 20 ms: 320 ms in all, over three times the limit.
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while got.len() < len {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let n = peer.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        let began = Instant::now();
        conn.write_all(&pieces, Duration::from_millis(100))
            .await
            .unwrap();
        assert!(began.elapsed() >= Duration::from_millis(200));
        let got = reader.await.unwrap();
        assert_eq!(got, pieces.concat());
    }

    #[tokio::test]
    async fn without_a_limit_a_head_is_awaited_and_no_timer_is_made() {
        let (conn, _server) = answered_once(None).await;
        assert!(timer_at(&conn).is_none());
    }

    #[test]
    fn a_head_is_parsed_with_its_framing() {
        let mut b = buf(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello");
        let h = parse_head(&mut b, false).unwrap().unwrap();
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.keep_alive);
        assert_eq!(
            h.headers.get("content-type"),
            Some(&b"application/json"[..])
        );
        assert_eq!(h.headers.len(), 4);
        let all: Vec<_> = h.headers.get_all("x-a").collect();
        assert_eq!(all, [&b"1"[..], &b"2"[..]]);
        assert_eq!(&b[..], b"hello", "the body stays in the buffer");
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let framing = |s: &str, head_request| {
            parse_head(&mut buf(s.as_bytes()), head_request)
                .unwrap()
                .map(|h| (h.framing, h.keep_alive))
        };
        let chunked =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n";
        assert_eq!(framing(chunked, false), Some((Framing::Chunked, true)));
        let h = head(chunked.as_bytes()).unwrap().unwrap();
        assert!(
            !h.headers.contains("content-length"),
            "a length beside a coding goes"
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false),
            Some((Framing::ToClose, false))
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\n\r\n", false),
            Some((Framing::ToClose, false))
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", true),
            Some((Framing::Empty, true)),
            "a HEAD response has no body"
        );
        assert_eq!(
            framing(
                "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
                false
            ),
            Some((Framing::Empty, true))
        );
        assert_eq!(
            framing("HTTP/1.1 304 Not Modified\r\n\r\n", false),
            Some((Framing::Empty, true))
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false),
            Some((Framing::Empty, true))
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n", false),
            Some((Framing::Length(3), true))
        );
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\n",
                false
            ),
            Some((Framing::Length(3), false)),
            "Connection: close: not reused"
        );
        assert_eq!(
            framing("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", false),
            Some((Framing::Length(3), false)),
            "HTTP/1.0 without keep-alive"
        );
        assert_eq!(
            framing(
                "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 3\r\n\r\n",
                false
            ),
            Some((Framing::Length(3), true))
        );
    }

    #[test]
    fn hop_by_hop_headers_are_read_and_left_out() {
        let h = head(b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nServer: x\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.keep_alive);
        assert_eq!(
            h.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            [&b"Server"[..]]
        );
        // The names a Connection header lists go too.
        let h = head(b"HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nX-End: 2\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let names: Vec<_> = h.headers.iter().map(|(n, _)| n).collect();
        assert_eq!(names, [&b"X-End"[..], b"Content-Length"]);
    }

    #[test]
    fn interim_responses_are_skipped() {
        let mut b = buf(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
        let h = parse_head(&mut b, false).unwrap().unwrap();
        assert_eq!(h.status, StatusCode::CREATED);
        assert!(b.is_empty());
        // An interim response alone: taken, the final head awaited.
        let mut b = buf(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2");
        assert!(parse_head(&mut b, false).unwrap().is_none());
        assert_eq!(&b[..], b"HTTP/1.1 2");
    }

    #[test]
    fn a_head_cut_anywhere_is_partial() {
        let whole = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: x\r\n\r\n";
        for cut in 0..whole.len() {
            assert!(head(&whole[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        assert!(head(whole).unwrap().is_some());
    }

    #[test]
    fn malformed_heads_are_errors() {
        let cases: [(&[u8], ParseError); 7] = [
            (
                b"HTTP/1.1 abc OK\r\n\r\n",
                ParseError::Head(httparse::Error::Status),
            ),
            (
                b"HTTX/1.1 200 OK\r\n\r\n",
                ParseError::Head(httparse::Error::Version),
            ),
            (
                b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
                ParseError::Head(httparse::Error::HeaderName),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
                ParseError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                ParseError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
                ParseError::ContentLength,
            ),
            (
                b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
                ParseError::Upgrade,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                head(input).unwrap_err(),
                expected,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        let mut long = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        long.resize(MAX_HEAD + 10, b'a');
        assert_eq!(head(&long).unwrap_err(), ParseError::HeadTooLong);
    }

    #[test]
    fn many_headers_are_parsed_up_to_the_limit() {
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..200 {
            many.extend_from_slice(format!("x-h{i}: {i}\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let h = head(&many).unwrap().unwrap();
        assert_eq!(h.headers.len(), 200);
        assert_eq!(h.headers.get("x-h199"), Some(&b"199"[..]));
        let mut too_many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..MAX_HEADERS + 1 {
            too_many.extend_from_slice(format!("x-h{i}: {i}\r\n").as_bytes());
        }
        too_many.extend_from_slice(b"\r\n");
        assert_eq!(
            head(&too_many).unwrap_err(),
            ParseError::Head(httparse::Error::TooManyHeaders)
        );
    }

    /// The body's pieces, fed `input` in the given cuts; `Err` at the first error, and
    /// whether the body ended.
    fn decode(
        framing: Framing,
        input: &[u8],
        cuts: &[usize],
    ) -> Result<(Vec<u8>, bool), ParseError> {
        let mut d = BodyDecoder::new(framing);
        let mut b = BytesMut::new();
        let mut out = Vec::new();
        let mut from = 0;
        for &to in cuts.iter().chain([input.len()].iter()) {
            let to = to.clamp(from, input.len());
            b.extend_from_slice(&input[from..to]);
            from = to;
            while let Some(piece) = d.next(&mut b)? {
                assert!(!piece.is_empty());
                out.extend_from_slice(&piece);
            }
        }
        Ok((out, d.is_done()))
    }

    const CHUNKED: &[u8] =
        b"5\r\nhello\r\n1;ext=\"a\"\r\n \r\nA \r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n";

    #[test]
    fn a_chunked_body_cut_at_every_byte_decodes_alike() {
        for cut in 0..=CHUNKED.len() {
            let (data, done) = decode(Framing::Chunked, CHUNKED, &[cut]).unwrap();
            assert_eq!(data, b"hello 0123456789", "cut at {cut}");
            assert!(done);
        }
        // One byte at a time.
        let cuts: Vec<usize> = (0..CHUNKED.len()).collect();
        let (data, done) = decode(Framing::Chunked, CHUNKED, &cuts).unwrap();
        assert_eq!(data, b"hello 0123456789");
        assert!(done);
        // Not yet ended without the last CRLF.
        let (_, done) = decode(Framing::Chunked, &CHUNKED[..CHUNKED.len() - 1], &[]).unwrap();
        assert!(!done);
    }

    #[test]
    fn the_last_piece_is_known_as_the_last() {
        let mut d = BodyDecoder::new(Framing::Chunked);
        let mut b = buf(b"3\r\nabc\r\n0\r\n\r\n");
        assert_eq!(&d.next(&mut b).unwrap().unwrap()[..], b"abc");
        assert!(d.is_done(), "the terminating chunk was read with the data");
        assert!(b.is_empty());
        let mut d = BodyDecoder::new(Framing::Length(3));
        let mut b = buf(b"abcHTTP");
        assert_eq!(&d.next(&mut b).unwrap().unwrap()[..], b"abc");
        assert!(d.is_done());
        assert_eq!(&b[..], b"HTTP", "what follows the body stays");
    }

    #[test]
    fn malformed_chunks_are_errors() {
        let cases: [&[u8]; 11] = [
            b"x\r\n",
            b"5\r\nhelloX\r\n",
            b"5\r\nhello\rX",
            b"5\nhello\r\n",
            b"5x\r\nhello\r\n",
            b"11111111111111111\r\n",
            b"0\r\nX-Trailer: 1\n\r\n",
            b"0\r\n\rX",
            // Only whitespace before the first `;`, and no control byte in an extension.
            b"1 x\r\n",
            b"1;\x01\r\n",
            b"1;a=\x7f\r\n",
        ];
        for input in cases {
            let e = decode(Framing::Chunked, input, &[]).unwrap_err();
            assert!(
                matches!(e, ParseError::Chunk(_)),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        let mut ext = b"1;".to_vec();
        ext.resize(MAX_CHUNK_LINE + 10, b'a');
        assert!(decode(Framing::Chunked, &ext, &[]).is_err());
    }

    #[test]
    fn a_body_to_the_close_ends_at_eof() {
        let (data, done) = decode(Framing::ToClose, b"all of it", &[3]).unwrap();
        assert_eq!(data, b"all of it");
        assert!(!done);
        let mut d = BodyDecoder::new(Framing::ToClose);
        d.eof().unwrap();
        assert!(d.is_done());
        let mut d = BodyDecoder::new(Framing::Length(4));
        assert!(matches!(d.eof(), Err(ConnError::ClosedInBody)));
        let mut d = BodyDecoder::new(Framing::Chunked);
        assert!(d.eof().is_err());
    }

    #[test]
    fn a_request_head_is_serialized_with_its_framing() {
        let request = |method: Method, target: &str, fields: &[(&str, &str)]| {
            let mut map = http::HeaderMap::new();
            for (name, value) in fields {
                map.append(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            RequestHead {
                method,
                uri: target.parse().unwrap(),
                host: None,
                fields: Fields::from(&map),
                length: None,
                identity: false,
            }
        };
        let mut head = request(
            Method::POST,
            "/v1/chat/completions?x=1",
            &[("content-type", "application/json")],
        );
        head.host = Some(HeaderValue::from_static("up:8080"));
        let full = http_body_util::Full::new(Bytes::from_static(b"{}"));
        let (bytes, send) = encode_head(&head, &full).unwrap();
        assert_eq!(
            &bytes[..],
            b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: up:8080\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n"
        );
        assert_eq!(send, Framed::Length(2));
        // A length the client gave is kept as given.
        let head = request(Method::POST, "/", &[("content-length", "2")]);
        let (bytes, send) = encode_head(&head, &full).unwrap();
        assert_eq!(&bytes[..], b"POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\n");
        assert_eq!(send, Framed::Length(2));
        // One the proxy sets (the body rewritten) goes in its place, and so does the encoding.
        let mut head = request(Method::POST, "/", &[("accept", "*/*")]);
        (head.length, head.identity) = (Some(5), true);
        let (bytes, send) = encode_head(&head, &full).unwrap();
        assert_eq!(
            &bytes[..],
            b"POST / HTTP/1.1\r\naccept: */*\r\ncontent-length: 5\r\naccept-encoding: identity\r\n\r\n"
        );
        assert_eq!(send, Framed::Length(5));
        // An invalid length is an error.
        let head = request(Method::POST, "/", &[("content-length", "x")]);
        assert!(matches!(
            encode_head(&head, &full),
            Err(ConnError::RequestLength)
        ));
        // A body of unknown length is chunked.
        let (_tx, body) = http_body_util::channel::Channel::<Bytes, BoxError>::new(1);
        let head = request(Method::POST, "/", &[]);
        let (bytes, send) = encode_head(&head, &body).unwrap();
        assert_eq!(
            &bytes[..],
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert_eq!(send, Framed::Chunked);
        // No body: no length.
        let head = request(Method::GET, "/v1/models", &[]);
        let (bytes, _) = encode_head(&head, &http_body_util::Empty::<Bytes>::new()).unwrap();
        assert_eq!(&bytes[..], b"GET /v1/models HTTP/1.1\r\n\r\n");
    }

    /// A valid response: a head, then a body of `pieces` chunked or with a length.
    fn response(pieces: &[Vec<u8>], chunked: bool) -> (Vec<u8>, Vec<u8>) {
        let data: Vec<u8> = pieces.concat();
        let mut wire = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n".to_vec();
        if chunked {
            wire.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for p in pieces.iter().filter(|p| !p.is_empty()) {
                wire.extend_from_slice(format!("{:X}\r\n", p.len()).as_bytes());
                wire.extend_from_slice(p);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
        } else {
            wire.extend_from_slice(format!("Content-Length: {}\r\n\r\n", data.len()).as_bytes());
            wire.extend_from_slice(&data);
        }
        (wire, data)
    }

    /// The head and body of `wire`, fed in pieces cut at `cuts`.
    fn read_split(wire: &[u8], cuts: &[usize]) -> (StatusCode, Vec<u8>, bool) {
        let mut cuts: Vec<usize> = cuts.iter().map(|&c| c % (wire.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(wire.len());
        let mut b = BytesMut::new();
        let mut from = 0;
        let mut head = None;
        let mut decoder = None;
        let mut body = Vec::new();
        for to in cuts {
            b.extend_from_slice(&wire[from..to]);
            from = to;
            if head.is_none()
                && let Some(h) = parse_head(&mut b, false).unwrap()
            {
                decoder = Some(BodyDecoder::new(h.framing));
                head = Some(h);
            }
            if let Some(d) = decoder.as_mut() {
                while let Some(p) = d.next(&mut b).unwrap() {
                    body.extend_from_slice(&p);
                }
            }
        }
        let head = head.unwrap();
        (head.status, body, decoder.unwrap().is_done())
    }

    proptest! {
        #[test]
        fn any_split_of_a_valid_response_gives_the_same_body(
            pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8),
            chunked in any::<bool>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let (wire, data) = response(&pieces, chunked);
            let (status, body, done) = read_split(&wire, &cuts);
            prop_assert_eq!(status, StatusCode::OK);
            prop_assert_eq!(body, data);
            prop_assert!(done);
        }

        #[test]
        fn any_input_is_an_answer_or_an_error_never_a_panic(
            input in proptest::collection::vec(any::<u8>(), 0..200),
            chunked in any::<bool>(),
        ) {
            let mut b = BytesMut::from(&input[..]);
            let _ = parse_head(&mut b, false);
            let framing = if chunked { Framing::Chunked } else { Framing::Length(50) };
            let _ = decode(framing, &input, &[7, 30]);
        }
    }
}
