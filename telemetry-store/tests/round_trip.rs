//! Any valid record, written and read back with raw SQL, equals what went in (metadata too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};
use telemetry_core::{EnergyMethod, Outcome, TelemetryRecord};
use telemetry_store::TelemetryStore;

fn opt(range: std::ops::Range<f64>) -> impl Strategy<Value = Option<f64>> {
    proptest::option::of(range)
}

fn label() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ._/:é€-]{0,24}"
}

fn metadata() -> impl Strategy<Value = Value> {
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

prop_compose! {
    fn record()(
        timestamp in 946_684_800.0f64..4_102_444_800.0,
        model_id in "[a-z0-9._-]{1,24}",
        engine in label(), agent in label(),
        prompt in 0u64..500_000_000, completion in 0u64..500_000_000, cached_frac in 0.0f64..=1.0,
        latency in 0.0f64..1e4, ttft_frac in proptest::option::of(0.0f64..=1.0),
        cost in 0.0f64..1e3,
        energy in opt(0.0..1e7), power in opt(0.0..2e3), util in opt(0.0..100.0),
        mem in opt(0.0..200.0), temp in opt(-20.0..120.0), thr in opt(0.0..1e5),
        prefill in opt(0.0..1e3), decode in opt(0.0..1e3), streaming in any::<bool>(),
        itl in proptest::collection::vec(opt(0.0..1e4), 6),
        pe in opt(0.0..1e6), de in opt(0.0..1e6),
        method in 0usize..3, vendor in label(), batch in label(), warmup in any::<bool>(),
        outcome in 0usize..3, error_message in label(), counted in any::<bool>(),
        unknown in any::<bool>(), metadata in metadata(),
        server in proptest::collection::vec(opt(0.0..1e6), 2),
    ) -> TelemetryRecord {
        let outcome = [Outcome::Ok, Outcome::Error, Outcome::Cancelled][outcome];
        TelemetryRecord {
            timestamp, model_id, engine, agent,
            prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion,
            prompt_tokens_cached: (prompt as f64 * cached_frac) as u64,
            latency_seconds: latency, ttft: ttft_frac.map(|f| latency * f), cost_usd: cost,
            energy_joules: energy, power_watts: power, gpu_utilization_pct: util,
            gpu_memory_used_gb: mem, gpu_temperature_c: temp, throughput_tok_per_sec: thr,
            prefill_latency_seconds: prefill, decode_latency_seconds: decode,
            is_streaming: streaming,
            mean_itl_ms: itl[0], median_itl_ms: itl[1], p90_itl_ms: itl[2],
            p95_itl_ms: itl[3], p99_itl_ms: itl[4], std_itl_ms: itl[5],
            prefill_energy_joules: pe, decode_energy_joules: de,
            energy_method: [EnergyMethod::None, EnergyMethod::Counter, EnergyMethod::PowerIntegration][method],
            energy_vendor: vendor, batch_id: batch, is_warmup: warmup, outcome,
            error_kind: if outcome == Outcome::Ok { String::new() } else { "kind".to_owned() },
            error_message, tokens_counted: counted, cost_unknown: unknown, metadata,
            server_prefill_ms: server[0], server_decode_ms: server[1],
        }
    }
}

#[test]
fn any_valid_record_reads_back_equal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::open(&path).unwrap();
    let conn = common::connect(&path);
    let mut runner = TestRunner::new(Config::with_cases(128));
    runner
        .run(&record(), |r| {
            prop_assume!(r.validate().is_ok());
            store.record(&r).unwrap();
            store.flush().unwrap();
            let rows = common::read_all(&conn);
            let last = rows.last().unwrap();
            prop_assert_eq!(last, &r);
            Ok(())
        })
        .unwrap();
    store.close().unwrap();
    // The summaries of everything written agree with the naive oracle.
    let rows = common::read_all(&conn);
    assert!(rows.len() >= 64);
    common::assert_rollups_eq(&common::read_rollups(&conn), &common::rollups_of(&rows));
}
