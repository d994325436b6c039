//! Asking a server for a stream's token counts on the client's behalf, and giving the client the
//! stream it would have had without asking: [`ask_for_usage`] (the request side) and
//! [`IncludeUsageFilter`] (the stream side), for Chat Completions and Completions.
//!
//! A stream carries `usage` only when its request sets `stream_options.include_usage`; most
//! clients do not. A proxy that wants the server's own counts sets the option and then takes out
//! of the stream what the option added. What the servers add (read in their sources,
//! 2026-12-06):
//! - one last chunk with `"choices": []` and the `usage`, just before `data: [DONE]` (the OpenAI
//!   API, vLLM, SGLang, llama.cpp);
//! - `"usage": null` in every other chunk (the OpenAI API; vLLM 0.5 on its finish chunks; vLLM
//!   today adds nothing else);
//! - llama.cpp's server moves its `timings` from the finish chunk (where it puts them without the
//!   option) to the usage chunk (`deltas.back()` in `to_json_oaicompat_chat_stream`,
//!   tools/server/server-task.cpp). The filter puts them back at the end of the finish chunk, so
//!   it holds a finish chunk until the next event arrives (llama.cpp writes both at once).
//! - llama.cpp's Completions stream has its `usage` in the finish chunk with or without the
//!   option: that `usage` stays (only a usage-only chunk is removed).
//!
//! The filter works on the stream's bytes, not on decoded events: an event it does not change
//! goes through byte for byte, and an event it changes is written as the server would have
//! written it (the member removed with its comma, nothing else touched). It holds back at most
//! one event: the one being received (a client acts on an event only once its blank line has
//! come) and a finish chunk until the next event. A frame made of whole events that need no
//! change is passed on as it came, without a copy ([`Filtered::Input`]).
//!
//! ```
//! use telemetry_openai::protocol::{Filtered, IncludeUsageFilter};
//!
//! let injected = concat!(
//!     "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}],\"usage\":null}\n\n",
//!     "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
//!     "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1,\"total_tokens\":10}}\n\n",
//!     "data: [DONE]\n\n",
//! );
//! let mut filter = IncludeUsageFilter::new();
//! let mut client = Vec::new();
//! for piece in injected.as_bytes().chunks(7) {
//!     match filter.feed(piece) {
//!         Filtered::Input(range) => client.extend_from_slice(&piece[range]),
//!         Filtered::Output(bytes) => client.extend_from_slice(bytes),
//!     }
//! }
//! client.extend_from_slice(filter.finish());
//! assert_eq!(
//!     String::from_utf8(client).unwrap(),
//!     concat!(
//!         "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n",
//!         "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
//!         "data: [DONE]\n\n",
//!     )
//! );
//! ```

use std::ops::Range;
use std::sync::LazyLock;

use memchr::memmem::Finder;
use serde_json::{Map, Value};

/// The member a request without `stream_options` gets (written after its object's `{`, with a
/// comma after it).
pub const STREAM_OPTIONS_MEMBER: &str = r#""stream_options":{"include_usage":true}"#;

/// What to do to a streaming request so that its stream carries `usage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageAsk {
    /// The request asks for usage itself (`include_usage: true`): nothing to do, and nothing
    /// to take out of its stream.
    AlreadyAsked,
    /// The request has no `stream_options`: add [`STREAM_OPTIONS_MEMBER`] to its object.
    AddMember,
    /// Replace the request's `stream_options` value with these bytes (the same options, with
    /// `include_usage: true`).
    ReplaceValue(Vec<u8>),
    /// Leave the request as it is, for this reason (what the client wrote is not something the
    /// option can be added to without changing what else the stream carries).
    Leave(&'static str),
}

/// How to ask for usage, given the raw JSON of the request's top-level `stream_options` value
/// (`None`: the request has none).
///
/// `null`, or an object without `include_usage` (or with it `false` or `null`), gets
/// `include_usage: true`; an object with `continuous_usage_stats` is left alone (vLLM would then
/// put usage in every chunk, which the filter does not take out), and so is anything that is not
/// JSON or not an object (the server judges it).
///
/// ```
/// use telemetry_openai::protocol::{UsageAsk, ask_for_usage};
///
/// assert_eq!(ask_for_usage(None), UsageAsk::AddMember);
/// assert_eq!(ask_for_usage(Some(br#"{"include_usage": true}"#)), UsageAsk::AlreadyAsked);
/// assert_eq!(
///     ask_for_usage(Some(br#"{"include_usage":false}"#)),
///     UsageAsk::ReplaceValue(br#"{"include_usage":true}"#.to_vec())
/// );
/// ```
pub fn ask_for_usage(stream_options: Option<&[u8]>) -> UsageAsk {
    let Some(raw) = stream_options else {
        return UsageAsk::AddMember;
    };
    // What clients that ask themselves send (the OpenAI SDKs, compactly or with a space):
    // read below as an object of `include_usage: true` alone.
    if matches!(
        raw.trim_ascii(),
        br#"{"include_usage":true}"# | br#"{"include_usage": true}"#
    ) {
        return UsageAsk::AlreadyAsked;
    }
    let mut options = match serde_json::from_slice::<Value>(raw) {
        Ok(Value::Null) => Map::new(),
        Ok(Value::Object(map)) => map,
        Ok(_) => return UsageAsk::Leave("`stream_options` is not an object"),
        Err(_) => return UsageAsk::Leave("`stream_options` is not valid JSON"),
    };
    match options.get("include_usage") {
        Some(Value::Bool(true)) => return UsageAsk::AlreadyAsked,
        None | Some(Value::Bool(false) | Value::Null) => {}
        Some(_) => return UsageAsk::Leave("`include_usage` is not a boolean"),
    }
    if options.contains_key("continuous_usage_stats") {
        return UsageAsk::Leave("`continuous_usage_stats` is set");
    }
    options.insert("include_usage".to_owned(), Value::Bool(true));
    match serde_json::to_vec(&Value::Object(options)) {
        Ok(bytes) => UsageAsk::ReplaceValue(bytes),
        Err(_) => UsageAsk::Leave("`stream_options` cannot be written back"),
    }
}

/// What to send on after [`IncludeUsageFilter::feed`].
#[derive(Debug, PartialEq, Eq)]
pub enum Filtered<'a> {
    /// This part of the input, as it came (possibly empty).
    Input(Range<usize>),
    /// These bytes (the filter's own; possibly empty).
    Output(&'a [u8]),
}

impl Filtered<'_> {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        match self {
            Filtered::Input(r) => r.is_empty(),
            Filtered::Output(b) => b.is_empty(),
        }
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Takes out of a Chat Completions or Completions stream what `include_usage` added to it (see
/// the module docs); fed the stream's bytes as they arrive, split anywhere.
#[derive(Debug, Default)]
pub struct IncludeUsageFilter {
    /// The start of an event whose end has not arrived.
    pending: Vec<u8>,
    /// A finish chunk held until the next event (empty when none).
    held: Vec<u8>,
    /// Where the held chunk's JSON object closes, and whether it has `timings`.
    held_close: usize,
    held_timings: bool,
    /// What [`Filtered::Output`] lends.
    out: Vec<u8>,
    /// A changed event being written.
    scratch: Vec<u8>,
    /// Whether the stream's first event has been read (a BOM can only open the stream).
    begun: bool,
}

impl IncludeUsageFilter {
    /// A filter at the start of a stream.
    pub fn new() -> IncludeUsageFilter {
        IncludeUsageFilter::default()
    }

    /// Reads the next piece of the stream; says what the client gets now.
    pub fn feed(&mut self, input: &[u8]) -> Filtered<'_> {
        let mut start = 0;
        if self.pending.is_empty() && self.held.is_empty() {
            // Whole events that need nothing go on as they came.
            let mut all = true;
            while let Some(end) = event_end(input, start) {
                if needs_reading(&input[start..end]) {
                    all = false;
                    break;
                }
                start = end;
                self.begun = true;
            }
            if all {
                self.pending.extend_from_slice(&input[start..]);
                return Filtered::Input(0..start);
            }
        }
        self.out.clear();
        self.out.extend_from_slice(&input[..start]);
        self.pending.extend_from_slice(&input[start..]);
        let pending = std::mem::take(&mut self.pending);
        let mut at = 0;
        while let Some(end) = event_end(&pending, at) {
            self.event(&pending[at..end]);
            at = end;
        }
        self.pending = pending;
        self.pending.drain(..at);
        Filtered::Output(&self.out)
    }

    /// The stream ended: what is still held (a finish chunk, an event without its blank line).
    pub fn finish(&mut self) -> &[u8] {
        self.out.clear();
        self.release();
        self.out.append(&mut self.pending);
        &self.out
    }

    /// One whole event (its blank line included).
    fn event(&mut self, event: &[u8]) {
        let first = !std::mem::replace(&mut self.begun, true);
        let Some(payload) = data_payload(event, first) else {
            self.release();
            self.out.extend_from_slice(event);
            return;
        };
        let Some(chunk) = Chunk::read(&event[payload.clone()]) else {
            self.release();
            self.out.extend_from_slice(event);
            return;
        };
        let json = &event[payload.clone()];
        if let Some(usage) = &chunk.usage
            && !is_null(&json[usage.value.clone()])
            && chunk
                .choices
                .as_ref()
                .is_none_or(|c| is_empty_array(&json[c.clone()]))
        {
            // The usage-only chunk: gone, its llama.cpp timings back where they were.
            if let Some(timings) = &chunk.timings
                && !self.held.is_empty()
                && !self.held_timings
            {
                let mut member = Vec::with_capacity(timings.value.len() + 12);
                member.extend_from_slice(b",\"timings\":");
                member.extend_from_slice(&json[timings.value.clone()]);
                self.held.splice(self.held_close..self.held_close, member);
                self.held_timings = true;
            }
            self.release();
            return;
        }
        self.release();
        let mut event = event;
        let mut close = payload.end;
        self.scratch.clear();
        if let Some(usage) = &chunk.usage
            && is_null(&json[usage.value.clone()])
        {
            let cut = member_span(json, usage);
            let cut = payload.start + cut.start..payload.start + cut.end;
            self.scratch.extend_from_slice(&event[..cut.start]);
            self.scratch.extend_from_slice(&event[cut.end..]);
            close -= cut.len();
            event = &self.scratch;
        }
        if chunk.choices.is_some_and(|c| has_finish_reason(&json[c])) {
            self.held.extend_from_slice(event);
            self.held_close = last_brace(&self.held[..close]).unwrap_or(close);
            self.held_timings = chunk.timings.is_some();
        } else {
            self.out.extend_from_slice(event);
        }
    }

    /// Sends the held chunk on.
    fn release(&mut self) {
        self.out.append(&mut self.held);
        self.held_timings = false;
    }
}

/// The end of the event that starts at `from` (after its blank line), if it has arrived. A
/// blank line opening the region is an event of its own. A `\r` ending the input is not yet a
/// line end: a `\n` may follow.
fn event_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut line = from;
    let mut i = from;
    loop {
        let at = i + memchr::memchr2(b'\n', b'\r', buf.get(i..)?)?;
        let mut next = at + 1;
        if buf[at] == b'\r' {
            match buf.get(next) {
                None => return None,
                Some(b'\n') => next += 1,
                Some(_) => {}
            }
        }
        if at == line {
            return Some(next);
        }
        line = next;
        i = next;
    }
}

/// Searchers built once (building one costs more than a search through a chunk).
static USAGE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usage\""));
static FINISH_REASON: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(b"\"finish_reason\""));

/// Whether an event may be one the option changed: it has a `"usage"` key or a finish reason.
fn needs_reading(event: &[u8]) -> bool {
    USAGE.find(event).is_some() || has_finish_reason(event)
}

/// Whether `json` has a `"finish_reason"` whose value is a string.
fn has_finish_reason(json: &[u8]) -> bool {
    FINISH_REASON.find_iter(json).any(|at| {
        let rest = &json[at + 15..];
        let rest = &rest[ws(rest, 0)..];
        rest.first() == Some(&b':') && rest.get(ws(rest, 1)) == Some(&b'"')
    })
}

/// The range of the JSON payload of an event made of one `data:` line and its blank line.
fn data_payload(event: &[u8], first: bool) -> Option<Range<usize>> {
    let start = if first && event.starts_with(BOM) {
        3
    } else {
        0
    };
    let line = &event[start..];
    let rest = line.strip_prefix(b"data:")?;
    let mut from = start + 5;
    if rest.first() == Some(&b' ') {
        from += 1;
    }
    let end = from + memchr::memchr2(b'\n', b'\r', &event[from..])?;
    // What follows is the line end and the blank line, nothing else.
    let tail = &event[end..];
    let one = match tail {
        [b'\r', b'\n', ..] => 2,
        _ => 1,
    };
    matches!(&tail[one..], b"\n" | b"\r" | b"\r\n").then_some(from..end)
}

/// A top-level member: where its key starts, and its value.
#[derive(Debug, Clone)]
struct Member {
    key: usize,
    value: Range<usize>,
}

/// The top-level members of a chunk that the option concerns.
#[derive(Debug, Default)]
struct Chunk {
    choices: Option<Range<usize>>,
    usage: Option<Member>,
    timings: Option<Member>,
}

impl Chunk {
    /// Reads a JSON object's top level; `None` when it is not one.
    fn read(json: &[u8]) -> Option<Chunk> {
        let mut chunk = Chunk::default();
        let mut i = ws(json, 0);
        if json.get(i) != Some(&b'{') {
            return None;
        }
        i += 1;
        loop {
            i = ws(json, i);
            match json.get(i)? {
                b'}' => return (ws(json, i + 1) == json.len()).then_some(chunk),
                b',' => {
                    i += 1;
                    continue;
                }
                b'"' => {}
                _ => return None,
            }
            let key = i;
            let key_end = skip_string(json, i)?;
            i = ws(json, key_end);
            if json.get(i) != Some(&b':') {
                return None;
            }
            let value = ws(json, i + 1);
            let end = skip_value(json, value)?;
            let member = Member {
                key,
                value: value..end,
            };
            match &json[key + 1..key_end - 1] {
                b"choices" => chunk.choices = Some(value..end),
                b"usage" => chunk.usage = Some(member),
                b"timings" => chunk.timings = Some(member),
                _ => {}
            }
            i = end;
        }
    }
}

/// The bytes to cut to remove `member` from `json`'s object: with the comma before it, or the
/// one after it when it comes first.
fn member_span(json: &[u8], member: &Member) -> Range<usize> {
    let before = json[..member.key]
        .iter()
        .rposition(|b| !b.is_ascii_whitespace());
    match before {
        Some(comma) if json[comma] == b',' => comma..member.value.end,
        _ => {
            let after = ws(json, member.value.end);
            let end = if json.get(after) == Some(&b',') {
                ws(json, after + 1)
            } else {
                member.value.end
            };
            member.key..end
        }
    }
}

/// The position of the last `}` of `bytes`.
fn last_brace(bytes: &[u8]) -> Option<usize> {
    memchr::memrchr(b'}', bytes)
}

/// The index of the first non-whitespace byte at or after `i`.
fn ws(json: &[u8], mut i: usize) -> usize {
    while json
        .get(i)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        i += 1;
    }
    i
}

/// `json[i]` opens a string: the index after its closing quote.
fn skip_string(json: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        let at = j + memchr::memchr2(b'"', b'\\', json.get(j..)?)?;
        if json[at] == b'\\' {
            j = at + 2;
        } else {
            return Some(at + 1);
        }
    }
}

/// The index after the JSON value starting at `i`.
fn skip_value(json: &[u8], i: usize) -> Option<usize> {
    match json.get(i)? {
        b'"' => skip_string(json, i),
        b'{' | b'[' => {
            let mut depth = 0u32;
            let mut j = i;
            while let Some(&b) = json.get(j) {
                match b {
                    b'"' => {
                        j = skip_string(json, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let len = json[i..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n'))
                .unwrap_or(json.len() - i);
            (len > 0).then_some(i + len)
        }
    }
}

fn is_null(value: &[u8]) -> bool {
    value == b"null"
}

fn is_empty_array(value: &[u8]) -> bool {
    value.first() == Some(&b'[') && value.get(ws(value, 1)) == Some(&b']')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stream a client gets when `injected` is fed in pieces of `piece` bytes.
    fn through(injected: &[u8], piece: usize) -> Vec<u8> {
        let mut filter = IncludeUsageFilter::new();
        let mut client = Vec::new();
        for part in injected.chunks(piece.max(1)) {
            match filter.feed(part) {
                Filtered::Input(r) => client.extend_from_slice(&part[r]),
                Filtered::Output(b) => client.extend_from_slice(b),
            }
        }
        client.extend_from_slice(filter.finish());
        client
    }

    fn check(injected: &str, plain: &str) {
        for piece in [1, 2, 3, 5, 7, 13, 64, injected.len()] {
            let got = through(injected.as_bytes(), piece);
            assert_eq!(
                String::from_utf8_lossy(&got),
                plain,
                "pieces of {piece} bytes"
            );
        }
    }

    const HEAD: &str = r#""created":1,"id":"c","model":"m","system_fingerprint":"b1","object":"chat.completion.chunk""#;
    const TIMINGS: &str =
        r#"{"cache_n":3,"prompt_n":4,"prompt_ms":1.5,"predicted_n":2,"predicted_ms":2.5}"#;

    fn llama(include_usage: bool, eol: &str) -> String {
        let ev = |json: String| format!("data: {json}{eol}{eol}");
        let mut s = String::new();
        s += &ev(format!(
            r#"{{"choices":[{{"finish_reason":null,"index":0,"delta":{{"role":"assistant","content":null}}}}],{HEAD}}}"#
        ));
        for t in ["He", "llo"] {
            s += &ev(format!(
                r#"{{"choices":[{{"finish_reason":null,"index":0,"delta":{{"content":"{t}"}}}}],{HEAD}}}"#
            ));
        }
        let finish =
            format!(r#"{{"choices":[{{"finish_reason":"length","index":0,"delta":{{}}}}],{HEAD}"#);
        if include_usage {
            s += &ev(format!("{finish}}}"));
            s += &ev(format!(
                r#"{{"choices":[],{HEAD},"usage":{{"completion_tokens":2,"prompt_tokens":7,"total_tokens":9}},"timings":{TIMINGS}}}"#
            ));
        } else {
            s += &ev(format!(r#"{finish},"timings":{TIMINGS}}}"#));
        }
        s += &format!("data: [DONE]{eol}{eol}");
        s
    }

    fn openai(include_usage: bool) -> String {
        let usage = if include_usage {
            r#","usage":null"#
        } else {
            ""
        };
        let mut s = String::new();
        for (delta, finish) in [
            (
                r#"{"role":"assistant","content":"","refusal":null}"#,
                "null",
            ),
            (r#"{"content":"Hi \"usage\":null"}"#, "null"),
            ("{}", r#""stop""#),
        ] {
            s += &format!(
                "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]{usage},\"obfuscation\":\"x1\"}}\n\n"
            );
        }
        if include_usage {
            s += "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11},\"obfuscation\":\"y\"}\n\n";
        }
        s + "data: [DONE]\n\n"
    }

    #[test]
    fn a_llama_cpp_stream_comes_out_as_without_the_option() {
        for eol in ["\n", "\r\n", "\r"] {
            check(&llama(true, eol), &llama(false, eol));
        }
    }

    #[test]
    fn an_openai_stream_loses_its_usage_nulls_and_usage_chunk() {
        check(&openai(true), &openai(false));
    }

    #[test]
    fn a_vllm_stream_loses_its_usage_chunk() {
        let chunk = |c: &str| {
            format!(
                "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{c}]}}\n\n"
            )
        };
        let plain = chunk(r#"{"index":0,"delta":{"content":"a"}}"#)
            + &chunk(
                r#"{"index":0,"delta":{"content":""},"finish_reason":"stop","stop_reason":null}"#,
            )
            + "data: [DONE]\n\n";
        let usage = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"total_tokens\":6,\"completion_tokens\":1}}\n\n";
        let injected = plain.replace("data: [DONE]", &format!("{usage}data: [DONE]"));
        check(&injected, &plain);
    }

    #[test]
    fn usage_the_server_sends_anyway_stays() {
        // llama.cpp's Completions stream: usage in the finish chunk, with or without the option.
        let s = concat!(
            "data: {\"choices\":[{\"text\":\"a\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}],\"object\":\"text_completion\"}\n\n",
            "data: {\"choices\":[{\"text\":\"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"length\"}],\"object\":\"text_completion\",\"usage\":{\"completion_tokens\":1,\"prompt_tokens\":2,\"total_tokens\":3},\"id\":\"x\",\"timings\":{\"prompt_n\":2}}\n\n",
            "data: [DONE]\n\n",
        );
        check(s, s);
        // Comments, errors, several data lines, a BOM: through unchanged.
        let s = "\u{feff}: ping\n\nevent: error\ndata: {\"usage\":null}\n\ndata: {\"a\":\ndata: 1}\n\nerror: {\"usage\":null}\n\n";
        check(s, s);
    }

    #[test]
    fn a_bom_and_odd_spacing_are_kept() {
        let injected = "\u{feff}data:{ \"usage\" : null , \"choices\" : [ {\"finish_reason\": null} ] }\r\n\r\ndata: {\"usage\" : { \"prompt_tokens\" : 1 } }\r\n\r\ndata: [DONE]\r\n\r\n";
        let plain = "\u{feff}data:{ \"choices\" : [ {\"finish_reason\": null} ] }\r\n\r\ndata: [DONE]\r\n\r\n";
        check(injected, plain);
    }

    #[test]
    fn whole_unchanged_events_pass_without_a_copy() {
        let mut filter = IncludeUsageFilter::new();
        let events = b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\ndata: {\"cho";
        let whole = events.len() - b"data: {\"cho".len();
        assert_eq!(filter.feed(events), Filtered::Input(0..whole));
        assert_eq!(
            filter.feed(b"ices\":[]}\n\n"),
            Filtered::Output(b"data: {\"choices\":[]}\n\n".as_slice())
        );
        assert_eq!(filter.feed(b"data: [DONE]\n\n"), Filtered::Input(0..14));
        assert!(filter.finish().is_empty());
    }

    #[test]
    fn a_finish_chunk_waits_for_the_next_event_only() {
        let mut filter = IncludeUsageFilter::new();
        let finish = b"data: {\"choices\":[{\"finish_reason\":\"stop\"}]}\n\n";
        assert!(filter.feed(finish).is_empty());
        assert_eq!(
            filter.feed(b"data: [DONE]\n\n"),
            Filtered::Output(
                b"data: {\"choices\":[{\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"
                    .as_slice()
            )
        );
        // A stream that ends after it gets it at the end.
        let mut filter = IncludeUsageFilter::new();
        assert!(filter.feed(finish).is_empty());
        assert_eq!(filter.finish(), finish.as_slice());
    }

    #[test]
    fn requests_ask_for_usage_without_losing_their_options() {
        assert_eq!(ask_for_usage(None), UsageAsk::AddMember);
        assert_eq!(
            ask_for_usage(Some(b"null")),
            UsageAsk::ReplaceValue(br#"{"include_usage":true}"#.to_vec())
        );
        assert_eq!(
            ask_for_usage(Some(
                br#"{"include_obfuscation":false,"include_usage":null}"#
            )),
            UsageAsk::ReplaceValue(
                br#"{"include_obfuscation":false,"include_usage":true}"#.to_vec()
            )
        );
        for asked in [
            &br#" { "include_usage" : true } "#[..],
            br#" {"include_usage":true}"#,
            br#"{"include_usage": true}
"#,
            br#"{"include_usage":true,"include_obfuscation":false}"#,
        ] {
            assert_eq!(ask_for_usage(Some(asked)), UsageAsk::AlreadyAsked);
        }
        // Not what it looks like at first: given twice, the last wins (serde_json's Map).
        assert_eq!(
            ask_for_usage(Some(br#"{"include_usage":true,"include_usage":false}"#)),
            UsageAsk::ReplaceValue(br#"{"include_usage":true}"#.to_vec())
        );
        for leave in [
            &br#"{"include_usage":"yes"}"#[..],
            br#"{"continuous_usage_stats":true}"#,
            b"[]",
            b"{",
        ] {
            assert!(matches!(ask_for_usage(Some(leave)), UsageAsk::Leave(_)));
        }
        let added: Value =
            serde_json::from_str(&format!("{{{STREAM_OPTIONS_MEMBER},\"stream\":true}}")).unwrap();
        assert_eq!(added["stream_options"]["include_usage"], true);
    }
}
