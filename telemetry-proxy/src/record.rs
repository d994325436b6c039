//! Recording side: the [`Recorder`] starts one [`Exchange`] per completion call; the exchange is
//! shown the response as it passes ([`Watch`]) and, at its end, becomes one
//! [`TelemetryRecord`] published on the telemetry bus. Nothing here can fail or delay a
//! request: whatever cannot be read only makes the record say less.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};
use telemetry_core::{
    Event, MAX_ERROR_MESSAGE_BYTES, MAX_LABEL_BYTES, MAX_TOKENS, Outcome, TelemetryRecord,
};
use telemetry_wrap::Usage;

use crate::itl::ItlStats;
use crate::request::RequestInfo;
use crate::stats::Counters;
use crate::telemetry::ProxyTelemetry;
use crate::watch::{Seen, Watch};

/// Model id recorded when neither the response nor the request named one.
const UNKNOWN_MODEL: &str = "unknown";

/// Starts the record of each completion call.
#[derive(Debug, Clone)]
pub(crate) struct Recorder(Arc<RecorderInner>);

#[derive(Debug)]
struct RecorderInner {
    counters: Arc<Counters>,
    telemetry: ProxyTelemetry,
    capture_limit: usize,
}

/// When a call began, on both clocks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Started {
    /// Monotonic.
    pub at: Instant,
    /// Unix seconds.
    pub wall: f64,
}

impl Started {
    /// Now.
    pub fn now() -> Started {
        Started {
            at: Instant::now(),
            wall: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        }
    }
}

impl Recorder {
    pub fn new(
        counters: Arc<Counters>,
        telemetry: ProxyTelemetry,
        capture_limit: usize,
    ) -> Recorder {
        Recorder(Arc::new(RecorderInner {
            counters,
            telemetry,
            capture_limit,
        }))
    }

    /// The telemetry part of `/telemetry/health`, and whether it is healthy.
    pub fn health(&self) -> (Value, bool) {
        let Some(store) = &self.0.telemetry.store else {
            return (serde_json::json!({ "store": null }), true);
        };
        let stats = store.stats();
        let health = store.health();
        let healthy = health == telemetry_store::Health::Healthy;
        let store = serde_json::json!({
            "healthy": healthy,
            "health": format!("{health:?}"),
            "written": stats.written,
            "pending": stats.pending,
            "dropped": stats.dropped,
            "rejected": stats.rejected,
            "bus_errors": stats.bus_errors,
            "failed_batches": stats.failed_batches,
            "last_error": stats.last_error,
        });
        (serde_json::json!({ "store": store }), healthy)
    }

    /// A call described by `info`, which arrived at `started`, begins; `agent` is its
    /// `X-Telemetry-Agent` header.
    pub fn begin(&self, info: RequestInfo, agent: Option<String>, started: Started) -> Exchange {
        if !info.parsed {
            Counters::bump(&self.0.counters.requests_unparsed);
        }
        Exchange {
            #[cfg(feature = "gpu")]
            gpu: self.0.telemetry.gpu.as_ref().map(|sampler| {
                let t0 = sampler.now();
                (sampler.begin(t0), t0)
            }),
            recorder: self.clone(),
            info,
            agent,
            started,
            watch: None,
            ended: false,
        }
    }
}

/// How a call ended.
enum End {
    /// The response body ended normally.
    Complete,
    /// The upstream could not be reached (or gave no response head).
    Unreachable { kind: &'static str, message: String },
    /// The upstream's body broke off.
    BodyFailed(String),
    /// The client went away first.
    ClientGone,
}

/// One completion call between the proxy and its upstream.
#[derive(Debug)]
pub(crate) struct Exchange {
    recorder: Recorder,
    info: RequestInfo,
    agent: Option<String>,
    started: Started,
    watch: Option<Watch>,
    ended: bool,
    /// The call's window in the GPU sampler, and when it began on the sampler's clock.
    #[cfg(feature = "gpu")]
    gpu: Option<(telemetry_gpu::WindowHandle, telemetry_gpu::Timestamp)>,
}

impl Exchange {
    /// The upstream answered with `status` and `headers`.
    pub fn response(&mut self, status: StatusCode, headers: &HeaderMap) {
        self.watch = Some(Watch::new(status, headers, self.recorder.0.capture_limit));
    }

    /// Part of the response body went by.
    #[inline]
    pub fn data(&mut self, data: &Bytes) {
        if let Some(w) = &mut self.watch {
            w.data(data, Instant::now());
        }
    }

    /// The response body ended normally.
    pub fn complete(mut self) {
        self.end(End::Complete);
    }

    /// The upstream could not be reached; `kind` is the record's error kind.
    pub fn unreachable(mut self, kind: &'static str, message: String) {
        self.end(End::Unreachable { kind, message });
    }

    /// The upstream's body broke off.
    pub fn upstream_body_failed(mut self, error: &hyper::Error) {
        self.end(End::BodyFailed(crate::forward::chain(error)));
    }

    /// The client went away before the response ended.
    pub fn client_gone(mut self) {
        self.end(End::ClientGone);
    }

    fn end(&mut self, end: End) {
        if self.ended {
            return;
        }
        self.ended = true;
        let ended_at = Instant::now();
        let seen = match (self.watch.take(), &end) {
            (Some(w), End::Complete) => w.end(),
            (Some(w), _) => w.cut(),
            (None, _) => Seen::default(),
        };
        let record = self.build(seen, end, ended_at);
        let counters = &self.recorder.0.counters;
        Counters::bump(&counters.calls_recorded);
        match record.outcome {
            Outcome::Ok => {}
            Outcome::Error => Counters::bump(&counters.calls_failed),
            Outcome::Cancelled => Counters::bump(&counters.calls_cancelled),
        }
        self.deliver(record);
    }

    /// Publishes the record: now, or (feature `gpu`) once the sampler knows the call's energy.
    fn deliver(&mut self, record: TelemetryRecord) {
        let telemetry = &self.recorder.0.telemetry;
        #[cfg(feature = "gpu")]
        if let (Some(sampler), Some((handle, t0))) = (&telemetry.gpu, self.gpu.take()) {
            let t1 = sampler.now();
            let first_token = record
                .ttft
                .map(|s| (t0 + std::time::Duration::from_secs_f64(s)).min(t1));
            let bus = Arc::clone(&telemetry.bus);
            sampler.end(handle, t1, first_token, move |reading| {
                let mut with_energy = record.clone();
                reading.apply_to(&mut with_energy);
                // A reading the store would refuse must not lose the call.
                let record = if with_energy.validate().is_ok() {
                    with_energy
                } else {
                    record
                };
                bus.publish(Event::from(record));
            });
            return;
        }
        telemetry.bus.publish(Event::from(record));
    }

    /// The record of the call: what the response said, measured on the proxy's clock.
    fn build(&mut self, mut seen: Seen, end: End, ended_at: Instant) -> TelemetryRecord {
        let telemetry = &self.recorder.0.telemetry;
        let latency = ended_at
            .saturating_duration_since(self.started.at)
            .as_secs_f64();
        let (outcome, error_kind, error_message): (Outcome, Cow<'static, str>, String) = match end {
            End::ClientGone => (Outcome::Cancelled, Cow::Borrowed(""), String::new()),
            End::Unreachable { kind, message } => (Outcome::Error, Cow::Borrowed(kind), message),
            End::BodyFailed(message) => (Outcome::Error, Cow::Borrowed("io"), message),
            End::Complete => match seen.error.take() {
                Some(e) => (Outcome::Error, e.error_kind(), e.to_string()),
                None => (Outcome::Ok, Cow::Borrowed(""), String::new()),
            },
        };
        let (usage, tokens_counted) = match seen.usage {
            Some(u) => (u, false),
            None => (Usage::new(0, seen.content_chunks), true),
        };
        let prompt = usage.prompt_tokens.min(MAX_TOKENS);
        let completion = usage.completion_tokens.min(MAX_TOKENS - prompt);
        let cached = usage.cached_tokens.min(prompt);
        let usage = Usage::new(prompt, completion).with_cached(cached);
        let model = seen
            .model
            .as_deref()
            .or(self.info.model.as_deref())
            .map_or(UNKNOWN_MODEL, |m| truncate(m, MAX_LABEL_BYTES));
        let ttft = seen.first_content.map(|t| {
            t.saturating_duration_since(self.started.at)
                .as_secs_f64()
                .min(latency)
        });
        let decode = ttft.map(|t| (latency - t).max(0.0));
        let (cost_usd, cost_unknown) = match telemetry
            .prices
            .as_ref()
            .and_then(|p| p.cost(model, &usage, latency))
        {
            Some(c) if c.is_finite() && c >= 0.0 => (c, false),
            _ => (0.0, true),
        };
        let mut metadata = Map::new();
        if seen.unparsed {
            metadata.insert("protocol".into(), Value::from("unknown"));
        }
        let agent = self.agent.as_deref().unwrap_or(&telemetry.agent);
        let mut record = TelemetryRecord {
            timestamp: self.started.wall,
            model_id: model.to_owned(),
            engine: truncate(&telemetry.engine, MAX_LABEL_BYTES).to_owned(),
            agent: truncate(agent, MAX_LABEL_BYTES).to_owned(),
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_cached: cached,
            latency_seconds: latency,
            ttft,
            cost_usd,
            throughput_tok_per_sec: decode.filter(|d| *d > 0.0).map(|d| completion as f64 / d),
            prefill_latency_seconds: ttft,
            decode_latency_seconds: decode,
            is_streaming: seen.streaming || self.info.stream,
            outcome,
            tokens_counted,
            cost_unknown,
            metadata: Value::Object(metadata),
            server_prefill_ms: seen.phases.and_then(|p| p.prefill_ms),
            server_decode_ms: seen.phases.and_then(|p| p.decode_ms),
            ..TelemetryRecord::default()
        };
        if let Some(itl) = ItlStats::from_gaps(&mut seen.gaps) {
            record.mean_itl_ms = Some(itl.mean);
            record.median_itl_ms = Some(itl.median);
            record.p90_itl_ms = Some(itl.p90);
            record.p95_itl_ms = Some(itl.p95);
            record.p99_itl_ms = Some(itl.p99);
            record.std_itl_ms = Some(itl.std);
        }
        if outcome == Outcome::Error {
            let kind = truncate(&error_kind, MAX_LABEL_BYTES);
            record.error_kind = if kind.is_empty() { "error" } else { kind }.to_owned();
            record.error_message = truncate(&error_message, MAX_ERROR_MESSAGE_BYTES).to_owned();
        }
        record
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        // Dropped unended: the client went away before the upstream answered (the upstream
        // request was dropped with it).
        self.end(End::ClientGone);
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Endpoint;
    use telemetry_wrap::{Price, PriceTable};

    fn recorder(bus: &Arc<telemetry_core::EventBus>) -> Recorder {
        let prices = PriceTable::new().with(
            "m",
            Price::PerToken {
                input: 1.0,
                cached_input: 1.0,
                output: 2.0,
            },
        );
        let telemetry = ProxyTelemetry::new(Arc::clone(bus))
            .engine_name("llama.cpp")
            .agent("default-agent")
            .price_table(prices);
        Recorder::new(Arc::new(Counters::default()), telemetry, 1 << 20)
    }

    fn info(model: Option<&str>) -> RequestInfo {
        RequestInfo {
            endpoint: Endpoint::Chat,
            model: model.map(str::to_owned),
            stream: false,
            parsed: true,
        }
    }

    fn last_record(bus: &telemetry_core::EventBus) -> TelemetryRecord {
        bus.history()
            .iter()
            .rev()
            .find_map(|e| e.as_record().map(|r| TelemetryRecord::clone(r)))
            .unwrap()
    }

    #[test]
    fn a_blocking_call_becomes_a_valid_record_with_cost() {
        let bus = Arc::new(telemetry_core::EventBus::with_history(8));
        let r = recorder(&bus);
        let mut ex = r.begin(info(Some("req-model")), None, Started::now());
        ex.response(StatusCode::OK, &HeaderMap::new());
        ex.data(&Bytes::from_static(
            br#"{"model":"m","usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}"#,
        ));
        ex.complete();
        let rec = last_record(&bus);
        assert_eq!(rec.validate(), Ok(()));
        assert_eq!(
            (rec.model_id.as_str(), rec.engine.as_str()),
            ("m", "llama.cpp")
        );
        assert_eq!(rec.agent, "default-agent");
        assert_eq!((rec.prompt_tokens, rec.completion_tokens), (10, 5));
        assert!(!rec.tokens_counted && !rec.cost_unknown);
        assert_eq!(rec.cost_usd, 20.0);
        assert_eq!(rec.outcome, Outcome::Ok);
    }

    #[test]
    fn the_header_agent_wins_and_unknown_bodies_say_so() {
        let bus = Arc::new(telemetry_core::EventBus::with_history(8));
        let r = recorder(&bus);
        let mut ex = r.begin(
            info(Some("req-model")),
            Some("notebook".into()),
            Started::now(),
        );
        ex.response(StatusCode::OK, &HeaderMap::new());
        ex.data(&Bytes::from_static(b"<html>not json</html>"));
        ex.complete();
        let rec = last_record(&bus);
        assert_eq!(rec.validate(), Ok(()));
        assert_eq!(rec.agent, "notebook");
        assert_eq!(rec.model_id, "req-model");
        assert!(rec.tokens_counted && rec.cost_unknown);
        assert_eq!(rec.metadata["protocol"], "unknown");
    }

    #[test]
    fn endings_map_to_outcomes() {
        let bus = Arc::new(telemetry_core::EventBus::with_history(8));
        let r = recorder(&bus);
        r.begin(info(None), None, Started::now())
            .unreachable("connect", "refused".into());
        let rec = last_record(&bus);
        assert_eq!(
            (rec.outcome, rec.error_kind.as_str(), rec.model_id.as_str()),
            (Outcome::Error, "connect", UNKNOWN_MODEL)
        );
        drop(r.begin(info(Some("m")), None, Started::now()));
        assert_eq!(last_record(&bus).outcome, Outcome::Cancelled);
        let mut ex = r.begin(info(Some("m")), None, Started::now());
        ex.response(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new());
        ex.data(&Bytes::from_static(br#"{"error":{"message":"slow down"}}"#));
        ex.complete();
        let rec = last_record(&bus);
        assert_eq!(rec.error_kind, "http_429");
        assert!(
            rec.error_message.contains("slow down"),
            "{}",
            rec.error_message
        );
        assert_eq!(rec.validate(), Ok(()));
    }

    #[test]
    fn truncate_keeps_characters_whole() {
        assert_eq!(truncate("h\u{e9}llo", 2), "h");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
