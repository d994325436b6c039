//! [`Watch`]: what the proxy reads from a completion response while passing it on — an SSE
//! stream event by event (telemetry-openai's [`ApiStream::feed`] with its [`SseParser`]), or a
//! whole JSON body kept (up to the capture limit) and read once it has gone by.
//!
//! Reading never fails and never changes what is forwarded: bytes it cannot understand only mark
//! the call [`Seen::unparsed`]. Each stream frame is parsed in place, by reference, when it
//! passes (a few hundred instructions for a token chunk), and each output chunk is handed to the
//! call's [`Call::on_output_at`] with the instant its frame was read, so it is timestamped when
//! the proxy received it and no copy of the stream is kept.
//!
//! [`ApiStream::feed`]: telemetry_openai::protocol::ApiStream::feed

use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use telemetry_openai::protocol::{
    Api, ApiStream, OpenAiError, ServerPhases, SseParser, model_of, read_body,
};
use telemetry_wrap::{Call, Usage};

/// What was read from one response, at its end.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// The response's `model`.
    pub model: Option<String>,
    /// Token counts the server reported.
    pub usage: Option<Usage>,
    /// The server's own timings.
    pub phases: Option<ServerPhases>,
    /// Why the call failed, as the response says (HTTP error status, error inside the stream,
    /// stream ended without `[DONE]`).
    pub error: Option<OpenAiError>,
    /// Whether the response was a stream.
    pub streaming: bool,
    /// Whether (part of) the body could not be read as the protocol: its tokens are not known.
    pub unparsed: bool,
    /// Whether the stream's terminal event came: the call is over, whatever happens after.
    pub terminal: bool,
}

/// Reads one response as it goes by.
#[derive(Debug)]
pub(crate) enum Watch {
    /// `text/event-stream`.
    Stream(Box<StreamWatch>),
    /// Any other body.
    Whole(WholeWatch),
}

impl Watch {
    /// A watch for a response of `api` with `status` and a body of `content_type`; whole
    /// bodies are kept up to `limit` bytes. Whether a call that succeeded streamed is the
    /// response's to say (`text/event-stream`), whatever the request asked (an error answer says
    /// nothing about it, so the request's `stream` stands); a stream marks `call` as one whose
    /// output chunks are its tokens unless the server reports usage.
    pub fn new(
        api: Api,
        status: StatusCode,
        content_type: Option<&[u8]>,
        limit: usize,
        call: &mut Call,
    ) -> Watch {
        let sse = content_type.is_some_and(|v| {
            v.trim_ascii_start()
                .get(..17)
                .is_some_and(|t| t.eq_ignore_ascii_case(b"text/event-stream"))
                && crate::fields::is_text(v)
        });
        let streaming = sse && status.is_success();
        if status.is_success() {
            call.set_streaming(streaming);
        }
        if streaming {
            call.on_text("");
            Watch::Stream(Box::new(StreamWatch {
                parser: SseParser::new(),
                stream: ApiStream::new(api),
                error: None,
                unparsed: false,
                broken: false,
            }))
        } else {
            Watch::Whole(WholeWatch {
                api,
                status,
                first: Bytes::new(),
                more: Vec::new(),
                len: 0,
                limit,
                over: false,
            })
        }
    }

    /// A frame of the body went by; its content chunks are `call`'s tokens.
    #[inline]
    pub fn data(&mut self, data: &Bytes, call: &mut Call) {
        match self {
            Watch::Stream(s) => s.data(data, call),
            Watch::Whole(w) => w.data(data),
        }
    }

    /// Stops reading: the rest of the body goes by unread, and the call is recorded without
    /// its tokens (a stream keeps the content chunks counted so far).
    pub fn give_up(&mut self) {
        match self {
            Watch::Stream(s) => {
                s.unparsed = true;
                s.broken = true;
            }
            Watch::Whole(w) => w.drop_parts(),
        }
    }

    /// The body ended normally: what it said.
    pub fn end(self) -> Seen {
        match self {
            Watch::Stream(s) => s.end(true),
            Watch::Whole(w) => w.end(),
        }
    }

    /// The body broke off or the client left: what had been read.
    pub fn cut(self) -> Seen {
        match self {
            Watch::Stream(s) => s.end(false),
            Watch::Whole(w) => Seen {
                unparsed: true,
                ..w.end()
            },
        }
    }
}

/// An SSE stream followed event by event.
#[derive(Debug)]
pub(crate) struct StreamWatch {
    parser: SseParser,
    stream: ApiStream,
    error: Option<OpenAiError>,
    unparsed: bool,
    broken: bool,
}

impl StreamWatch {
    fn data(&mut self, data: &[u8], call: &mut Call) {
        if self.broken {
            return;
        }
        let StreamWatch {
            parser,
            stream,
            error,
            unparsed,
            ..
        } = self;
        // The events of one frame arrived together: one clock read for them all.
        let mut arrived = None;
        let fed = stream.feed(parser, data, |facts| match facts {
            Ok(facts) if facts.output => {
                call.on_output_at(*arrived.get_or_insert_with(Instant::now))
            }
            Ok(_) => {}
            Err(OpenAiError::Protocol(_)) => *unparsed = true,
            Err(e) => {
                error.get_or_insert(e);
            }
        });
        if fed.is_err() {
            // A line past the parser's bound: not this protocol; stop reading.
            self.unparsed = true;
            self.broken = true;
        }
    }

    fn end(mut self: Box<Self>, finished: bool) -> Seen {
        if finished && !self.broken {
            let StreamWatch {
                parser,
                stream,
                error,
                unparsed,
                ..
            } = &mut *self;
            let flushed = parser.finish(|event| match stream.observe(event) {
                Ok(_) => {}
                Err(OpenAiError::Protocol(_)) => *unparsed = true,
                Err(e) => {
                    error.get_or_insert(e);
                }
            });
            if flushed.is_err() {
                self.unparsed = true;
            }
        }
        let terminal = self.stream.saw_terminal();
        if finished
            && !self.unparsed
            && self.error.is_none()
            && let Err(e) = self.stream.end()
        {
            self.error = Some(e);
        }
        let report = self.stream.report();
        Seen {
            model: self.stream.model().map(str::to_owned),
            usage: report.usage,
            phases: report.phases,
            error: self.error,
            streaming: true,
            unparsed: self.unparsed,
            terminal,
        }
    }
}

/// A whole body, kept up to a limit and read at its end.
#[derive(Debug)]
pub(crate) struct WholeWatch {
    api: Api,
    status: StatusCode,
    /// The body's first part, and the others: most bodies come in one part, kept without
    /// allocating a list.
    first: Bytes,
    more: Vec<Bytes>,
    len: usize,
    limit: usize,
    over: bool,
}

impl WholeWatch {
    fn data(&mut self, data: &Bytes) {
        if self.over {
            return;
        }
        self.len += data.len();
        if self.len > self.limit && self.status.is_success() {
            // Too large to read: forwarded all the same, recorded without its tokens.
            self.drop_parts();
        } else if self.len <= self.limit.saturating_add(data.len()) {
            // An error body is kept up to the limit: its message is at the start.
            if self.first.is_empty() {
                self.first = data.clone();
            } else {
                self.more.push(data.clone());
            }
        }
    }

    /// Stops keeping the body.
    fn drop_parts(&mut self) {
        self.over = true;
        self.first = Bytes::new();
        self.more = Vec::new();
    }

    fn end(self) -> Seen {
        let body = concat(self.first, self.more, self.len.min(self.limit));
        if !self.status.is_success() {
            return Seen {
                model: model_of(&body),
                error: Some(OpenAiError::from_http_response(self.status.as_u16(), &body)),
                ..Seen::default()
            };
        }
        if self.over {
            return Seen {
                unparsed: true,
                ..Seen::default()
            };
        }
        match read_body(self.api, &body) {
            Ok((report, model)) => Seen {
                model,
                usage: report.usage,
                phases: report.phases,
                unparsed: report.usage.is_none(),
                ..Seen::default()
            },
            Err(_) => Seen {
                unparsed: true,
                ..Seen::default()
            },
        }
    }
}

/// The parts in one buffer (no copy for a single part).
fn concat(first: Bytes, more: Vec<Bytes>, len: usize) -> Bytes {
    if more.is_empty() {
        return first;
    }
    let mut all = Vec::with_capacity(len);
    all.extend_from_slice(&first);
    for p in &more {
        all.extend_from_slice(p);
    }
    Bytes::from(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use telemetry_core::{EventBus, TelemetryRecord};
    use telemetry_openai::protocol::Api;
    use telemetry_wrap::CallContext;

    /// A watch on a Chat stream (`text/event-stream`, 200).
    fn chat_stream(call: &mut Call) -> Watch {
        let content_type = b"text/event-stream; charset=utf-8";
        Watch::new(
            Api::ChatCompletions,
            StatusCode::OK,
            Some(content_type),
            1024,
            call,
        )
    }

    /// A watch on a whole Chat body with `status`, kept up to `limit` bytes.
    fn whole(status: StatusCode, limit: usize, call: &mut Call) -> Watch {
        Watch::new(Api::ChatCompletions, status, None, limit, call)
    }

    /// A call on a bus of its own, and that bus.
    fn call() -> (Call, Arc<EventBus>) {
        let bus = Arc::new(EventBus::with_history(4));
        let call = CallContext::new(Arc::clone(&bus), "e").call("m").start();
        (call, bus)
    }

    fn record(bus: &EventBus) -> TelemetryRecord {
        bus.history()
            .iter()
            .find_map(|e| e.as_record().map(|r| TelemetryRecord::clone(r)))
            .unwrap()
    }

    #[test]
    fn a_stream_split_anywhere_gives_tokens_model_and_timings() {
        let body = concat!(
            "data: {\"model\":\"m1\",\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":null}}]}\n\n",
            "data: {\"model\":\"m1\",\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
            "data: {\"model\":\"m1\",\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n",
            "data: {\"model\":\"m1\",\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2,\"total_tokens\":6},",
            "\"timings\":{\"prompt_n\":4,\"prompt_ms\":3.0,\"predicted_n\":2,\"predicted_ms\":5.0}}\n\n",
            "data: [DONE]\n\n",
        );
        let (mut call, bus) = call();
        let mut w = chat_stream(&mut call);
        for piece in body.as_bytes().chunks(7) {
            w.data(&Bytes::copy_from_slice(piece), &mut call);
        }
        let seen = w.end();
        assert!(seen.streaming && !seen.unparsed && seen.error.is_none());
        assert_eq!(seen.model.as_deref(), Some("m1"));
        assert_eq!(seen.usage, Some(Usage::new(4, 2)));
        assert_eq!(seen.phases.and_then(|p| p.decode_ms), Some(5.0));
        assert_eq!(
            call.output_chunks(),
            2,
            "the role-only chunk is not a token"
        );
        call.finish();
        let r = record(&bus);
        assert!(r.ttft.is_some() && r.mean_itl_ms.is_some());
    }

    #[test]
    fn a_stream_without_done_or_with_an_error_event_is_an_error() {
        let (mut call, _bus) = call();
        let mut w = chat_stream(&mut call);
        w.data(
            &Bytes::from_static(b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"),
            &mut call,
        );
        let seen = w.end();
        assert_eq!(seen.error.unwrap().error_kind(), "stream_incomplete");
        assert_eq!(call.output_chunks(), 1);

        let mut w = chat_stream(&mut call);
        w.data(
            &Bytes::from_static(b"error: {\"code\":500,\"message\":\"boom\"}\n\ndata: [DONE]\n\n"),
            &mut call,
        );
        let seen = w.end();
        assert_eq!(seen.error.unwrap().error_kind(), "http_500");
    }

    #[test]
    fn garbage_is_unparsed_not_an_error() {
        let (mut call, _bus) = call();
        let mut w = chat_stream(&mut call);
        w.data(
            &Bytes::from_static(b"data: not json\n\ndata: [DONE]\n\n"),
            &mut call,
        );
        let seen = w.end();
        assert!(seen.unparsed && seen.error.is_none());

        let mut w = whole(StatusCode::OK, 1024, &mut call);
        w.data(&Bytes::from_static(b"<html>"), &mut call);
        let seen = w.end();
        assert!(seen.unparsed && seen.error.is_none() && !seen.streaming);
    }

    #[test]
    fn whole_bodies_give_usage_or_the_servers_error() {
        let (mut call, _bus) = call();
        let mut w = whole(StatusCode::OK, 1024, &mut call);
        let body = br#"{"model":"m2","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}"#;
        let (a, b) = body.split_at(20);
        w.data(&Bytes::copy_from_slice(a), &mut call);
        w.data(&Bytes::copy_from_slice(b), &mut call);
        let seen = w.end();
        assert_eq!(seen.usage, Some(Usage::new(3, 5)));
        assert_eq!(seen.model.as_deref(), Some("m2"));
        assert!(!seen.unparsed);

        let mut w = whole(StatusCode::BAD_REQUEST, 1024, &mut call);
        w.data(
            &Bytes::from_static(
                br#"{"error":{"code":400,"message":"no messages","type":"invalid_request_error"}}"#,
            ),
            &mut call,
        );
        let e = w.end().error.unwrap();
        assert_eq!(e.error_kind(), "http_400");
        assert!(e.to_string().contains("no messages"));
    }

    #[test]
    fn a_body_over_the_limit_is_not_kept() {
        let (mut call, _bus) = call();
        let mut w = whole(StatusCode::OK, 8, &mut call);
        w.data(&Bytes::from_static(b"{\"usage\":"), &mut call);
        w.data(&Bytes::from_static(b"{}}"), &mut call);
        let Watch::Whole(whole) = &w else { panic!() };
        assert!(whole.first.is_empty() && whole.more.is_empty() && whole.over);
        assert!(w.end().unparsed);
    }
}
