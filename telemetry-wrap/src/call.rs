//! One call's measurement, shared by every instrumented path: ids, clocks, events and the record.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use telemetry_core::{
    CallId, Event, EventBus, EventType, InferenceEnd, InferenceStart, MAX_ERROR_MESSAGE_BYTES,
    MAX_LABEL_BYTES, MAX_TOKENS, Outcome, TelemetryRecord,
};

use crate::itl::ItlStats;
use crate::options::{CallOptions, truncate};
use crate::response::{GenerateResult, Usage};

static NEXT_CALL_ID: AtomicU64 = AtomicU64::new(1);

/// Model id recorded when the caller gave none (the store refuses an empty one).
const UNKNOWN_MODEL: &str = "unknown";

/// The instants at which a call started.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallStart {
    pub call_id: CallId,
    /// Unix seconds.
    pub wall: f64,
    /// Monotonic.
    pub start: Instant,
}

impl CallStart {
    /// Takes the clocks and publishes `InferenceStart` when anyone listens; `payload` builds the
    /// event only then.
    pub fn begin(
        bus: &EventBus,
        is_streaming: bool,
        payload: impl FnOnce() -> (Arc<str>, Arc<str>, Arc<str>),
    ) -> CallStart {
        let call = CallStart {
            call_id: NEXT_CALL_ID.fetch_add(1, Ordering::Relaxed),
            wall: unix_now(),
            start: Instant::now(),
        };
        if bus.has_subscribers(EventType::InferenceStart) {
            let (model_id, engine, agent) = payload();
            bus.publish(Event::InferenceStart(Arc::new(InferenceStart {
                call_id: call.call_id,
                timestamp: call.wall,
                model_id,
                engine,
                agent,
                is_streaming,
            })));
        }
        call
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What was measured about a call, before it becomes a record.
#[derive(Debug, Clone, Default)]
pub(crate) struct Measurement {
    pub latency: f64,
    pub ttft: Option<f64>,
    pub usage: Usage,
    pub tokens_counted: bool,
    pub engine_cost: Option<f64>,
    pub is_streaming: bool,
    pub itl: Option<ItlStats>,
    pub outcome: Outcome,
    pub error_kind: Cow<'static, str>,
    pub error_message: String,
    /// The server's own prefill and decode times, when the engine reported them.
    pub server_prefill: Option<Duration>,
    pub server_decode: Option<Duration>,
}

impl Measurement {
    /// A blocking call that returned `result` after `elapsed`.
    pub fn blocking(elapsed: Duration, result: &GenerateResult) -> Measurement {
        let reported = result.timings.total.unwrap_or_default();
        Measurement {
            latency: elapsed.max(reported).as_secs_f64(),
            ttft: result.timings.ttft.map(|d| d.as_secs_f64()),
            usage: result.usage,
            engine_cost: result.cost_usd,
            server_prefill: result.timings.server_prefill,
            server_decode: result.timings.server_decode,
            ..Measurement::default()
        }
    }

    /// A call that failed with `error` after `elapsed`.
    pub fn failed(
        elapsed: Duration,
        kind: Cow<'static, str>,
        error: &dyn std::error::Error,
    ) -> Measurement {
        Measurement {
            latency: elapsed.as_secs_f64(),
            outcome: Outcome::Error,
            error_kind: kind,
            error_message: error.to_string(),
            ..Measurement::default()
        }
    }
}

/// Builds a record that passes [`TelemetryRecord::validate`] from whatever was measured.
pub(crate) fn build_record(
    call: &CallStart,
    model: &str,
    engine: &str,
    options: &CallOptions,
    m: Measurement,
) -> TelemetryRecord {
    let latency = finite_non_negative(m.latency);
    let prompt = m.usage.prompt_tokens.min(MAX_TOKENS);
    // The total must stay within MAX_TOKENS too.
    let completion = m.usage.completion_tokens.min(MAX_TOKENS - prompt);
    let cached = m.usage.cached_tokens.min(prompt);
    let usage = Usage::new(prompt, completion).with_cached(cached);
    let ttft = m.ttft.map(|t| finite_non_negative(t).min(latency));
    let decode = ttft.map(|t| (latency - t).max(0.0));
    let throughput = decode.filter(|d| *d > 0.0).map(|d| completion as f64 / d);
    let (cost_usd, cost_unknown) = match m.engine_cost.filter(|c| c.is_finite() && *c >= 0.0) {
        Some(c) => (c, false),
        None => match options
            .prices
            .as_ref()
            .and_then(|p| p.cost(model, &usage, latency))
        {
            Some(c) => (finite_non_negative(c), false),
            None => (0.0, true),
        },
    };
    let model = truncate(model, MAX_LABEL_BYTES);
    let mut record = TelemetryRecord {
        timestamp: call.wall,
        model_id: if model.trim().is_empty() {
            UNKNOWN_MODEL.to_owned()
        } else {
            model.to_owned()
        },
        engine: truncate(engine, MAX_LABEL_BYTES).to_owned(),
        agent: options.agent.as_ref().to_owned(),
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        prompt_tokens_cached: cached,
        latency_seconds: latency,
        ttft,
        cost_usd,
        throughput_tok_per_sec: throughput,
        prefill_latency_seconds: ttft,
        decode_latency_seconds: decode,
        is_streaming: m.is_streaming,
        outcome: m.outcome,
        tokens_counted: m.tokens_counted,
        cost_unknown,
        metadata: serde_json::Value::Object(options.metadata.clone()),
        server_prefill_ms: m.server_prefill.map(|d| d.as_secs_f64() * 1e3),
        server_decode_ms: m.server_decode.map(|d| d.as_secs_f64() * 1e3),
        ..TelemetryRecord::default()
    };
    if let Some(itl) = m.itl {
        record.mean_itl_ms = Some(itl.mean);
        record.median_itl_ms = Some(itl.median);
        record.p90_itl_ms = Some(itl.p90);
        record.p95_itl_ms = Some(itl.p95);
        record.p99_itl_ms = Some(itl.p99);
        record.std_itl_ms = Some(itl.std);
    }
    if m.outcome == Outcome::Error {
        let kind = truncate(&m.error_kind, MAX_LABEL_BYTES);
        record.error_kind = if kind.is_empty() { "error" } else { kind }.to_owned();
        record.error_message = truncate(&m.error_message, MAX_ERROR_MESSAGE_BYTES).to_owned();
    }
    record
}

/// Publishes `InferenceEnd` for `record` when anyone listens.
pub(crate) fn publish_end(bus: &EventBus, call_id: CallId, record: &TelemetryRecord) {
    if bus.has_subscribers(EventType::InferenceEnd) {
        bus.publish(Event::InferenceEnd(Arc::new(InferenceEnd {
            call_id,
            latency_seconds: record.latency_seconds,
            outcome: record.outcome,
            completion_tokens: record.completion_tokens,
        })));
    }
}

fn finite_non_negative(x: f64) -> f64 {
    if x.is_finite() { x.max(0.0) } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::price::{Price, PriceTable};

    fn start() -> CallStart {
        CallStart::begin(&EventBus::new(), false, || unreachable!("no subscriber"))
    }

    #[test]
    fn call_ids_increase() {
        let a = start();
        let b = start();
        assert!(b.call_id > a.call_id);
        assert!(a.wall > telemetry_core::MIN_TIMESTAMP);
    }

    #[test]
    fn ttft_is_clamped_and_phases_follow() {
        let m = Measurement {
            latency: 1.0,
            ttft: Some(1.5),
            usage: Usage::new(10, 20),
            ..Measurement::default()
        };
        let r = build_record(&start(), "m", "e", &CallOptions::new(), m);
        assert_eq!(r.ttft, Some(1.0));
        assert_eq!(r.decode_latency_seconds, Some(0.0));
        assert_eq!(r.throughput_tok_per_sec, None);
        assert!(r.cost_unknown);
        assert_eq!(r.validate(), Ok(()));
    }

    #[test]
    fn price_table_and_engine_cost() {
        let prices = PriceTable::new().with(
            "m",
            Price::PerToken {
                input: 1.0,
                cached_input: 0.5,
                output: 2.0,
            },
        );
        let opts = CallOptions::new().with_price_table(prices);
        let m = Measurement {
            latency: 1.0,
            usage: Usage::new(10, 5).with_cached(4),
            ..Measurement::default()
        };
        let r = build_record(&start(), "m", "e", &opts, m.clone());
        assert_eq!(r.cost_usd, 6.0 + 2.0 + 10.0);
        assert!(!r.cost_unknown);
        let r = build_record(&start(), "other", "e", &opts, m.clone());
        assert_eq!((r.cost_usd, r.cost_unknown), (0.0, true));
        let reported = Measurement {
            engine_cost: Some(0.25),
            ..m
        };
        let r = build_record(&start(), "other", "e", &opts, reported);
        assert_eq!((r.cost_usd, r.cost_unknown), (0.25, false));
    }

    #[test]
    fn bad_inputs_still_validate() {
        let m = Measurement {
            latency: f64::NAN,
            usage: Usage {
                prompt_tokens: u64::MAX,
                completion_tokens: u64::MAX,
                total_tokens: 1,
                cached_tokens: u64::MAX,
            },
            engine_cost: Some(-1.0),
            outcome: Outcome::Error,
            error_message: "x".repeat(MAX_ERROR_MESSAGE_BYTES * 2),
            ..Measurement::default()
        };
        let r = build_record(&start(), " ", &"e".repeat(1000), &CallOptions::new(), m);
        assert_eq!(r.validate(), Ok(()));
        assert_eq!(r.model_id, UNKNOWN_MODEL);
        assert_eq!(r.error_kind, "error");
    }
}
