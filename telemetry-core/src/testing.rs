//! Record fixtures shared by the tests of every crate (feature `testing`): a deterministic
//! sample factory and proptest strategies for valid records.
//!
//! Both fill every field of [`RECORD_FIELDS`] from its kind, then set the
//! fields that carry rules (timestamps in the accepted window, token totals, TTFT within latency,
//! percentages, enum strings, error fields), so that a field added to the table is exercised by
//! every round trip without editing these fixtures.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::fields::{FieldKind, RECORD_FIELDS, StoredValue};
use crate::record::{EnergyMethod, Outcome, TelemetryRecord};
use crate::validate::{MAX_TIMESTAMP, MIN_TIMESTAMP};

/// A valid record whose fields all depend on `i` (and `tag`, stored in `agent`): three models, two
/// engines, an optional field left `None` every third record, an error every thirteenth, metadata
/// naming `i` and `tag`.
// Every field is named, and `..r` still fills fields added to the table later.
#[allow(clippy::needless_update)]
pub fn sample_record(tag: &str, i: u64) -> TelemetryRecord {
    let mut r = TelemetryRecord::default();
    // Every optional number: set unless i is a multiple of 3 (a mix of measured and unknown).
    fill_optional(&mut r, |k| {
        (!i.is_multiple_of(3)).then(|| 1.5 + ((i + k as u64) % 7) as f64)
    });
    let latency = 0.25 * (1 + i % 16) as f64;
    let some = |v: f64| if i.is_multiple_of(3) { None } else { Some(v) };
    let error = i.is_multiple_of(13);
    TelemetryRecord {
        timestamp: 1_764_300_000.0 + (i % 5_000) as f64 * 7.5,
        model_id: format!("model-{}", i % 3),
        engine: ["vllm", "llama.cpp"][(i % 2) as usize].to_owned(),
        agent: tag.to_owned(),
        prompt_tokens: 100 + i % 50,
        completion_tokens: 20 + i % 30,
        total_tokens: 120 + i % 50 + i % 30,
        prompt_tokens_cached: i % 10,
        latency_seconds: latency,
        ttft: some(0.125),
        cost_usd: 0.001 * (i % 7) as f64,
        energy_joules: some(10.0 + (i % 9) as f64),
        power_watts: some(300.0),
        gpu_utilization_pct: some(50.0 + (i % 40) as f64),
        gpu_memory_used_gb: some(12.5),
        gpu_temperature_c: some(61.0),
        throughput_tok_per_sec: some(40.0),
        prefill_latency_seconds: some(0.125),
        decode_latency_seconds: some(latency - 0.125),
        is_streaming: i.is_multiple_of(2),
        mean_itl_ms: some(20.0 + (i % 11) as f64),
        median_itl_ms: some(19.0),
        p90_itl_ms: some(30.0),
        p95_itl_ms: some(35.0),
        p99_itl_ms: some(50.0),
        std_itl_ms: some(3.5),
        prefill_energy_joules: some(2.0),
        decode_energy_joules: some(8.0),
        energy_method: if i.is_multiple_of(3) {
            EnergyMethod::None
        } else {
            EnergyMethod::Counter
        },
        energy_vendor: if i.is_multiple_of(3) { "" } else { "nvidia" }.to_owned(),
        batch_id: format!("b{}", i / 100),
        is_warmup: i.is_multiple_of(17),
        outcome: if error { Outcome::Error } else { Outcome::Ok },
        error_kind: if error { "timeout" } else { "" }.to_owned(),
        error_message: if error { "took too long" } else { "" }.to_owned(),
        tokens_counted: i.is_multiple_of(5),
        cost_unknown: i.is_multiple_of(7),
        metadata: json!({ "id": i, "tag": tag, "nested": { "ok": true } }).into(),
        server_prefill_ms: some(41.25 + (i % 4) as f64),
        server_decode_ms: some(180.5),
        api: ["openai_chat", "anthropic_messages", ""][(i % 3) as usize].to_owned(),
        operation: ["chat", "text_completion"][(i % 2) as usize].to_owned(),
        reasoning_tokens: i % 20,
        prompt_tokens_cache_write: i % 7,
        output_chunks: if i.is_multiple_of(2) { 10 + i % 25 } else { 0 },
        ..r
    }
}

/// Sets every [`FieldKind::OptReal`] field of `r` to `value(index)`.
fn fill_optional(r: &mut TelemetryRecord, value: impl Fn(usize) -> Option<f64>) {
    for (k, field) in RECORD_FIELDS.iter().enumerate() {
        if field.kind == FieldKind::OptReal {
            let stored = value(k).map_or(StoredValue::Null, StoredValue::Real);
            // An OptReal field takes a Real or NULL; nothing else can fail here.
            let _ = r.set_field(k, stored);
        }
    }
}

/// Labels: empty, plain, SQL-looking, non-ASCII, punctuation.
pub fn arb_label() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-zA-Z0-9._/-]{1,24}",
        "[a-zA-Z0-9 ._/:é€-]{0,24}",
        Just("'; DROP TABLE telemetry; --".to_owned()),
        Just("mödel-ünïcode-🚀".to_owned()),
    ]
}

/// A JSON object of up to five keys holding nested arrays, objects, strings with quotes,
/// backslashes and newlines, integers, floats and nulls.
pub fn arb_metadata() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(|f| json!(f)),
        "[ -~é\"\\\\\n]{0,12}".prop_map(Value::from),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    proptest::collection::btree_map("[a-z_]{1,8}", value, 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
}

/// Any valid record: every optional number independently set or not (within 0..10^6, except
/// the fields with narrower rules), tokens up to 5·10^8, all enum values, any labels and
/// metadata, timestamps across the accepted window. Every generated record passes
/// [`validate`](TelemetryRecord::validate).
pub fn arb_record() -> impl Strategy<Value = TelemetryRecord> {
    let optionals =
        proptest::collection::vec(proptest::option::of(0.0f64..1e6), RECORD_FIELDS.len());
    (
        (
            MIN_TIMESTAMP..MAX_TIMESTAMP,
            "[a-zA-Z0-9._/-]{1,32}",
            arb_label(),
            arb_label(),
            arb_label(),
            arb_label(),
        ),
        (0u64..500_000_000, 0u64..500_000_000, 0.0f64..=1.0),
        (0.0f64..1e4, proptest::option::of(0.0f64..=1.0), 0.0f64..1e3),
        (
            proptest::option::of(0.0f64..=100.0),
            proptest::option::of(-20.0f64..120.0),
        ),
        (0usize..3, 0usize..3, arb_label(), "[a-z_]{1,12}"),
        any::<(bool, bool, bool, bool)>(),
        arb_metadata(),
        optionals,
        (
            0usize..6,
            0usize..4,
            0.0f64..=1.0,
            0.0f64..=1.0,
            0u64..100_000,
        ),
    )
        .prop_map(
            |(
                (timestamp, model_id, engine, agent, vendor, batch),
                (prompt, completion, cached_frac),
                (latency, ttft_frac, cost),
                (util, temp),
                (method, outcome, message, kind),
                (streaming, warmup, counted, unknown),
                metadata,
                optionals,
                (api, operation, reasoning_frac, write_frac, chunks),
            )| {
                let mut r = TelemetryRecord::default();
                let cached = (prompt as f64 * cached_frac) as u64;
                fill_optional(&mut r, |k| optionals[k]);
                let outcome = [Outcome::Ok, Outcome::Error, Outcome::Cancelled][outcome];
                TelemetryRecord {
                    timestamp,
                    model_id,
                    engine,
                    agent,
                    prompt_tokens: prompt,
                    completion_tokens: completion,
                    total_tokens: prompt + completion,
                    prompt_tokens_cached: cached,
                    prompt_tokens_cache_write: ((prompt - cached) as f64 * write_frac) as u64,
                    reasoning_tokens: (completion as f64 * reasoning_frac) as u64,
                    output_chunks: if streaming { chunks } else { 0 },
                    api: [
                        "",
                        crate::api::OPENAI_CHAT,
                        crate::api::OPENAI_COMPLETIONS,
                        crate::api::OPENAI_RESPONSES,
                        crate::api::OPENAI_EMBEDDINGS,
                        crate::api::ANTHROPIC_MESSAGES,
                    ][api]
                        .to_owned(),
                    operation: [
                        "",
                        crate::operation::CHAT,
                        crate::operation::TEXT_COMPLETION,
                        crate::operation::EMBEDDINGS,
                    ][operation]
                        .to_owned(),
                    latency_seconds: latency,
                    ttft: ttft_frac.map(|f| latency * f),
                    cost_usd: cost,
                    gpu_utilization_pct: util,
                    gpu_temperature_c: temp,
                    is_streaming: streaming,
                    energy_method: [
                        EnergyMethod::None,
                        EnergyMethod::Counter,
                        EnergyMethod::PowerIntegration,
                    ][method],
                    energy_vendor: vendor,
                    batch_id: batch,
                    is_warmup: warmup,
                    outcome,
                    error_kind: if outcome == Outcome::Ok {
                        String::new()
                    } else {
                        kind
                    },
                    error_message: message,
                    tokens_counted: counted,
                    cost_unknown: unknown,
                    metadata: metadata.into(),
                    ..r
                }
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::test_runner::{Config, TestRunner};

    #[test]
    fn samples_are_valid_and_vary() {
        for i in 0..200 {
            let r = sample_record("t", i);
            assert_eq!(r.validate(), Ok(()), "sample {i}");
        }
        assert_ne!(sample_record("t", 1), sample_record("t", 2));
        assert_eq!(sample_record("t", 3).ttft, None);
        assert!(sample_record("t", 13).is_error());
    }

    #[test]
    fn generated_records_are_valid() {
        let mut runner = TestRunner::new(Config::with_cases(256));
        runner
            .run(&arb_record(), |r| {
                prop_assert_eq!(r.validate(), Ok(()));
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
