//! How a finished call becomes a [`TelemetryRecord`]: [`Measurement`] in, a record that passes
//! validation out, whatever the engine reported.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use telemetry_core::{
    CallId, Event, EventBus, EventType, InferenceEnd, MAX_ERROR_MESSAGE_BYTES, MAX_LABEL_BYTES,
    MAX_TOKENS, Outcome, TelemetryRecord, is_name,
};

use crate::itl::ItlStats;
use crate::options::{CallOptions, truncate};
use crate::response::Usage;

/// Model id recorded when the caller gave none (the store refuses an empty one).
pub(crate) const UNKNOWN_MODEL: &str = "unknown";

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
    /// The API and the GenAI operation of the call (names; empty when not known).
    pub api: &'static str,
    pub operation: &'static str,
    /// Chunks of a stream that carried output.
    pub output_chunks: u64,
}

/// Builds a record that passes [`TelemetryRecord::validate`] from whatever was measured.
/// `agent` is the call's own; metadata and prices come from `options`.
pub(crate) fn build_record(
    wall: f64,
    model: String,
    engine: &str,
    agent: &str,
    options: &CallOptions,
    m: Measurement,
) -> TelemetryRecord {
    let latency = finite_non_negative(m.latency);
    let prompt = m.usage.prompt_tokens.min(MAX_TOKENS);
    // The total must stay within MAX_TOKENS too.
    let completion = m.usage.completion_tokens.min(MAX_TOKENS - prompt);
    let cached = m.usage.cached_tokens.min(prompt);
    let cache_write = m.usage.cache_write_tokens.min(prompt - cached);
    let reasoning = m.usage.reasoning_tokens.min(completion);
    let usage = Usage::new(prompt, completion)
        .with_cached(cached)
        .with_cache_write(cache_write)
        .with_reasoning(reasoning);
    let ttft = m.ttft.map(|t| finite_non_negative(t).min(latency));
    let decode = ttft.map(|t| (latency - t).max(0.0));
    let throughput = decode.filter(|d| *d > 0.0).map(|d| completion as f64 / d);
    let (cost_usd, cost_unknown) = match m.engine_cost.filter(|c| c.is_finite() && *c >= 0.0) {
        Some(c) => (c, false),
        None => match options.prices.as_ref().and_then(|p| p.get(&model)) {
            // Counted tokens are not the server's: a price per token of them is a guess (a
            // stream without usage counts no prompt tokens at all).
            Some(p) => (
                finite_non_negative(p.cost(&usage, latency)),
                m.tokens_counted && p.per_token(),
            ),
            None => (0.0, true),
        },
    };
    let (error_kind, error_message) = if m.outcome == Outcome::Error {
        let kind = truncate(&m.error_kind, MAX_LABEL_BYTES);
        (
            if kind.is_empty() { "error" } else { kind }.to_owned(),
            truncate(&m.error_message, MAX_ERROR_MESSAGE_BYTES).to_owned(),
        )
    } else {
        (String::new(), String::new())
    };
    let itl = m.itl.as_ref();
    // Built as the returned value, not filled in afterwards: the record (some 600 bytes) is
    // written where the caller wants it instead of being copied there.
    TelemetryRecord {
        timestamp: wall,
        model_id: model_label(model),
        engine: truncate(engine, MAX_LABEL_BYTES).to_owned(),
        agent: truncate(agent, MAX_LABEL_BYTES).to_owned(),
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        prompt_tokens_cached: cached,
        prompt_tokens_cache_write: cache_write,
        reasoning_tokens: reasoning,
        api: name_or_empty(m.api).to_owned(),
        operation: name_or_empty(m.operation).to_owned(),
        output_chunks: if m.is_streaming {
            m.output_chunks.min(MAX_TOKENS)
        } else {
            0
        },
        latency_seconds: latency,
        ttft,
        cost_usd,
        throughput_tok_per_sec: throughput,
        // Defined as the TTFT (see the field's docs): the client cannot see the server's
        // prefill, which `server_prefill_ms` carries when the server reports it.
        prefill_latency_seconds: ttft,
        decode_latency_seconds: decode,
        is_streaming: m.is_streaming,
        outcome: m.outcome,
        tokens_counted: m.tokens_counted,
        cost_unknown,
        // Shared with every record of the context: a reference count, no copy.
        metadata: options.metadata.clone(),
        server_prefill_ms: m.server_prefill.map(|d| d.as_secs_f64() * 1e3),
        server_decode_ms: m.server_decode.map(|d| d.as_secs_f64() * 1e3),
        mean_itl_ms: itl.map(|i| i.mean),
        median_itl_ms: itl.map(|i| i.median),
        p90_itl_ms: itl.map(|i| i.p90),
        p95_itl_ms: itl.map(|i| i.p95),
        p99_itl_ms: itl.map(|i| i.p99),
        std_itl_ms: itl.map(|i| i.std),
        error_kind,
        error_message,
        ..TelemetryRecord::default()
    }
}

/// `model` cut to [`MAX_LABEL_BYTES`], or [`UNKNOWN_MODEL`] when blank; reuses the allocation.
fn model_label(mut model: String) -> String {
    if model.trim().is_empty() {
        return UNKNOWN_MODEL.to_owned();
    }
    let keep = truncate(&model, MAX_LABEL_BYTES).len();
    model.truncate(keep);
    model
}

/// `name` when it is one the record takes, else empty.
fn name_or_empty(name: &str) -> &str {
    if is_name(name) { name } else { "" }
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

    const WALL: f64 = 1.7e9;

    #[test]
    fn ttft_is_clamped_and_phases_follow() {
        let m = Measurement {
            latency: 1.0,
            ttft: Some(1.5),
            usage: Usage::new(10, 20),
            ..Measurement::default()
        };
        let r = build_record(WALL, "m".into(), "e", "", &CallOptions::new(), m);
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
        let r = build_record(WALL, "m".into(), "e", "", &opts, m.clone());
        assert_eq!(r.cost_usd, 6.0 + 2.0 + 10.0);
        assert!(!r.cost_unknown);
        let r = build_record(WALL, "other".into(), "e", "", &opts, m.clone());
        assert_eq!((r.cost_usd, r.cost_unknown), (0.0, true));
        let reported = Measurement {
            engine_cost: Some(0.25),
            ..m
        };
        let r = build_record(WALL, "other".into(), "e", "", &opts, reported);
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
                cache_write_tokens: u64::MAX,
                reasoning_tokens: u64::MAX,
            },
            output_chunks: u64::MAX,
            engine_cost: Some(-1.0),
            outcome: Outcome::Error,
            error_message: "x".repeat(MAX_ERROR_MESSAGE_BYTES * 2),
            ..Measurement::default()
        };
        let r = build_record(
            WALL,
            " ".into(),
            &"e".repeat(1000),
            "",
            &CallOptions::new(),
            m,
        );
        assert_eq!(r.validate(), Ok(()));
        assert_eq!(r.model_id, UNKNOWN_MODEL);
        assert_eq!(r.error_kind, "error");
    }
}
