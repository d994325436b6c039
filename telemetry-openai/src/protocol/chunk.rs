//! One chunk of a streamed Chat Completions or Completions answer, read two ways:
//! [`decode_chunk`] with serde (the reference, and the public decoder) and [`scan_chunk`] with
//! the [`Scanner`], which reads only what a recorder takes and declines whatever it is not sure
//! of. The observers try the scanner first and fall back to serde, so a stream is read as
//! serde reads it, at a fraction of the cost.
//!
//! A chunk is output when it carries generated text of any kind: `content` (chat) or `text`
//! (completions), `reasoning_content` / `reasoning`, or a tool call's `function.name` or
//! `function.arguments` delta.

use std::borrow::Cow;

use serde::Deserialize;
use telemetry_wrap::FinishReason;

use crate::protocol::error::{OpenAiError, ProtocolError};
use crate::protocol::json::Text;
use crate::protocol::scanner::{Key, Keys, RawStr, Scanner};
use crate::protocol::types::finish_reason;
use crate::protocol::usage::{
    ApiUsage, CompletionTokensDetails, PromptTokensDetails, ServerPhases, ServerTimings,
    UsageCounts,
};

/// What one stream chunk holds, decoded without copying its text when it has no escapes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChunkSummary<'a> {
    /// The text this chunk adds: the first choice with non-empty `delta.content` (chat) or
    /// `text` (completions); for reasoning models, the reasoning text when there is no content
    /// (it is generated output too, so it counts for TTFT). Empty for role-only, finish and
    /// usage chunks.
    pub content: Cow<'a, str>,
    /// Whether a choice's delta carries a tool call's name or arguments (output without text).
    pub tool_call: bool,
    /// Set on a finish chunk.
    pub finish_reason: Option<FinishReason>,
    /// Token counts (final chunk with `include_usage`, or every chunk with vLLM's continuous
    /// usage stats).
    pub usage: Option<ApiUsage>,
    /// llama.cpp's server timings.
    pub timings: Option<ServerTimings>,
}

impl ChunkSummary<'_> {
    /// Whether the chunk carries generated text.
    pub fn has_content(&self) -> bool {
        !self.content.is_empty()
    }

    /// Whether the chunk carries output of any kind (text or a tool call): a point for TTFT
    /// and ITL.
    pub fn has_output(&self) -> bool {
        self.has_content() || self.tool_call
    }
}

#[derive(Deserialize)]
struct ChunkProbe<'a> {
    #[serde(default, borrow)]
    choices: Vec<ChoiceProbe<'a>>,
    #[serde(default)]
    usage: Option<ApiUsage>,
    #[serde(default)]
    timings: Option<ServerTimings>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct ChoiceProbe<'a> {
    #[serde(default, borrow)]
    delta: Option<DeltaProbe<'a>>,
    #[serde(default, borrow)]
    text: Option<Text<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct DeltaProbe<'a> {
    #[serde(default, borrow)]
    content: Option<Text<'a>>,
    #[serde(default, borrow)]
    reasoning_content: Option<Text<'a>>,
    #[serde(default, borrow)]
    reasoning: Option<Text<'a>>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<ToolCallProbe<'a>>>,
}

#[derive(Deserialize)]
struct ToolCallProbe<'a> {
    #[serde(default, borrow)]
    function: Option<FunctionProbe<'a>>,
}

#[derive(Deserialize)]
struct FunctionProbe<'a> {
    #[serde(default, borrow)]
    name: Option<Text<'a>>,
    #[serde(default, borrow)]
    arguments: Option<Text<'a>>,
}

impl ToolCallProbe<'_> {
    fn has_output(&self) -> bool {
        self.function.as_ref().is_some_and(|f| {
            [&f.name, &f.arguments]
                .into_iter()
                .any(|t| t.as_ref().is_some_and(|t| !t.0.is_empty()))
        })
    }
}

/// Decodes the data of one stream event (a chat or completion chunk).
///
/// A chunk that carries `{"error": ...}` (vLLM and Ollama report failures inside the stream
/// this way) is an [`OpenAiError::StreamError`]; bytes that are not a JSON object are
/// [`OpenAiError::Protocol`].
///
/// ```
/// use telemetry_openai::protocol::decode_chunk;
///
/// let role_only = decode_chunk(br#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}"#).unwrap();
/// assert!(!role_only.has_content());
/// let token = decode_chunk(br#"{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#).unwrap();
/// assert_eq!(token.content, "Hel");
/// ```
pub fn decode_chunk(data: &[u8]) -> Result<ChunkSummary<'_>, OpenAiError> {
    let probe: ChunkProbe<'_> = crate::protocol::parse_json(data)
        .map_err(|e| OpenAiError::Protocol(ProtocolError::json("stream chunk", data, &e)))?;
    if probe.error.is_some() {
        return Err(OpenAiError::from_stream_error(data));
    }
    let mut summary = ChunkSummary {
        usage: probe.usage,
        timings: probe.timings,
        ..ChunkSummary::default()
    };
    for choice in probe.choices {
        if summary.finish_reason.is_none() {
            summary.finish_reason = choice.finish_reason.map(|t| finish_reason(&t.0));
        }
        let (text, tool_calls) = match choice.delta {
            Some(d) => (
                [d.content, d.reasoning_content, d.reasoning]
                    .into_iter()
                    .flatten()
                    .find(|t| !t.0.is_empty()),
                d.tool_calls,
            ),
            None => (choice.text, None),
        };
        if summary.content.is_empty()
            && let Some(t) = text
        {
            summary.content = t.0;
        }
        summary.tool_call |= tool_calls.is_some_and(|c| c.iter().any(ToolCallProbe::has_output));
    }
    Ok(summary)
}

/// What [`scan_chunk`] read from a chunk: [`ChunkSummary`]'s fields with the text left
/// undecoded, and the chunk's top-level `model` (what [`model_of`](super::model_of) reads).
/// Plain data: `usage` and `timings` are kept without the `extra` maps of [`ApiUsage`] and
/// [`ServerTimings`] (nothing downstream reads them), which are built only when there is one.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct ScannedChunk<'a> {
    /// The text, chosen as [`ChunkSummary::content`] is.
    pub content: Option<RawStr<'a>>,
    pub tool_call: bool,
    pub finish_reason: Option<FinishReason>,
    pub usage: Option<ScannedUsage>,
    pub timings: Option<ScannedTimings>,
    /// The top-level `model`, as it stands.
    pub model: Option<RawStr<'a>>,
}

impl<'a> ScannedChunk<'a> {
    pub fn has_content(&self) -> bool {
        self.content.is_some_and(|c| !c.is_empty())
    }

    pub fn has_output(&self) -> bool {
        self.has_content() || self.tool_call
    }

    /// The [`ChunkSummary`] serde gives for the same chunk (but for the `extra` maps); `None`
    /// if the text does not decode (which the scanner rules out).
    pub fn into_summary(self) -> Option<ChunkSummary<'a>> {
        Some(ChunkSummary {
            content: match self.content {
                Some(c) => c.decode()?,
                None => Cow::Borrowed(""),
            },
            tool_call: self.tool_call,
            finish_reason: self.finish_reason,
            usage: self.usage.map(ScannedUsage::api),
            timings: self.timings.map(ScannedTimings::api),
        })
    }
}

/// A `usage` object's counts, as [`ApiUsage`] holds them (but its maps of other fields).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct ScannedUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    /// `prompt_tokens_details`, if present: its `cached_tokens`.
    prompt_details: Option<Option<u64>>,
    /// `completion_tokens_details`, if present: its `reasoning_tokens`.
    completion_details: Option<Option<u64>>,
}

impl ScannedUsage {
    /// What a report takes of it: what [`ApiUsage::counts`] gives for the [`ApiUsage`] it
    /// stands for ([`api`](Self::api)), without building that.
    #[inline]
    pub fn counts(self) -> UsageCounts {
        UsageCounts::new(
            self.prompt_tokens,
            self.completion_tokens,
            self.prompt_details.flatten(),
            self.completion_details.flatten(),
        )
    }

    /// The [`ApiUsage`] serde reads (with empty `extra` maps).
    pub fn api(self) -> ApiUsage {
        ApiUsage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            total_tokens: self.total_tokens,
            prompt_tokens_details: self
                .prompt_details
                .map(|cached_tokens| PromptTokensDetails {
                    cached_tokens,
                    ..PromptTokensDetails::default()
                }),
            completion_tokens_details: self.completion_details.map(|reasoning_tokens| {
                CompletionTokensDetails {
                    reasoning_tokens,
                    ..CompletionTokensDetails::default()
                }
            }),
            ..ApiUsage::default()
        }
    }
}

/// llama.cpp's `timings`, as [`ServerTimings`] holds them (but its map of other fields); also
/// what serde reads of them where other fields need not be kept (a whole answer's).
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ScannedTimings {
    cache_n: Option<i64>,
    prompt_n: Option<i64>,
    prompt_ms: Option<f64>,
    predicted_n: Option<i64>,
    predicted_ms: Option<f64>,
}

impl ScannedTimings {
    /// Its phases: what [`ServerTimings::phases`] gives for the [`ServerTimings`] it stands
    /// for ([`api`](Self::api)), without building that.
    #[inline(always)]
    pub fn phases(self) -> ServerPhases {
        ServerPhases::of_timings(
            self.cache_n,
            self.prompt_n,
            self.prompt_ms,
            self.predicted_n,
            self.predicted_ms,
        )
    }

    /// The [`ServerTimings`] serde reads (with an empty `extra` map).
    pub fn api(self) -> ServerTimings {
        ServerTimings {
            cache_n: self.cache_n,
            prompt_n: self.prompt_n,
            prompt_ms: self.prompt_ms,
            predicted_n: self.predicted_n,
            predicted_ms: self.predicted_ms,
            ..ServerTimings::default()
        }
    }
}

/// Reads a chunk as [`decode_chunk`] and [`model_of`](super::model_of) would, without building
/// what it skips; `None` where it is not sure (then ask them). A chunk whose `error` is not
/// `null` is left to [`decode_chunk`].
pub(crate) fn scan_chunk(data: &[u8]) -> Option<ScannedChunk<'_>> {
    scan_chunk_with(data, None)
}

/// [`scan_chunk`], taking a run of members the stream's earlier chunks had from `memo` rather
/// than reading it again, and leaving in `memo` this chunk's longest run when it took none.
/// What it gives is what [`scan_chunk`] gives (`protocol::oracle` checks it).
pub(crate) fn scan_chunk_with<'a>(
    data: &'a [u8],
    mut memo: Option<&mut ChunkMemo>,
) -> Option<ScannedChunk<'a>> {
    if let Some(memo) = memo.as_deref_mut()
        && let Some(chunk) = memo.fill(data)
    {
        #[cfg(test)]
        {
            memo.reused += 1;
            memo.filled += 1;
        }
        return Some(chunk);
    }
    let mut s = Scanner::new(data);
    let mut chunk = ScannedChunk::default();
    let mut keys = Keys::default();
    let (mut run, mut longest, mut reused) = (None::<Run>, None::<Run>, false);
    if s.open()? {
        loop {
            let start = s.token_start()?;
            if let Some(memo) = memo.as_deref_mut()
                && let Some(end) = memo.found_at(data, start)
            {
                if let Some(model) = memo.model {
                    keys.once(3)?;
                    chunk.model = match model {
                        Some(place) => Some(place.at(data, start)?),
                        None => None,
                    };
                }
                s.jump(end);
                reused = true;
                #[cfg(test)]
                {
                    memo.reused += 1;
                }
            } else {
                let (mut in_run, mut model) = (true, None);
                match s.key()? {
                    b"choices" => {
                        keys.once(0)?;
                        s.array(|s| scan_choice(s, &mut chunk))?;
                        in_run = false;
                    }
                    b"usage" => {
                        keys.once(1)?;
                        chunk.usage = s.opt(|s| s.apart(scan_usage))?;
                        in_run = false;
                    }
                    b"timings" => {
                        keys.once(2)?;
                        chunk.timings = s.opt(|s| s.apart(scan_timings))?;
                        in_run = false;
                    }
                    // A failure inside the stream: left to serde, which builds the error.
                    b"error" => {
                        keys.once(4)?;
                        if !s.null()? {
                            return None;
                        }
                        in_run = false;
                    }
                    b"model" => {
                        keys.once(3)?;
                        let at = s.token_start()?;
                        chunk.model = s.opt_string()?;
                        model = Some(chunk.model.map(|m| Place::of(at, m)));
                    }
                    _ => s.skip()?,
                }
                if in_run {
                    let r = run.get_or_insert(Run {
                        start,
                        end: start,
                        model: None,
                    });
                    r.end = s.pos();
                    r.model = r.model.or(model);
                } else {
                    Run::keep_longer(&mut longest, run.take());
                }
            }
            if !s.next_member()? {
                break;
            }
        }
    }
    s.end()?;
    if let Some(memo) = memo {
        if !reused {
            Run::keep_longer(&mut longest, run);
            if let Some(longest) = longest {
                memo.keep(data, longest);
            }
        }
        memo.keep_hole(data, &chunk);
    }
    Some(chunk)
}

/// A run of top-level members that a stream's chunks repeat byte for byte (llama.cpp's
/// `created`, `id`, `model`, `system_fingerprint` and `object` after `choices`; vLLM's and
/// OpenAI's `id`, `object`, `created` and `model` before it), and what reading it gave, so that
/// a chunk that has it again at a member's start takes it as read. Only members the scanner
/// skips or `model` make a run: reading one gives the model alone and depends on nothing
/// before it (every run is read at the top level of a chunk), and bytes equal to it, followed
/// by what may follow a member, read the same.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChunkMemo {
    /// From the first member's key to the last member's value.
    run: Vec<u8>,
    /// The run's `model`, if it has one: where its string stands in the run, or `null`.
    model: Option<Option<Place>>,
    /// The last chunk read whose only output is its text, with that text as a hole
    /// ([`ChunkMemo::fill`]).
    hole: Option<Hole>,
    /// How many chunks took the run or filled the hole.
    #[cfg(test)]
    pub reused: u64,
    /// How many chunks filled the hole.
    #[cfg(test)]
    pub filled: u64,
}

/// A chunk whose text is its only output, as the next chunks of a stream repeat it byte for
/// byte but for that text (llama.cpp's, vLLM's and Ollama's content chunks differ in their
/// token alone): its bytes before and after the text's string, and what else reading it gave.
/// Reading the bytes before, any string, then the bytes after gives what reading it gave,
/// with that string as the text: the scanner's reading of a string value depends on nothing
/// but its place, and of the text's value on nothing but its being a string and not empty
/// (an empty text would leave the place to the next candidate).
#[derive(Debug, Clone, Default)]
struct Hole {
    /// The chunk: `bytes[..at]` before the text's string, `bytes[at + len..]` after it.
    bytes: Vec<u8>,
    at: usize,
    len: usize,
    finish_reason: Option<FinishReason>,
    /// The chunk's `model` string: where it stands in the bytes before the text (`false`) or
    /// in those after it (`true`, counted from their start).
    model: Option<(bool, Place)>,
    /// The chunk holds neither `\r` nor `\n`: as an event's data it was one `data:` line.
    one_line: bool,
}

impl ChunkMemo {
    /// Where the run ends, if `data` has it at `start`.
    #[inline(always)]
    fn found_at(&self, data: &[u8], start: usize) -> Option<usize> {
        let end = start + self.run.len();
        let found = !self.run.is_empty()
            && data.get(start..end)? == self.run.as_slice()
            && matches!(
                data.get(end),
                Some(b',' | b'}' | b' ' | b'\n' | b'\t' | b'\r')
            );
        found.then_some(end)
    }

    /// What [`scan_chunk`] gives for `data` when it is the hole's chunk with another text
    /// (a string, not empty) in the hole; `None` when it is not.
    #[inline(always)]
    fn fill<'a>(&self, data: &'a [u8]) -> Option<ScannedChunk<'a>> {
        let hole = self.hole.as_ref()?;
        match hole.fill_at_start(data)? {
            (end, chunk) if end == data.len() => Some(chunk),
            _ => None,
        }
    }

    /// The event `input` starts with when it is `data: `, the hole's chunk with another text
    /// (a string, not empty) in the hole, and `\n\n`, the chunk being one line: the chunk's
    /// bytes and what [`scan_chunk`] gives for them (an [`SseParser`](super::SseParser)
    /// standing between events reads those bytes as that one event's data).
    #[inline]
    pub(crate) fn fill_event<'a>(&self, input: &'a [u8]) -> Option<(&'a [u8], ScannedChunk<'a>)> {
        let hole = self.hole.as_ref().filter(|h| h.one_line)?;
        let data = input.strip_prefix(b"data: ")?;
        let (end, chunk) = hole.fill_at_start(data)?;
        if data.get(end..end + 2)? != b"\n\n" {
            return None;
        }
        Some((data.get(..end)?, chunk))
    }

    /// Keeps `data`, read as `chunk`, as the hole's chunk when its text is its only output and
    /// it has no usage or timings; else forgets the hole.
    fn keep_hole(&mut self, data: &[u8], chunk: &ScannedChunk<'_>) {
        let mut hole = self.hole.take().unwrap_or_default();
        let offset = |s: &[u8]| s.as_ptr().addr().checked_sub(data.as_ptr().addr());
        let Some(text) = chunk.content else {
            return;
        };
        if text.is_empty() || chunk.tool_call || chunk.usage.is_some() || chunk.timings.is_some() {
            return;
        }
        let Some(at) = offset(text.quoted()) else {
            return;
        };
        let len = text.quoted().len();
        if at + len > data.len() {
            return;
        }
        let model = match chunk.model {
            None => None,
            Some(m) => {
                let Some(start) = offset(m.quoted()) else {
                    return;
                };
                let place = Place::of(start, m);
                if place.end <= at {
                    Some((false, place))
                } else if place.start >= at + len {
                    let base = at + len;
                    Some((
                        true,
                        Place {
                            start: place.start - base,
                            end: place.end - base,
                            ..place
                        },
                    ))
                } else {
                    return;
                }
            }
        };
        hole.bytes.clear();
        hole.bytes.extend_from_slice(data);
        hole.at = at;
        hole.len = len;
        hole.finish_reason = chunk.finish_reason;
        hole.model = model;
        hole.one_line = memchr::memchr2(b'\r', b'\n', data).is_none();
        self.hole = Some(hole);
    }

    /// Keeps `run` of `data` (its model's place made relative to it).
    fn keep(&mut self, data: &[u8], run: Run) {
        self.run.clear();
        self.run
            .extend_from_slice(data.get(run.start..run.end).unwrap_or_default());
        self.model = run.model.map(|m| {
            m.map(|p| Place {
                start: p.start - run.start,
                end: p.end - run.start,
                ..p
            })
        });
    }
}

impl Hole {
    /// When `data` starts with the hole's chunk with another text (a string, not empty, right
    /// where the old one began) in the hole: where that chunk ends in `data`, and what
    /// [`scan_chunk`] gives for it.
    #[inline(always)]
    fn fill_at_start<'a>(&self, data: &'a [u8]) -> Option<(usize, ScannedChunk<'a>)> {
        let before = self.bytes.get(..self.at)?;
        let after = self.bytes.get(self.at + self.len..)?;
        if data.get(..self.at)? != before || data.get(self.at) != Some(&b'"') {
            return None;
        }
        let mut s = Scanner::new(data);
        s.jump(self.at);
        let text = s.string()?;
        let end = s.pos();
        let chunk_end = end + after.len();
        if text.is_empty() || data.get(end..chunk_end)? != after {
            return None;
        }
        Some((chunk_end, self.chunk(data.get(..chunk_end)?, text, end)?))
    }

    /// The hole's chunk read with `text` in the hole, `data` being that chunk and `end` where
    /// the text ends in it.
    #[inline(always)]
    fn chunk<'a>(&self, data: &'a [u8], text: RawStr<'a>, end: usize) -> Option<ScannedChunk<'a>> {
        let model = match self.model {
            None => None,
            Some((false, place)) => Some(place.at(data, 0)?),
            Some((true, place)) => Some(place.at(data, end)?),
        };
        Some(ScannedChunk {
            content: Some(text),
            tool_call: false,
            finish_reason: self.finish_reason,
            usage: None,
            timings: None,
            model,
        })
    }
}

/// A run of members met while reading a chunk.
#[derive(Debug, Clone, Copy)]
struct Run {
    start: usize,
    end: usize,
    model: Option<Option<Place>>,
}

impl Run {
    fn keep_longer(longest: &mut Option<Run>, run: Option<Run>) {
        if let Some(run) = run
            && longest.is_none_or(|l| run.end - run.start > l.end - l.start)
        {
            *longest = Some(run);
        }
    }
}

/// Where a string stands, quotes included, and whether it has escapes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Place {
    start: usize,
    end: usize,
    escaped: bool,
}

impl Place {
    fn of(start: usize, s: RawStr<'_>) -> Place {
        Place {
            start,
            end: start + s.quoted().len(),
            escaped: s.escaped(),
        }
    }

    /// The string in `data`, its place counted from `base`.
    fn at(self, data: &[u8], base: usize) -> Option<RawStr<'_>> {
        let quoted = data.get(base + self.start..base + self.end)?;
        Some(RawStr::again(quoted, self.escaped))
    }
}

/// One element of `choices`, folded into `chunk` as [`decode_chunk`] folds it.
#[inline(always)]
fn scan_choice<'a>(s: &mut Scanner<'a>, chunk: &mut ScannedChunk<'a>) -> Option<()> {
    let mut keys = Keys::default();
    let (mut delta, mut text, mut finish) = (None, None, None);
    s.object(|s, key| match key {
        b"delta" => {
            keys.once(0)?;
            if !s.null()? {
                delta = Some(scan_delta(s)?);
            }
            Some(())
        }
        b"text" => {
            keys.once(1)?;
            text = s.opt_string()?;
            Some(())
        }
        b"finish_reason" => {
            keys.once(2)?;
            finish = s.opt_string()?;
            Some(())
        }
        _ => s.skip(),
    })?;
    if chunk.finish_reason.is_none()
        && let Some(f) = finish
    {
        chunk.finish_reason = Some(finish_reason(&f.decode()?));
    }
    let (text, tool_call) = match delta {
        Some((text, tool_call)) => (text, tool_call),
        None => (text, false),
    };
    if !chunk.has_content() && text.is_some() {
        chunk.content = text;
    }
    chunk.tool_call |= tool_call;
    Some(())
}

/// A `delta`: its text (the first non-empty of `content`, `reasoning_content`, `reasoning`)
/// and whether a tool call in it carries output.
#[inline(always)]
fn scan_delta<'a>(s: &mut Scanner<'a>) -> Option<(Option<RawStr<'a>>, bool)> {
    let mut keys = Keys::default();
    let mut texts = [None; 3];
    let mut tool_call = false;
    s.object(|s, key| {
        let slot = match key {
            b"content" => 0,
            b"reasoning_content" => 1,
            b"reasoning" => 2,
            b"tool_calls" => {
                keys.once(3)?;
                if !s.null()? {
                    s.array(|s| {
                        tool_call |= s.apart(scan_tool_call)?;
                        Some(())
                    })?;
                }
                return Some(());
            }
            _ => return s.skip(),
        };
        keys.once(slot)?;
        texts[slot] = s.opt_string()?;
        Some(())
    })?;
    let text = texts.into_iter().flatten().find(|t| !t.is_empty());
    Some((text, tool_call))
}

/// One tool call delta: whether its `function` has a non-empty `name` or `arguments`.
fn scan_tool_call(s: &mut Scanner<'_>) -> Option<bool> {
    let mut keys = Keys::default();
    let mut output = false;
    s.object(|s, key| {
        if key != b"function" {
            return s.skip();
        }
        keys.once(0)?;
        if s.null()? {
            return Some(());
        }
        let mut inner = Keys::default();
        s.object(|s, key| {
            let slot = match key {
                b"name" => 0,
                b"arguments" => 1,
                _ => return s.skip(),
            };
            inner.once(slot)?;
            output |= s.opt_string()?.is_some_and(|t| !t.is_empty());
            Some(())
        })
    })?;
    Some(output)
}

/// An object read as serde reads a struct with a flattened map: the members `known` names
/// (each key with its quotes) at most once each, their values read by `member(s, i)` for
/// `known[i]`; every other member skipped, checked as the map would read it.
#[inline(always)]
fn scan_struct<const N: usize>(
    outer: &mut Scanner<'_>,
    known: &[&[u8]; N],
    mut member: impl FnMut(&mut Scanner<'_>, usize) -> Option<()>,
) -> Option<()> {
    // A copy that stays in registers (the callers are out of line).
    let s = &mut outer.clone();
    let mut keys = Keys::default();
    s.object_keyed(known, false, |s, key| match key {
        Key::Known(i) => {
            // A known key given twice is refused (serde reads a struct so).
            keys.once(i)?;
            member(s, i)
        }
        Key::Other(_) => s.skip_checked(),
    })?;
    outer.jump(s.pos());
    Some(())
}

/// A `usage` object ([`ApiUsage`]; its unknown fields are skipped, checked as its flattened
/// map would read them).
pub(crate) fn scan_usage(outer: &mut Scanner<'_>) -> Option<ScannedUsage> {
    let mut usage = ScannedUsage::default();
    scan_struct(
        outer,
        &[
            b"\"prompt_tokens\"",
            b"\"completion_tokens\"",
            b"\"total_tokens\"",
            b"\"prompt_tokens_details\"",
            b"\"completion_tokens_details\"",
        ],
        |s, i| {
            match i {
                0 => usage.prompt_tokens = s.u64()?,
                1 => usage.completion_tokens = s.u64()?,
                2 => usage.total_tokens = s.u64()?,
                3 => usage.prompt_details = s.opt(|s| scan_detail(s, b"cached_tokens"))?,
                _ => {
                    usage.completion_details = s.opt(|s| scan_detail(s, b"reasoning_tokens"))?;
                }
            }
            Some(())
        },
    )?;
    Some(usage)
}

/// A details object: its count `name` (the rest skipped as a flattened map reads it).
#[inline(always)]
fn scan_detail(s: &mut Scanner<'_>, name: &[u8]) -> Option<Option<u64>> {
    let mut keys = Keys::default();
    let mut count = None;
    s.object(|s, key| {
        if key != name {
            return s.skip_checked();
        }
        keys.once(0)?;
        count = s.opt_u64()?;
        Some(())
    })?;
    Some(count)
}

/// llama.cpp's `timings` ([`ServerTimings`]).
pub(crate) fn scan_timings(outer: &mut Scanner<'_>) -> Option<ScannedTimings> {
    let mut t = ScannedTimings::default();
    scan_struct(
        outer,
        &[
            b"\"cache_n\"",
            b"\"prompt_n\"",
            b"\"prompt_ms\"",
            b"\"predicted_n\"",
            b"\"predicted_ms\"",
        ],
        |s, i| {
            match i {
                0 => t.cache_n = s.opt_i64()?,
                1 => t.prompt_n = s.opt_i64()?,
                2 => t.prompt_ms = s.opt_f64()?,
                3 => t.predicted_n = s.opt_i64()?,
                _ => t.predicted_ms = s.opt_f64()?,
            }
            Some(())
        },
    )?;
    Some(t)
}
