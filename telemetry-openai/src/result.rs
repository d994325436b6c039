//! Turning what the server said into the wrapper's [`GenerateResult`] and final [`StreamChunk`].

use telemetry_wrap::{EngineTimings, FinishReason, GenerateResult, StreamChunk};

use crate::config::Endpoint;
use crate::protocol::{
    ApiUsage, ChatCompletionResponse, CompletionResponse, OpenAiError, ProtocolError, ServerReport,
    ServerTimings, StreamObserver, finish_reason,
};

/// The result of a blocking call.
pub(crate) fn generate_result(
    content: String,
    usage: Option<&ApiUsage>,
    timings: Option<&ServerTimings>,
    finish: Option<String>,
) -> GenerateResult {
    let mut report = ServerReport::default();
    report.add(usage, timings);
    GenerateResult {
        content,
        usage: report.usage.unwrap_or_default(),
        timings: server_timings(&report),
        finish_reason: finish
            .as_deref()
            .map_or(FinishReason::Unknown, finish_reason),
        ..GenerateResult::default()
    }
}

/// The server's prefill and decode times as [`EngineTimings`] (nothing else set).
pub(crate) fn server_timings(report: &ServerReport) -> EngineTimings {
    let phases = report.phases.unwrap_or_default();
    EngineTimings {
        server_prefill: phases.prefill(),
        server_decode: phases.decode(),
        ..EngineTimings::default()
    }
}

/// The [`GenerateResult`] of a whole (non-streamed) response `body` of `endpoint`: the one
/// decoder of both the blocking and the async engine.
pub(crate) fn decode_body(endpoint: Endpoint, body: &[u8]) -> Result<GenerateResult, OpenAiError> {
    match endpoint {
        Endpoint::Chat => {
            let r: ChatCompletionResponse = serde_json::from_slice(body)
                .map_err(|e| ProtocolError::json("chat completion response", body, &e))?;
            let finish = r.choices.first().and_then(|c| c.finish_reason.clone());
            let text = r.text().to_owned();
            Ok(generate_result(
                text,
                r.usage.as_ref(),
                r.timings.as_ref(),
                finish,
            ))
        }
        Endpoint::Completions => {
            let mut r: CompletionResponse = serde_json::from_slice(body)
                .map_err(|e| ProtocolError::json("completion response", body, &e))?;
            let (text, finish) = if r.choices.is_empty() {
                (String::new(), None)
            } else {
                let c = r.choices.swap_remove(0);
                (c.text, c.finish_reason)
            };
            Ok(generate_result(
                text,
                r.usage.as_ref(),
                r.timings.as_ref(),
                finish,
            ))
        }
    }
}

/// The last chunk of a stream: empty text, the server's usage when it sent one, and the finish
/// reason.
pub(crate) fn final_chunk(observer: &StreamObserver) -> StreamChunk {
    let report = observer.report();
    StreamChunk {
        usage: report.usage,
        finish_reason: observer.finish_reason(),
        timings: report.phases.map(|_| server_timings(report)),
        ..StreamChunk::default()
    }
}

/// Bytes of a stream in, [`StreamChunk`]s out: the part of a streaming engine that does not
/// depend on its HTTP client.
#[derive(Debug, Default)]
pub(crate) struct ChunkDecoder {
    parser: crate::protocol::SseParser,
    observer: StreamObserver,
    queue: std::collections::VecDeque<StreamChunk>,
    error: Option<crate::protocol::OpenAiError>,
}

impl ChunkDecoder {
    /// Parses the next read of the body.
    pub fn feed(&mut self, bytes: &[u8]) {
        let (queue, observer, error) = (&mut self.queue, &mut self.observer, &mut self.error);
        let parsed = self
            .parser
            .feed(bytes, |event: crate::protocol::SseEvent<'_>| {
                absorb(queue, observer, error, event);
            });
        if let Err(e) = parsed {
            self.error.get_or_insert(e.into());
        }
    }

    /// The body ended: dispatches what is pending and notes a missing `[DONE]`.
    pub fn eof(&mut self) {
        let (queue, observer, error) = (&mut self.queue, &mut self.observer, &mut self.error);
        let parsed = self.parser.finish(|event: crate::protocol::SseEvent<'_>| {
            absorb(queue, observer, error, event);
        });
        if let Err(e) = parsed {
            self.error.get_or_insert(e.into());
        }
        if let Err(e) = self.observer.end() {
            self.error.get_or_insert(e);
        }
    }

    /// Records a transport error (the first error wins).
    pub fn fail(&mut self, e: crate::protocol::OpenAiError) {
        self.error.get_or_insert(e);
    }

    /// The next queued chunk, else the error, if any.
    pub fn pop(&mut self) -> Option<Result<StreamChunk, crate::protocol::OpenAiError>> {
        if let Some(chunk) = self.queue.pop_front() {
            return Some(Ok(chunk));
        }
        self.error.take().map(Err)
    }

    /// Whether `[DONE]` came.
    pub fn saw_done(&self) -> bool {
        self.observer.saw_done()
    }

    /// The stream's state.
    pub fn observer(&self) -> &StreamObserver {
        &self.observer
    }
}

fn absorb(
    queue: &mut std::collections::VecDeque<StreamChunk>,
    observer: &mut StreamObserver,
    error: &mut Option<crate::protocol::OpenAiError>,
    event: crate::protocol::SseEvent<'_>,
) {
    if error.is_some() || observer.saw_done() {
        return;
    }
    match observer.observe(event) {
        Ok(crate::protocol::Observed::Chunk(delta)) if delta.has_content() => {
            queue.push_back(StreamChunk::text(delta.content));
        }
        Ok(_) => {}
        Err(e) => *error = Some(e),
    }
}
