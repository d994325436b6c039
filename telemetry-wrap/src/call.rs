//! [`Call`]: one call's lifecycle, the single owner of everything measured about it, from
//! start to the published record.

use std::borrow::Cow;
use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use telemetry_core::{
    CallId, Event, EventType, InferenceStart, MAX_LABEL_BYTES, Outcome, StreamToken,
};

use crate::context::CallContext;
use crate::gpu::GpuWindow;
use crate::itl::ItlStats;
use crate::options::truncate;
use crate::record::{Measurement, build_record, publish_end};
use crate::response::{EngineTimings, GenerateResult, StreamChunk, Usage};

static NEXT_CALL_ID: AtomicU64 = AtomicU64::new(1);

/// Gaps reserved up front at most, so that typical streams never reallocate while chunks
/// arrive and a huge token limit does not reserve megabytes.
const GAP_CAPACITY_LIMIT: u64 = 1024;

impl CallContext {
    /// Starts describing a call of `model` (the record's `model_id` unless
    /// [`Call::set_model`] replaces it); [`CallBuilder::start`] starts it.
    pub fn call(&self, model: impl Into<String>) -> CallBuilder<'_> {
        CallBuilder::new(self, model.into())
    }
}

/// Describes a call before it starts; made by [`CallContext::call`].
#[derive(Debug)]
#[must_use = "a call is only started by `start`"]
pub struct CallBuilder<'a> {
    ctx: &'a CallContext,
    model: String,
    is_streaming: bool,
    agent: Option<Arc<str>>,
    gap_capacity: usize,
    api: &'static str,
    operation: &'static str,
}

impl<'a> CallBuilder<'a> {
    pub(crate) fn new(ctx: &'a CallContext, model: String) -> Self {
        CallBuilder {
            ctx,
            model,
            is_streaming: false,
            agent: None,
            gap_capacity: 0,
            api: "",
            operation: "",
        }
    }

    /// Whether the answer is streamed (the record's `is_streaming`; default `false`). A streamed
    /// call without reported usage counts its text chunks as completion tokens.
    pub fn streaming(mut self, is_streaming: bool) -> Self {
        self.is_streaming = is_streaming;
        self
    }

    /// The API the call speaks and its GenAI operation, as names (telemetry-core's
    /// [`api`](telemetry_core::api) and [`operation`](telemetry_core::operation); the record's
    /// `api` and `operation`). A string that is not a name is recorded as empty.
    pub fn api(mut self, api: &'static str, operation: &'static str) -> Self {
        self.api = api;
        self.operation = operation;
        self
    }

    /// The agent of this call, instead of the context's default (cut to 512 bytes).
    pub fn agent(mut self, agent: impl AsRef<str>) -> Self {
        self.agent = Some(Arc::from(truncate(agent.as_ref(), MAX_LABEL_BYTES)));
        self
    }

    /// Reserves room for the inter-token gaps of about `tokens` chunks (at most 1024), so that
    /// observing chunks does not allocate.
    pub fn expected_tokens(mut self, tokens: u64) -> Self {
        self.gap_capacity = usize::try_from(tokens.min(GAP_CAPACITY_LIMIT)).unwrap_or(0);
        self
    }

    /// Starts the call: takes the wall and monotonic clocks, publishes `InferenceStart` (when
    /// anyone listens) and opens the call's GPU window (with a sampler attached).
    pub fn start(self) -> Call {
        let ctx = self.ctx.clone();
        let agent = self
            .agent
            .unwrap_or_else(|| Arc::clone(&ctx.options().agent));
        let id = NEXT_CALL_ID.fetch_add(1, Ordering::Relaxed);
        let wall = unix_now();
        let start = Instant::now();
        let bus = ctx.bus();
        if bus.has_subscribers(EventType::InferenceStart) {
            bus.publish(Event::InferenceStart(Arc::new(InferenceStart {
                call_id: id,
                timestamp: wall,
                model_id: ctx.model_arc(&self.model),
                engine: Arc::clone(ctx.engine_arc()),
                agent: Arc::clone(&agent),
                is_streaming: self.is_streaming,
            })));
        }
        let gpu = ctx.gpu().begin();
        Call {
            id,
            wall,
            start,
            model: self.model,
            agent,
            is_streaming: self.is_streaming,
            api: self.api,
            operation: self.operation,
            gpu,
            stream: StreamState {
                gaps: Vec::with_capacity(self.gap_capacity),
                ..StreamState::default()
            },
            usage: UsageSource::None,
            reported_ttft: None,
            cost: None,
            server: EngineTimings::default(),
            delivered: false,
            ctx,
        }
    }
}

/// One recorded call, from start to its published [`TelemetryRecord`](telemetry_core::TelemetryRecord).
///
/// Start it with [`CallContext::call`], report what happens while it runs (chunks as they
/// arrive, usage, server timings, the model that answered), then end it once: [`finish`]
/// (`ok`), [`fail`] (`error`, with a kind and a message) or [`cancel`] (`cancelled`). Dropping a
/// call that was not ended records it as cancelled with what was measured so far, so a client
/// that goes away mid-stream is never lost. Ending a call publishes `InferenceEnd` and the
/// record; with a GPU sampler attached to the context, the record follows once the sampler
/// knows the call's energy (the caller never waits for it).
///
/// What the record gets: latency on a monotonic clock from `start` to the end (or a longer
/// engine-reported offset); TTFT at the first output chunk (non-empty text, or
/// [`on_output`](Self::on_output)); inter-token statistics from the gaps between output
/// chunks, and their number in `output_chunks` (streams only); tokens from [`set_usage`] or,
/// for a streamed call without usage, the count of output chunks (`tokens_counted`); cost from
/// [`set_cost`] or the context's price table (else 0 and `cost_unknown`; a price per token of
/// counted tokens is `cost_unknown` too, as the count is not the server's). The API and
/// operation named by [`CallBuilder::api`]. A call is `Send`, so it can move between threads or
/// async tasks while it runs.
///
/// [`finish`]: Self::finish
/// [`fail`]: Self::fail
/// [`cancel`]: Self::cancel
/// [`set_usage`]: Self::set_usage
/// [`set_cost`]: Self::set_cost
///
/// ```
/// use std::sync::Arc;
/// use telemetry_core::{EventBus, Outcome};
/// use telemetry_wrap::{CallContext, Usage};
///
/// let bus = Arc::new(EventBus::with_history(16));
/// // Once: the bus, the engine name and the default agent (a price table or a GPU sampler too).
/// let ctx = CallContext::new(Arc::clone(&bus), "llama.cpp").with_agent("proxy");
///
/// // Per request.
/// let mut call = ctx.call("smollm2").streaming(true).agent("my-app").start();
/// call.on_text(""); // a role-only first chunk: not the first token
/// call.on_text("Hel");
/// call.on_text("lo");
/// call.set_usage(Usage::new(12, 2));
/// call.set_server_timings(Some(std::time::Duration::from_millis(8)), None);
/// call.set_model("smollm2-135m-instruct");
/// call.finish();
///
/// let failed = ctx.call("smollm2").start();
/// failed.fail("http_400", "context too long");
///
/// let records: Vec<_> = bus.history().iter().filter_map(|e| e.as_record().cloned()).collect();
/// assert_eq!(records[0].model_id, "smollm2-135m-instruct");
/// assert_eq!((records[0].agent.as_str(), records[0].engine.as_str()), ("my-app", "llama.cpp"));
/// assert_eq!((records[0].completion_tokens, records[0].tokens_counted), (2, false));
/// assert!(records[0].ttft.is_some() && records[0].mean_itl_ms.is_some());
/// assert_eq!(records[0].server_prefill_ms, Some(8.0));
/// assert_eq!((records[1].outcome, records[1].error_kind.as_str()), (Outcome::Error, "http_400"));
/// assert_eq!(records[1].agent, "proxy");
/// ```
#[derive(Debug)]
pub struct Call {
    ctx: CallContext,
    id: CallId,
    /// Unix seconds.
    wall: f64,
    /// Monotonic.
    start: Instant,
    model: String,
    agent: Arc<str>,
    is_streaming: bool,
    api: &'static str,
    operation: &'static str,
    gpu: Option<GpuWindow>,
    stream: StreamState,
    usage: UsageSource,
    /// Engine-reported TTFT, used when no text chunk was observed (blocking calls).
    reported_ttft: Option<f64>,
    cost: Option<f64>,
    server: EngineTimings,
    delivered: bool,
}

/// What the chunks of a stream told so far.
#[derive(Debug, Default)]
struct StreamState {
    /// Seconds since the start of the first and of the latest text chunk.
    first: Option<f64>,
    last: f64,
    /// Latest engine-reported offset, seconds.
    reported_end: f64,
    gaps: Vec<f64>,
    /// Text chunks seen.
    chunks: u64,
    /// A stream was opened: without usage, its text chunks are the completion tokens.
    counting: bool,
    /// The last instant [`Call::on_output_at`] was given, and its seconds since the start (the
    /// chunks of one read share it).
    last_at: Option<(Instant, f64)>,
}

#[derive(Debug, Clone, Copy)]
enum UsageSource {
    None,
    Reported(Usage),
    Counted(Usage),
}

impl Call {
    /// The call's id, as in its `InferenceStart`, `StreamToken` and `InferenceEnd` events.
    pub fn id(&self) -> CallId {
        self.id
    }

    /// Time since the call started, on the monotonic clock.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Output chunks observed so far (chunks with text, or [`on_output`](Self::on_output)).
    pub fn output_chunks(&self) -> u64 {
        self.stream.chunks
    }

    /// Whether the answer is streamed, once known (a proxy learns it from the response); this
    /// replaces the builder's [`streaming`](CallBuilder::streaming).
    pub fn set_streaming(&mut self, is_streaming: bool) {
        self.is_streaming = is_streaming;
    }

    /// Notes one chunk of an engine's stream: its usage and server timings when present, and
    /// its time (engine-reported [`StreamChunk::elapsed`], else now) when it carries text.
    #[inline]
    pub fn on_chunk(&mut self, chunk: &StreamChunk) {
        self.stream.counting = true;
        if let Some(usage) = chunk.usage {
            self.usage = UsageSource::Reported(usage);
        }
        if let Some(timings) = chunk.timings {
            self.server = timings;
        }
        let t = match chunk.elapsed {
            Some(d) => {
                let t = d.as_secs_f64();
                self.stream.reported_end = self.stream.reported_end.max(t);
                t
            }
            None if chunk.has_text() => self.start.elapsed().as_secs_f64(),
            None => return,
        };
        if chunk.has_text() {
            self.token_at(t);
        }
    }

    /// Notes a chunk of content arriving now: when `text` is not empty it is a token (the first
    /// one sets TTFT, later ones add an inter-token gap); an empty one (a role-only or
    /// finish chunk) only marks the call as a stream whose tokens can be counted.
    #[inline]
    pub fn on_text(&mut self, text: &str) {
        self.stream.counting = true;
        if !text.is_empty() {
            self.token_at(self.start.elapsed().as_secs_f64());
        }
    }

    /// Notes a chunk of output of any kind arriving now (text, tool-call arguments, reasoning:
    /// whatever the caller's protocol calls output): the first sets TTFT, later ones add an
    /// inter-token gap, each counts in `output_chunks` (and as a completion token when no usage
    /// comes).
    #[inline]
    pub fn on_output(&mut self) {
        self.stream.counting = true;
        self.token_at(self.start.elapsed().as_secs_f64());
    }

    /// [`on_output`](Self::on_output) for output that arrived at `at` (a proxy reads many
    /// chunks at once: they all arrived when the read returned, and one clock read serves
    /// them all). An instant before the call's start counts as its start.
    #[inline]
    pub fn on_output_at(&mut self, at: Instant) {
        self.stream.counting = true;
        let t = match self.stream.last_at {
            Some((last, t)) if last == at => t,
            _ => {
                let t = at.saturating_duration_since(self.start).as_secs_f64();
                self.stream.last_at = Some((at, t));
                t
            }
        };
        self.token_at(t);
    }

    fn token_at(&mut self, t: f64) {
        let s = &mut self.stream;
        match s.first {
            None => s.first = Some(t),
            Some(_) => s.gaps.push((t - s.last).max(0.0)),
        }
        s.last = t;
        let bus = self.ctx.bus();
        if bus.has_subscribers(EventType::StreamToken) {
            bus.publish(Event::StreamToken(StreamToken {
                call_id: self.id,
                index: s.chunks,
                elapsed_seconds: t,
            }));
        }
        s.chunks += 1;
    }

    /// Token counts the engine reported (`tokens_counted` stays false); replaces earlier ones.
    pub fn set_usage(&mut self, usage: Usage) {
        self.usage = UsageSource::Reported(usage);
    }

    /// Token counts the caller counted itself, not the engine (`tokens_counted` is set).
    pub fn set_counted_usage(&mut self, usage: Usage) {
        self.usage = UsageSource::Counted(usage);
    }

    /// The server's own prefill and decode times (the record's `server_prefill_ms` and
    /// `server_decode_ms`).
    pub fn set_server_timings(&mut self, prefill: Option<Duration>, decode: Option<Duration>) {
        self.server.server_prefill = prefill;
        self.server.server_decode = decode;
    }

    /// The cost the engine reported, US dollars; it wins over the price table.
    pub fn set_cost(&mut self, usd: f64) {
        self.cost = Some(usd);
    }

    /// The model that answered (a server's response model), replacing the requested one in the
    /// record; `InferenceStart` already carried the requested one.
    pub fn set_model(&mut self, model: impl Into<String>) {
        self.model = model.into();
    }

    /// Takes what a blocking engine's result reports: usage, cost and timings (engine-measured
    /// TTFT, and a total longer than the measured latency, which only synthetic timings have).
    pub fn apply_result(&mut self, result: &GenerateResult) {
        self.usage = UsageSource::Reported(result.usage);
        self.cost = result.cost_usd;
        self.server = result.timings;
        self.reported_ttft = result.timings.ttft.map(|d| d.as_secs_f64());
        if let Some(total) = result.timings.total {
            self.stream.reported_end = self.stream.reported_end.max(total.as_secs_f64());
        }
    }

    /// Ends the call as `ok` and delivers its record.
    pub fn finish(mut self) {
        self.deliver(Outcome::Ok, Cow::Borrowed(""), String::new());
    }

    /// Ends the call as `error` with a short machine-readable `kind` (`http_500`, `timeout`,
    /// ...; an empty one becomes `error`) and a message (cut to the record's limit).
    pub fn fail(mut self, kind: impl Into<Cow<'static, str>>, message: impl Display) {
        self.deliver(Outcome::Error, kind.into(), message.to_string());
    }

    /// Ends the call as `cancelled` (the client went away), with what was measured so far;
    /// dropping an unfinished call does the same.
    pub fn cancel(mut self) {
        self.deliver(Outcome::Cancelled, Cow::Borrowed(""), String::new());
    }

    /// [`finish`](Self::finish) for a call kept in a `Box` (as a proxy keeps the call of a
    /// response in flight): it ends where it lies, without being moved out of the box first.
    pub fn finish_boxed(mut self: Box<Self>) {
        self.deliver(Outcome::Ok, Cow::Borrowed(""), String::new());
    }

    /// [`fail`](Self::fail) for a call kept in a `Box`, without moving it out of the box.
    pub fn fail_boxed(
        mut self: Box<Self>,
        kind: impl Into<Cow<'static, str>>,
        message: impl Display,
    ) {
        self.deliver(Outcome::Error, kind.into(), message.to_string());
    }

    /// [`cancel`](Self::cancel) for a call kept in a `Box`, without moving it out of the box.
    pub fn cancel_boxed(mut self: Box<Self>) {
        self.deliver(Outcome::Cancelled, Cow::Borrowed(""), String::new());
    }

    /// Marks the call as a stream that was opened, so that without usage its text chunks are
    /// counted even when there were none.
    pub(crate) fn stream_opened(&mut self) {
        self.stream.counting = true;
    }

    fn deliver(&mut self, outcome: Outcome, error_kind: Cow<'static, str>, error_message: String) {
        if self.delivered {
            return;
        }
        self.delivered = true;
        let measured = self.start.elapsed().as_secs_f64();
        let s = &mut self.stream;
        let (usage, tokens_counted) = match self.usage {
            UsageSource::Reported(u) => (u, false),
            UsageSource::Counted(u) => (u, true),
            UsageSource::None if s.counting => (Usage::new(0, s.chunks), true),
            UsageSource::None => (Usage::default(), false),
        };
        let m = Measurement {
            latency: measured.max(s.reported_end),
            ttft: s.first.or(self.reported_ttft),
            usage,
            tokens_counted,
            engine_cost: self.cost,
            is_streaming: self.is_streaming,
            itl: ItlStats::from_gaps(&mut s.gaps),
            outcome,
            error_kind,
            error_message,
            server_prefill: self.server.server_prefill,
            server_decode: self.server.server_decode,
            api: self.api,
            operation: self.operation,
            output_chunks: s.chunks,
        };
        // Into its `Arc` at once: the record (some 600 bytes) is not moved again on its way
        // to the bus.
        let record = Arc::new(build_record(
            self.wall,
            std::mem::take(&mut self.model),
            self.ctx.engine(),
            &self.agent,
            self.ctx.options(),
            m,
        ));
        let bus = self.ctx.bus();
        publish_end(bus, self.id, &record);
        self.ctx.gpu().complete(self.gpu.take(), record, bus);
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.deliver(Outcome::Cancelled, Cow::Borrowed(""), String::new());
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use telemetry_core::EventBus;

    fn assert_send<T: Send + 'static>() {}

    #[test]
    fn a_call_can_move_between_threads() {
        assert_send::<Call>();
        assert_send::<CallContext>();
        let bus = Arc::new(EventBus::with_history(8));
        let ctx = CallContext::new(Arc::clone(&bus), "e");
        let call = ctx.call("m").start();
        std::thread::spawn(move || call.finish()).join().unwrap();
        assert_eq!(
            bus.history()
                .iter()
                .filter(|e| e.as_record().is_some())
                .count(),
            1
        );
    }

    /// Each ending of a boxed call records what the same ending of an unboxed one does (but
    /// for the clocks).
    #[test]
    fn a_boxed_call_ends_as_an_unboxed_one() {
        type End = fn(Call, bool);
        let ends: [End; 3] = [
            |c, boxed| {
                if boxed {
                    Box::new(c).finish_boxed()
                } else {
                    c.finish()
                }
            },
            |c, boxed| {
                if boxed {
                    Box::new(c).fail_boxed("http_500", "boom")
                } else {
                    c.fail("http_500", "boom")
                }
            },
            |c, boxed| {
                if boxed {
                    Box::new(c).cancel_boxed()
                } else {
                    c.cancel()
                }
            },
        ];
        for end in ends {
            let records: Vec<_> = [false, true]
                .into_iter()
                .map(|boxed| {
                    let bus = Arc::new(EventBus::with_history(8));
                    let ctx = CallContext::new(Arc::clone(&bus), "e").with_agent("a");
                    let mut call = ctx.call("m").streaming(true).start();
                    call.on_text("x");
                    call.set_usage(Usage::new(3, 1));
                    end(call, boxed);
                    let mut r = bus
                        .history()
                        .iter()
                        .find_map(|e| e.as_record().map(|r| (**r).clone()))
                        .unwrap();
                    assert_eq!(r.validate(), Ok(()));
                    (r.timestamp, r.latency_seconds, r.ttft) = (0.0, 0.0, None);
                    (r.prefill_latency_seconds, r.decode_latency_seconds) = (None, None);
                    r.throughput_tok_per_sec = None;
                    r
                })
                .collect();
            assert_eq!(records[0], records[1]);
        }
    }

    #[test]
    fn call_ids_increase() {
        let ctx = CallContext::new(EventBus::new(), "e");
        let a = ctx.call("m").start();
        let b = ctx.call("m").start();
        assert!(b.id() > a.id());
        assert!(a.wall > telemetry_core::MIN_TIMESTAMP);
    }
}
