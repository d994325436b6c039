//! Anthropic Messages, `POST /v1/messages`: its usage rules, output events and terminal event.
//!
//! - Usage: `input_tokens` counts only the input neither read from nor written to the prompt
//!   cache, so the record's prompt tokens are `input_tokens + cache_read_input_tokens +
//!   cache_creation_input_tokens`, its cached tokens `cache_read_input_tokens` and its
//!   cache-write tokens `cache_creation_input_tokens`; output tokens are `output_tokens`
//!   (thinking included). In a stream, `message_start` carries the input side and
//!   `message_delta` the cumulative counts so far: a later count replaces an earlier one.
//! - Output (a point for TTFT and ITL): a `content_block_delta` whose delta is a non-empty
//!   `text_delta`, `input_json_delta` (tool-use arguments) or `thinking_delta`
//!   (`signature_delta` is not output).
//! - Terminal: `message_stop`. An `error` event is an error.

use serde::Deserialize;
use telemetry_wrap::Usage;

use crate::protocol::common::{EventFacts, ModelText, model_text};
use crate::protocol::error::{OpenAiError, ProtocolError};
use crate::protocol::sse::SseEvent;
use crate::protocol::stream::Text;
use crate::protocol::usage::ServerReport;

/// A Messages `usage` object; a field the server left out is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct MessagesUsage {
    /// Input tokens outside the prompt cache.
    #[serde(default)]
    pub input_tokens: Option<u64>,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: Option<u64>,
    /// Input tokens read from the prompt cache.
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    /// Input tokens written to the prompt cache.
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
}

impl MessagesUsage {
    /// This usage with the fields `later` has replaced by its values (a stream's
    /// `message_delta` after `message_start`).
    #[must_use]
    pub fn updated(self, later: MessagesUsage) -> MessagesUsage {
        MessagesUsage {
            input_tokens: later.input_tokens.or(self.input_tokens),
            output_tokens: later.output_tokens.or(self.output_tokens),
            cache_read_input_tokens: later
                .cache_read_input_tokens
                .or(self.cache_read_input_tokens),
            cache_creation_input_tokens: later
                .cache_creation_input_tokens
                .or(self.cache_creation_input_tokens),
        }
    }

    /// The record's token counts.
    pub fn to_usage(&self) -> Usage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let write = self.cache_creation_input_tokens.unwrap_or(0);
        let prompt = self
            .input_tokens
            .unwrap_or(0)
            .saturating_add(read)
            .saturating_add(write);
        Usage::new(prompt, self.output_tokens.unwrap_or(0))
            .with_cached(read)
            .with_cache_write(write)
    }
}

#[derive(Deserialize)]
struct MessageProbe<'a> {
    #[serde(default, borrow)]
    model: Option<ModelText<'a>>,
    #[serde(default)]
    usage: Option<MessagesUsage>,
}

#[derive(Deserialize)]
struct DeltaProbe<'a> {
    #[serde(default, borrow, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(default, borrow)]
    text: Option<Text<'a>>,
    #[serde(default, borrow)]
    partial_json: Option<Text<'a>>,
    #[serde(default, borrow)]
    thinking: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct EventProbe<'a> {
    #[serde(default, borrow, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(default, borrow)]
    message: Option<MessageProbe<'a>>,
    #[serde(default, borrow)]
    delta: Option<DeltaProbe<'a>>,
    #[serde(default)]
    usage: Option<MessagesUsage>,
}

/// Reads a whole Messages body: usage and model.
pub fn read_body(body: &[u8]) -> Result<(ServerReport, Option<String>), ProtocolError> {
    let probe: MessageProbe<'_> =
        serde_json::from_slice(body).map_err(|e| ProtocolError::json("messages body", body, &e))?;
    let report = ServerReport {
        usage: probe.usage.map(|u| u.to_usage()),
        ..ServerReport::default()
    };
    Ok((report, model_text(probe.model)))
}

/// Follows one Messages stream.
#[derive(Debug, Clone, Default)]
pub struct MessagesStream {
    usage: Option<MessagesUsage>,
    report: ServerReport,
    model: Option<String>,
    terminal: bool,
}

impl MessagesStream {
    /// Takes one event.
    pub fn observe(&mut self, event: SseEvent<'_>) -> Result<EventFacts, OpenAiError> {
        let data = match event {
            SseEvent::Data(data) => data,
            SseEvent::Error(payload) => return Err(OpenAiError::from_stream_error(payload)),
            SseEvent::Done => return Ok(EventFacts::default()),
        };
        let probe: EventProbe<'_> = serde_json::from_slice(data)
            .map_err(|e| ProtocolError::json("messages event", data, &e))?;
        let kind = probe.kind.as_ref().map_or("", |k| &*k.0);
        let usage = probe
            .usage
            .or_else(|| probe.message.as_ref().and_then(|m| m.usage));
        if let Some(u) = usage {
            let merged = self.usage.map_or(u, |old| old.updated(u));
            self.usage = Some(merged);
            self.report.usage = Some(merged.to_usage());
        }
        match kind {
            "message_start" => {
                if let Some(m) = probe.message {
                    self.model = model_text(m.model);
                }
                Ok(EventFacts::default())
            }
            "content_block_delta" => {
                let output = probe.delta.is_some_and(|d| {
                    let text = match d.kind.as_ref().map_or("", |k| &*k.0) {
                        "text_delta" => d.text,
                        "input_json_delta" => d.partial_json,
                        "thinking_delta" => d.thinking,
                        _ => None,
                    };
                    text.is_some_and(|t| !t.0.is_empty())
                });
                Ok(EventFacts {
                    output,
                    terminal: false,
                })
            }
            "message_stop" => {
                self.terminal = true;
                Ok(EventFacts::terminal())
            }
            "error" => Err(OpenAiError::from_stream_error(data)),
            _ => Ok(EventFacts::default()),
        }
    }

    /// Usage reported so far.
    pub fn report(&self) -> &ServerReport {
        &self.report
    }

    /// The message's model, once `message_start` named it.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// Whether `message_stop` came.
    pub fn saw_terminal(&self) -> bool {
        self.terminal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_tool_input_and_thinking_deltas_are_output_and_usage_is_cumulative() {
        let mut s = MessagesStream::default();
        let events = [
            r#"{"type":"message_start","message":{"id":"msg","type":"message","role":"assistant","model":"claude-x","content":[],"usage":{"input_tokens":10,"cache_read_input_tokens":90,"cache_creation_input_tokens":5,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"so"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"x"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hi"}}"#,
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}"#,
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"a\":1}"}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":42}}"#,
            r#"{"type":"message_stop"}"#,
        ];
        let facts: Vec<EventFacts> = events
            .iter()
            .map(|e| s.observe(SseEvent::Data(e.as_bytes())).unwrap())
            .collect();
        let outputs: Vec<bool> = facts.iter().map(|f| f.output).collect();
        assert_eq!(
            outputs,
            [
                false, false, false, true, false, true, false, true, false, false
            ]
        );
        assert!(facts[9].terminal && s.saw_terminal());
        assert_eq!(s.model(), Some("claude-x"));
        assert_eq!(
            s.report().usage,
            Some(Usage::new(105, 42).with_cached(90).with_cache_write(5))
        );
    }

    #[test]
    fn an_error_event_is_an_error() {
        let mut s = MessagesStream::default();
        let e = s
            .observe(SseEvent::Error(
                br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ))
            .unwrap_err();
        assert!(e.to_string().contains("Overloaded"), "{e}");
        assert!(!s.saw_terminal());
    }

    #[test]
    fn whole_bodies() {
        let (report, model) = read_body(
            br#"{"id":"msg","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"hi"}],
               "stop_reason":"end_turn","usage":{"cache_read_input_tokens":3,"input_tokens":7,"output_tokens":2}}"#,
        )
        .unwrap();
        assert_eq!(report.usage, Some(Usage::new(10, 2).with_cached(3)));
        assert_eq!(model.as_deref(), Some("m"));
    }
}
