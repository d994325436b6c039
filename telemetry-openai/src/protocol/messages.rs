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

use std::borrow::Cow;

use serde::Deserialize;
use telemetry_wrap::Usage;

use crate::protocol::common::{EventFacts, ModelText, read_event, stream_accessors, whole_body};
use crate::protocol::error::{OpenAiError, ProtocolError};
use crate::protocol::json::Text;
use crate::protocol::scanner::{Keys, RawStr, Scanner};
use crate::protocol::sse::SseEvent;
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
    Ok(whole_body(probe.usage.map(|u| u.to_usage()), probe.model))
}

/// What a stream takes from one event; the scanner and serde both give it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Event<'a> {
    kind: Kind,
    /// The model of the event's `message`, when it has one (`Some(None)`: a message without).
    message_model: Option<Option<Cow<'a, str>>>,
    /// The event's `usage`, else its message's.
    usage: Option<MessagesUsage>,
    /// Its delta carries output: a non-empty `text_delta`, `input_json_delta` or
    /// `thinking_delta`.
    output: bool,
}

/// The event types a stream acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Kind {
    MessageStart,
    ContentBlockDelta,
    MessageStop,
    Error,
    #[default]
    Other,
}

impl Kind {
    fn of(kind: &[u8]) -> Kind {
        match kind {
            b"message_start" => Kind::MessageStart,
            b"content_block_delta" => Kind::ContentBlockDelta,
            b"message_stop" => Kind::MessageStop,
            b"error" => Kind::Error,
            _ => Kind::Other,
        }
    }
}

/// Whether a delta of type `kind` with these texts is output.
fn delta_output(kind: &[u8], text: bool, partial_json: bool, thinking: bool) -> bool {
    match kind {
        b"text_delta" => text,
        b"input_json_delta" => partial_json,
        b"thinking_delta" => thinking,
        _ => false,
    }
}

/// Reads one event with serde (the reference).
pub(crate) fn decode_event(data: &[u8]) -> Result<Event<'_>, ProtocolError> {
    let probe: EventProbe<'_> = serde_json::from_slice(data)
        .map_err(|e| ProtocolError::json("messages event", data, &e))?;
    let non_empty = |t: &Option<Text<'_>>| t.as_ref().is_some_and(|t| !t.0.is_empty());
    Ok(Event {
        kind: Kind::of(probe.kind.as_ref().map_or(b"", |k| k.0.as_bytes())),
        usage: probe
            .usage
            .or_else(|| probe.message.as_ref().and_then(|m| m.usage)),
        output: probe.delta.is_some_and(|d| {
            delta_output(
                d.kind.as_ref().map_or(b"", |k| k.0.as_bytes()),
                non_empty(&d.text),
                non_empty(&d.partial_json),
                non_empty(&d.thinking),
            )
        }),
        message_model: probe.message.map(|m| m.model.map(|t| t.0)),
    })
}

/// Reads one event as [`decode_event`] does, with the [`Scanner`]; `None` where it is not sure.
pub(crate) fn scan_event(data: &[u8]) -> Option<Event<'_>> {
    let mut s = Scanner::new(data);
    let mut keys = Keys::default();
    let (mut kind, mut message, mut output, mut usage) = (None, None, false, None);
    s.object(|s, key| {
        match key {
            b"type" => {
                keys.once(0)?;
                kind = s.opt_string()?;
            }
            b"message" => {
                keys.once(1)?;
                message = s.opt(scan_message)?;
            }
            b"delta" => {
                keys.once(2)?;
                output = s.opt(scan_delta)?.unwrap_or(false);
            }
            b"usage" => {
                keys.once(3)?;
                usage = s.opt(scan_usage)?;
            }
            _ => s.skip()?,
        }
        Some(())
    })?;
    s.end()?;
    let kind = kind.map_or(Some(Kind::Other), |k| Some(Kind::of(&k.bytes()?)))?;
    let message_model = match message {
        Some((Some(model), _)) => Some(Some(model.decode()?)),
        Some((None, _)) => Some(None),
        None => None,
    };
    Some(Event {
        kind,
        usage: usage.or(message.and_then(|(_, u)| u)),
        output,
        message_model,
    })
}

/// A `message`: its model and usage.
fn scan_message<'a>(s: &mut Scanner<'a>) -> Option<(Option<RawStr<'a>>, Option<MessagesUsage>)> {
    let mut keys = Keys::default();
    let (mut model, mut usage) = (None, None);
    s.object(|s, key| {
        match key {
            b"model" => {
                keys.once(0)?;
                model = s.opt_string()?;
            }
            b"usage" => {
                keys.once(1)?;
                usage = s.opt(scan_usage)?;
            }
            _ => s.skip()?,
        }
        Some(())
    })?;
    Some((model, usage))
}

/// A `delta`: whether it carries output.
fn scan_delta(s: &mut Scanner<'_>) -> Option<bool> {
    let mut keys = Keys::default();
    let mut fields: [Option<RawStr<'_>>; 4] = [None; 4];
    s.object(|s, key| {
        let slot = match key {
            b"type" => 0,
            b"text" => 1,
            b"partial_json" => 2,
            b"thinking" => 3,
            _ => return s.skip(),
        };
        keys.once(slot)?;
        fields[slot] = s.opt_string()?;
        Some(())
    })?;
    let [kind, text, partial_json, thinking] = fields;
    let non_empty = |t: Option<RawStr<'_>>| t.is_some_and(|t| !t.is_empty());
    let kind = match kind {
        Some(k) => k.bytes()?,
        None => Cow::Borrowed(&b""[..]),
    };
    Some(delta_output(
        &kind,
        non_empty(text),
        non_empty(partial_json),
        non_empty(thinking),
    ))
}

/// A [`MessagesUsage`].
fn scan_usage(s: &mut Scanner<'_>) -> Option<MessagesUsage> {
    let mut keys = Keys::default();
    let mut u = MessagesUsage::default();
    s.object(|s, key| {
        let (slot, field) = match key {
            b"input_tokens" => (0, &mut u.input_tokens),
            b"output_tokens" => (1, &mut u.output_tokens),
            b"cache_read_input_tokens" => (2, &mut u.cache_read_input_tokens),
            b"cache_creation_input_tokens" => (3, &mut u.cache_creation_input_tokens),
            _ => return s.skip(),
        };
        keys.once(slot)?;
        *field = s.opt_u64()?;
        Some(())
    })?;
    Some(u)
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
        let Some((data, event)) = read_event(event, scan_event, decode_event)? else {
            return Ok(EventFacts::default());
        };
        if let Some(u) = event.usage {
            let merged = self.usage.map_or(u, |old| old.updated(u));
            self.usage = Some(merged);
            self.report.usage = Some(merged.to_usage());
        }
        match event.kind {
            Kind::MessageStart => {
                if let Some(model) = event.message_model {
                    self.model = model.filter(|m| !m.is_empty()).map(Cow::into_owned);
                }
                Ok(EventFacts::default())
            }
            Kind::ContentBlockDelta => Ok(EventFacts {
                output: event.output,
                terminal: false,
            }),
            Kind::MessageStop => {
                self.terminal = true;
                Ok(EventFacts::terminal())
            }
            Kind::Error => Err(OpenAiError::from_stream_error(data)),
            Kind::Other => Ok(EventFacts::default()),
        }
    }

    stream_accessors!(
        report: "Usage reported so far.",
        model: "The message's model, once `message_start` named it.",
        terminal: "Whether `message_stop` came.",
    );
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
