//! Property tests: valid records survive a JSON round trip; `validate` never panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use serde_json::{Value, json};
use telemetry_core::{EnergyMethod, MAX_TIMESTAMP, MIN_TIMESTAMP, Outcome, TelemetryRecord};

fn opt(range: std::ops::Range<f64>) -> impl Strategy<Value = Option<f64>> {
    prop::option::of(range)
}

fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-zA-Z0-9._/-]{1,24}",
        Just("'; DROP TABLE telemetry; --".to_owned()),
        Just("mödel-ünïcode-🚀".to_owned()),
    ]
}

fn metadata() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({})),
        ("[a-z]{1,8}", any::<i32>(), "[ -~]{0,16}").prop_map(
            |(k, n, s)| json!({ k: n, "s": s, "nested": { "list": [1, 2.5, null, true] } })
        ),
    ]
}

prop_compose! {
    fn valid_record()(
        timestamp in MIN_TIMESTAMP..MAX_TIMESTAMP,
        model_id in "[a-zA-Z0-9._/-]{1,32}",
        engine in label(), agent in label(),
        prompt in 0u64..1_000_000, completion in 0u64..1_000_000, cached_frac in 0.0f64..=1.0,
        latency in 0.0f64..600.0, ttft_frac in prop::option::of(0.0f64..=1.0),
        cost in 0.0f64..10.0,
        energy in opt(0.0..1e6), power in opt(0.0..1500.0), util in opt(0.0..100.0),
        mem in opt(0.0..200.0), temp in opt(-20.0..120.0), thr in opt(0.0..1e5),
        itl in opt(0.0..1e4), is_streaming in any::<bool>(), is_warmup in any::<bool>(),
        method in prop_oneof![Just(EnergyMethod::None), Just(EnergyMethod::Counter), Just(EnergyMethod::PowerIntegration)],
        outcome in prop_oneof![Just(Outcome::Ok), Just(Outcome::Error), Just(Outcome::Cancelled)],
        message in "[ -~]{0,40}", metadata in metadata(), flags in any::<(bool, bool)>(),
        server_prefill in opt(0.0..1e5),
    ) -> TelemetryRecord {
        TelemetryRecord {
            timestamp, model_id, engine, agent,
            prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion,
            prompt_tokens_cached: (prompt as f64 * cached_frac) as u64,
            latency_seconds: latency,
            ttft: ttft_frac.map(|f| f * latency),
            cost_usd: cost, energy_joules: energy, power_watts: power,
            gpu_utilization_pct: util, gpu_memory_used_gb: mem, gpu_temperature_c: temp,
            throughput_tok_per_sec: thr,
            prefill_latency_seconds: ttft_frac.map(|f| f * latency),
            decode_latency_seconds: ttft_frac.map(|f| (1.0 - f) * latency),
            is_streaming,
            mean_itl_ms: itl, median_itl_ms: itl, p90_itl_ms: itl, p95_itl_ms: itl, p99_itl_ms: itl,
            std_itl_ms: itl.map(|v| v / 3.0),
            prefill_energy_joules: energy.map(|e| e * 0.25), decode_energy_joules: energy.map(|e| e * 0.75),
            energy_method: method, energy_vendor: if energy.is_some() { "nvidia".into() } else { String::new() },
            batch_id: String::new(), is_warmup, outcome,
            error_kind: if outcome == Outcome::Error { "timeout".into() } else { String::new() },
            error_message: if outcome == Outcome::Ok { String::new() } else { message },
            tokens_counted: flags.0, cost_unknown: flags.1, metadata,
            server_prefill_ms: server_prefill, server_decode_ms: server_prefill.map(|p| p * 4.0),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn valid_records_round_trip_through_json(record in valid_record()) {
        prop_assert_eq!(record.validate(), Ok(()));
        let text = serde_json::to_string(&record).unwrap();
        let back: TelemetryRecord = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, record);
    }

    #[test]
    fn validate_never_panics_on_arbitrary_values(
        timestamp in any::<f64>(), latency in any::<f64>(), cost in any::<f64>(),
        ttft in prop::option::of(any::<f64>()), util in prop::option::of(any::<f64>()),
        prompt in any::<u64>(), completion in any::<u64>(), total in any::<u64>(), cached in any::<u64>(),
        model_id in ".{0,600}", kind in ".{0,8}",
        metadata in prop_oneof![Just(json!(null)), Just(json!([1])), Just(json!({"a": 1})), any::<i64>().prop_map(|n| json!(n))],
    ) {
        let record = TelemetryRecord {
            timestamp, latency_seconds: latency, cost_usd: cost, ttft, gpu_utilization_pct: util,
            prompt_tokens: prompt, completion_tokens: completion, total_tokens: total,
            prompt_tokens_cached: cached, model_id, error_kind: kind, metadata,
            ..TelemetryRecord::default()
        };
        if let Err(e) = record.validate() {
            // Every error names a real field and renders a message.
            prop_assert!(!e.field().is_empty());
            prop_assert!(e.to_string().contains(e.field()));
        }
    }
}

#[test]
fn missing_fields_deserialize_to_defaults() {
    let r: TelemetryRecord =
        serde_json::from_str(r#"{"timestamp": 1764300000.0, "model_id": "m"}"#).unwrap();
    assert_eq!(r.model_id, "m");
    assert_eq!(r.outcome, Outcome::Ok);
    assert_eq!(r.metadata, json!({}));
    assert_eq!(r.validate(), Ok(()));
}

#[test]
fn enums_serialize_as_their_stored_strings() {
    let r = TelemetryRecord {
        energy_method: EnergyMethod::PowerIntegration,
        outcome: Outcome::Cancelled,
        ..TelemetryRecord::default()
    };
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["energy_method"], "power-integration");
    assert_eq!(v["outcome"], "cancelled");
    for m in [
        EnergyMethod::None,
        EnergyMethod::Counter,
        EnergyMethod::PowerIntegration,
    ] {
        assert_eq!(EnergyMethod::parse(m.as_str()), Some(m));
    }
    for o in [Outcome::Ok, Outcome::Error, Outcome::Cancelled] {
        assert_eq!(Outcome::parse(o.as_str()), Some(o));
    }
    assert_eq!(Outcome::parse("bogus"), None);
}
