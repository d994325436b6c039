//! HTTP/1.1 on the wire, without I/O: a request head parsed from the start of the read buffer
//! ([`parse_head`], with `httparse`), a request body's framing decoded from the buffer
//! ([`BodyDecoder`]: by `Content-Length` or chunked), and a response head written into a
//! reused buffer ([`write_head`], [`chunk_size_line`]).

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};

use crate::fields::{Fields, Span, parse_length, same_name};
pub(crate) use crate::h1::chunk_size_line;
use http::{Method, StatusCode, Uri, Version};

/// Header fields a request head may have.
pub(crate) const MAX_HEADERS: usize = 100;

/// Why a request head was refused; the connection is answered [`HeadError::status`] and closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeadError {
    /// The head did not end within the size limit.
    #[error("the request head is larger than {0} bytes")]
    TooLarge(usize),
    /// More header fields than [`MAX_HEADERS`].
    #[error("the request head has more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
    /// Not HTTP/1.x as the grammar has it.
    #[error("malformed request head: {0}")]
    Malformed(String),
    /// A body framing that cannot be read safely.
    #[error("malformed request head: {0}")]
    Framing(&'static str),
}

impl HeadError {
    /// The status the client is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            HeadError::TooLarge(_) | HeadError::TooManyHeaders => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            HeadError::Malformed(_) | HeadError::Framing(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// How a request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `Content-Length` bytes (0 without a body).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A request head, parsed.
#[derive(Debug)]
pub(crate) struct Head {
    /// The method.
    pub method: Method,
    /// The request target, as sent.
    pub uri: Uri,
    /// The version.
    pub version: Version,
    /// The header fields, all of them, as sent (in the head's bytes: uncopied).
    pub fields: Fields,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the client keeps the connection open after this exchange (HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// `Expect: 100-continue` from an HTTP/1.1 client: it waits for a `100` before its body.
    pub expect_continue: bool,
}

/// Parses the request head at the start of `buf`. `Ok(None)` while it is incomplete; once
/// complete its bytes are taken off `buf` (the header fields and target keep pointing into
/// them, uncopied).
pub(crate) fn parse_head(buf: &mut BytesMut, max_head: usize) -> Result<Option<Head>, HeadError> {
    // Spans are 32-bit offsets.
    let max_head = max_head.min(u32::MAX as usize);
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let len = match parsed.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) if len <= max_head => len,
        Ok(httparse::Status::Complete(_)) => return Err(HeadError::TooLarge(max_head)),
        Ok(httparse::Status::Partial) if buf.len() > max_head => {
            return Err(HeadError::TooLarge(max_head));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    let base = buf.as_ptr() as usize;
    // Offsets into a head of at most `max_head` bytes (below 4 GiB).
    let offset = |s: &[u8]| (s.as_ptr() as usize - base) as u32;
    let (Some(method), Some(path), Some(minor)) = (parsed.method, parsed.path, parsed.version)
    else {
        // A complete parse has all three.
        return Err(HeadError::Malformed("incomplete request line".to_owned()));
    };
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| HeadError::Malformed("invalid method".to_owned()))?;
    let version = if minor == 1 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    let target = (offset(path.as_bytes()) as usize, path.len());

    let mut length: Option<u64> = None;
    let mut chunked = None;
    let (mut close, mut keep) = (false, false);
    let mut expect_continue = false;
    let mut spans = Vec::with_capacity(parsed.headers.len());
    for h in parsed.headers.iter() {
        // `httparse` has checked the name (a token) and the value (no control bytes but
        // HTAB): all that `HeaderName` and `HeaderValue` would check again.
        let name = h.name.as_bytes();
        if same_name(name, b"content-length") {
            let n = parse_length(h.value).ok_or(HeadError::Framing("invalid Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::Framing("differing Content-Length values"));
            }
            length = Some(n);
        } else if same_name(name, b"transfer-encoding") {
            // The last coding decides: the body is chunked only when it is `chunked`.
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if same_name(name, b"connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if same_name(name, b"expect") {
            expect_continue = h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
        let (n, v) = (offset(name), offset(h.value));
        spans.push(Span::new(
            (n, n + name.len() as u32),
            (v, v + h.value.len() as u32),
        ));
    }
    let framing = match (chunked, length) {
        (None, length) => Framing::Length(length.unwrap_or(0)),
        (Some(_), _) if version == Version::HTTP_10 => {
            return Err(HeadError::Framing(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(HeadError::Framing(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        (Some(true), None) => Framing::Chunked,
        (Some(false), None) => {
            return Err(HeadError::Framing(
                "a Transfer-Encoding whose last coding is not chunked",
            ));
        }
    };
    let keep_alive = !close && (version == Version::HTTP_11 || keep);

    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(target.0..target.0 + target.1))
        .map_err(|_| HeadError::Malformed("invalid request target".to_owned()))?;
    Ok(Some(Head {
        method,
        uri,
        version,
        fields: Fields::new(head, spans),
        framing,
        keep_alive,
        expect_continue: expect_continue && version == Version::HTTP_11,
    }))
}

/// Why a request body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body: {0}")]
pub(crate) struct ChunkError(pub &'static str);

/// What the next bytes of a body are.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Body bytes (never empty).
    Data(Bytes),
    /// The body has ended.
    End,
    /// More bytes must be read first.
    NeedMore,
}

/// Takes a body out of the read buffer, piece by piece, as its framing delimits it: the
/// upstream client's decoder ([`crate::h1::BodyDecoder`]), so that a request's chunked framing
/// and an answer's are read by the same code, as strictly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BodyDecoder(crate::h1::BodyDecoder);

impl BodyDecoder {
    /// The decoder of a body framed so.
    pub fn new(framing: Framing) -> BodyDecoder {
        BodyDecoder(crate::h1::BodyDecoder::new(match framing {
            Framing::Length(n) => crate::h1::Framing::Length(n),
            Framing::Chunked => crate::h1::Framing::Chunked,
        }))
    }

    /// Whether the whole body has been taken.
    pub fn is_done(&self) -> bool {
        self.0.is_done()
    }

    /// Bytes still to come, when known.
    pub fn remaining(&self) -> Option<u64> {
        self.0.remaining()
    }

    /// Takes the next piece of the body off the front of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkError> {
        match self.0.next(buf) {
            Ok(Some(data)) => Ok(Decoded::Data(data)),
            Ok(None) if self.0.is_done() => Ok(Decoded::End),
            Ok(None) => Ok(Decoded::NeedMore),
            Err(crate::h1::ParseError::Chunk(what)) => Err(ChunkError(what)),
            Err(_) => Err(ChunkError("malformed body")),
        }
    }
}

/// The `Connection` header a response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionHeader {
    /// None (HTTP/1.1's default: the connection stays open).
    None,
    /// `Connection: close`.
    Close,
    /// `Connection: keep-alive` (to an HTTP/1.0 client keeping the connection).
    KeepAlive,
}

/// Writes a response head into `out` (cleared first): the status line, every header but
/// `Content-Length`, `Transfer-Encoding` and `Connection` (the server's to say, given here),
/// and the blank line.
pub(crate) fn write_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    fields: &Fields,
    length: Option<u64>,
    chunked: bool,
    connection: ConnectionHeader,
) {
    out.clear();
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let mut dated = false;
    fields.write_to(out, |name| {
        if same_name(name, b"date") {
            dated = true;
            return false;
        }
        same_name(name, b"content-length")
            || same_name(name, b"transfer-encoding")
            || same_name(name, b"connection")
    });
    // RFC 9110 §6.6.1: a server with a clock dates its answers, and a proxy dates a response
    // that came without a date.
    if !dated {
        write_date_now(out);
    }
    if let Some(n) = length {
        out.extend_from_slice(b"content-length: ");
        write_decimal(out, n);
        out.extend_from_slice(b"\r\n");
    }
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    match connection {
        ConnectionHeader::None => {}
        ConnectionHeader::Close => out.extend_from_slice(b"connection: close\r\n"),
        ConnectionHeader::KeepAlive => out.extend_from_slice(b"connection: keep-alive\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a `date` field of the current time (`date: Sun, 06 Nov 1994 08:49:37 GMT`), its text
/// formatted once a second per thread; none from a clock outside what an HTTP date can say
/// (before 1970 or past 9999: a server without a reliable clock sends no date).
fn write_date_now(out: &mut Vec<u8>) {
    /// 10000-01-01T00:00:00Z, in seconds from the Unix epoch.
    const YEAR_10000: u64 = 253_402_300_800;
    thread_local! {
        /// The second last formatted (from the Unix epoch), and its text.
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let Some(second) = now
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
        .filter(|&s| s < YEAR_10000)
    else {
        return;
    };
    DATE.with_borrow_mut(|(at, text)| {
        if *at != second {
            *at = second;
            *text = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    });
}

/// `text` without its `date` lines, each checked to hold the HTTP date of a time within a
/// minute of now: the heads the tests compare, whatever the second they were written in.
#[cfg(test)]
pub(crate) fn undated(text: &str) -> String {
    let now = SystemTime::now();
    text.split_inclusive("\r\n")
        .filter(|line| {
            let Some(value) = line.strip_prefix("date: ") else {
                return true;
            };
            let when = httpdate::parse_http_date(value.trim_end())
                .unwrap_or_else(|e| panic!("{value:?} is no HTTP date: {e}"));
            let apart = now.duration_since(when).unwrap_or_else(|e| e.duration());
            assert!(apart.as_secs() < 60, "{value:?} is {apart:?} from now");
            false
        })
        .collect()
}

fn write_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Whether a header value lists `token` (comma-separated, any case).
pub(crate) fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::MAX_CHUNK_LINE;
    use proptest::prelude::*;

    fn parse(text: &[u8]) -> Result<Option<Head>, HeadError> {
        parse_head(&mut BytesMut::from(text), 64 * 1024)
    }

    const POST: &[u8] = b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX-Two: 1\r\nx-two: 2\r\n\r\nhello";

    #[test]
    fn a_request_head_is_parsed_and_taken_off_the_buffer() {
        let mut buf = BytesMut::from(POST);
        let head = parse_head(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(&buf[..], b"hello");
        assert_eq!(head.method, Method::POST);
        assert_eq!(head.uri.path(), "/v1/chat/completions");
        assert_eq!(head.uri.query(), Some("x=1"));
        assert_eq!(head.version, Version::HTTP_11);
        assert_eq!(head.fields.get("host"), Some(&b"a"[..]));
        let twos: Vec<_> = head.fields.get_all("x-two").collect();
        assert_eq!(twos, [&b"1"[..], &b"2"[..]]);
        assert_eq!(head.framing, Framing::Length(5));
        assert!(head.keep_alive && !head.expect_continue);
    }

    #[test]
    fn a_head_cut_at_every_byte_is_incomplete_until_its_end() {
        let end = POST.len() - 5;
        for cut in 0..end {
            assert!(parse(&POST[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        assert!(parse(&POST[..end]).unwrap().is_some());
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_header() {
        let cases: [(&[u8], bool); 5] = [
            (b"GET / HTTP/1.1\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
            (
                b"GET / HTTP/1.0\r\nConnection: foo, Keep-Alive\r\n\r\n",
                true,
            ),
        ];
        for (text, keep) in cases {
            let head = parse(text).unwrap().unwrap();
            assert_eq!(head.keep_alive, keep, "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn framing_by_length_or_chunked_and_expect_continue() {
        let head = parse(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.framing, Framing::Chunked);
        assert!(head.expect_continue);
        let head = parse(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.framing, Framing::Length(3));
        assert!(
            !head.expect_continue,
            "HTTP/1.0 clients do not wait for 100"
        );
    }

    #[test]
    fn malformed_heads_are_refused_with_their_status() {
        let bad: [(&[u8], u16); 11] = [
            (b"GET / HTTP/2.0\r\n\r\n", 400),
            (b"G(T / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                400,
            ),
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
        ];
        for (text, status) in bad {
            let e = parse(text).unwrap_err();
            assert_eq!(
                e.status().as_u16(),
                status,
                "{e}: {}",
                String::from_utf8_lossy(text)
            );
        }
        let many: Vec<u8> = std::iter::once(&b"GET / HTTP/1.1\r\n"[..])
            .chain(std::iter::repeat_n(&b"a: b\r\n"[..], MAX_HEADERS + 1))
            .chain(std::iter::once(&b"\r\n"[..]))
            .flatten()
            .copied()
            .collect();
        assert_eq!(parse(&many).unwrap_err(), HeadError::TooManyHeaders);
        let long = [&b"GET /"[..], &[b'a'; 100], b" HTTP/1.1\r\n\r\n"].concat();
        let e = parse_head(&mut BytesMut::from(&long[..]), 64).unwrap_err();
        assert_eq!(e, HeadError::TooLarge(64));
        // Incomplete and already past the limit: refused without waiting for the rest.
        let e = parse_head(&mut BytesMut::from(&long[..80]), 64).unwrap_err();
        assert_eq!(e.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    /// Every body piece `decoder` gives from `input` fed in pieces cut at `cuts`.
    fn decode_split(
        mut decoder: BodyDecoder,
        input: &[u8],
        cuts: &[usize],
    ) -> Result<(Vec<u8>, bool, usize), ChunkError> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut from = 0;
        let mut bounds: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
        bounds.sort_unstable();
        bounds.push(input.len());
        for to in bounds {
            buf.extend_from_slice(&input[from..to.max(from)]);
            from = to.max(from);
            loop {
                match decoder.decode(&mut buf)? {
                    Decoded::Data(d) => {
                        assert!(!d.is_empty());
                        out.extend_from_slice(&d);
                    }
                    Decoded::End => return Ok((out, true, buf.len() + input.len() - from)),
                    Decoded::NeedMore => break,
                }
            }
        }
        Ok((out, false, buf.len()))
    }

    const CHUNKED: &[u8] =
        b"5\r\nhello\r\n1;ext=\"x\"\r\n \r\nA \r\n0123456789\r\n0\r\nTrailer: t\r\n\r\nNEXT";

    #[test]
    fn a_chunked_body_cut_at_every_byte_decodes_the_same() {
        for cut in 0..=CHUNKED.len() {
            let (out, ended, left) =
                decode_split(BodyDecoder::new(Framing::Chunked), CHUNKED, &[cut]).unwrap();
            assert_eq!(out, b"hello 0123456789", "cut at {cut}");
            assert!(ended);
            assert_eq!(left, 4, "the next request's bytes stay in the buffer");
        }
    }

    #[test]
    fn a_length_body_leaves_what_follows() {
        let (out, ended, left) =
            decode_split(BodyDecoder::new(Framing::Length(5)), b"helloGET", &[2]).unwrap();
        assert_eq!((&out[..], ended, left), (&b"hello"[..], true, 3));
        let (out, ended, _) =
            decode_split(BodyDecoder::new(Framing::Length(9)), b"hello", &[]).unwrap();
        assert_eq!((&out[..], ended), (&b"hello"[..], false));
    }

    #[test]
    fn malformed_chunked_bodies_are_errors() {
        let bad: [&[u8]; 7] = [
            b"x\r\n",
            b"5\r\nhelloXX",
            b"5\nhello\r\n",
            b"1 x\r\n",
            b"ffffffffffffffff\r\n",
            b"1;\x01\r\n",
            b"5\r\nhello\r",
        ];
        for input in bad {
            let got = decode_split(BodyDecoder::new(Framing::Chunked), input, &[]).and_then(
                |(_, ended, _)| {
                    if ended {
                        Ok(())
                    } else {
                        Err(ChunkError("cut"))
                    }
                },
            );
            // The last one is cut, not malformed: it waits for more.
            assert!(got.is_err(), "{}", String::from_utf8_lossy(input));
        }
        let long = [&b"1"[..], &[b' '; MAX_CHUNK_LINE + 1]].concat();
        assert_eq!(
            decode_split(BodyDecoder::new(Framing::Chunked), &long, &[]).unwrap_err(),
            ChunkError("chunk-size line too long")
        );
    }

    #[test]
    fn an_answer_without_a_date_is_dated_and_one_with_a_date_keeps_it() {
        let head = |fields: &Fields| {
            let mut out = Vec::new();
            write_head(
                &mut out,
                StatusCode::OK,
                fields,
                Some(0),
                false,
                ConnectionHeader::None,
            );
            String::from_utf8(out).unwrap()
        };
        let dated = head(&Fields::default());
        assert_eq!(dated.matches("\r\ndate: ").count(), 1, "{dated}");
        // `undated` checks the date is now's; what is left is the head without it.
        assert_eq!(
            undated(&dated),
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
        );
        let mut headers = http::HeaderMap::new();
        let theirs = "Sun, 06 Nov 1994 08:49:37 GMT";
        headers.insert("Date", http::HeaderValue::from_static(theirs));
        let kept = head(&(&headers).into());
        assert_eq!(
            kept.to_ascii_lowercase().matches("date: ").count(),
            1,
            "{kept}"
        );
        assert!(kept.contains(theirs), "{kept}");
    }

    #[test]
    fn response_heads_name_their_framing() {
        use http::{HeaderMap, HeaderValue, header};
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        let mut out = Vec::new();
        write_head(
            &mut out,
            StatusCode::OK,
            &(&headers).into(),
            Some(1234),
            false,
            ConnectionHeader::None,
        );
        assert_eq!(
            undated(std::str::from_utf8(&out).unwrap()),
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1234\r\n\r\n"
        );
        write_head(
            &mut out,
            StatusCode::BAD_GATEWAY,
            &Fields::default(),
            None,
            true,
            ConnectionHeader::Close,
        );
        assert_eq!(
            undated(std::str::from_utf8(&out).unwrap()),
            "HTTP/1.1 502 Bad Gateway\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        );
        out.clear();
        chunk_size_line(&mut out, 0x1a2f);
        chunk_size_line(&mut out, 0);
        assert_eq!(out, b"1a2f\r\n0\r\n");
    }

    proptest! {
        #[test]
        fn chunked_bodies_decode_whole_whatever_the_splits(
            pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..8),
            cuts in proptest::collection::vec(0usize..400, 0..12),
        ) {
            let mut wire = Vec::new();
            for p in &pieces {
                wire.extend_from_slice(format!("{:X}\r\n", p.len()).as_bytes());
                wire.extend_from_slice(p);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
            let (out, ended, left) = decode_split(BodyDecoder::new(Framing::Chunked), &wire, &cuts).unwrap();
            prop_assert!(ended);
            prop_assert_eq!(left, 0);
            prop_assert_eq!(out, pieces.concat());
        }

        #[test]
        fn heads_parse_the_same_whatever_the_split(cut in 0usize..200) {
            let cut = cut.min(POST.len());
            let mut buf = BytesMut::from(&POST[..cut]);
            let first = parse_head(&mut buf, 1024).unwrap();
            let head = match first {
                Some(h) => h,
                None => {
                    buf.extend_from_slice(&POST[cut..]);
                    parse_head(&mut buf, 1024).unwrap().unwrap()
                }
            };
            prop_assert_eq!(head.framing, Framing::Length(5));
            prop_assert_eq!(head.fields.len(), 4);
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&input);
            let _ = decode_split(BodyDecoder::new(Framing::Chunked), &input, &[7, 50]);
        }
    }
}
