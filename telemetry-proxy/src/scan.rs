//! [`BodyScan`]: the `model` and `stream` of a JSON request body, found wherever they are in its
//! top-level object, by a streaming scan that is fed the body piece by piece as it arrives; and
//! where its object opens and its `stream_options` value lies, for asking the upstream for usage
//! ([`crate::inject`]).
//!
//! JSON key order is the client's choice: a request may put a many-megabyte `messages` (a base64
//! image) before `model`. The scan keeps no copy of the body — only the bytes of the top-level
//! key being read and of the `model`, `stream` and `stream_options` values (each bounded) — and
//! skips everything else, strings included, at memchr speed. It is not a JSON validator: it follows strings,
//! escapes and nesting well enough to know which keys are at the top level, and leaves the
//! rest of the judging to the upstream.

/// Longest `model` value kept (bytes as written in the body, escapes included).
pub(crate) const MAX_MODEL_BYTES: usize = 4096;
/// Longest top-level key compared with `model` / `stream` (longer keys are other keys).
const MAX_KEY_BYTES: usize = 64;
/// Longest literal kept for `stream` (`true`, `false`, `null`).
const MAX_LITERAL_BYTES: usize = 8;
/// Longest `stream_options` value kept (a longer one is not rewritten).
pub(crate) const MAX_STREAM_OPTIONS_BYTES: usize = 1024;

/// The top-level `stream_options` of a body, as far as the scan has read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum StreamOptionsSeen {
    /// Not (yet) seen.
    #[default]
    Absent,
    /// Its value: at `start..end` of the body (`end` once it has ended), its bytes (`None`
    /// when longer than [`MAX_STREAM_OPTIONS_BYTES`]).
    Value {
        start: u64,
        end: Option<u64>,
        raw: Option<Vec<u8>>,
    },
    /// Given twice: which one the server takes is its own choice.
    Twice,
}

/// Why a body cannot be read as a JSON object with a usable `model`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ScanError {
    /// Not a JSON object (at this byte offset).
    #[error("the body is not a JSON object (unexpected byte {byte:#04x} at offset {offset})")]
    NotAnObject {
        /// Offset of the offending byte.
        offset: u64,
        /// The byte.
        byte: u8,
    },
    /// `model` is not a string, or not one the scan can keep.
    #[error("`model` is {0}")]
    BadModel(&'static str),
    /// `model` appears twice with different values (the proxy would route by one, the server
    /// might answer with the other).
    #[error("`model` is given twice, as {first:?} and {second:?}")]
    TwoModels {
        /// The first value.
        first: String,
        /// The second value.
        second: String,
    },
}

/// Which top-level key's value is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Model,
    Stream,
    StreamOptions,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening `{`.
    Start,
    /// Inside the top-level object, where a key or `}` comes next.
    KeyOrEnd,
    /// Inside a top-level key's string.
    InKey { escaped: bool },
    /// After a key, before `:`.
    Colon,
    /// After `:`, before the value.
    Value,
    /// Inside a top-level string value.
    InString { escaped: bool },
    /// Inside a nested object or array, `depth` levels deep.
    Nested {
        depth: u32,
        in_string: bool,
        escaped: bool,
    },
    /// Inside a number or literal at the top level.
    Literal,
    /// After a value, before `,` or `}`.
    CommaOrEnd,
    /// The top-level object is closed.
    Done,
    /// The body is not what the scan can read.
    Failed,
}

/// A streaming scan of one request body.
#[derive(Debug)]
pub(crate) struct BodyScan {
    state: State,
    offset: u64,
    /// The top-level key being read, as written (escapes included), up to its bound.
    key: [u8; MAX_KEY_BYTES],
    key_len: usize,
    key_long: bool,
    current: Key,
    value: Vec<u8>,
    value_long: bool,
    model: Option<String>,
    stream: Option<bool>,
    error: Option<ScanError>,
    /// Offset of the top-level object's `{`.
    object_at: Option<u64>,
    stream_options: StreamOptionsSeen,
}

impl Default for BodyScan {
    fn default() -> Self {
        BodyScan {
            state: State::Start,
            offset: 0,
            key: [0; MAX_KEY_BYTES],
            key_len: 0,
            key_long: false,
            current: Key::Other,
            value: Vec::with_capacity(32),
            value_long: false,
            model: None,
            stream: None,
            error: None,
            object_at: None,
            stream_options: StreamOptionsSeen::Absent,
        }
    }
}

impl BodyScan {
    /// Whether the top-level object has been read to its end.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Why the scan stopped, if the body is not what it can read.
    pub fn error(&self) -> Option<&ScanError> {
        self.error.as_ref()
    }

    /// The `model` found so far (a non-empty string).
    #[cfg(test)]
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref().filter(|m| !m.is_empty())
    }

    /// Takes the `model` found (a non-empty string) out of the scan.
    pub fn take_model(&mut self) -> Option<String> {
        self.model.take().filter(|m| !m.is_empty())
    }

    /// Whether a `model` key has been read (an empty string included).
    pub fn has_model(&self) -> bool {
        self.model.is_some()
    }

    /// `stream: true` was read.
    pub fn stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// Offset of the top-level object's opening `{`.
    pub fn object_at(&self) -> Option<u64> {
        self.object_at
    }

    /// The top-level `stream_options` read so far.
    pub fn stream_options(&self) -> &StreamOptionsSeen {
        &self.stream_options
    }

    /// Whether a later `model` could still change what the scan says (it has not ended).
    pub fn is_open(&self) -> bool {
        !matches!(self.state, State::Done | State::Failed)
    }

    fn fail(&mut self, error: ScanError) {
        self.error.get_or_insert(error);
        self.state = State::Failed;
    }

    /// Reads the next piece of the body.
    pub fn feed(&mut self, data: &[u8]) {
        let mut i = 0;
        while i < data.len() {
            if !self.is_open() {
                return;
            }
            i = self.step(data, i);
        }
    }

    /// Reads from `data[i..]`; returns the index of the next unread byte.
    fn step(&mut self, data: &[u8], i: usize) -> usize {
        let b = data[i];
        let next = i + 1;
        match self.state {
            State::Start => match b {
                b' ' | b'\t' | b'\r' | b'\n' => {}
                b'{' => {
                    self.object_at = Some(self.offset);
                    self.state = State::KeyOrEnd;
                }
                // A UTF-8 byte-order mark before the object.
                0xEF | 0xBB | 0xBF if self.offset < 3 => {}
                _ => self.not_an_object(b),
            },
            State::KeyOrEnd => match b {
                b' ' | b'\t' | b'\r' | b'\n' | b',' => {}
                b'"' => {
                    self.key_len = 0;
                    self.key_long = false;
                    self.state = State::InKey { escaped: false };
                }
                b'}' => self.state = State::Done,
                _ => self.not_an_object(b),
            },
            State::InKey { escaped } => return self.in_key(data, i, escaped),
            State::Colon => match b {
                b' ' | b'\t' | b'\r' | b'\n' => {}
                b':' => self.state = State::Value,
                _ => self.not_an_object(b),
            },
            State::Value => match b {
                b' ' | b'\t' | b'\r' | b'\n' => {}
                _ if self.current == Key::StreamOptions
                    && !matches!(b, b',' | b'}' | b':' | b']')
                    && !self.value_begins(b) =>
                {
                    return i; // re-read as a literal
                }
                b'"' => {
                    self.value.clear();
                    self.value_long = false;
                    self.state = State::InString { escaped: false };
                }
                b'{' | b'[' => {
                    if self.current == Key::Model {
                        self.fail(ScanError::BadModel("not a string"));
                        return next;
                    }
                    self.state = State::Nested {
                        depth: 1,
                        in_string: false,
                        escaped: false,
                    };
                }
                b',' | b'}' | b':' | b']' => self.not_an_object(b),
                _ => {
                    self.value.clear();
                    self.value_long = false;
                    self.state = State::Literal;
                    return i; // re-read as part of the literal
                }
            },
            State::InString { escaped } => return self.in_string(data, i, escaped),
            State::Nested {
                depth,
                in_string,
                escaped,
            } => return self.nested(data, i, depth, in_string, escaped),
            State::Literal => match b {
                b',' | b'}' | b' ' | b'\t' | b'\r' | b'\n' => {
                    self.value_ended();
                    self.end_literal();
                    self.state = State::CommaOrEnd;
                    return i; // the delimiter is read by CommaOrEnd
                }
                _ if self.current == Key::Other => {}
                _ => {
                    if self.value.len() < MAX_LITERAL_BYTES {
                        self.value.push(b);
                    } else {
                        self.value_long = true;
                    }
                    if self.current == Key::StreamOptions {
                        self.capture(&[b]);
                    }
                }
            },
            State::CommaOrEnd => match b {
                b' ' | b'\t' | b'\r' | b'\n' => {}
                b',' => self.state = State::KeyOrEnd,
                b'}' => self.state = State::Done,
                _ => self.not_an_object(b),
            },
            State::Done | State::Failed => return data.len(),
        }
        self.offset += (next - i) as u64;
        next
    }

    /// `byte`, at the scan's offset, is not what a JSON object has there.
    fn not_an_object(&mut self, byte: u8) {
        let offset = self.offset;
        self.fail(ScanError::NotAnObject { offset, byte });
    }

    /// Fast path through a top-level string value: only the model's is kept.
    fn in_string(&mut self, data: &[u8], start: usize, escaped: bool) -> usize {
        let keep = self.current == Key::Model;
        match closing_quote(data, start, escaped) {
            Ok(at) => {
                if keep {
                    self.keep_value(&data[start..at]);
                }
                self.capture(&data[start..=at]);
                self.offset += (at + 1 - start) as u64;
                self.state = State::CommaOrEnd;
                self.value_ended();
                if keep {
                    self.end_model();
                }
                at + 1
            }
            Err(escaped) => {
                let i = data.len();
                if keep {
                    self.keep_value(&data[start..i]);
                }
                self.capture(&data[start..i]);
                self.offset += (i - start) as u64;
                self.state = State::InString { escaped };
                i
            }
        }
    }

    /// Skips a nested object or array: strings followed, brackets counted.
    fn nested(
        &mut self,
        data: &[u8],
        start: usize,
        mut depth: u32,
        mut in_string: bool,
        mut escaped: bool,
    ) -> usize {
        let mut i = start;
        while i < data.len() {
            if in_string {
                match closing_quote(data, i, escaped) {
                    Ok(at) => {
                        in_string = false;
                        escaped = false;
                        i = at + 1;
                    }
                    Err(more) => {
                        escaped = more;
                        i = data.len();
                        break;
                    }
                }
                continue;
            }
            match data[i] {
                b'"' => in_string = true,
                b'{' | b'[' => depth = depth.saturating_add(1),
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.capture(&data[start..=i]);
                        self.offset += (i + 1 - start) as u64;
                        self.state = State::CommaOrEnd;
                        self.value_ended();
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        self.capture(&data[start..i]);
        self.offset += (i - start) as u64;
        self.state = State::Nested {
            depth,
            in_string,
            escaped,
        };
        i
    }

    /// Fast path through a top-level key: its bytes are kept up to the bound.
    fn in_key(&mut self, data: &[u8], start: usize, escaped: bool) -> usize {
        match closing_quote(data, start, escaped) {
            Ok(at) => {
                self.push_key(&data[start..at]);
                self.offset += (at + 1 - start) as u64;
                self.current = self.key_name();
                self.state = State::Colon;
                at + 1
            }
            Err(escaped) => {
                let i = data.len();
                self.push_key(&data[start..i]);
                self.offset += (i - start) as u64;
                self.state = State::InKey { escaped };
                i
            }
        }
    }

    fn push_key(&mut self, part: &[u8]) {
        let room = MAX_KEY_BYTES - self.key_len;
        if part.len() > room {
            self.key_long = true;
        }
        let kept = part.len().min(room);
        self.key[self.key_len..self.key_len + kept].copy_from_slice(&part[..kept]);
        self.key_len += kept;
    }

    /// The key just read (escapes decoded).
    fn key_name(&self) -> Key {
        if self.key_long {
            return Key::Other;
        }
        let key = &self.key[..self.key_len];
        let name = |text: &[u8]| match text {
            b"model" => Key::Model,
            b"stream" => Key::Stream,
            b"stream_options" => Key::StreamOptions,
            _ => Key::Other,
        };
        if !key.contains(&b'\\') {
            return name(key);
        }
        unescape(key).map_or(Key::Other, |k| name(k.as_bytes()))
    }

    /// The `stream_options` value begins with byte `b` (at the scan's offset); `false` when it
    /// is a literal, whose first byte is then read again as one.
    fn value_begins(&mut self, b: u8) -> bool {
        self.stream_options = match self.stream_options {
            StreamOptionsSeen::Absent => StreamOptionsSeen::Value {
                start: self.offset,
                end: None,
                // Room for the usual `{"include_usage": true}` at once.
                raw: Some(Vec::with_capacity(32)),
            },
            _ => StreamOptionsSeen::Twice,
        };
        if matches!(b, b'"' | b'{' | b'[') {
            self.capture(&[b]);
            return true;
        }
        self.value.clear();
        self.value_long = false;
        self.state = State::Literal;
        false
    }

    /// Bytes of the `stream_options` value being read (nothing for other values).
    fn capture(&mut self, bytes: &[u8]) {
        if self.current != Key::StreamOptions {
            return;
        }
        if let StreamOptionsSeen::Value { end: None, raw, .. } = &mut self.stream_options
            && let Some(kept) = raw
        {
            if kept.len() + bytes.len() > MAX_STREAM_OPTIONS_BYTES {
                *raw = None;
            } else {
                kept.extend_from_slice(bytes);
            }
        }
    }

    /// A top-level value ended at the scan's offset.
    fn value_ended(&mut self) {
        if self.current == Key::StreamOptions
            && let StreamOptionsSeen::Value { end, .. } = &mut self.stream_options
            && end.is_none()
        {
            *end = Some(self.offset);
        }
    }

    fn keep_value(&mut self, part: &[u8]) {
        if self.value_long {
            return;
        }
        if self.value.len() + part.len() > MAX_MODEL_BYTES {
            self.value_long = true;
            self.value = Vec::new();
        } else {
            self.value.extend_from_slice(part);
        }
    }

    fn end_model(&mut self) {
        if self.value_long {
            self.fail(ScanError::BadModel("longer than 4096 bytes"));
            return;
        }
        // Decoded into a new string: `value` keeps its capacity for the values after it.
        let decoded = unescape(&self.value);
        let Some(model) = decoded else {
            self.fail(ScanError::BadModel("not a valid JSON string"));
            return;
        };
        match self.model.take() {
            Some(first) if first != model => self.fail(ScanError::TwoModels {
                first,
                second: model,
            }),
            _ => self.model = Some(model),
        }
    }

    fn end_literal(&mut self) {
        match self.current {
            Key::Model => self.fail(ScanError::BadModel("not a string")),
            Key::Stream if !self.value_long => match self.value.as_slice() {
                b"true" => self.stream = Some(true),
                b"false" | b"null" => self.stream = Some(false),
                _ => {}
            },
            _ => {}
        }
    }
}

/// Bytes of a string looked at one by one before [`closing_quote`] calls memchr.
const SHORT_STRING: usize = 16;

/// Finds the closing quote of a string whose inside goes on at `data[start..]` (`escaped`: the
/// byte at `start` is escaped): `Ok` its index, or `Err` at the end of `data`, whether the
/// next byte is escaped.
#[inline]
fn closing_quote(data: &[u8], start: usize, mut escaped: bool) -> Result<usize, bool> {
    let mut i = start;
    // Most strings of a request's top level and of its small objects (keys, roles, models)
    // are short: their end is found byte by byte sooner than memchr is set up.
    if !escaped {
        let end = data.len().min(start + SHORT_STRING);
        while i < end {
            match data[i] {
                b'"' => return Ok(i),
                b'\\' => break,
                _ => i += 1,
            }
        }
    }
    while i < data.len() {
        if escaped {
            escaped = false;
            i += 1;
            continue;
        }
        let Some(at) = memchr::memchr2(b'"', b'\\', &data[i..]) else {
            return Err(false);
        };
        let at = i + at;
        if data[at] != b'\\' {
            return Ok(at);
        }
        escaped = true;
        i = at + 1;
    }
    Err(escaped)
}

/// The text of a JSON string's inside (as written, escapes included).
fn unescape(raw: &[u8]) -> Option<String> {
    if !raw.contains(&b'\\') {
        return std::str::from_utf8(raw).ok().map(str::to_owned);
    }
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice(&quoted).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Scans `body` fed in pieces of `piece` bytes.
    fn scan(body: &[u8], piece: usize) -> BodyScan {
        let mut s = BodyScan::default();
        for p in body.chunks(piece.max(1)) {
            s.feed(p);
        }
        s
    }

    /// Any JSON value, strings of every length with quotes, backslashes and non-ASCII text.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let text = "[a-z\"\\\\é/ ]{0,40}";
        let leaf = prop_oneof![
            text.prop_map(serde_json::Value::from),
            any::<i32>().prop_map(serde_json::Value::from),
            any::<bool>().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
        ];
        leaf.prop_recursive(3, 24, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map(text, inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The scan reads the top-level `model` and `stream` as serde does, whatever the other
        /// members hold and wherever the body is cut.
        #[test]
        fn the_scan_agrees_with_serde(
            members in prop::collection::vec(("[a-z\"\\\\]{0,12}", json_value()), 0..6),
            model in "[a-zA-Z0-9\"\\\\é:/ -]{1,40}",
            model_at in 0usize..6,
            stream in any::<bool>(),
            piece in 1usize..64,
        ) {
            let mut object = serde_json::Map::new();
            for (key, value) in members {
                if key != "model" && key != "stream" {
                    object.insert(key, value);
                }
            }
            let mut entries: Vec<(String, serde_json::Value)> = object.into_iter().collect();
            let at = model_at.min(entries.len());
            entries.insert(at, ("model".into(), serde_json::Value::from(model.clone())));
            entries.push(("stream".into(), serde_json::Value::from(stream)));
            let body = format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(k, v)| format!("{}:{}", serde_json::Value::from(k.as_str()), v))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let scanned = scan(body.as_bytes(), piece);
            prop_assert!(scanned.is_done(), "{body}");
            prop_assert_eq!(scanned.model(), Some(model.as_str()), "{}", body);
            prop_assert_eq!(scanned.stream(), stream);
        }
    }

    #[test]
    fn finds_model_and_stream_anywhere_split_anywhere() {
        let long_key = format!(r#"{{"{}":1,"stream":true,"model":"m1"}}"#, "k".repeat(70));
        let bodies: [&[u8]; 7] = [
            long_key.as_bytes(),
            br#"{"model\"":"no","modelx":2,"stream":true,"model":"m1"}"#,
            br#"{"model":"m1","messages":[],"stream":true}"#,
            br#"{"messages":[{"role":"user","content":"a \"model\":\"x\" {["}],"stream":true,"model":"m1"}"#,
            b" \n{ \"stream\" : true ,\n \"nested\": {\"model\": \"no\", \"a\": [1, {\"b\": \"}\"}]}, \"model\" : \"m1\" }",
            br#"{"mod\u0065l":"m\u0031","n":-1.5e3,"stream":true}"#,
            b"\xEF\xBB\xBF{\"model\":\"m1\",\"stream\":true}",
        ];
        for body in bodies {
            for piece in [1, 2, 3, 7, 64, body.len()] {
                let s = scan(body, piece);
                let text = String::from_utf8_lossy(body);
                assert!(s.is_done(), "{text} / {piece}: {:?}", s.error());
                assert_eq!(s.model(), Some("m1"), "{text} / {piece}");
                assert!(s.stream(), "{text} / {piece}");
            }
        }
    }

    #[test]
    fn a_large_value_before_model_is_skipped_without_being_kept() {
        let image = "A".repeat(3 << 20);
        let body = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{image}"}}}}]}}],"model":"big"}}"#
        );
        let s = scan(body.as_bytes(), 16 * 1024);
        assert_eq!(s.model(), Some("big"));
        assert!(s.is_done() && !s.stream());
        assert!(s.value.capacity() <= MAX_MODEL_BYTES);
    }

    #[test]
    fn what_cannot_be_routed_says_why() {
        let err = |body: &[u8]| scan(body, 3).error().cloned().unwrap();
        assert!(matches!(
            err(b"[1,2]"),
            ScanError::NotAnObject {
                offset: 0,
                byte: b'['
            }
        ));
        assert!(matches!(
            err(b"{\"a\" 1}"),
            ScanError::NotAnObject { offset: 5, .. }
        ));
        assert_eq!(err(br#"{"model":42}"#), ScanError::BadModel("not a string"));
        assert_eq!(
            err(br#"{"model":{"a":1}}"#),
            ScanError::BadModel("not a string")
        );
        let long = format!(r#"{{"model":"{}"}}"#, "m".repeat(MAX_MODEL_BYTES + 1));
        assert_eq!(
            err(long.as_bytes()),
            ScanError::BadModel("longer than 4096 bytes")
        );
        assert_eq!(
            err(br#"{"model":"a","x":1,"model":"b"}"#),
            ScanError::TwoModels {
                first: "a".into(),
                second: "b".into()
            }
        );
        // The same model twice is one model.
        let s = scan(br#"{"model":"a","model":"a"}"#, 1);
        assert!(s.is_done() && s.model() == Some("a"));
    }

    #[test]
    fn an_unfinished_body_is_still_open() {
        let s = scan(br#"{"messages":[{"content":"abc"#, 4);
        assert!(s.is_open() && !s.has_model() && s.error().is_none());
        let s = scan(br#"{"model":"","stream":false}"#, 5);
        assert!(s.has_model() && s.model().is_none() && !s.stream() && s.is_done());
    }
}
