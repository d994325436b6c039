//! [`Scanner`]: a validating JSON reader for the few fields a recorder takes from each stream
//! event, without building anything for the rest.
//!
//! serde builds its probes field by field and skips the rest through its generic machinery:
//! for a ~200-byte chat chunk that was ~5.4 K instructions, most of a proxied stream's cost.
//! The scanner walks the bytes once (3.8 K for the same chunk), checks every value it passes
//! (it accepts only what serde_json accepts), and hands the caller the keys it asks about.
//!
//! Every method returns `None` when the scanner is not sure: bytes that are not JSON, or JSON
//! whose reading by serde it does not reproduce exactly (an escaped key, a lone surrogate, a
//! number out of range, nesting deeper than [`MAX_DEPTH`], a value of an unexpected type). The
//! caller then decodes the event with serde, whose answer stays the reference: the fast path
//! may decline, never differ (`protocol::oracle` checks this against serde).

use std::borrow::Cow;

/// Deepest nesting the scanner follows; serde_json refuses beyond 128.
const MAX_DEPTH: u32 = 100;

/// Longest number a lenient skip accepts in a context serde parses as a value (a `flatten`ed
/// struct's unknown fields): beyond ~309 digits an integer overflows to an infinite float,
/// which serde_json refuses there.
const MAX_NUMBER_LEN: usize = 300;

/// Where the run of ordinary string bytes from `pos` ends: at a quote, a backslash, a control
/// character or the end. Eight bytes at a time (a token's text is a few bytes: memchr's set-up
/// cost more than the whole string, a byte loop ten instructions a byte).
fn plain_run(bytes: &[u8], mut pos: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `w` that is zero: exact up to the first such byte (a borrow
    // can only mark bytes after it), which is all that is needed.
    let zeros = |w: u64| w.wrapping_sub(ONES) & !w & HIGH;
    while let Some(word) = bytes.get(pos..pos + 8) {
        let mut w = [0; 8];
        w.copy_from_slice(word);
        let w = u64::from_le_bytes(w);
        let stops = zeros(w ^ (ONES * u64::from(b'"')))
            | zeros(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
        if stops != 0 {
            return pos + (stops.trailing_zeros() / 8) as usize;
        }
        pos += 8;
    }
    while let Some(&b) = bytes.get(pos) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            break;
        }
        pos += 1;
    }
    pos
}

/// A JSON string as it stands in the input, quotes included, escapes not decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawStr<'a> {
    quoted: &'a str,
    escaped: bool,
}

impl<'a> RawStr<'a> {
    /// Whether the string is `""` (an escape always decodes to at least one character).
    pub fn is_empty(&self) -> bool {
        self.quoted.len() == 2
    }

    /// The decoded text: borrowed when it has no escapes, else decoded by serde_json (so
    /// exactly as serde decodes it); `None` only if serde refuses it, which the scanner's
    /// checks rule out.
    pub fn decode(&self) -> Option<Cow<'a, str>> {
        if self.escaped {
            serde_json::from_str::<String>(self.quoted)
                .ok()
                .map(Cow::Owned)
        } else {
            self.quoted
                .get(1..self.quoted.len().saturating_sub(1))
                .map(Cow::Borrowed)
        }
    }
}

/// A number's text, its grammar checked.
struct Number<'a> {
    text: &'a str,
    /// Has a sign, a fraction or an exponent: not a plain unsigned integer.
    plain: bool,
    exponent: bool,
}

/// Which keys of one object were met: a known key met twice is serde's `duplicate field`
/// error, so the scanner declines.
#[derive(Debug, Default)]
pub(crate) struct Keys(u32);

impl Keys {
    /// Notes key number `bit`; `None` when it was met before.
    pub fn once(&mut self, bit: u32) -> Option<()> {
        let mask = 1 << bit;
        if self.0 & mask != 0 {
            return None;
        }
        self.0 |= mask;
        Some(())
    }
}

/// A cursor over one JSON document (one stream event's data).
pub(crate) struct Scanner<'a> {
    text: &'a str,
    pos: usize,
    depth: u32,
}

impl<'a> Scanner<'a> {
    /// A scanner over `data`; `None` unless it is UTF-8 (serde reads other bytes differently).
    pub fn new(data: &'a [u8]) -> Option<Scanner<'a>> {
        Some(Scanner {
            text: std::str::from_utf8(data).ok()?,
            pos: 0,
            depth: 0,
        })
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The next byte after whitespace, not taken.
    fn peek(&mut self) -> Option<u8> {
        let bytes = self.bytes();
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = bytes.get(self.pos) {
            self.pos += 1;
        }
        bytes.get(self.pos).copied()
    }

    /// Takes `byte` if it comes next (after whitespace).
    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    /// The document ends here (only whitespace left).
    pub fn end(mut self) -> Option<()> {
        (self.peek().is_none()).then_some(())
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// Reads an object: each key goes to `field`, which must read its value. A key with an
    /// escape is not sure (serde would decode it, and it could name a field).
    pub fn object(
        &mut self,
        mut field: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        self.members(|s, key| {
            if key.escaped {
                return None;
            }
            field(s, key.quoted.get(1..key.quoted.len() - 1)?)
        })
    }

    /// Reads an object, handing each key as it stands to `field`.
    fn members(
        &mut self,
        mut field: impl FnMut(&mut Self, RawStr<'a>) -> Option<()>,
    ) -> Option<()> {
        if !self.eat(b'{') {
            return None;
        }
        self.enter()?;
        if !self.eat(b'}') {
            loop {
                let key = self.string()?;
                if !self.eat(b':') {
                    return None;
                }
                field(self, key)?;
                if self.eat(b'}') {
                    break;
                }
                if !self.eat(b',') {
                    return None;
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    /// Reads an array, each element by `item`.
    pub fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        if !self.eat(b'[') {
            return None;
        }
        self.enter()?;
        if !self.eat(b']') {
            loop {
                item(self)?;
                if self.eat(b']') {
                    break;
                }
                if !self.eat(b',') {
                    return None;
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    /// Takes `null` if it comes next: `Some(true)`; `Some(false)` for any other value (not
    /// taken).
    pub fn null(&mut self) -> Option<bool> {
        if self.peek()? != b'n' {
            return Some(false);
        }
        self.literal("null")?;
        Some(true)
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let end = self.pos + word.len();
        if self.bytes().get(self.pos..end)? != word.as_bytes() {
            return None;
        }
        self.pos = end;
        Some(())
    }

    /// Reads a string: control characters refused and escapes checked as serde_json checks
    /// them when it decodes (a surrogate must be a proper pair).
    pub fn string(&mut self) -> Option<RawStr<'a>> {
        if self.peek()? != b'"' {
            return None;
        }
        let bytes = self.bytes();
        let start = self.pos;
        let mut pos = start + 1;
        let mut escaped = false;
        loop {
            pos = plain_run(bytes, pos);
            match *bytes.get(pos)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.pos = pos;
                    self.escape()?;
                    pos = self.pos;
                }
                _ => return None,
            }
        }
        self.pos = pos + 1;
        Some(RawStr {
            quoted: self.text.get(start..self.pos)?,
            escaped,
        })
    }

    /// A value `read` reads, or `null`.
    #[inline]
    pub fn opt<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.null()? {
            return Some(None);
        }
        read(self).map(Some)
    }

    /// A string or `null`.
    pub fn opt_string(&mut self) -> Option<Option<RawStr<'a>>> {
        if self.null()? {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// One escape, at its backslash.
    fn escape(&mut self) -> Option<()> {
        let kind = *self.bytes().get(self.pos + 1)?;
        self.pos += 2;
        match kind {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(()),
            b'u' => match self.hex4()? {
                0xDC00..=0xDFFF => None,
                0xD800..=0xDBFF => {
                    if self.bytes().get(self.pos..self.pos + 2)? != b"\\u" {
                        return None;
                    }
                    self.pos += 2;
                    matches!(self.hex4()?, 0xDC00..=0xDFFF).then_some(())
                }
                _ => Some(()),
            },
            _ => None,
        }
    }

    fn hex4(&mut self) -> Option<u16> {
        let digits = self.text.get(self.pos..self.pos + 4)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.pos += 4;
        u16::from_str_radix(digits, 16).ok()
    }

    /// A number, by JSON's grammar (serde_json's: no leading zeros, digits on both sides of
    /// the point, an exponent with digits).
    fn number(&mut self) -> Option<Number<'a>> {
        self.peek()?;
        let bytes = self.bytes();
        let start = self.pos;
        let mut pos = start;
        let digits = |pos: &mut usize| {
            let from = *pos;
            while bytes.get(*pos).is_some_and(u8::is_ascii_digit) {
                *pos += 1;
            }
            *pos - from
        };
        let negative = bytes.get(pos) == Some(&b'-');
        if negative {
            pos += 1;
        }
        let int = digits(&mut pos);
        if int == 0 || (int > 1 && bytes.get(pos - int) == Some(&b'0')) {
            return None;
        }
        let mut fraction = false;
        if bytes.get(pos) == Some(&b'.') {
            pos += 1;
            fraction = true;
            if digits(&mut pos) == 0 {
                return None;
            }
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = bytes.get(pos) {
            pos += 1;
            exponent = true;
            if let Some(b'+' | b'-') = bytes.get(pos) {
                pos += 1;
            }
            if digits(&mut pos) == 0 {
                return None;
            }
        }
        self.pos = pos;
        Some(Number {
            text: self.text.get(start..pos)?,
            plain: !(negative || fraction || exponent),
            exponent,
        })
    }

    /// An unsigned integer as serde reads a `u64` (a sign, fraction, exponent or overflow is
    /// not sure).
    pub fn u64(&mut self) -> Option<u64> {
        let n = self.number()?;
        if !n.plain {
            return None;
        }
        n.text.parse().ok()
    }

    /// A `u64` or `null`.
    pub fn opt_u64(&mut self) -> Option<Option<u64>> {
        if self.null()? {
            return Some(None);
        }
        self.u64().map(Some)
    }

    /// A non-negative `i64` or `null` (a negative count is left to serde).
    pub fn opt_i64(&mut self) -> Option<Option<i64>> {
        if self.null()? {
            return Some(None);
        }
        let n = self.u64()?;
        i64::try_from(n).ok().map(Some)
    }

    /// An `f64` or `null`, converted by serde_json itself (its rounding, its range).
    pub fn opt_f64(&mut self) -> Option<Option<f64>> {
        if self.null()? {
            return Some(None);
        }
        let n = self.number()?;
        serde_json::from_str(n.text).ok().map(Some)
    }

    /// Skips a value serde ignores (`IgnoredAny`: only its syntax is checked).
    pub fn skip(&mut self) -> Option<()> {
        self.skip_value(false)
    }

    /// Skips a value serde reads as a value all the same (the unknown fields of a struct with
    /// a `flatten`ed map): its numbers must also be in range.
    pub fn skip_checked(&mut self) -> Option<()> {
        self.skip_value(true)
    }

    fn skip_value(&mut self, checked: bool) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.members(|s, _| s.skip_value(checked)),
            b'[' => self.array(|s| s.skip_value(checked)),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            b'-' | b'0'..=b'9' => {
                let n = self.number()?;
                (!checked || !n.exponent && n.text.len() <= MAX_NUMBER_LEN).then_some(())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skips(json: &str) -> bool {
        Scanner::new(json.as_bytes()).is_some_and(|mut s| s.skip().is_some() && s.end().is_some())
    }

    #[test]
    fn it_accepts_only_what_serde_json_accepts() {
        let cases = [
            r#"{"a":[1,-2,3.5,-0.25e-3,1E+9,true,false,null,"x\n\u00e9\ud83d\ude00"],"b":{}}"#,
            " [ ] ",
            "0",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "1e+",
            "[1,]",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            "\"\u{1}\"",
            r#""\x""#,
            r#""\u12""#,
            r#""\ud83d""#,
            r#""\ude00""#,
            r#""\ud83d\u0041""#,
            "tru",
            "nul",
            "[1] x",
            "",
        ];
        for case in cases {
            let serde = serde_json::from_str::<serde_json::Value>(case).is_ok();
            assert_eq!(skips(case), serde, "{case:?}");
        }
    }

    #[test]
    fn strings_decode_as_serde_decodes_them() {
        for case in [
            r#""plain""#,
            r#""""#,
            r#""a\"b\\c\/\b\f\n\r\t\u00e9\ud83d\ude00""#,
        ] {
            let mut s = Scanner::new(case.as_bytes()).unwrap();
            let raw = s.string().unwrap();
            let serde: String = serde_json::from_str(case).unwrap();
            assert_eq!(raw.decode().unwrap(), serde);
            assert_eq!(raw.is_empty(), serde.is_empty());
            assert_eq!(raw.escaped, case.contains('\\'));
        }
    }

    #[test]
    fn a_plain_run_stops_at_the_first_special_byte() {
        let text = b"abcdefghijklmnop\"q\\r\x01s\xc3\xa9\x7f\x1f";
        for start in 0..text.len() {
            let expected = (start..text.len())
                .find(|&i| matches!(text[i], b'"' | b'\\' | 0..=0x1f))
                .unwrap_or(text.len());
            assert_eq!(plain_run(text, start), expected, "from {start}");
        }
    }

    #[test]
    fn numbers_are_read_or_declined() {
        let u = |t: &str| Scanner::new(t.as_bytes()).unwrap().u64();
        assert_eq!(u("18446744073709551615"), Some(u64::MAX));
        assert_eq!(u("18446744073709551616"), None);
        assert_eq!((u("-1"), u("1.0"), u("1e2")), (None, None, None));
        let f = |t: &str| Scanner::new(t.as_bytes()).unwrap().opt_f64();
        assert_eq!(f("12.5"), Some(Some(12.5)));
        assert_eq!(f("null"), Some(None));
        assert_eq!(f("1e400"), None);
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(!skips(&deep), "deeper than serde_json goes");
        let mut checked = Scanner::new(b"[1e5]").unwrap();
        assert!(checked.skip_checked().is_none());
    }
}
