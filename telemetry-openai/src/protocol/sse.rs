//! [`SseParser`]: an incremental parser for `text/event-stream` bodies, fed with byte slices as
//! they arrive from the network.
//!
//! It follows the WHATWG event-stream rules that OpenAI-compatible servers rely on: lines end in
//! `\n`, `\r\n` or `\r` (a `\r\n` split across two reads is one line end); a line starting with
//! `:` is a comment; `data:` lines accumulate (joined by `\n`) until a blank line dispatches the
//! event; one space after the colon is dropped; `event:` names the event. Two non-standard
//! habits of real servers are understood as well: llama.cpp's `error: {...}` line and the
//! `data: [DONE]` sentinel. A UTF-8 byte order mark opening the stream is skipped (also when its
//! three bytes come in separate reads), as the standard says.
//!
//! Nothing is allocated per byte or per event in the common case: a `data:` line that arrives
//! whole within one slice is handed out as a borrowed sub-slice of that input. Only a line split
//! across reads, or an event of several `data:` lines, is copied into a buffer that the parser
//! keeps and reuses.

use memchr::memchr2;

use crate::protocol::error::ProtocolError;

/// Default bound on one line (and on one event's data): 8 MiB. A server that never sends a line
/// end cannot make the parser buffer without limit.
pub const DEFAULT_MAX_LINE_BYTES: usize = 8 << 20;

/// One dispatched server-sent event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseEvent<'a> {
    /// The data of an event (its `data:` lines joined by `\n`), typically one JSON chunk.
    Data(&'a [u8]),
    /// An error the server sent inside the stream: llama.cpp's `error: {...}` line, or an event
    /// named `error` (`event: error` then `data: ...`). The bytes are the server's payload.
    Error(&'a [u8]),
    /// The `data: [DONE]` sentinel that ends an OpenAI-compatible stream.
    Done,
}

/// Where the data of the event being assembled lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// No `data:` line yet.
    None,
    /// One `data:` line, still inside the current input slice (borrowed, not copied).
    Borrowed(usize, usize),
    /// In `SseParser::data` (split across reads, or several lines).
    Owned,
}

/// Incremental `text/event-stream` parser.
///
/// Feed it the body as it arrives, in slices of any size split anywhere; it calls back once per
/// dispatched event. Call [`finish`](Self::finish) at the end of the body to dispatch an event
/// whose final blank line never came.
///
/// ```
/// use telemetry_openai::protocol::{SseEvent, SseParser};
///
/// let body = b": keep-alive\r\ndata: {\"a\":1}\r\n\r\ndata: [DONE]\r\n\r\n";
/// let mut parser = SseParser::new();
/// let mut seen = Vec::new();
/// // Split the body at every byte: the events are the same.
/// for byte in body.chunks(1) {
///     parser.feed(byte, |event| seen.push(format!("{event:?}"))).unwrap();
/// }
/// parser.finish(|_| unreachable!("nothing pending")).unwrap();
/// assert_eq!(seen, ["Data([123, 34, 97, 34, 58, 49, 125])", "Done"]);
/// assert!(parser.saw_done());
/// ```
#[derive(Debug, Clone)]
pub struct SseParser {
    /// A line begun in an earlier slice, without its line end yet.
    line: Vec<u8>,
    /// Event data that could not stay borrowed.
    data: Vec<u8>,
    pending: Pending,
    /// The current event is an error (llama.cpp `error:` line or `event: error`).
    is_error: bool,
    /// The previous slice ended in `\r`: a `\n` opening the next one belongs to that line end.
    skip_lf: bool,
    /// Bytes of a leading byte order mark matched so far; `BOM_DONE` once the stream's start
    /// is past.
    bom: u8,
    saw_done: bool,
    events: u64,
    max_line: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    /// A parser with the default line bound ([`DEFAULT_MAX_LINE_BYTES`]).
    pub fn new() -> Self {
        Self::with_max_line(DEFAULT_MAX_LINE_BYTES)
    }

    /// A parser that refuses lines (and events) longer than `max_line` bytes.
    pub fn with_max_line(max_line: usize) -> Self {
        SseParser {
            line: Vec::new(),
            data: Vec::new(),
            pending: Pending::None,
            is_error: false,
            skip_lf: false,
            bom: 0,
            saw_done: false,
            events: 0,
            max_line,
        }
    }

    /// Whether the `[DONE]` sentinel has been dispatched.
    pub fn saw_done(&self) -> bool {
        self.saw_done
    }

    /// Events dispatched so far (`[DONE]` included).
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Whether the parser stands between events: past the stream's start, no line begun, no
    /// data or `event:` pending, no `\r` waiting for its `\n`. Input that then starts with
    /// `data: `, a line holding neither `\r` nor `\n` (and not `[DONE]`), and `\n\n` is that
    /// one [`SseEvent::Data`], after which the parser stands between events again: a caller
    /// may read such an event itself and [`count_event`](Self::count_event) it.
    #[inline]
    pub fn between_events(&self) -> bool {
        self.line.is_empty()
            && self.pending == Pending::None
            && !self.is_error
            && !self.skip_lf
            && self.bom == BOM_DONE
    }

    /// Counts an event the caller read itself from input that started where the parser stood
    /// [`between_events`](Self::between_events), as feeding its bytes would have counted it
    /// (the parser stays between events).
    #[inline]
    pub fn count_event(&mut self) {
        self.events += 1;
    }

    /// Forgets everything, keeping the buffers' capacity (to parse another body).
    pub fn reset(&mut self) {
        self.line.clear();
        self.data.clear();
        self.pending = Pending::None;
        self.is_error = false;
        self.skip_lf = false;
        self.bom = 0;
        self.saw_done = false;
        self.events = 0;
    }

    /// Parses the next slice of the body, calling `on_event` for every event it completes.
    ///
    /// Fails only when a line (or an event's data) grows past the bound; the parser is then
    /// reset and the caller should treat the stream as broken.
    pub fn feed<F>(&mut self, input: &[u8], mut on_event: F) -> Result<(), ProtocolError>
    where
        F: FnMut(SseEvent<'_>),
    {
        let mut pos = 0;
        if self.bom != BOM_DONE {
            pos = self.skip_bom(input);
            if pos == input.len() {
                return Ok(());
            }
        }
        // An empty slice says nothing about what follows a `\r`.
        if self.skip_lf && pos < input.len() {
            self.skip_lf = false;
            if input[pos] == b'\n' {
                pos += 1;
            }
        }
        while let Some(&first) = input.get(pos) {
            // A blank line `\n` (an event's end) is every other line: it needs no search.
            let found = if first == b'\n' {
                Some(0)
            } else {
                memchr2(b'\n', b'\r', &input[pos..])
            };
            let Some(offset) = found else {
                if self.line.len() + (input.len() - pos) > self.max_line {
                    return Err(self.too_long());
                }
                self.line.extend_from_slice(&input[pos..]);
                break;
            };
            let end = pos + offset;
            let mut next = end + 1;
            if input[end] == b'\r' {
                match input.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            if self.line.is_empty() {
                self.line_in_input(input, pos, end, &mut on_event)?;
            } else {
                if self.line.len() + (end - pos) > self.max_line {
                    return Err(self.too_long());
                }
                self.line.extend_from_slice(&input[pos..end]);
                let line = std::mem::take(&mut self.line);
                let result = self.owned_line(&line, &mut on_event);
                self.line = line;
                self.line.clear();
                result?;
            }
            pos = next;
        }
        // Data borrowed from this slice must outlive it.
        if let Pending::Borrowed(start, end) = self.pending {
            self.data.clear();
            self.data.extend_from_slice(&input[start..end]);
            self.pending = Pending::Owned;
        }
        Ok(())
    }

    /// Ends the body: a last line without its line end is taken as complete and an event whose
    /// blank line never came is dispatched (servers that close right after `data: [DONE]`).
    pub fn finish<F>(&mut self, mut on_event: F) -> Result<(), ProtocolError>
    where
        F: FnMut(SseEvent<'_>),
    {
        self.skip_lf = false;
        if self.bom != BOM_DONE {
            // The stream ended inside what could have been a BOM: those bytes were a line.
            let partial = BOM[..usize::from(self.bom)].to_vec();
            self.line.extend_from_slice(&partial);
            self.bom = BOM_DONE;
        }
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            let result = self.owned_line(&line, &mut on_event);
            self.line = line;
            self.line.clear();
            result?;
        }
        self.dispatch(&[], &mut on_event);
        Ok(())
    }

    /// Matches `input`'s start against the rest of a leading byte order mark; returns how many
    /// bytes of `input` it took. A mismatch after a partial match replays the bytes taken
    /// before as the start of the first line (they were not a BOM).
    fn skip_bom(&mut self, input: &[u8]) -> usize {
        let mut taken = 0;
        while usize::from(self.bom) < BOM.len() {
            let Some(&b) = input.get(taken) else {
                return taken;
            };
            if b != BOM[usize::from(self.bom)] {
                let partial = &BOM[..usize::from(self.bom)];
                self.line.extend_from_slice(partial);
                self.bom = BOM_DONE;
                return taken;
            }
            self.bom += 1;
            taken += 1;
        }
        self.bom = BOM_DONE;
        taken
    }

    fn too_long(&mut self) -> ProtocolError {
        let limit = self.max_line;
        self.reset();
        ProtocolError::SseLineTooLong { limit }
    }

    /// A whole line found inside `input[start..end]`.
    fn line_in_input<F>(
        &mut self,
        input: &[u8],
        start: usize,
        end: usize,
        on_event: &mut F,
    ) -> Result<(), ProtocolError>
    where
        F: FnMut(SseEvent<'_>),
    {
        let line = &input[start..end];
        if line.is_empty() {
            self.dispatch(input, on_event);
            return Ok(());
        }
        let Some((field, value_offset)) = split_field(line) else {
            return Ok(());
        };
        match field {
            Field::Data | Field::LlamaError => {
                if field == Field::LlamaError {
                    self.is_error = true;
                }
                let value_start = start + value_offset;
                if self.pending == Pending::None {
                    self.pending = Pending::Borrowed(value_start, end);
                    Ok(())
                } else {
                    self.append_data(input, &input[value_start..end])
                }
            }
            Field::Event => {
                self.is_error |= &line[value_offset..] == b"error";
                Ok(())
            }
            Field::Other => Ok(()),
        }
    }

    /// A whole line assembled in the carry-over buffer (it cannot be borrowed by the event).
    fn owned_line<F>(&mut self, line: &[u8], on_event: &mut F) -> Result<(), ProtocolError>
    where
        F: FnMut(SseEvent<'_>),
    {
        if line.is_empty() {
            self.dispatch(&[], on_event);
            return Ok(());
        }
        let Some((field, value_offset)) = split_field(line) else {
            return Ok(());
        };
        match field {
            Field::Data | Field::LlamaError => {
                if field == Field::LlamaError {
                    self.is_error = true;
                }
                self.append_data(&[], &line[value_offset..])
            }
            Field::Event => {
                self.is_error |= &line[value_offset..] == b"error";
                Ok(())
            }
            Field::Other => Ok(()),
        }
    }

    /// Adds a data line to the event, moving borrowed data into the owned buffer first.
    fn append_data(&mut self, input: &[u8], value: &[u8]) -> Result<(), ProtocolError> {
        match self.pending {
            Pending::None => {
                self.data.clear();
            }
            Pending::Borrowed(start, end) => {
                self.data.clear();
                self.data.extend_from_slice(&input[start..end]);
                self.data.push(b'\n');
            }
            Pending::Owned => self.data.push(b'\n'),
        }
        if self.data.len() + value.len() > self.max_line {
            return Err(self.too_long());
        }
        self.data.extend_from_slice(value);
        self.pending = Pending::Owned;
        Ok(())
    }

    /// A blank line: hands out the assembled event, if it has data.
    fn dispatch<F>(&mut self, input: &[u8], on_event: &mut F)
    where
        F: FnMut(SseEvent<'_>),
    {
        let data: &[u8] = match self.pending {
            Pending::None => {
                self.is_error = false;
                return;
            }
            Pending::Borrowed(start, end) => &input[start..end],
            Pending::Owned => &self.data,
        };
        self.events += 1;
        let event = if self.is_error {
            SseEvent::Error(data)
        } else if data.trim_ascii() == b"[DONE]" {
            self.saw_done = true;
            SseEvent::Done
        } else {
            SseEvent::Data(data)
        };
        on_event(event);
        self.pending = Pending::None;
        self.is_error = false;
    }
}

/// The UTF-8 byte order mark.
const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];
/// `SseParser::bom` once the start of the stream is past.
const BOM_DONE: u8 = u8::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Data,
    Event,
    /// llama.cpp writes stream errors as `error: {json}` lines.
    LlamaError,
    Other,
}

/// The field of a non-empty line and where its value starts; `None` for a comment.
#[inline]
fn split_field(line: &[u8]) -> Option<(Field, usize)> {
    // Nearly every line of a stream is data.
    if let Some(b"data:") = line.get(..5) {
        let value = if line.get(5) == Some(&b' ') { 6 } else { 5 };
        return Some((Field::Data, value));
    }
    if line[0] == b':' {
        return None;
    }
    let (name, mut value) = match memchr::memchr(b':', line) {
        Some(colon) => (&line[..colon], colon + 1),
        None => (line, line.len()),
    };
    if line.get(value) == Some(&b' ') {
        value += 1;
    }
    let field = match name {
        b"data" => Field::Data,
        b"event" => Field::Event,
        b"error" => Field::LlamaError,
        _ => Field::Other,
    };
    Some((field, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Ev {
        Data(String),
        Error(String),
        Done,
    }

    fn collect(parser: &mut SseParser, input: &[u8], out: &mut Vec<Ev>) {
        parser
            .feed(input, |e| out.push(own(e)))
            .expect("within the line bound");
    }

    fn own(e: SseEvent<'_>) -> Ev {
        match e {
            SseEvent::Data(d) => Ev::Data(String::from_utf8_lossy(d).into_owned()),
            SseEvent::Error(d) => Ev::Error(String::from_utf8_lossy(d).into_owned()),
            SseEvent::Done => Ev::Done,
        }
    }

    fn parse_split(body: &[u8], split: usize) -> Vec<Ev> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for part in body.chunks(split.max(1)) {
            collect(&mut parser, part, &mut out);
        }
        parser.finish(|e| out.push(own(e))).expect("bounded");
        out
    }

    const BODY: &[u8] = b": comment\n\
        data: {\"x\":1}\n\n\
        event: message\r\n\
        data:{\"x\":2}\r\n\r\n\
        data: line one\rdata: line two\r\r\
        id: 7\nretry: 100\n\n\
        error: {\"code\":500}\n\n\
        event: error\ndata: boom\n\n\
        data: [DONE]\n\n";

    #[test]
    fn every_split_gives_the_same_events() {
        let whole = parse_split(BODY, BODY.len());
        assert_eq!(
            whole,
            [
                Ev::Data("{\"x\":1}".into()),
                Ev::Data("{\"x\":2}".into()),
                Ev::Data("line one\nline two".into()),
                Ev::Error("{\"code\":500}".into()),
                Ev::Error("boom".into()),
                Ev::Done,
            ]
        );
        for split in 1..BODY.len() {
            assert_eq!(parse_split(BODY, split), whole, "split every {split} bytes");
        }
    }

    #[test]
    fn crlf_split_between_cr_and_lf_is_one_line_end() {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        collect(&mut parser, b"data: a\r", &mut out);
        collect(&mut parser, b"\n\r", &mut out);
        collect(&mut parser, b"\ndata: b\r\n\r\n", &mut out);
        assert_eq!(out, [Ev::Data("a".into()), Ev::Data("b".into())]);
    }

    #[test]
    fn finish_dispatches_a_last_event_without_blank_line() {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        collect(&mut parser, b"data: [DONE]", &mut out);
        assert!(out.is_empty());
        parser.finish(|e| out.push(own(e))).expect("bounded");
        assert_eq!(out, [Ev::Done]);
        assert!(parser.saw_done());
        assert_eq!(parser.events(), 1);
    }

    #[test]
    fn overlong_line_is_an_error_not_a_buffer_without_limit() {
        let mut parser = SseParser::with_max_line(16);
        let err = parser
            .feed(&[b'a'; 10], |_| {})
            .and_then(|()| parser.feed(&[b'b'; 10], |_| {}));
        assert_eq!(err, Err(ProtocolError::SseLineTooLong { limit: 16 }));
        let mut multi = SseParser::with_max_line(16);
        let err = multi.feed(b"data: 0123456789\ndata: 0123456789\n", |_| {});
        assert_eq!(err, Err(ProtocolError::SseLineTooLong { limit: 16 }));
    }

    #[test]
    fn a_leading_bom_does_not_drop_the_first_event() {
        let body = b"\xEF\xBB\xBFdata: {\"x\":1}\n\ndata: [DONE]\n\n";
        let want = [Ev::Data("{\"x\":1}".into()), Ev::Done];
        for split in 1..=body.len() {
            assert_eq!(parse_split(body, split), want, "split every {split} bytes");
        }
        // Only at the very start: later, the bytes are part of a line.
        let later = parse_split(b"data: a\n\n\xEF\xBB\xBFdata: b\n\n", 4);
        assert_eq!(later, [Ev::Data("a".into())]);
        // Bytes that start like a BOM but are not one stay in the first line.
        let not_bom = parse_split(b"\xEFdata: a\n\n", 1);
        assert!(not_bom.is_empty(), "{not_bom:?}");
    }

    #[test]
    fn an_empty_read_between_cr_and_lf_keeps_them_one_line_end() {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        collect(&mut parser, b"data: a\r", &mut out);
        collect(&mut parser, b"", &mut out);
        collect(&mut parser, b"\ndata: b\r", &mut out);
        collect(&mut parser, b"", &mut out);
        collect(&mut parser, b"\n\r", &mut out);
        collect(&mut parser, b"", &mut out);
        collect(&mut parser, b"\n", &mut out);
        assert_eq!(out, [Ev::Data("a\nb".into())], "one event of two lines");
    }

    proptest::proptest! {
        /// Any body cut into pieces anywhere, empty pieces included, gives the events of the
        /// whole body.
        #[test]
        fn any_cut_gives_the_same_events(
            cuts in proptest::collection::vec(0usize..=BODY.len() + 3, 0..24),
            bom in proptest::bool::ANY,
        ) {
            let mut body = Vec::new();
            if bom {
                body.extend_from_slice(b"\xEF\xBB\xBF");
            }
            body.extend_from_slice(BODY);
            let whole = parse_split(BODY, BODY.len());
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(body.len())).collect();
            cuts.sort_unstable();
            let mut parser = SseParser::new();
            let mut out = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([body.len()]) {
                collect(&mut parser, &body[from..cut], &mut out);
                from = cut;
            }
            parser.finish(|e| out.push(own(e))).expect("bounded");
            proptest::prop_assert_eq!(out, whole);
        }
    }

    #[test]
    fn lines_without_colon_and_unknown_fields_are_ignored() {
        assert_eq!(
            parse_split(b"data\n\nfoo: bar\nretry\n\ndata: x\n\n", 3),
            [Ev::Data(String::new()), Ev::Data("x".into())]
        );
    }
}
