//! [`Fields`]: a head's header fields as they came, without a `HeaderMap` — the bytes of the
//! head and where each field's name and value lie in them, in the order received (duplicates
//! kept) — and the messages made with them: [`Incoming`], a client's request, and [`Reply`], a
//! response.
//!
//! A head has a handful of fields: a name is looked up by a scan that compares it without
//! case ([`same_name`]), and the fields are written out again by copying their lines. Nothing is
//! parsed, validated or hashed again: `httparse` has checked the names (tokens) and values (no
//! control bytes but HTAB) already, which is all `http::HeaderName` and `HeaderValue` check.
//! Building a `HeaderMap` for each head, reading a few of its fields and writing it out again
//! cost the proxy more than parsing the head (about 6 K instructions of a 39 K call).

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode, Uri};

/// Where a field's name and value lie in its head's bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    name: (u32, u32),
    value: (u32, u32),
}

impl Span {
    /// The field whose name is `bytes[name.0..name.1]` and value `bytes[value.0..value.1]`.
    pub fn new(name: (u32, u32), value: (u32, u32)) -> Span {
        Span { name, value }
    }
}

/// Header fields, as received: the head's bytes and the spans of the fields kept.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fields {
    bytes: Bytes,
    spans: Vec<Span>,
}

impl Fields {
    /// The fields `spans` locates in `bytes` (spans out of `bytes` are left out).
    pub fn new(bytes: Bytes, mut spans: Vec<Span>) -> Fields {
        let len = bytes.len() as u64;
        spans.retain(|s| {
            s.name.0 <= s.name.1
                && u64::from(s.name.1) <= len
                && s.value.0 <= s.value.1
                && u64::from(s.value.1) <= len
        });
        Fields { bytes, spans }
    }

    #[inline]
    fn name_of(&self, span: &Span) -> &[u8] {
        self.bytes
            .get(span.name.0 as usize..span.name.1 as usize)
            .unwrap_or_default()
    }

    #[inline]
    fn value_of(&self, span: &Span) -> &[u8] {
        self.bytes
            .get(span.value.0 as usize..span.value.1 as usize)
            .unwrap_or_default()
    }

    /// Every field, name and value, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.spans
            .iter()
            .map(|s| (self.name_of(s), self.value_of(s)))
    }

    /// How many fields there are.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// The value of the first field named `name` (compared without case).
    #[inline]
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        self.spans
            .iter()
            .find(|s| {
                // Lengths first: most names differ in theirs.
                (s.name.1 - s.name.0) as usize == name.len() && same_name(self.name_of(s), name)
            })
            .map(|s| self.value_of(s))
    }

    /// The values of every field named `name` (compared without case), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        let name = name.as_bytes();
        self.iter()
            .filter(move |(n, _)| same_name(n, name))
            .map(|(_, v)| v)
    }

    /// How many bytes the fields' head has: about what writing them takes.
    pub fn bytes_len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether a field is named `name` (compared without case).
    #[cfg(test)]
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Removes every field named `name` (compared without case); whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.spans.len();
        self.retain(|n, _| !same_name(n, name.as_bytes()));
        self.spans.len() != before
    }

    /// Keeps the fields for which `keep(name, value)` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8], &[u8]) -> bool) {
        let Fields { bytes, spans } = self;
        spans.retain(|s| {
            let at = |r: (u32, u32)| bytes.get(r.0 as usize..r.1 as usize).unwrap_or_default();
            keep(at(s.name), at(s.value))
        });
    }

    /// Appends a field (copying the head's bytes: for the proxy's own answers, not per call).
    pub fn append(&mut self, name: &str, value: &[u8]) {
        let mut bytes = Vec::with_capacity(self.bytes.len() + name.len() + value.len() + 4);
        bytes.extend_from_slice(&self.bytes);
        let span = push_field(&mut bytes, name.as_bytes(), value);
        self.bytes = Bytes::from(bytes);
        self.spans.push(span);
    }

    /// Writes each field for which `skip(name)` does not hold as `name: value\r\n` to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>, mut skip: impl FnMut(&[u8]) -> bool) {
        for span in &self.spans {
            let name = self.name_of(span);
            if skip(name) {
                continue;
            }
            // A line received as `name: value\r\n` (the usual spelling) is copied whole.
            let line = span.name.0 as usize..span.value.1 as usize + 2;
            if self.bytes.get(span.name.1 as usize..span.value.0 as usize) == Some(b": ")
                && let Some(line) = self.bytes.get(line)
                && line.ends_with(b"\r\n")
            {
                out.extend_from_slice(line);
                continue;
            }
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(self.value_of(span));
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Writes `name: value\r\n` to `bytes`; where its name and value lie.
fn push_field(bytes: &mut Vec<u8>, name: &[u8], value: &[u8]) -> Span {
    let start = bytes.len() as u32;
    bytes.extend_from_slice(name);
    let name_end = bytes.len() as u32;
    bytes.extend_from_slice(b": ");
    let value_start = bytes.len() as u32;
    bytes.extend_from_slice(value);
    let value_end = bytes.len() as u32;
    bytes.extend_from_slice(b"\r\n");
    Span::new((start, name_end), (value_start, value_end))
}

impl From<&HeaderMap> for Fields {
    /// The fields of a map built by the proxy (its own answers): names as `http` has them
    /// (lower case), in the map's order.
    fn from(headers: &HeaderMap) -> Fields {
        let mut bytes = Vec::new();
        let mut spans = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            spans.push(push_field(
                &mut bytes,
                name.as_str().as_bytes(),
                value.as_bytes(),
            ));
        }
        Fields::new(Bytes::from(bytes), spans)
    }
}

/// Whether two header names are the same but for the case of their ASCII letters (what
/// `<[u8]>::eq_ignore_ascii_case` says), eight bytes at a time: names are compared on every
/// lookup, and a byte at a time the compare of a matching name cost more than the rest of it.
#[inline]
pub(crate) fn same_name(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    for (p, q) in (&mut x).zip(&mut y) {
        if lower8(word(p)) != lower8(word(q)) {
            return false;
        }
    }
    lower8(word(x.remainder())) == lower8(word(y.remainder()))
}

/// Up to eight bytes as a little-endian word (zeros after them).
#[inline]
fn word(bytes: &[u8]) -> u64 {
    if let Ok(eight) = <[u8; 8]>::try_from(bytes) {
        return u64::from_le_bytes(eight);
    }
    let mut w = [0u8; 8];
    for (d, s) in w.iter_mut().zip(bytes) {
        *d = *s;
    }
    u64::from_le_bytes(w)
}

/// The bytes of `w` with their ASCII capitals made lower case.
#[inline]
fn lower8(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Each byte's low seven bits plus a bias sets the byte's high bit when they are at least
    // `A`, or more than `Z` (at most 0x7f + 0x3f: no carry into the next byte).
    let low = w & !HIGH;
    let from_a = low + ONES * u64::from(0x80 - b'A');
    let past_z = low + ONES * u64::from(0x80 - b'Z' - 1);
    // A capital: at least `A`, not past `Z`, and its own high bit clear.
    let capital = from_a & !past_z & !w & HIGH;
    w | (capital >> 2)
}

/// Whether a header value is visible ASCII (and spaces, tabs) only: text, as
/// `HeaderValue::to_str` has it.
pub(crate) fn is_text(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// A header value as text, when it is ([`is_text`]).
pub(crate) fn to_str(value: &[u8]) -> Option<&str> {
    if is_text(value) {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// A `Content-Length` value: ASCII digits only (no sign, no list), at most 19 of them, space
/// around them allowed.
pub(crate) fn parse_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// A client's request: its method and target, header fields (all, as sent) and body (the
/// version is the server's to handle).
#[derive(Debug)]
pub(crate) struct Incoming<B> {
    /// The method.
    pub method: Method,
    /// The request target.
    pub uri: Uri,
    /// The header fields.
    pub fields: Fields,
    /// The body.
    pub body: B,
}

/// A response: its status, header fields and body.
#[derive(Debug)]
pub(crate) struct Reply<B> {
    /// The status.
    pub status: StatusCode,
    /// The header fields (framing and `Connection` are the server's to write: see
    /// `h1_server::codec::write_head`).
    pub fields: Fields,
    /// The body.
    pub body: B,
}

impl<B> From<Response<B>> for Reply<B> {
    /// The proxy's own answers, built as `http` responses.
    fn from(response: Response<B>) -> Reply<B> {
        let (parts, body) = response.into_parts();
        Reply {
            status: parts.status,
            fields: Fields::from(&parts.headers),
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn names_compare_as_eq_ignore_ascii_case_does(
            a in proptest::collection::vec(any::<u8>(), 0..40),
            flips in proptest::collection::vec(any::<bool>(), 40),
            other in any::<u8>(),
            at in any::<usize>(),
        ) {
            // The same bytes with some letters' case flipped: equal.
            let b: Vec<u8> = a
                .iter()
                .zip(&flips)
                .map(|(&c, &f)| if f && c.is_ascii_alphabetic() { c ^ 0x20 } else { c })
                .collect();
            prop_assert!(same_name(&a, &b));
            // One byte changed: as eq_ignore_ascii_case has it.
            let mut c = a.clone();
            if !c.is_empty() {
                let i = at % c.len();
                c[i] = other;
            }
            prop_assert_eq!(same_name(&a, &c), a.eq_ignore_ascii_case(&c));
            prop_assert_eq!(same_name(&a, &a[..a.len() / 2]), a.is_empty());
        }
    }

    #[test]
    fn names_differ_by_more_than_case() {
        assert!(same_name(b"Content-Length", b"content-length"));
        assert!(same_name(
            b"X-ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            b"x-abcdefghijklmnopqrstuvwxyz"
        ));
        for (a, b) in [
            (&b"a^b"[..], &b"a~b"[..]),
            (b"@", b"`"),
            (b"[", b"{"),
            (b"\xc1", b"\xe1"),
            (b"content-lengtH", b"content-lengtx"),
            (b"ab", b"abc"),
        ] {
            assert!(!same_name(a, b), "{a:?} {b:?}");
        }
    }

    /// Fields parsed from `text` (lines `name: value`), as a head's would be.
    fn fields(text: &str) -> Fields {
        let bytes = Bytes::copy_from_slice(text.as_bytes());
        let mut spans = Vec::new();
        let mut at = 0;
        for line in text.split_inclusive("\r\n") {
            let colon = line.find(':').unwrap();
            let value = line[colon + 1..].trim_end_matches("\r\n");
            let lead = value.len() - value.trim_start().len();
            let (v0, v1) = (at + colon + 1 + lead, at + colon + 1 + value.len());
            spans.push(Span::new(
                (at as u32, (at + colon) as u32),
                (v0 as u32, v1 as u32),
            ));
            at += line.len();
        }
        Fields::new(bytes, spans)
    }

    #[test]
    fn names_are_looked_up_without_case() {
        let f = fields("Content-Type: text/plain\r\nX-Request-ID: abc\r\n");
        assert_eq!(f.get("content-type"), Some(&b"text/plain"[..]));
        assert_eq!(f.get("CONTENT-TYPE"), Some(&b"text/plain"[..]));
        assert_eq!(f.get("x-request-id"), Some(&b"abc"[..]));
        assert_eq!(f.get("content-length"), None);
        assert!(f.contains("X-REQUEST-ID"));
        assert!(!f.contains("x-request"), "a prefix is not the name");
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn duplicates_are_kept_in_order() {
        let f = fields("Set-Cookie: a=1\r\nX: y\r\nset-cookie: b=2\r\n");
        let all: Vec<_> = f.get_all("set-cookie").collect();
        assert_eq!(all, [&b"a=1"[..], &b"b=2"[..]]);
        assert_eq!(f.get("Set-Cookie"), Some(&b"a=1"[..]), "the first");
        let mut out = Vec::new();
        f.write_to(&mut out, |_| false);
        assert_eq!(
            out, b"Set-Cookie: a=1\r\nX: y\r\nset-cookie: b=2\r\n",
            "written as received, names' case included"
        );
    }

    #[test]
    fn odd_spellings_are_written_plainly() {
        // No space after the colon, spaces around the value, a last line without its CRLF.
        let bytes = Bytes::from_static(b"A:1\r\nB:  2  \r\nC: 3");
        let f = Fields::new(
            bytes,
            vec![
                Span::new((0, 1), (2, 3)),
                Span::new((5, 6), (9, 10)),
                Span::new((14, 15), (17, 18)),
            ],
        );
        let mut out = Vec::new();
        f.write_to(&mut out, |_| false);
        assert_eq!(out, b"A: 1\r\nB: 2\r\nC: 3\r\n");
    }

    #[test]
    fn removed_and_skipped_fields_are_not_written() {
        let mut f = fields("Content-Length: 5\r\nA: 1\r\ncontent-length: 5\r\nB: 2\r\n");
        assert!(f.remove("CONTENT-LENGTH"));
        assert!(!f.remove("content-length"), "gone already");
        assert_eq!(f.len(), 2);
        let mut out = Vec::new();
        f.write_to(&mut out, |n| n.eq_ignore_ascii_case(b"a"));
        assert_eq!(out, b"B: 2\r\n");
        f.retain(|_, v| v != b"2");
        assert_eq!(f.iter().collect::<Vec<_>>(), [(&b"A"[..], &b"1"[..])]);
    }

    #[test]
    fn own_fields_come_from_a_map_and_can_be_added_to() {
        let mut map = HeaderMap::new();
        map.insert("content-type", HeaderValue::from_static("application/json"));
        map.append("vary", HeaderValue::from_static("a"));
        map.append("vary", HeaderValue::from_static("b"));
        let mut f = Fields::from(&map);
        f.append("connection", b"close");
        let mut out = Vec::new();
        f.write_to(&mut out, |_| false);
        assert_eq!(
            out,
            b"content-type: application/json\r\nvary: a\r\nvary: b\r\nconnection: close\r\n"
        );
        assert_eq!(f.get("Connection"), Some(&b"close"[..]));
    }

    #[test]
    fn spans_outside_the_bytes_are_left_out() {
        let f = Fields::new(
            Bytes::from_static(b"a: b"),
            vec![Span::new((0, 1), (3, 4)), Span::new((0, 1), (3, 9))],
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f.get("a"), Some(&b"b"[..]));
    }

    #[test]
    fn text_is_visible_ascii_only() {
        assert_eq!(to_str(b"text/plain; q=1\t"), Some("text/plain; q=1\t"));
        assert_eq!(to_str("caf\u{e9}".as_bytes()), None);
        assert_eq!(to_str(b"a\x7fb"), None);
        assert!(is_text(b"text/event-stream") && !is_text(b"a\rb"));
    }

    #[test]
    fn a_response_becomes_a_reply() {
        let mut r = Response::new(());
        *r.status_mut() = StatusCode::BAD_GATEWAY;
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
        let reply = Reply::from(r);
        assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
        assert_eq!(reply.fields.get("Retry-After"), Some(&b"1"[..]));
    }
}
