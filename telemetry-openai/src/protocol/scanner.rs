//! [`Scanner`]: a validating JSON reader for the few fields a recorder takes from each stream
//! event, without building anything for the rest.
//!
//! serde builds its probes field by field and skips the rest through its generic machinery:
//! for a ~200-byte chat chunk that was ~5.4 K instructions, most of a proxied stream's cost.
//! The scanner walks the bytes once, checks every value it passes (it accepts only what
//! serde_json accepts), and hands the caller the keys it asks about.
//!
//! Its walk is cheap where events spend their bytes: strings and digits pass eight bytes at a
//! time; keys are compared as bytes; UTF-8 is checked only in a string that holds a byte that
//! is not ASCII (outside strings JSON is ASCII, which the grammar checks). And where they spend
//! their tokens: the common cases (a member, a plain string, an unsigned integer) are inlined
//! into the caller's reading of its object, whose [`Scanner`] then lives in registers: the
//! out-of-line paths (escapes, other numbers, nested values skipped, rare objects read through
//! [`Scanner::apart`]) take the position by value and give it back.
//!
//! Every method returns `None` when the scanner is not sure: bytes that are not JSON, or JSON
//! whose reading by serde it does not reproduce exactly (an escaped key, a lone surrogate, a
//! number out of range, nesting deeper than [`MAX_DEPTH`], a value of an unexpected type, an
//! event that is not UTF-8). The caller then decodes the event with serde, whose answer stays
//! the reference: the fast path may decline, never differ (`protocol::oracle` checks this
//! against serde).

use std::borrow::Cow;

/// Deepest nesting the scanner follows; serde_json refuses beyond 128.
const MAX_DEPTH: u32 = 100;

/// Longest number a lenient skip accepts in a context serde parses as a value (a `flatten`ed
/// struct's unknown fields): beyond ~309 digits an integer overflows to an infinite float,
/// which serde_json refuses there.
const MAX_NUMBER_LEN: usize = 300;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The eight bytes at `pos`, as one little-endian word.
#[inline(always)]
fn word(bytes: &[u8], pos: usize) -> Option<u64> {
    let eight: [u8; 8] = bytes.get(pos..pos + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(eight))
}

/// Where the bytes `stops` marks (their high bits) begin in the word read at `pos`.
#[inline(always)]
fn first(pos: usize, stops: u64) -> usize {
    pos + (stops.trailing_zeros() / 8) as usize
}

/// Where the run of ordinary string bytes from `pos` ends: at a quote, a backslash, a control
/// character, a byte that is not ASCII, or the end. Eight bytes at a time (a token's text is a
/// few bytes: memchr's set-up cost more than the whole string, a byte loop ten instructions a
/// byte), each word read where the run stands, as [`digit_run`] does (setting up `chunks_exact`
/// over the rest of the input cost more than a short key's one word).
#[inline(always)]
fn plain_run(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(w) = word(bytes, pos) {
        // A byte `b` below 0x20 or a quote (0x22) is `b ^ 2` below 0x21, which the first
        // subtraction marks; a backslash is the zero of the second; a byte that is not ASCII
        // has its own high bit (and is all either term marks wrongly). Each term is exact up
        // to its first mark (a borrow marks only later bytes): the lowest mark is the stop.
        let stops = ((w ^ (ONES * 0x02)).wrapping_sub(ONES * 0x21)
            | (w ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES)
            | w)
            & HIGH;
        if stops != 0 {
            return first(pos, stops);
        }
        pos += 8;
    }
    while let Some(&b) = bytes.get(pos) {
        if b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b) {
            break;
        }
        pos += 1;
    }
    pos
}

/// Where the run of ASCII digits from `pos` ends.
#[inline(always)]
fn digit_run(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(w) = word(bytes, pos) {
        // Marks a byte above '9' (adding 0x46 carries into its high bit), below '0' (the
        // subtraction borrows) or not ASCII; a carry or borrow marks only later bytes.
        let stops =
            (w.wrapping_add(ONES * 0x46) | w.wrapping_sub(ONES * u64::from(b'0')) | w) & HIGH;
        if stops != 0 {
            return first(pos, stops);
        }
        pos += 8;
    }
    while bytes.get(pos).is_some_and(u8::is_ascii_digit) {
        pos += 1;
    }
    pos
}

/// A JSON string as it stands in the input, quotes included, escapes not decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawStr<'a> {
    quoted: &'a [u8],
    escaped: bool,
}

impl<'a> RawStr<'a> {
    /// Whether the string is `""` (an escape always decodes to at least one character).
    pub fn is_empty(&self) -> bool {
        self.quoted.len() == 2
    }

    /// The string `quoted` (quotes included), read before with `escaped` escapes or none.
    pub fn again(quoted: &'a [u8], escaped: bool) -> RawStr<'a> {
        RawStr { quoted, escaped }
    }

    /// Whether it has escapes.
    pub fn escaped(&self) -> bool {
        self.escaped
    }

    /// The string as it stands, quotes included.
    pub fn quoted(&self) -> &'a [u8] {
        self.quoted
    }

    /// The bytes between the quotes.
    fn inner(&self) -> &'a [u8] {
        self.quoted
            .get(1..self.quoted.len().saturating_sub(1))
            .unwrap_or_default()
    }

    /// The decoded text: borrowed when it has no escapes, else decoded by serde_json (so
    /// exactly as serde decodes it); `None` only if serde refuses it, which the scanner's
    /// checks rule out.
    pub fn decode(&self) -> Option<Cow<'a, str>> {
        if self.escaped {
            serde_json::from_slice::<String>(self.quoted)
                .ok()
                .map(Cow::Owned)
        } else {
            std::str::from_utf8(self.inner()).ok().map(Cow::Borrowed)
        }
    }

    /// The decoded text's bytes, borrowed when it has no escapes (UTF-8, which the scanner
    /// checked; for a caller that compares them with known words).
    pub fn bytes(&self) -> Option<Cow<'a, [u8]>> {
        if self.escaped {
            Some(Cow::Owned(self.decode()?.into_owned().into_bytes()))
        } else {
            Some(Cow::Borrowed(self.inner()))
        }
    }
}

/// A number's text, its grammar checked.
struct Number<'a> {
    text: &'a [u8],
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
    #[inline(always)]
    pub fn once(&mut self, bit: usize) -> Option<()> {
        let mask = 1 << bit;
        if self.0 & mask != 0 {
            return None;
        }
        self.0 |= mask;
        Some(())
    }
}

/// A member's key, as [`Scanner::object_keyed`] hands it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key<'a> {
    /// The key `known[i]` names.
    Known(usize),
    /// Any other key (no escapes), between its quotes.
    Other(&'a [u8]),
}

/// A cursor over one JSON document (one stream event's data).
#[derive(Clone)]
pub(crate) struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    depth: u32,
}

impl<'a> Scanner<'a> {
    /// A scanner over `data`.
    pub fn new(data: &'a [u8]) -> Scanner<'a> {
        Scanner {
            bytes: data,
            pos: 0,
            depth: 0,
        }
    }

    /// Runs `read` on a copy of the scanner and takes its position back: a reader that stays
    /// out of line (a rare object's, or a closure the compiler did not inline) then does not
    /// take this scanner out of registers.
    #[inline(always)]
    pub fn apart<T>(&mut self, read: impl FnOnce(&mut Scanner<'a>) -> Option<T>) -> Option<T> {
        let mut copy = Scanner { ..*self };
        let value = read(&mut copy)?;
        self.pos = copy.pos;
        Some(value)
    }

    /// The next byte after whitespace, not taken.
    #[inline(always)]
    fn peek(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        if b > b' ' {
            return Some(b);
        }
        self.pos = after_space(self.bytes, self.pos);
        self.bytes.get(self.pos).copied()
    }

    /// Takes `byte` if it comes next (after whitespace).
    #[inline(always)]
    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    /// After a member or an element: takes a comma (`Some(true)`: another follows) or `close`
    /// (`Some(false)`); anything else is not JSON.
    #[inline(always)]
    fn more(&mut self, close: u8) -> Option<bool> {
        let b = self.peek()?;
        self.pos += 1;
        if b == b',' {
            Some(true)
        } else {
            (b == close).then_some(false)
        }
    }

    /// The document ends here (only whitespace left).
    #[inline(always)]
    pub fn end(mut self) -> Option<()> {
        (self.peek().is_none()).then_some(())
    }

    #[inline(always)]
    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// Reads an object: each key, as bytes, goes to `field`, which must read its value. A key
    /// with an escape is not sure (serde would decode it, and it could name a field).
    #[inline(always)]
    pub fn object(
        &mut self,
        mut field: impl FnMut(&mut Self, &'a [u8]) -> Option<()>,
    ) -> Option<()> {
        self.members(|s, key| {
            if key.escaped {
                return None;
            }
            field(s, key.inner())
        })
    }

    /// Reads an object as [`object`](Self::object) does, for a caller that reads the members
    /// `known` names (each key with its quotes, `"usage"`) and skips the others: `field` gets
    /// each member's key as [`Key::Known`] (its index in `known`) or [`Key::Other`], and must
    /// read its value.
    ///
    /// A known key is taken by comparing the bytes where the member starts with it, without
    /// reading the key as a string then matching it (a key that has an escape is none of them,
    /// as for [`object`](Self::object)): a string that starts `"usage"` is that key, unescaped.
    /// `sift`: first tell the keys whose first letter no known key has from the rest (for an
    /// object whose members are mostly others).
    #[inline(always)]
    pub fn object_keyed<const N: usize>(
        &mut self,
        known: &[&[u8]; N],
        sift: bool,
        mut field: impl FnMut(&mut Self, Key<'a>) -> Option<()>,
    ) -> Option<()> {
        if self.open()? {
            loop {
                let key = self.keyed(known, sift)?;
                self.apart(|s| field(s, key))?;
                if !self.next_member()? {
                    break;
                }
            }
        }
        Some(())
    }

    /// A member's key (one of `known`, quoted, or any other without escapes) and its colon.
    #[inline(always)]
    fn keyed<const N: usize>(&mut self, known: &[&[u8]; N], sift: bool) -> Option<Key<'a>> {
        self.peek()?;
        // The known keys' first letters (one bit each, folded to a constant).
        let firsts = known.iter().fold(0u64, |m, k| m | letter(k.get(1)));
        if !sift || firsts & letter(self.bytes.get(self.pos + 1)) != 0 {
            for (i, quoted) in known.iter().enumerate() {
                if self.bytes.get(self.pos..self.pos + quoted.len()) == Some(quoted) {
                    self.pos += quoted.len();
                    return self.eat(b':').then_some(Key::Known(i));
                }
            }
        }
        self.key().map(Key::Other)
    }

    /// Reads an object, handing each key as it stands to `field`.
    #[inline(always)]
    fn members(
        &mut self,
        mut field: impl FnMut(&mut Self, RawStr<'a>) -> Option<()>,
    ) -> Option<()> {
        if self.open()? {
            loop {
                let key = self.string()?;
                if !self.eat(b':') {
                    return None;
                }
                self.apart(|s| field(s, key))?;
                if !self.next_member()? {
                    break;
                }
            }
        }
        Some(())
    }

    /// Opens an object (for a caller that walks its members itself, as [`members`] does):
    /// `Some(true)` when a member follows, `Some(false)` when it is `{}` (closed again).
    ///
    /// [`members`]: Self::members
    #[inline(always)]
    pub fn open(&mut self) -> Option<bool> {
        if !self.eat(b'{') {
            return None;
        }
        self.enter()?;
        if self.eat(b'}') {
            self.depth -= 1;
            return Some(false);
        }
        Some(true)
    }

    /// A member's key with no escape (see [`object`](Self::object)), and its colon.
    #[inline(always)]
    pub fn key(&mut self) -> Option<&'a [u8]> {
        let key = self.string()?;
        if key.escaped || !self.eat(b':') {
            return None;
        }
        Some(key.inner())
    }

    /// A member's key, any string (escapes too: a skipped object's keys name nothing), and
    /// its colon.
    #[inline(always)]
    fn member_key(&mut self) -> Option<()> {
        self.skip_string()?;
        self.eat(b':').then_some(())
    }

    /// After a member of an object [`open`](Self::open)ed: whether another follows; at the
    /// object's end it is closed.
    #[inline(always)]
    pub fn next_member(&mut self) -> Option<bool> {
        let more = self.more(b'}')?;
        if !more {
            self.depth -= 1;
        }
        Some(more)
    }

    /// Where the next token starts (after whitespace); `None` at the end.
    #[inline(always)]
    pub fn token_start(&mut self) -> Option<usize> {
        self.peek()?;
        Some(self.pos)
    }

    /// The first byte of the next value (after whitespace), not taken.
    #[inline(always)]
    pub fn peek_value(&mut self) -> Option<u8> {
        self.peek()
    }

    /// Where the scanner is.
    #[inline(always)]
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Passes bytes read before (a run of members the caller knows), up to `pos`.
    #[inline(always)]
    pub fn jump(&mut self, pos: usize) {
        self.pos = pos;
    }

    /// Reads an array, each element by `item`.
    #[inline(always)]
    pub fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        if !self.eat(b'[') {
            return None;
        }
        self.enter()?;
        if !self.eat(b']') {
            loop {
                self.apart(&mut item)?;
                if !self.more(b']')? {
                    break;
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    /// Takes `null` if it comes next: `Some(true)`; `Some(false)` for any other value (not
    /// taken).
    #[inline(always)]
    pub fn null(&mut self) -> Option<bool> {
        if self.peek()? != b'n' {
            return Some(false);
        }
        self.literal(b"null")?;
        Some(true)
    }

    #[inline(always)]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos + word.len();
        if self.bytes.get(self.pos..end)? != word {
            return None;
        }
        self.pos = end;
        Some(())
    }

    /// Reads a string: control characters refused, escapes checked as serde_json checks them
    /// when it decodes (a surrogate must be a proper pair), and a string with bytes that are
    /// not ASCII checked as UTF-8.
    #[inline(always)]
    pub fn string(&mut self) -> Option<RawStr<'a>> {
        self.peek()?;
        let start = self.pos;
        let escaped = self.skip_string()?;
        Some(RawStr {
            quoted: self.bytes.get(start..self.pos)?,
            escaped,
        })
    }

    /// Passes a string (after whitespace); whether it has escapes.
    #[inline(always)]
    fn skip_string(&mut self) -> Option<bool> {
        if self.peek()? != b'"' {
            return None;
        }
        let end = plain_run(self.bytes, self.pos + 1);
        if self.bytes.get(end) == Some(&b'"') {
            self.pos = end + 1;
            return Some(false);
        }
        let escaped;
        (self.pos, escaped) = string_rest(self.bytes, self.pos, end)?;
        Some(escaped)
    }

    /// A value `read` reads, or `null`.
    #[inline(always)]
    pub fn opt<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.null()? {
            return Some(None);
        }
        read(self).map(Some)
    }

    /// A string or `null`.
    #[inline(always)]
    pub fn opt_string(&mut self) -> Option<Option<RawStr<'a>>> {
        if self.null()? {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// A number, by JSON's grammar (serde_json's: no leading zeros, digits on both sides of
    /// the point, an exponent with digits). Inlined for an unsigned integer (counts, times,
    /// indices); the rest by [`number_rest`].
    #[inline(always)]
    fn number(&mut self) -> Option<Number<'a>> {
        let first = self.peek()?;
        let start = self.pos;
        let (end, plain, exponent) = if first.is_ascii_digit()
            && let end = digit_run(self.bytes, start + 1)
            && !matches!(self.bytes.get(end), Some(b'.' | b'e' | b'E'))
        {
            if first == b'0' && end > start + 1 {
                return None;
            }
            (end, true, false)
        } else {
            number_rest(self.bytes, start)?
        };
        self.pos = end;
        Some(Number {
            text: self.bytes.get(start..end)?,
            plain,
            exponent,
        })
    }

    /// An unsigned integer as serde reads a `u64` (a sign, fraction, exponent or overflow is
    /// not sure).
    #[inline(always)]
    pub fn u64(&mut self) -> Option<u64> {
        let n = self.number()?;
        if !n.plain {
            return None;
        }
        n.text.iter().try_fold(0u64, |n, &d| {
            n.checked_mul(10)?
                .checked_add(u64::from(d.wrapping_sub(b'0')))
        })
    }

    /// A `u64` or `null`.
    #[inline(always)]
    pub fn opt_u64(&mut self) -> Option<Option<u64>> {
        if self.null()? {
            return Some(None);
        }
        self.u64().map(Some)
    }

    /// A non-negative `i64` or `null` (a negative count is left to serde).
    #[inline(always)]
    pub fn opt_i64(&mut self) -> Option<Option<i64>> {
        if self.null()? {
            return Some(None);
        }
        let n = self.u64()?;
        i64::try_from(n).ok().map(Some)
    }

    /// An `f64` or `null`, as serde_json converts it (a short decimal by [`short_decimal`],
    /// the rest by serde_json itself: its rounding, its range).
    #[inline(always)]
    pub fn opt_f64(&mut self) -> Option<Option<f64>> {
        if self.null()? {
            return Some(None);
        }
        self.peek()?;
        if let Some((end, f)) = short_decimal(self.bytes, self.pos) {
            self.pos = end;
            return Some(Some(f));
        }
        let n = self.number()?;
        serde_json::from_slice(n.text).ok().map(Some)
    }

    /// Skips a value serde ignores (`IgnoredAny`: only its syntax is checked). A string or an
    /// unsigned integer inline, anything else out of line.
    #[inline(always)]
    pub fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string().map(drop),
            b'0'..=b'9' => self.number().map(drop),
            _ => {
                self.pos = skip_value(self.bytes, self.pos, self.depth, false)?;
                Some(())
            }
        }
    }

    /// Skips a value serde reads as a value all the same (the unknown fields of a struct with
    /// a `flatten`ed map): its numbers must also be in range.
    #[inline(always)]
    pub fn skip_checked(&mut self) -> Option<()> {
        self.pos = skip_value(self.bytes, self.pos, self.depth, true)?;
        Some(())
    }
}

/// A byte as one bit of a set of letters (bytes alike in their low six bits share it; none:
/// no bit).
#[inline(always)]
fn letter(byte: Option<&u8>) -> u64 {
    byte.map_or(0, |&b| 1 << (b & 63))
}

/// Where whitespace from `pos` ends.
#[inline(never)]
fn after_space(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = bytes.get(pos) {
        pos += 1;
    }
    pos
}

/// The rest of a string that starts at `start` (its quote) and whose plain run stopped at
/// `pos`, at something else than its closing quote: where it ends (after the quote) and
/// whether it has escapes.
#[inline(never)]
fn string_rest(bytes: &[u8], start: usize, mut pos: usize) -> Option<(usize, bool)> {
    let (mut escaped, mut ascii) = (false, true);
    loop {
        match *bytes.get(pos)? {
            b'"' => break,
            b'\\' => {
                escaped = true;
                pos = escape(bytes, pos)?;
            }
            0x80.. => {
                ascii = false;
                pos += 1;
            }
            _ => return None,
        }
        pos = plain_run(bytes, pos);
    }
    // Escapes are ASCII: the raw bytes are UTF-8 if and only if the decoded text is.
    if !ascii {
        std::str::from_utf8(bytes.get(start + 1..pos)?).ok()?;
    }
    Some((pos + 1, escaped))
}

/// One escape, at its backslash at `pos`; where the string goes on after it.
fn escape(bytes: &[u8], pos: usize) -> Option<usize> {
    match *bytes.get(pos + 1)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(pos + 2),
        b'u' => match hex4(bytes, pos + 2)? {
            0xDC00..=0xDFFF => None,
            0xD800..=0xDBFF => {
                if bytes.get(pos + 6..pos + 8)? != b"\\u" {
                    return None;
                }
                matches!(hex4(bytes, pos + 8)?, 0xDC00..=0xDFFF).then_some(pos + 12)
            }
            _ => Some(pos + 6),
        },
        _ => None,
    }
}

/// Four hex digits at `pos`.
fn hex4(bytes: &[u8], pos: usize) -> Option<u16> {
    bytes.get(pos..pos + 4)?.iter().try_fold(0u16, |n, &b| {
        let digit = char::from(b).to_digit(16)?;
        Some(n << 4 | u16::try_from(digit).ok()?)
    })
}

/// A number at `start`, by the whole grammar: where it ends, whether it is a plain unsigned
/// integer, whether it has an exponent.
#[inline(never)]
fn number_rest(bytes: &[u8], start: usize) -> Option<(usize, bool, bool)> {
    let mut pos = start;
    let negative = bytes.get(pos) == Some(&b'-');
    if negative {
        pos += 1;
    }
    let int_start = pos;
    pos = digit_run(bytes, pos);
    let int = pos - int_start;
    if int == 0 || (int > 1 && bytes.get(int_start) == Some(&b'0')) {
        return None;
    }
    let mut fraction = false;
    if bytes.get(pos) == Some(&b'.') {
        fraction = true;
        let from = pos + 1;
        pos = digit_run(bytes, from);
        if pos == from {
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
        let from = pos;
        pos = digit_run(bytes, from);
        if pos == from {
            return None;
        }
    }
    Some((pos, !(negative || fraction || exponent), exponent))
}

/// Powers of ten an `f64` holds exactly.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// The number at `start` when it is a decimal without exponent of at most 15 digits
/// (`-?(0|[1-9][0-9]*)(.[0-9]+)?`, then neither a point nor an exponent): where it ends, and
/// its value. Its digits `d` (below 2^53) and the `k` after the point make `d / 10^k` with
/// both exactly held, whose one IEEE division is the correctly rounded value serde_json
/// (`float_roundtrip`) gives too. `None` for any other number, and for what is not one (the
/// caller's general reading then decides), so that the number is read in one pass, its
/// digits as they are checked.
#[inline(always)]
fn short_decimal(bytes: &[u8], start: usize) -> Option<(usize, f64)> {
    let negative = bytes.get(start) == Some(&b'-');
    let int_start = start + usize::from(negative);
    let (int_end, int) = decimal_digits(bytes, int_start, 0);
    let digits = int_end - int_start;
    if digits == 0 || (digits > 1 && bytes.get(int_start) == Some(&b'0')) {
        return None;
    }
    let (end, mantissa) = match bytes.get(int_end) {
        Some(b'.') => decimal_digits(bytes, int_end + 1, int),
        _ => (int_end, int),
    };
    // The digits after the point (none without one).
    let fraction = end.saturating_sub(int_end + 1);
    if digits + fraction > 15
        || (end == int_end + 1)
        || matches!(bytes.get(end), Some(b'.' | b'e' | b'E'))
    {
        return None;
    }
    let f = mantissa as f64 / *POW10.get(fraction)?;
    Some((end, if negative { -f } else { f }))
}

/// The run of ASCII digits from `pos`, folded into `mantissa` as they come: where it ends,
/// and the mantissa (wrapped past 19 digits: a caller takes it only for 15 or fewer).
#[inline(always)]
fn decimal_digits(bytes: &[u8], mut pos: usize, mut mantissa: u64) -> (usize, u64) {
    while let Some(&b) = bytes.get(pos)
        && b.is_ascii_digit()
    {
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
        pos += 1;
    }
    (pos, mantissa)
}

/// Skips the value at `pos` (inside `depth` containers); where it ends. `checked`: its
/// numbers must be in range as well (see [`Scanner::skip_checked`]).
///
/// One loop over the value's tokens, its open containers kept as bits (a recursive walk paid
/// a call, a scanner's set-up and a dispatch for each nested value: ~9 instructions a byte
/// of a whole answer's `choices`). It accepts what the recursive walk it replaced accepted
/// (`skip_value_recursive` in the tests, which check the two agree).
#[inline(never)]
fn skip_value(bytes: &[u8], pos: usize, depth: u32, checked: bool) -> Option<usize> {
    let mut s = Scanner { bytes, pos, depth };
    // The containers open inside the value, the innermost in the lowest bit: 1 an object,
    // 0 an array. `MAX_DEPTH` (below 128) bounds how many there are.
    let mut objects: u128 = 0;
    loop {
        // A value.
        match s.peek()? {
            b'"' => drop(s.skip_string()?),
            b'{' => {
                s.pos += 1;
                s.enter()?;
                if !s.eat(b'}') {
                    objects = objects << 1 | 1;
                    s.member_key()?;
                    continue;
                }
                s.depth -= 1;
            }
            b'[' => {
                s.pos += 1;
                s.enter()?;
                if !s.eat(b']') {
                    objects <<= 1;
                    continue;
                }
                s.depth -= 1;
            }
            b't' => s.literal(b"true")?,
            b'f' => s.literal(b"false")?,
            b'n' => s.literal(b"null")?,
            b'-' | b'0'..=b'9' => {
                let n = s.number()?;
                if checked && (n.exponent || n.text.len() > MAX_NUMBER_LEN) {
                    return None;
                }
            }
            _ => return None,
        }
        // After a value: the containers it closes, up to the next value.
        loop {
            if s.depth == depth {
                return Some(s.pos);
            }
            let object = objects & 1 == 1;
            let b = s.peek()?;
            s.pos += 1;
            if b == b',' {
                if object {
                    s.member_key()?;
                }
                break;
            }
            if b != if object { b'}' } else { b']' } {
                return None;
            }
            objects >>= 1;
            s.depth -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The recursive walk [`skip_value`] replaced: the reference it must agree with.
    fn skip_value_recursive(bytes: &[u8], pos: usize, depth: u32, checked: bool) -> Option<usize> {
        let mut s = Scanner { bytes, pos, depth };
        let nested = |s: &mut Scanner<'_>| {
            s.pos = skip_value_recursive(s.bytes, s.pos, s.depth, checked)?;
            Some(())
        };
        match s.peek()? {
            b'"' => s.skip_string().map(drop),
            b'{' => s.members(|s, _| nested(s)),
            b'[' => s.array(nested),
            b't' => s.literal(b"true"),
            b'f' => s.literal(b"false"),
            b'n' => s.literal(b"null"),
            b'-' | b'0'..=b'9' => {
                let n = s.number()?;
                (!checked || !n.exponent && n.text.len() <= MAX_NUMBER_LEN).then_some(())
            }
            _ => None,
        }?;
        Some(s.pos)
    }

    /// The conversion [`short_decimal`] replaced: a number of at most 15 digits without
    /// exponent, its grammar checked before (the reference it must agree with).
    fn short_f64(text: &[u8]) -> Option<f64> {
        let (negative, digits) = match text.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, text),
        };
        let point = digits
            .iter()
            .position(|&b| b == b'.')
            .map(|i| digits.len() - i - 1);
        if digits.len() - usize::from(point.is_some()) > 15 {
            return None;
        }
        let mantissa = digits
            .iter()
            .filter(|&&b| b != b'.')
            .fold(0u64, |n, &b| n * 10 + u64::from(b.wrapping_sub(b'0')));
        let f = mantissa as f64 / *POW10.get(point.unwrap_or(0))?;
        Some(if negative { -f } else { f })
    }

    /// [`Scanner::opt_f64`] as it was before [`short_decimal`]: where it ends and the value's
    /// bits.
    fn opt_f64_before(bytes: &[u8]) -> Option<(usize, Option<u64>)> {
        let mut s = Scanner::new(bytes);
        if s.null()? {
            return Some((s.pos, None));
        }
        let n = s.number()?;
        let f = match short_f64(n.text) {
            Some(f) if !n.exponent => f,
            _ => serde_json::from_slice::<f64>(n.text).ok()?,
        };
        Some((s.pos, Some(f.to_bits())))
    }

    fn opt_f64_now(bytes: &[u8]) -> Option<(usize, Option<u64>)> {
        let mut s = Scanner::new(bytes);
        let f = s.opt_f64()?;
        Some((s.pos, f.map(f64::to_bits)))
    }

    /// Number-like text: a sign, digits, a point, digits, an exponent, then what follows,
    /// each part there or not, and any of them wrong now and then.
    fn number_text() -> impl Strategy<Value = String> {
        let digits = |n| prop::collection::vec(prop::sample::select(&b"0123456789"[..]), 0..n);
        let tail =
            prop::sample::select(vec!["", ",", "}", "]", " ", ".", "e", "E3", ".5", "x", "-"]);
        (
            prop::sample::select(vec!["", "-", "+", "--", " ", "\n"]),
            digits(20),
            prop::sample::select(vec!["", "", ".", ".."]),
            digits(20),
            prop::sample::select(vec![
                "", "", "e", "E", "e+", "e-", "e0", "e5", "E-3", "e400",
            ]),
            digits(4),
            tail,
        )
            .prop_map(|(sign, int, point, fraction, e, exp, tail)| {
                let text = |d: Vec<u8>| String::from_utf8(d).unwrap_or_default();
                let exp = if e.is_empty() {
                    String::new()
                } else {
                    text(exp)
                };
                format!("{sign}{}{point}{}{e}{exp}{tail}", text(int), text(fraction))
            })
    }

    proptest::proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Numbers read in one pass read as they were read before: the same value, bit for
        /// bit, to the same place; declined where they were declined.
        #[test]
        fn decimals_read_in_one_pass_read_as_before(text in number_text()) {
            prop_assert_eq!(opt_f64_now(text.as_bytes()), opt_f64_before(text.as_bytes()), "{:?}", text);
        }

        /// Any bytes from a number's alphabet, too.
        #[test]
        fn number_soup_reads_as_before(text in "[-+0-9.eE ,n]{0,24}") {
            prop_assert_eq!(opt_f64_now(text.as_bytes()), opt_f64_before(text.as_bytes()), "{:?}", text);
        }
    }

    #[test]
    fn decimals_read_in_one_pass_read_as_before_at_their_edges() {
        for text in [
            "0",
            "-0",
            "0.0",
            "-0.0",
            "12.5",
            "40.0",
            "1.",
            "1.e5",
            "-",
            "-.5",
            ".5",
            "01",
            "00.5",
            "0.000000000000001",
            "0.0000000000000001",
            "999999999999999",
            "9999999999999999",
            "99999999999999.9",
            "999999999999999.9",
            "1.5.3",
            "1.5e",
            "1.5e3",
            "1E3",
            "123456789012345678901234567890",
            "null",
            "nul",
            "",
            " 1.25 ",
            "1.25}",
        ] {
            assert_eq!(
                opt_f64_now(text.as_bytes()),
                opt_f64_before(text.as_bytes()),
                "{text:?}"
            );
        }
    }

    /// Pieces of JSON, right and wrong, that generated documents are made of.
    const PIECES: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        " ",
        "\n",
        "\"a\"",
        "\"k\":",
        "\"\\u00e9\\n\"",
        "\"\\ud83d\"",
        "\"\u{e9}\"",
        "\"\\x\"",
        "\"\u{1}\"",
        "0",
        "12",
        "01",
        "-",
        "-3.25",
        "1e5",
        "1.",
        "2E-3",
        "true",
        "false",
        "null",
        "nul",
        "tru",
        "\"",
        "x",
    ];

    /// A document: any value serde_json writes, its bytes then cut, or changed in one place
    /// to a piece; or pieces one after another.
    fn document() -> impl Strategy<Value = Vec<u8>> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            "[a-z\u{e9}\\\"\n]{0,6}".prop_map(serde_json::Value::from),
        ];
        let value = leaf.prop_recursive(6, 48, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::from),
                prop::collection::vec(("[a-z\\\"]{0,3}", inner), 0..5).prop_map(|members| {
                    serde_json::Value::Object(members.into_iter().collect())
                }),
            ]
        });
        let written =
            (value, any::<u16>(), any::<u16>(), 0..4u8).prop_map(|(v, at, piece, how)| {
                let mut bytes = serde_json::to_vec(&v).unwrap_or_default();
                let at = usize::from(at) % (bytes.len() + 1);
                let piece = PIECES[usize::from(piece) % PIECES.len()].as_bytes();
                match how {
                    0 => {}
                    1 => bytes.truncate(at),
                    2 => drop(bytes.splice(at..(at + 1).min(bytes.len()), piece.iter().copied())),
                    _ => drop(bytes.splice(at..at, piece.iter().copied())),
                }
                bytes
            });
        let pieces = prop::collection::vec(0..PIECES.len(), 0..24)
            .prop_map(|ids| ids.into_iter().flat_map(|i| PIECES[i].bytes()).collect());
        prop_oneof![written, pieces]
    }

    proptest::proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The loop skips what the recursive walk skipped, to the same place, from any place
        /// and depth, checked or not.
        #[test]
        fn the_skip_loop_agrees_with_the_recursive_walk(
            bytes in document(),
            from in any::<u16>(),
            depth in prop_oneof![Just(0u32), Just(1), 0..=MAX_DEPTH + 1, MAX_DEPTH - 3..=MAX_DEPTH],
            checked: bool,
        ) {
            for pos in [0, usize::from(from) % (bytes.len() + 1)] {
                prop_assert_eq!(
                    skip_value(&bytes, pos, depth, checked),
                    skip_value_recursive(&bytes, pos, depth, checked),
                    "{:?} from {} at depth {}", String::from_utf8_lossy(&bytes), pos, depth
                );
            }
        }
    }

    /// The keys [`keyed_reads_as_object`] looks for.
    const KNOWN: [&[u8]; 4] = [
        b"\"usage\"",
        b"\"model\"",
        b"\"prompt_n\"",
        b"\"prompt_ms\"",
    ];

    /// Reads `json` as an object with [`Scanner::object`] and with [`Scanner::object_keyed`]
    /// (looking for [`KNOWN`]), each key's value skipped: the keys each met, and where each
    /// ended (`None` where it declined).
    fn keyed_and_plain(json: &[u8], sift: bool) -> [Option<(Vec<Vec<u8>>, usize)>; 2] {
        let plain = {
            let mut s = Scanner::new(json);
            let mut keys = Vec::new();
            s.object(|s, key| {
                keys.push(key.to_vec());
                s.skip()
            })
            .map(|()| (keys, s.pos))
        };
        let keyed = {
            let mut s = Scanner::new(json);
            let mut keys = Vec::new();
            s.object_keyed(&KNOWN, sift, |s, key| {
                keys.push(match key {
                    Key::Known(i) => KNOWN[i][1..KNOWN[i].len() - 1].to_vec(),
                    Key::Other(other) => {
                        // Another key is none of the known ones.
                        if KNOWN.iter().any(|k| &k[1..k.len() - 1] == other) {
                            return None;
                        }
                        other.to_vec()
                    }
                });
                s.skip()
            })
            .map(|()| (keys, s.pos))
        };
        [keyed, plain]
    }

    /// An object of keys near the known ones: the same, escaped, longer, shorter, or sharing
    /// a first letter, with spaces about, now and then cut or changed in one place.
    fn keyed_object() -> impl Strategy<Value = Vec<u8>> {
        let key = prop::sample::select(vec![
            "\"usage\"",
            "\"model\"",
            "\"prompt_n\"",
            "\"prompt_ms\"",
            "\"usages\"",
            "\"usag\"",
            "\"model_\"",
            "\"mode\"",
            "\"prompt_\"",
            "\"prompt_n_x\"",
            "\"prompt_msx\"",
            "\"\\u0075sage\"",
            "\"mod\\u0065l\"",
            "\"u\"",
            "\"\"",
            "\"p\"",
            "\"id\"",
            "\"x\\\"y\"",
            "\"prompt_n",
            "\"usage",
            "\"m\u{e9}\"",
            "\"usage\\n\"",
        ]);
        let space = prop::sample::select(vec!["", "", " ", "\n\t"]);
        let value = prop::sample::select(vec![
            "1",
            "\"v\"",
            "null",
            "[1,{\"a\":2}]",
            "{}",
            "-1.5",
            "x",
        ]);
        let member = (space.clone(), key, space.clone(), value)
            .prop_map(|(a, k, b, v)| format!("{a}{k}{b}:{v}"));
        (
            prop::collection::vec(member, 0..6),
            space,
            any::<u16>(),
            0..4u8,
            any::<u8>(),
        )
            .prop_map(|(members, end, at, how, byte)| {
                let mut bytes = format!("{{{}{end}}}", members.join(",")).into_bytes();
                let at = usize::from(at) % bytes.len();
                match how {
                    0 => bytes.truncate(at),
                    1 => bytes[at] = byte,
                    _ => {}
                }
                bytes
            })
    }

    proptest::proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Keys taken by comparison read as keys read as strings then matched.
        #[test]
        fn keyed_reads_as_object(json in keyed_object(), sift: bool) {
            let [keyed, plain] = keyed_and_plain(&json, sift);
            prop_assert_eq!(keyed, plain, "{:?}", String::from_utf8_lossy(&json));
        }
    }

    #[test]
    fn the_skip_loop_agrees_with_the_recursive_walk_on_deep_and_wide_values() {
        let mut cases: Vec<String> = Vec::new();
        for n in [1, 2, 99, 100, 101, 127, 128, 129, 200] {
            cases.push("[".repeat(n) + &"]".repeat(n));
            cases.push("[".repeat(n) + "1" + &"]".repeat(n));
            cases.push("{\"a\":".repeat(n) + "{}" + &"}".repeat(n));
            cases.push("[{\"a\":".repeat(n) + "0" + &"}]".repeat(n));
            cases.push("[".repeat(n) + &"]".repeat(n - 1));
        }
        cases.push(r#"{"a":[1,2,{"b":"c","d":[true,false,null,-1.5e3]}],"e":{}} x"#.into());
        cases.push(r#" { "a" : [ 1 , { } , [ ] ] , "\u0062" : "\ud83d\ude00" } "#.into());
        cases.push(format!("[{}]", "1".repeat(MAX_NUMBER_LEN + 1)));
        cases.push(format!("[{}]", "1".repeat(MAX_NUMBER_LEN)));
        for case in &cases {
            for depth in [0, 1, 50, MAX_DEPTH - 1, MAX_DEPTH] {
                for checked in [false, true] {
                    assert_eq!(
                        skip_value(case.as_bytes(), 0, depth, checked),
                        skip_value_recursive(case.as_bytes(), 0, depth, checked),
                        "{case} at depth {depth}"
                    );
                }
            }
        }
    }

    fn skips(json: &str) -> bool {
        let mut s = Scanner::new(json.as_bytes());
        s.skip().is_some() && s.end().is_some()
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
            " \t\"after whitespace\"",
            "\"caf\u{e9} \u{1f600}\"",
        ] {
            let mut s = Scanner::new(case.as_bytes());
            let raw = s.string().unwrap();
            let serde: String = serde_json::from_str(case).unwrap();
            assert_eq!(raw.decode().unwrap(), serde);
            assert_eq!(raw.is_empty(), serde.is_empty());
            assert_eq!(raw.escaped, case.contains('\\'));
            assert_eq!(raw.quoted, case.trim_start().as_bytes());
        }
    }

    /// Bytes that are not UTF-8 inside a string are declined (serde would refuse them in a
    /// string it reads, and skip them in one it ignores: either way, serde decides).
    #[test]
    fn a_string_that_is_not_utf8_is_declined() {
        for case in [
            &b"\"\xff\""[..],
            b"\"ab\xe2\x82\"",
            b"\"\xc3\xa9\\n\xc0\x80\"",
        ] {
            assert!(Scanner::new(case).string().is_none(), "{case:?}");
            assert!(!skips_bytes(case), "{case:?}");
        }
        let fine = "[\"\u{e9}\\n\u{1f600}\", \"\u{20ac}\"]";
        assert!(skips_bytes(fine.as_bytes()));
    }

    fn skips_bytes(json: &[u8]) -> bool {
        let mut s = Scanner::new(json);
        s.skip().is_some() && s.end().is_some()
    }

    #[test]
    fn a_plain_run_stops_at_the_first_special_byte() {
        let text = b"abcdefghijklmnop\"q\\r\x01s\xc3\xa9\x7f\x1f";
        for start in 0..text.len() {
            let expected = (start..text.len())
                .find(|&i| matches!(text[i], b'"' | b'\\' | 0..=0x1f | 0x80..))
                .unwrap_or(text.len());
            assert_eq!(plain_run(text, start), expected, "from {start}");
        }
    }

    /// Every byte value, at every place of a word, then every byte value after it: the runs
    /// stop exactly at the first byte they must stop at (a borrow or carry from one byte
    /// must not mark an earlier one, nor hide the first).
    #[test]
    fn the_word_tricks_stop_at_the_first_byte_they_must() {
        let string_stop = |b: u8| b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b);
        let digit_stop = |b: u8| !b.is_ascii_digit();
        for at in 0..8 {
            for first in 0..=255u8 {
                for second in 0..=255u8 {
                    let mut word = [b'a'; 12];
                    word[at] = first;
                    word[at + 1] = second;
                    let want = (0..12).find(|&i| string_stop(word[i])).unwrap_or(12);
                    assert_eq!(plain_run(&word, 0), want, "{word:?}");
                    let mut digits = [b'7'; 12];
                    digits[at] = first;
                    digits[at + 1] = second;
                    let want = (0..12).find(|&i| digit_stop(digits[i])).unwrap_or(12);
                    assert_eq!(digit_run(&digits, 0), want, "{digits:?}");
                }
            }
        }
    }

    proptest::proptest! {
        /// Short decimals convert as serde_json converts them, bit for bit.
        #[test]
        fn short_decimals_convert_as_serde_converts_them(
            mantissa in 0u64..1_000_000_000_000_000,
            digits in 1usize..=16,
            point in 0usize..=16,
            negative: bool,
        ) {
            let text = format!("{}", mantissa % 10u64.pow(digits.min(15) as u32));
            let text = if point > 0 && point < text.len() {
                format!("{}.{}", &text[..text.len() - point], &text[text.len() - point..])
            } else if point > 0 {
                format!("0.{}{text}", "0".repeat(point.saturating_sub(text.len())))
            } else {
                text
            };
            let text = if negative { format!("-{text}") } else { text };
            let serde: f64 = serde_json::from_str(&text).unwrap();
            let fast = Scanner::new(text.as_bytes()).opt_f64().unwrap().unwrap();
            proptest::prop_assert_eq!(fast.to_bits(), serde.to_bits(), "{}", text);
        }
    }

    #[test]
    fn numbers_are_read_or_declined() {
        let u = |t: &str| Scanner::new(t.as_bytes()).u64();
        assert_eq!(u("18446744073709551615"), Some(u64::MAX));
        assert_eq!(u("18446744073709551616"), None);
        assert_eq!((u("-1"), u("1.0"), u("1e2")), (None, None, None));
        let f = |t: &str| Scanner::new(t.as_bytes()).opt_f64();
        assert_eq!(f("12.5"), Some(Some(12.5)));
        assert_eq!(f("null"), Some(None));
        assert_eq!(f("1e400"), None);
        assert_eq!(
            f("-0").map(|v| v.map(f64::is_sign_negative)),
            Some(Some(true))
        );
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(!skips(&deep), "deeper than serde_json goes");
        let mut checked = Scanner::new(b"[1e5]");
        assert!(checked.skip_checked().is_none());
    }
}
