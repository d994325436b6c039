//! Streamed Chat Completions and Completions answers: [`StreamObserver`] follows a whole stream
//! (output chunks, usage, timings, finish reason, the terminal `[DONE]`), reading each `data:`
//! event with [`chunk`](super::chunk)'s scanner, or with [`decode_chunk`] where the scanner is
//! not sure.
//!
//! Neither looks at a clock: the caller timestamps the events [`StreamObserver::observe`]
//! reports as output. A chunk is output when it carries generated text of any kind: `content`
//! (chat) or `text` (completions), `reasoning_content` / `reasoning`, or a tool call's
//! `function.name` or `function.arguments` delta. TTFT is the time to the first output chunk
//! (llama.cpp sends a role-only chunk with `content: null` before it computes anything, which is
//! not output); ITL is the gap between output chunks.

use std::borrow::Cow;

use telemetry_wrap::{FinishReason, Usage};

#[cfg(doc)]
use crate::protocol::chunk::ChunkSummary;
use crate::protocol::chunk::{
    ScannedChunk, ScannedTimings, ScannedUsage, decode_chunk, scan_chunk,
};
use crate::protocol::error::OpenAiError;
use crate::protocol::sse::SseEvent;
use crate::protocol::usage::{ApiUsage, ServerPhases, ServerReport, ServerTimings, UsageCounts};

/// The part of a chunk a client acts on: its text and finish reason (usage and timings are
/// folded into the observer's [`report`](StreamObserver::report)).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamDelta<'a> {
    /// The chunk's text (see [`ChunkSummary::content`]).
    pub content: Cow<'a, str>,
    /// Whether the chunk carries a tool call's name or arguments.
    pub tool_call: bool,
    /// Set on a finish chunk.
    pub finish_reason: Option<FinishReason>,
}

impl StreamDelta<'_> {
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

/// What [`StreamObserver::observe`] saw in one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed<'a> {
    /// A chunk.
    Chunk(StreamDelta<'a>),
    /// The `[DONE]` sentinel.
    Done,
}

/// Follows one streamed answer, event by event: counts content chunks, keeps the latest usage
/// and timings and the finish reason, and knows whether `[DONE]` came.
///
/// ```
/// use telemetry_openai::protocol::{Observed, SseParser, StreamObserver};
///
/// let body = concat!(
///     "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":null}}]}\n\n",
///     "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
///     "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
///     "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1,\"total_tokens\":10}}\n\n",
///     "data: [DONE]\n\n",
/// );
/// let mut parser = SseParser::new();
/// let mut observer = StreamObserver::new();
/// let mut texts = Vec::new();
/// parser.feed(body.as_bytes(), |event| {
///     if let Ok(Observed::Chunk(c)) = observer.observe(event) {
///         if c.has_content() {
///             texts.push(c.content.into_owned()); // timestamp here: TTFT, ITL
///         }
///     }
/// }).unwrap();
/// assert_eq!(texts, ["Hi"]);
/// assert!(observer.end().is_ok());
/// let (usage, counted) = observer.usage();
/// assert_eq!((usage.prompt_tokens, usage.completion_tokens, counted), (9, 1, false));
/// ```
#[derive(Debug, Clone, Default)]
pub struct StreamObserver {
    content_chunks: u64,
    output_chunks: u64,
    report: ServerReport,
    finish_reason: Option<FinishReason>,
    done: bool,
}

impl StreamObserver {
    /// An observer at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one event. An error event (or a chunk with `{"error": ...}`) is returned as
    /// [`OpenAiError::StreamError`], malformed data as [`OpenAiError::Protocol`].
    pub fn observe<'a>(&mut self, event: SseEvent<'a>) -> Result<Observed<'a>, OpenAiError> {
        match event {
            SseEvent::Data(data) => {
                let chunk = match scan_chunk(data).and_then(ScannedChunk::into_summary) {
                    Some(chunk) => chunk,
                    None => decode_chunk(data)?,
                };
                self.fold(
                    chunk.has_content(),
                    chunk.has_output(),
                    chunk.usage.as_ref().map(ApiUsage::counts),
                    chunk.timings.as_ref().map(ServerTimings::phases),
                    chunk.finish_reason,
                );
                Ok(Observed::Chunk(StreamDelta {
                    content: chunk.content,
                    tool_call: chunk.tool_call,
                    finish_reason: chunk.finish_reason,
                }))
            }
            SseEvent::Error(payload) => Err(OpenAiError::from_stream_error(payload)),
            SseEvent::Done => {
                self.done = true;
                Ok(Observed::Done)
            }
        }
    }

    /// Takes a chunk [`scan_chunk`] read, as [`observe`](Self::observe) takes its data (the
    /// text is not decoded: a recorder only needs to know there is some; `usage` and
    /// `timings` are built only when the chunk has them).
    pub(crate) fn observe_scanned(&mut self, chunk: &ScannedChunk<'_>) {
        self.fold(
            chunk.has_content(),
            chunk.has_output(),
            chunk.usage.map(ScannedUsage::counts),
            chunk.timings.map(ScannedTimings::phases),
            chunk.finish_reason,
        );
    }

    fn fold(
        &mut self,
        content: bool,
        output: bool,
        usage: Option<UsageCounts>,
        phases: Option<ServerPhases>,
        finish_reason: Option<FinishReason>,
    ) {
        self.content_chunks += u64::from(content);
        self.output_chunks += u64::from(output);
        if usage.is_some() || phases.is_some() {
            self.report.add_counts(usage, phases);
        }
        if finish_reason.is_some() {
            self.finish_reason = finish_reason;
        }
    }

    /// Chunks with non-empty content so far.
    pub fn content_chunks(&self) -> u64 {
        self.content_chunks
    }

    /// Chunks with output of any kind (text or a tool call) so far.
    pub fn output_chunks(&self) -> u64 {
        self.output_chunks
    }

    /// Usage and server timings reported so far.
    pub fn report(&self) -> &ServerReport {
        &self.report
    }

    /// The finish reason, once a chunk gave one.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish_reason
    }

    /// Whether `[DONE]` came.
    pub fn saw_done(&self) -> bool {
        self.done
    }

    /// The token counts: the server's usage, else `completion_tokens` = output chunks and
    /// `true` (counted, not reported).
    pub fn usage(&self) -> (Usage, bool) {
        match self.report.usage {
            Some(u) => (u, false),
            None => (Usage::new(0, self.output_chunks), true),
        }
    }

    /// Checks the stream's end: [`OpenAiError::StreamIncomplete`] unless `[DONE]` came.
    pub fn end(&self) -> Result<(), OpenAiError> {
        if self.done {
            Ok(())
        } else {
            Err(OpenAiError::StreamIncomplete {
                chunks: self.content_chunks,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_chunks_and_escapes() {
        let c = decode_chunk(br#"{"choices":[{"text":"a\nb","index":0,"finish_reason":null}]}"#)
            .unwrap();
        assert_eq!(c.content, "a\nb");
        assert!(matches!(c.content, Cow::Owned(_)), "an escape needs a copy");
        let plain = decode_chunk(br#"{"choices":[{"text":"ab"}]}"#).unwrap();
        assert!(matches!(plain.content, Cow::Borrowed("ab")));
    }

    #[test]
    fn reasoning_counts_as_content_when_there_is_no_content() {
        let c = decode_chunk(
            br#"{"choices":[{"delta":{"content":null,"reasoning_content":"think"}}]}"#,
        )
        .unwrap();
        assert_eq!(c.content, "think");
        let c = decode_chunk(br#"{"choices":[{"delta":{"content":"","reasoning":"r"}}]}"#).unwrap();
        assert_eq!(c.content, "r");
    }

    #[test]
    fn tool_call_deltas_are_output_without_text() {
        let name = decode_chunk(
            br#"{"choices":[{"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}"#,
        )
        .unwrap();
        assert!(name.has_output() && !name.has_content());
        let args = decode_chunk(
            br#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"ci"}}]}}]}"#,
        )
        .unwrap();
        assert!(args.has_output());
        let empty = decode_chunk(
            br#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":""}}]},"finish_reason":null}]}"#,
        )
        .unwrap();
        assert!(!empty.has_output());
        let mut obs = StreamObserver::new();
        for data in [
            &br#"{"choices":[{"delta":{"role":"assistant","content":null}}]}"#[..],
            br#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":""}}]}}]}"#,
            br#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}"#,
            br#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
        ] {
            obs.observe(SseEvent::Data(data)).unwrap();
        }
        assert_eq!((obs.output_chunks(), obs.content_chunks()), (2, 0));
        assert_eq!(obs.usage(), (Usage::new(0, 2), true));
        assert_eq!(obs.finish_reason(), Some(FinishReason::ToolCalls));
    }

    #[test]
    fn errors_inside_the_stream() {
        let vllm = decode_chunk(
            br#"{"error":{"object":"error","message":"out of KV cache","type":"InternalServerError","code":500}}"#,
        )
        .unwrap_err();
        assert_eq!(vllm.error_kind(), "http_500");
        assert!(vllm.to_string().contains("out of KV cache"));
        let mut obs = StreamObserver::new();
        let llama = obs
            .observe(SseEvent::Error(
                br#"{"code":400,"message":"bad","type":"invalid_request_error"}"#,
            ))
            .unwrap_err();
        assert_eq!(llama.error_kind(), "http_400");
        let garbage = decode_chunk(b"{not json").unwrap_err();
        assert_eq!(garbage.error_kind(), "protocol");
    }

    #[test]
    fn stream_without_done_is_incomplete_and_counts_tokens() {
        let mut obs = StreamObserver::new();
        for _ in 0..3 {
            obs.observe(SseEvent::Data(
                br#"{"choices":[{"delta":{"content":"x"}}]}"#,
            ))
            .unwrap();
        }
        assert_eq!(obs.usage(), (Usage::new(0, 3), true));
        assert_eq!(obs.end(), Err(OpenAiError::StreamIncomplete { chunks: 3 }));
        obs.observe(SseEvent::Done).unwrap();
        assert_eq!(obs.end(), Ok(()));
    }
}
