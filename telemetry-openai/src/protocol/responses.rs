//! OpenAI Responses, `POST /v1/responses`: its usage rules, output events and terminal event.
//!
//! - Usage: `usage.input_tokens` (cached ones included), `usage.output_tokens` (reasoning
//!   included), `input_tokens_details.cached_tokens`, `output_tokens_details.reasoning_tokens`;
//!   in a whole body at the top level, in a stream inside the terminal event's `response`.
//! - Output (a point for TTFT and ITL): every `response.*.delta` event with a non-empty
//!   `delta`: `response.output_text.delta`, `response.function_call_arguments.delta`,
//!   `response.reasoning_text.delta`, `response.reasoning_summary_text.delta`, refusals, ...
//! - Terminal: `response.completed` or `response.incomplete` (the call ended; `incomplete`
//!   says a limit cut it), `response.failed` (an error, with the response's `error`). An
//!   `error` event is an error too.

use std::borrow::Cow;

use serde::Deserialize;
use telemetry_wrap::Usage;

use crate::protocol::common::{
    EventFacts, ModelText, NonEmpty, read_event, stream_accessors, whole_body,
};
use crate::protocol::error::{OpenAiError, ProtocolError, ServerError};
use crate::protocol::json::Text;
use crate::protocol::scanner::{Keys, Scanner};
use crate::protocol::sse::SseEvent;
use crate::protocol::usage::ServerReport;

/// A Responses `usage` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct ResponsesUsage {
    /// Input tokens, cached ones included.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens, reasoning included.
    #[serde(default)]
    pub output_tokens: u64,
    /// `input_tokens_details`.
    #[serde(default)]
    pub input_tokens_details: Option<InputDetails>,
    /// `output_tokens_details`.
    #[serde(default)]
    pub output_tokens_details: Option<OutputDetails>,
}

/// `usage.input_tokens_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct InputDetails {
    /// Input tokens read from the prompt cache.
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

/// `usage.output_tokens_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct OutputDetails {
    /// Output tokens spent on reasoning.
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

impl ResponsesUsage {
    /// The record's token counts.
    pub fn to_usage(&self) -> Usage {
        Usage::new(self.input_tokens, self.output_tokens)
            .with_cached(
                self.input_tokens_details
                    .and_then(|d| d.cached_tokens)
                    .unwrap_or(0),
            )
            .with_reasoning(
                self.output_tokens_details
                    .and_then(|d| d.reasoning_tokens)
                    .unwrap_or(0),
            )
    }
}

#[derive(Deserialize)]
struct ResponseProbe<'a> {
    #[serde(default, borrow)]
    model: Option<ModelText<'a>>,
    #[serde(default)]
    usage: Option<ResponsesUsage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct EventProbe<'a> {
    #[serde(default, borrow, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(default)]
    delta: Option<NonEmpty>,
    #[serde(default, borrow)]
    response: Option<ResponseProbe<'a>>,
}

/// Reads a whole Responses body: usage and model.
pub fn read_body(body: &[u8]) -> Result<(ServerReport, Option<String>), ProtocolError> {
    let probe: ResponseProbe<'_> = serde_json::from_slice(body)
        .map_err(|e| ProtocolError::json("responses body", body, &e))?;
    Ok(whole_body(probe.usage.map(|u| u.to_usage()), probe.model))
}

/// What a stream takes from one event; the scanner and serde both give it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Event<'a> {
    kind: Kind,
    /// The event's `response`: its model, usage and error.
    response: Option<Response<'a>>,
    /// Its `delta` says something (a non-empty string, or any value but `null`).
    output: bool,
}

/// The parts of an event's `response` a stream takes.
#[derive(Debug, Clone, PartialEq, Default)]
struct Response<'a> {
    model: Option<Cow<'a, str>>,
    usage: Option<ResponsesUsage>,
    error: Option<serde_json::Value>,
}

/// The event types a stream acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Kind {
    /// `response.completed`, `response.incomplete`.
    Ended,
    Failed,
    Error,
    /// Any `response.*.delta`.
    Delta,
    #[default]
    Other,
}

impl Kind {
    fn of(kind: &[u8]) -> Kind {
        match kind {
            b"response.completed" | b"response.incomplete" => Kind::Ended,
            b"response.failed" => Kind::Failed,
            b"error" => Kind::Error,
            k if k.ends_with(b".delta") => Kind::Delta,
            _ => Kind::Other,
        }
    }
}

/// Reads one event with serde (the reference).
pub(crate) fn decode_event(data: &[u8]) -> Result<Event<'_>, ProtocolError> {
    let probe: EventProbe<'_> = serde_json::from_slice(data)
        .map_err(|e| ProtocolError::json("responses event", data, &e))?;
    Ok(Event {
        kind: Kind::of(probe.kind.as_ref().map_or(b"", |k| k.0.as_bytes())),
        response: probe.response.map(|r| Response {
            model: r.model.map(|m| m.0),
            usage: r.usage,
            error: r.error,
        }),
        output: probe.delta.is_some_and(|d| d.0),
    })
}

/// Reads one event as [`decode_event`] does, with the [`Scanner`]; `None` where it is not sure
/// (a `response.error` that is not `null`, a `delta` that is not a string, ...).
pub(crate) fn scan_event(data: &[u8]) -> Option<Event<'_>> {
    let mut s = Scanner::new(data);
    let mut keys = Keys::default();
    let (mut kind, mut response, mut output) = (None, None, false);
    s.object(|s, key| {
        match key {
            b"type" => {
                keys.once(0)?;
                kind = s.opt_string()?;
            }
            b"delta" => {
                keys.once(1)?;
                output = s.opt_string()?.is_some_and(|d| !d.is_empty());
            }
            b"response" => {
                keys.once(2)?;
                response = s.opt(scan_response)?;
            }
            _ => s.skip()?,
        }
        Some(())
    })?;
    s.end()?;
    let kind = kind.map_or(Some(Kind::Other), |k| Some(Kind::of(&k.bytes()?)))?;
    Some(Event {
        kind,
        response,
        output,
    })
}

/// An event's `response`.
fn scan_response<'a>(s: &mut Scanner<'a>) -> Option<Response<'a>> {
    let mut keys = Keys::default();
    let mut model = None;
    let mut response = Response::default();
    s.object(|s, key| {
        match key {
            b"model" => {
                keys.once(0)?;
                model = s.opt_string()?;
            }
            b"usage" => {
                keys.once(1)?;
                response.usage = s.opt(scan_usage)?;
            }
            b"error" => {
                keys.once(2)?;
                if !s.null()? {
                    return None;
                }
            }
            _ => s.skip()?,
        }
        Some(())
    })?;
    if let Some(m) = model {
        response.model = Some(m.decode()?);
    }
    Some(response)
}

/// A [`ResponsesUsage`].
fn scan_usage(s: &mut Scanner<'_>) -> Option<ResponsesUsage> {
    let mut keys = Keys::default();
    let mut u = ResponsesUsage::default();
    s.object(|s, key| {
        match key {
            b"input_tokens" => {
                keys.once(0)?;
                u.input_tokens = s.u64()?;
            }
            b"output_tokens" => {
                keys.once(1)?;
                u.output_tokens = s.u64()?;
            }
            b"input_tokens_details" => {
                keys.once(2)?;
                if !s.null()? {
                    u.input_tokens_details = Some(InputDetails {
                        cached_tokens: scan_detail(s, b"cached_tokens")?,
                    });
                }
            }
            b"output_tokens_details" => {
                keys.once(3)?;
                if !s.null()? {
                    u.output_tokens_details = Some(OutputDetails {
                        reasoning_tokens: scan_detail(s, b"reasoning_tokens")?,
                    });
                }
            }
            _ => s.skip()?,
        }
        Some(())
    })?;
    Some(u)
}

/// A details object: its count `name`.
fn scan_detail(s: &mut Scanner<'_>, name: &[u8]) -> Option<Option<u64>> {
    let mut keys = Keys::default();
    let mut count = None;
    s.object(|s, key| {
        if key != name {
            return s.skip();
        }
        keys.once(0)?;
        count = s.opt_u64()?;
        Some(())
    })?;
    Some(count)
}

/// Follows one Responses stream.
#[derive(Debug, Clone, Default)]
pub struct ResponsesStream {
    report: ServerReport,
    model: Option<String>,
    terminal: bool,
}

impl ResponsesStream {
    /// Takes one event.
    pub fn observe(&mut self, event: SseEvent<'_>) -> Result<EventFacts, OpenAiError> {
        let Some((data, event)) = read_event(event, scan_event, decode_event)? else {
            return Ok(EventFacts::default());
        };
        let mut error = None;
        if let Some(r) = event.response {
            if self.model.is_none() {
                self.model = r.model.filter(|m| !m.is_empty()).map(Cow::into_owned);
            }
            if let Some(u) = r.usage {
                self.report.usage = Some(u.to_usage());
            }
            error = r.error;
        }
        match event.kind {
            Kind::Ended => {
                self.terminal = true;
                Ok(EventFacts::terminal())
            }
            Kind::Failed => {
                self.terminal = true;
                let e = error
                    .map(|e| ServerError::from_body(e.to_string().as_bytes()))
                    .unwrap_or_default();
                Err(OpenAiError::StreamError {
                    code: e.code,
                    message: if e.message.is_empty() {
                        "response.failed".to_owned()
                    } else {
                        e.message
                    },
                })
            }
            Kind::Error => Err(OpenAiError::from_stream_error(data)),
            Kind::Delta => Ok(EventFacts {
                output: event.output,
                terminal: false,
            }),
            Kind::Other => Ok(EventFacts::default()),
        }
    }

    stream_accessors!(
        report: "Usage reported so far (the terminal event's).",
        model: "The response's model, once an event named it.",
        terminal: "Whether the terminal event came.",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(events: &[&str]) -> (ResponsesStream, Vec<EventFacts>, Option<OpenAiError>) {
        let mut s = ResponsesStream::default();
        let mut facts = Vec::new();
        let mut error = None;
        for e in events {
            match s.observe(SseEvent::Data(e.as_bytes())) {
                Ok(f) => facts.push(f),
                Err(e) => error = Some(e),
            }
        }
        (s, facts, error)
    }

    #[test]
    fn text_function_arguments_and_reasoning_deltas_are_output() {
        let (s, facts, error) = run(&[
            r#"{"type":"response.created","response":{"id":"r","model":"m1","status":"in_progress"}}"#,
            r#"{"type":"response.reasoning_text.delta","delta":"hmm","item_id":"rs"}"#,
            r#"{"type":"response.output_text.delta","delta":"","item_id":"m"}"#,
            r#"{"type":"response.output_text.delta","delta":"Hi","item_id":"m"}"#,
            r#"{"type":"response.function_call_arguments.delta","delta":"{\"a\"","item_id":"fc"}"#,
            r#"{"type":"response.output_text.done","text":"Hi"}"#,
            r#"{"type":"response.completed","response":{"model":"m1","usage":{"input_tokens":12,"output_tokens":30,"input_tokens_details":{"cached_tokens":4},"output_tokens_details":{"reasoning_tokens":20}}}}"#,
        ]);
        assert!(error.is_none());
        let outputs: Vec<bool> = facts.iter().map(|f| f.output).collect();
        assert_eq!(outputs, [false, true, false, true, true, false, false]);
        assert!(facts[6].terminal && s.saw_terminal());
        assert_eq!(s.model(), Some("m1"));
        assert_eq!(
            s.report().usage,
            Some(Usage::new(12, 30).with_cached(4).with_reasoning(20))
        );
    }

    #[test]
    fn a_failed_response_or_an_error_event_is_an_error() {
        let (s, _, error) = run(&[
            r#"{"type":"response.failed","response":{"error":{"code":"server_error","message":"boom"}}}"#,
        ]);
        assert!(s.saw_terminal());
        assert!(error.unwrap().to_string().contains("boom"));
        let (_, _, error) = run(&[r#"{"type":"error","code":"429","message":"slow down"}"#]);
        let e = error.unwrap();
        assert_eq!(e.error_kind(), "http_429");
    }

    #[test]
    fn whole_bodies() {
        let (report, model) = read_body(
            br#"{"id":"r","object":"response","model":"m2","status":"completed","output":[],
               "usage":{"input_tokens":5,"output_tokens":7,"total_tokens":12,"input_tokens_details":{"cached_tokens":0}}}"#,
        )
        .unwrap();
        assert_eq!(report.usage, Some(Usage::new(5, 7)));
        assert_eq!(model.as_deref(), Some("m2"));
        assert!(read_body(b"[").is_err());
    }
}
