//! [`InstrumentedStream`]: a blocking stream that measures TTFT and inter-token latency as the
//! caller pulls chunks, and records the call when it ends, fails or is dropped early.

use std::borrow::Cow;
use std::sync::Arc;

use telemetry_core::{Event, EventType, Outcome, StreamToken};

use crate::call::{Measurement, build_record};
use crate::context::{Call, EngineContext};
use crate::engine::InferenceEngine;
use crate::itl::ItlStats;
use crate::request::GenerateParams;
use crate::response::{EngineTimings, StreamChunk, Usage};

/// Gaps reserved up front, so that typical streams never reallocate while chunks arrive.
const GAP_CAPACITY_LIMIT: u64 = 1024;

/// Per-stream measurement state, shared by the blocking and async stream wrappers. Dropping it
/// before the stream finished records the call as cancelled.
#[derive(Debug)]
pub(crate) struct StreamRecorder {
    ctx: Arc<EngineContext>,
    call: Option<Call>,
    model: String,
    /// Seconds since the start of the first and of the latest text chunk.
    first: Option<f64>,
    last: f64,
    /// Latest engine-reported offset, seconds.
    reported_end: f64,
    gaps: Vec<f64>,
    chunks: u64,
    usage: Option<Usage>,
    server: Option<EngineTimings>,
}

impl StreamRecorder {
    pub fn new(ctx: Arc<EngineContext>, call: Call, params: &GenerateParams) -> Self {
        let capacity = params.max_tokens.unwrap_or(256).min(GAP_CAPACITY_LIMIT);
        StreamRecorder {
            ctx,
            call: Some(call),
            model: params.model.clone(),
            first: None,
            last: 0.0,
            reported_end: 0.0,
            gaps: Vec::with_capacity(usize::try_from(capacity).unwrap_or(0)),
            chunks: 0,
            usage: None,
            server: None,
        }
    }

    /// Notes one chunk: its time (engine-reported or measured now), tokens and usage.
    #[inline]
    pub fn on_chunk(&mut self, chunk: &StreamChunk) {
        let Some(call) = &self.call else { return };
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage);
        }
        if let Some(timings) = chunk.timings {
            self.server = Some(timings);
        }
        let t = match chunk.elapsed {
            Some(d) => {
                let t = d.as_secs_f64();
                self.reported_end = self.reported_end.max(t);
                t
            }
            None if chunk.has_text() => call.start.start.elapsed().as_secs_f64(),
            None => return,
        };
        if !chunk.has_text() {
            return;
        }
        match self.first {
            None => self.first = Some(t),
            Some(_) => self.gaps.push((t - self.last).max(0.0)),
        }
        self.last = t;
        if self.ctx.bus.has_subscribers(EventType::StreamToken) {
            self.ctx.bus.publish(Event::StreamToken(StreamToken {
                call_id: call.start.call_id,
                index: self.chunks,
                elapsed_seconds: t,
            }));
        }
        self.chunks += 1;
    }

    /// The stream ended normally.
    pub fn finish_ok(&mut self) {
        self.finish(Outcome::Ok, Cow::Borrowed(""), String::new());
    }

    /// The stream failed with `error`.
    pub fn finish_error(&mut self, kind: Cow<'static, str>, error: &dyn std::error::Error) {
        self.finish(Outcome::Error, kind, error.to_string());
    }

    fn finish(&mut self, outcome: Outcome, error_kind: Cow<'static, str>, error_message: String) {
        let Some(call) = self.call.take() else { return };
        let measured = call.start.start.elapsed().as_secs_f64();
        let (usage, tokens_counted) = match self.usage {
            Some(u) => (u, false),
            None => (Usage::new(0, self.chunks), true),
        };
        let m = Measurement {
            latency: measured.max(self.reported_end),
            ttft: self.first,
            usage,
            tokens_counted,
            engine_cost: None,
            is_streaming: true,
            itl: ItlStats::from_gaps(&mut self.gaps),
            outcome,
            error_kind,
            error_message,
            server_prefill: self.server.and_then(|t| t.server_prefill),
            server_decode: self.server.and_then(|t| t.server_decode),
        };
        let record = build_record(
            &call.start,
            &self.model,
            &self.ctx.engine_id,
            &self.ctx.options,
            m,
        );
        self.ctx.deliver(call, record);
    }
}

impl Drop for StreamRecorder {
    fn drop(&mut self) {
        self.finish(Outcome::Cancelled, Cow::Borrowed(""), String::new());
    }
}

/// The stream of an [`InstrumentedEngine`](crate::InstrumentedEngine): yields the inner engine's
/// chunks and errors unchanged.
///
/// The call is recorded when the inner stream ends (`ok`), yields an error (`error`; later items
/// pass through unrecorded) or when this stream is dropped before either (`cancelled`, with what
/// was measured so far).
pub struct InstrumentedStream<E: InferenceEngine> {
    inner: E::Stream,
    recorder: Option<StreamRecorder>,
}

impl<E: InferenceEngine> InstrumentedStream<E> {
    pub(crate) fn new(inner: E::Stream, recorder: Option<StreamRecorder>) -> Self {
        InstrumentedStream { inner, recorder }
    }

    /// Text chunks seen so far.
    pub fn chunks_seen(&self) -> u64 {
        self.recorder.as_ref().map_or(0, |r| r.chunks)
    }
}

impl<E: InferenceEngine> std::fmt::Debug for InstrumentedStream<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstrumentedStream")
            .field("recorder", &self.recorder)
            .finish_non_exhaustive()
    }
}

impl<E: InferenceEngine> Iterator for InstrumentedStream<E> {
    type Item = Result<StreamChunk, E::Error>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.next();
        if let Some(rec) = &mut self.recorder {
            match &item {
                Some(Ok(chunk)) => rec.on_chunk(chunk),
                Some(Err(e)) => rec.finish_error(E::error_kind(e), e),
                None => rec.finish_ok(),
            }
        }
        item
    }
}
