//! Property tests: valid records survive a JSON round trip; `validate` never panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use serde_json::json;
use telemetry_core::testing::arb_record;
use telemetry_core::{EnergyMethod, Outcome, TelemetryRecord};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn valid_records_round_trip_through_json(record in arb_record()) {
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
            prompt_tokens_cached: cached, model_id, error_kind: kind, metadata: metadata.into(),
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
