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
use crate::protocol::scanner::{Keys, RawStr, Scanner};
use crate::protocol::types::finish_reason;
use crate::protocol::usage::{
    ApiUsage, CompletionTokensDetails, PromptTokensDetails, ServerTimings,
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

/// llama.cpp's `timings`, as [`ServerTimings`] holds them (but its map of other fields).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct ScannedTimings {
    cache_n: Option<i64>,
    prompt_n: Option<i64>,
    prompt_ms: Option<f64>,
    predicted_n: Option<i64>,
    predicted_ms: Option<f64>,
}

impl ScannedTimings {
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
    let mut s = Scanner::new(data);
    let mut chunk = ScannedChunk::default();
    let mut keys = Keys::default();
    s.object(|s, key| match key {
        b"choices" => {
            keys.once(0)?;
            s.array(|s| scan_choice(s, &mut chunk))
        }
        b"usage" => {
            keys.once(1)?;
            chunk.usage = s.opt(|s| s.apart(scan_usage))?;
            Some(())
        }
        b"timings" => {
            keys.once(2)?;
            chunk.timings = s.opt(|s| s.apart(scan_timings))?;
            Some(())
        }
        b"model" => {
            keys.once(3)?;
            chunk.model = s.opt_string()?;
            Some(())
        }
        // A failure inside the stream: left to serde, which builds the error.
        b"error" => {
            keys.once(4)?;
            s.null()?.then_some(())
        }
        _ => s.skip(),
    })?;
    s.end()?;
    Some(chunk)
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
        texts[slot as usize] = s.opt_string()?;
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

/// A `usage` object ([`ApiUsage`]; its unknown fields are skipped, checked as its flattened
/// map would read them).
pub(crate) fn scan_usage(s: &mut Scanner<'_>) -> Option<ScannedUsage> {
    let mut keys = Keys::default();
    let mut usage = ScannedUsage::default();
    s.object(|s, key| {
        match key {
            b"prompt_tokens" => {
                keys.once(0)?;
                usage.prompt_tokens = s.u64()?;
            }
            b"completion_tokens" => {
                keys.once(1)?;
                usage.completion_tokens = s.u64()?;
            }
            b"total_tokens" => {
                keys.once(2)?;
                usage.total_tokens = s.u64()?;
            }
            b"prompt_tokens_details" => {
                keys.once(3)?;
                usage.prompt_details = s.opt(|s| scan_detail(s, b"cached_tokens"))?;
            }
            b"completion_tokens_details" => {
                keys.once(4)?;
                usage.completion_details = s.opt(|s| scan_detail(s, b"reasoning_tokens"))?;
            }
            _ => s.skip_checked()?,
        }
        Some(())
    })?;
    Some(usage)
}

/// A details object: its count `name` (the rest skipped as a flattened map reads it).
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
pub(crate) fn scan_timings(s: &mut Scanner<'_>) -> Option<ScannedTimings> {
    let mut keys = Keys::default();
    let mut t = ScannedTimings::default();
    s.object(|s, key| {
        match key {
            b"cache_n" => {
                keys.once(0)?;
                t.cache_n = s.opt_i64()?;
            }
            b"prompt_n" => {
                keys.once(1)?;
                t.prompt_n = s.opt_i64()?;
            }
            b"prompt_ms" => {
                keys.once(2)?;
                t.prompt_ms = s.opt_f64()?;
            }
            b"predicted_n" => {
                keys.once(3)?;
                t.predicted_n = s.opt_i64()?;
            }
            b"predicted_ms" => {
                keys.once(4)?;
                t.predicted_ms = s.opt_f64()?;
            }
            _ => s.skip_checked()?,
        }
        Some(())
    })?;
    Some(t)
}
