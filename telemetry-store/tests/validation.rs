//! Bad records are refused with the field named, and nothing is written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::json;
use telemetry_store::{RecordError, TelemetryStore};

#[test]
fn bad_records_are_refused_naming_the_field_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::open(&path).unwrap();
    let good = common::sample("v", 1);

    let mut nan = good.clone();
    nan.latency_seconds = f64::NAN;
    let mut negative = good.clone();
    negative.cost_usd = -0.5;
    let mut big_metadata = good.clone();
    big_metadata.metadata = json!({ "blob": "x".repeat(70 * 1024) }).into();
    let mut empty_model = good.clone();
    empty_model.model_id = String::new();
    let mut negative_energy = good.clone();
    negative_energy.energy_joules = Some(-1.0);

    let cases = [
        (nan, "latency_seconds"),
        (negative, "cost_usd"),
        (big_metadata, "metadata"),
        (empty_model, "model_id"),
        (negative_energy, "energy_joules"),
    ];
    for (record, field) in &cases {
        let err = store.record(record).unwrap_err();
        assert!(matches!(err, RecordError::Invalid(_)), "{err}");
        assert_eq!(err.field(), Some(*field));
        assert!(err.to_string().contains(field), "{err}");
        let err = store
            .record_arc(std::sync::Arc::new(record.clone()))
            .unwrap_err();
        assert_eq!(err.field(), Some(*field));
    }
    store.flush().unwrap();
    let stats = store.stats();
    assert_eq!(stats.rejected, 10);
    assert_eq!(stats.written, 0);
    let conn = common::connect(&path);
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM telemetry", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM telemetry_rollup", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);

    // A NaN prune bound is refused too.
    assert_eq!(
        store.prune_before(f64::NAN).unwrap_err().field(),
        Some("timestamp")
    );
    store.close().unwrap();
}
