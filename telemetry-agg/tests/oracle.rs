//! Every query against a naive oracle over the same records, written through the real store (so
//! the summaries read are the ones the store writes), for random record sets and random ranges
//! whose edges fall on and between day, hour and minute buckets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    DAY0, View, compare, oracle, oracle_groups, view_agent, view_engine, view_model, view_total,
    write_db_with_threshold,
};
use proptest::prelude::*;
use telemetry_agg::{Bucket, GroupBy, TelemetryAggregator};
use telemetry_core::{EnergyMethod, Outcome, TelemetryRecord, TimeRange, bucket_start};

const SPAN: f64 = 3.0 * 86_400.0;

/// Timestamps spread over three days, some exactly on minute, hour and day edges.
fn timestamp() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (0.0..SPAN).prop_map(|x| DAY0 + x),
        // A busy two hours, so that partial minutes at range edges hold rows.
        3 => (0.0..7_200.0).prop_map(|x| DAY0 + 86_400.0 - 3_600.0 + x),
        1 => (0i64..(SPAN as i64 / 60)).prop_map(|m| DAY0 + (m * 60) as f64),
        1 => (0i64..72).prop_map(|h| DAY0 + (h * 3_600) as f64),
        1 => (0i64..4).prop_map(|d| DAY0 + (d * 86_400) as f64),
    ]
}

fn record() -> impl Strategy<Value = TelemetryRecord> {
    (
        timestamp(),
        (0usize..3, 0usize..2, 0usize..3),
        (0u64..2_000, 0u64..500),
        1e-3f64..30.0,
        (any::<bool>(), 0.0f64..1.0),
        (proptest::option::of(0.0f64..500.0), 0.0f64..0.05),
        (
            proptest::option::of(0.0f64..100.0),
            proptest::option::of(1.0f64..200.0),
        ),
        (proptest::option::of(0.1f64..300.0), 0u8..10),
    )
        .prop_map(
            |(
                ts,
                (m, e, a),
                (prompt, completion),
                latency,
                (has_ttft, ttft_frac),
                (energy, cost),
                (util, thr),
                (itl, err),
            )| {
                let mut r = TelemetryRecord::builder(["llama", "qwen", "mistral"][m], ts)
                    .engine(["vllm", "llama.cpp"][e])
                    .agent(["", "planner", "coder"][a])
                    .tokens(prompt, completion)
                    .latency_seconds(latency)
                    .cost_usd(cost)
                    .build();
                if has_ttft {
                    r.ttft = Some(latency * ttft_frac);
                }
                if let Some(j) = energy {
                    r.energy_joules = Some(j);
                    r.energy_method = EnergyMethod::Counter;
                    r.prefill_energy_joules = Some(j * 0.25);
                    r.decode_energy_joules = Some(j * 0.75);
                }
                r.gpu_utilization_pct = util;
                r.throughput_tok_per_sec = thr;
                r.mean_itl_ms = itl;
                if err == 0 {
                    r.outcome = Outcome::Error;
                    r.error_kind = "timeout".into();
                }
                r
            },
        )
}

/// A bound: none, anywhere, exactly on an edge, or within 90 s of a record (resolved by
/// [`resolve`]).
#[derive(Debug, Clone, Copy)]
enum Bound {
    At(Option<f64>),
    NearRecord(prop::sample::Index, f64),
}

fn bound() -> impl Strategy<Value = Bound> {
    prop_oneof![
        1 => Just(Bound::At(None)),
        2 => (-600.0..SPAN + 600.0).prop_map(|x| Bound::At(Some(DAY0 + x))),
        1 => (0i64..(SPAN as i64 / 60)).prop_map(|m| Bound::At(Some(DAY0 + (m * 60) as f64))),
        1 => (0i64..72).prop_map(|h| Bound::At(Some(DAY0 + (h * 3_600) as f64))),
        1 => (0i64..4).prop_map(|d| Bound::At(Some(DAY0 + (d * 86_400) as f64))),
        3 => (any::<prop::sample::Index>(), -90.0f64..90.0).prop_map(|(i, d)| Bound::NearRecord(i, d)),
    ]
}

fn resolve(b: Bound, records: &[TelemetryRecord]) -> Option<f64> {
    match b {
        Bound::At(x) => x,
        Bound::NearRecord(_, _) if records.is_empty() => None,
        Bound::NearRecord(i, d) => Some(records[i.index(records.len())].timestamp + d),
    }
}

fn range(a: Bound, b: Bound, records: &[TelemetryRecord]) -> TimeRange {
    match (resolve(a, records), resolve(b, records)) {
        (Some(a), Some(b)) => TimeRange::new(Some(a.min(b)), Some(a.max(b))).unwrap(),
        (a, b) => TimeRange::new(a, b).unwrap(),
    }
}

fn check_list(got: Vec<View>, want: Vec<View>, what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len(), "{} group count", what);
    for (g, w) in got.iter().zip(&want) {
        compare(g, w).map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
    }
    Ok(())
}

/// Every query over `ranges` (and everything) against the oracle, on `records` written by a
/// store that keeps minute summaries for hours of at least `threshold` calls.
fn check_all(
    records: &[TelemetryRecord],
    bounds: &[(Bound, Bound)],
    threshold: u64,
) -> Result<(), TestCaseError> {
    let records = records.to_vec();
    let ranges: Vec<TimeRange> = bounds
        .iter()
        .map(|(a, b)| range(*a, *b, &records))
        .collect();
    let (_dir, path) = write_db_with_threshold(&records, threshold);
    let agg = TelemetryAggregator::open(&path).unwrap();
    for range in ranges.iter().chain([TimeRange::all()].iter()) {
        let inside: Vec<&TelemetryRecord> = records
            .iter()
            .filter(|r| range.contains(r.timestamp))
            .collect();
        let summary = agg.summary(range).unwrap();
        compare(&view_total(&summary), &oracle("", &inside))
            .map_err(|e| TestCaseError::fail(format!("{range:?} totals: {e}")))?;
        check_list(
            summary.per_model.iter().map(view_model).collect(),
            oracle_groups(&records, range, |r| &r.model_id),
            "per_model",
        )?;
        check_list(
            agg.per_engine_stats(range)
                .unwrap()
                .iter()
                .map(view_engine)
                .collect(),
            oracle_groups(&records, range, |r| &r.engine),
            "per_engine",
        )?;
        check_list(
            agg.per_agent_stats(range)
                .unwrap()
                .iter()
                .map(view_agent)
                .collect(),
            oracle_groups(&records, range, |r| &r.agent),
            "per_agent",
        )?;
        prop_assert_eq!(agg.record_count(range).unwrap(), inside.len() as u64);

        // Series by hour and model: every point equals the oracle over its bucket.
        let points = agg.series(range, Bucket::Hour, GroupBy::Model).unwrap();
        let mut want: std::collections::BTreeMap<(i64, &str), Vec<&TelemetryRecord>> =
            Default::default();
        for r in &inside {
            let minute = bucket_start(r.timestamp, 60);
            want.entry((minute.div_euclid(3_600) * 3_600, &r.model_id))
                .or_default()
                .push(r);
        }
        prop_assert_eq!(points.len(), want.len());
        for (p, ((start, model), rs)) in points.iter().zip(&want) {
            prop_assert_eq!(p.bucket_start, *start);
            prop_assert_eq!(p.group.as_deref(), Some(*model));
            let o = oracle(model, rs);
            prop_assert_eq!(p.call_count, o.call_count);
            prop_assert_eq!(p.total_tokens, o.total_tokens);
            prop_assert!((p.total_cost - o.total_cost).abs() <= 1e-9 * o.total_cost + 1e-12);
            let (g, w) = (p.latency_p95.unwrap(), o.percentiles[2].unwrap());
            prop_assert!((g - w).abs() <= 0.01 * w + 1e-9, "p95 {} vs {}", g, w);
        }

        // Series by minute (the plan has the minute level only, and may skip sparse hours
        // in its middle): every point equals the oracle over its bucket.
        let points = agg.series(range, Bucket::Minute, GroupBy::None).unwrap();
        let mut want: std::collections::BTreeMap<i64, Vec<&TelemetryRecord>> = Default::default();
        for r in &inside {
            want.entry(bucket_start(r.timestamp, 60))
                .or_default()
                .push(r);
        }
        prop_assert_eq!(points.len(), want.len());
        for (p, (start, rs)) in points.iter().zip(&want) {
            prop_assert_eq!(p.bucket_start, *start);
            let o = oracle("", rs);
            prop_assert_eq!(p.call_count, o.call_count);
            prop_assert_eq!(p.total_tokens, o.total_tokens);
            let (g, w) = (p.latency_p50.unwrap(), o.percentiles[0].unwrap());
            prop_assert!((g - w).abs() <= 0.01 * w + 1e-9, "p50 {} vs {}", g, w);
        }

        // Export: exactly the records of the range, in timestamp order, as written.
        let exported: Vec<TelemetryRecord> = agg
            .export_records(range)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut expected: Vec<&TelemetryRecord> = inside.clone();
        expected.sort_by(|a, b| a.timestamp.total_cmp(&b.timestamp));
        prop_assert_eq!(exported.len(), expected.len());
        for (g, w) in exported.iter().zip(&expected) {
            prop_assert_eq!(g.timestamp, w.timestamp);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The store's default threshold: with at most 250 records over three days, every hour is
    /// sparse (no minute summaries), and range edges read raw rows.
    #[test]
    fn queries_match_the_oracle(
        records in prop::collection::vec(record(), 0..250),
        bounds in prop::collection::vec((bound(), bound()), 6),
    ) {
        check_all(&records, &bounds, telemetry_store::DEFAULT_MINUTE_ROLLUP_THRESHOLD)?;
    }

    /// Low thresholds, so that busy hours are detailed and quiet ones sparse (1: every hour
    /// detailed, as files written before sparse hours existed): range edges fall in both kinds.
    #[test]
    fn queries_match_the_oracle_with_sparse_and_detailed_hours(
        records in prop::collection::vec(record(), 0..250),
        bounds in prop::collection::vec((bound(), bound()), 6),
        threshold in prop_oneof![Just(1u64), 2u64..12],
    ) {
        check_all(&records, &bounds, threshold)?;
    }
}

/// A file from before incremental auto-vacuum, pruned in steps (the summaries at each cut merged
/// from finer rollup rows) and then converted by `compact`, answers as the oracle computes from
/// the remaining raw rows.
#[test]
fn a_pruned_then_compacted_old_file_matches_the_oracle() {
    let records: Vec<TelemetryRecord> = (0..4_000u64)
        .map(|i| {
            common::full_rec(
                ["m1", "m2", "m3"][(i % 3) as usize],
                ["e1", "e2"][(i % 2) as usize],
                "a",
                DAY0 + i as f64 * 37.3,
                i,
            )
        })
        .collect();
    let (_dir, path) = common::write_db(&records);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA auto_vacuum = NONE; VACUUM;")
        .unwrap();
    // Inside a minute, an hour and a day.
    let cut = DAY0 + 86_400.0 + 3_600.0 * 3.0 + 60.0 * 11.0 + 29.5;
    let store = telemetry_store::TelemetryStore::open(&path).unwrap();
    store.prune_before(cut).unwrap();
    store.compact().unwrap();
    store.close().unwrap();
    let left: Vec<TelemetryRecord> = records.into_iter().filter(|r| r.timestamp >= cut).collect();
    let agg = TelemetryAggregator::open(&path).unwrap();
    assert!(agg.check_rollups().unwrap().is_consistent());
    for range in [
        TimeRange::all(),
        TimeRange::new(Some(cut - 10.0), Some(cut + 7_200.5)).unwrap(),
        TimeRange::since(DAY0 + 2.0 * 86_400.0 + 123.0).unwrap(),
    ] {
        let inside: Vec<&TelemetryRecord> = left
            .iter()
            .filter(|r| range.contains(r.timestamp))
            .collect();
        let summary = agg.summary(&range).unwrap();
        compare(&view_total(&summary), &oracle("", &inside)).unwrap();
        let got: Vec<_> = summary.per_model.iter().map(view_model).collect();
        let want = oracle_groups(&left, &range, |r| &r.model_id);
        assert_eq!(got.len(), want.len(), "{range:?}");
        for (g, w) in got.iter().zip(&want) {
            compare(g, w).unwrap();
        }
    }
}

/// A file written before texts were stored once (schema V4: every label and metadata text in
/// its row), migrated by a store that then appends rows storing their texts once, answers every
/// query as the oracle computes from all its records, and exports every record as written.
#[test]
fn a_file_from_before_v5_and_its_new_rows_match_the_oracle() {
    let records: Vec<TelemetryRecord> = (0..3_000u64)
        .map(|i| {
            let mut r = common::full_rec(
                ["model-one", "model-two", "model-three"][(i % 3) as usize],
                ["engine-a", "engine-b"][(i % 2) as usize],
                ["agent-x", "agent-y"][(i % 5 / 4) as usize],
                DAY0 + i as f64 * 61.7,
                i,
            );
            r.metadata =
                serde_json::json!({ "telemetry.run_id": format!("run-{}", i / 1_000) }).into();
            r
        })
        .collect();
    let (_dir, path) = common::write_db(&records[..2_000]);
    {
        // Back to what a version-4 store wrote.
        let conn = rusqlite::Connection::open(&path).unwrap();
        // Every text or JSON column, from the field table (as the store's tests do it), so a
        // text field added later is turned back too.
        let set: Vec<String> = telemetry_core::RECORD_FIELDS
            .iter()
            .filter(|f| f.kind.stored_once())
            .map(|f| {
                let c = f.name;
                format!("{c} = (SELECT {c} FROM telemetry_records AS v WHERE v.id = telemetry.id)")
            })
            .collect();
        conn.execute_batch(&format!(
            "UPDATE telemetry SET {};
             DROP VIEW telemetry_records;
             DROP TABLE telemetry_strings;
             DELETE FROM refinery_schema_history WHERE version = 5;",
            set.join(", ")
        ))
        .unwrap();
        let ids: i64 = conn
            .query_row(
                "SELECT count(*) FROM telemetry WHERE typeof(model_id) = 'blob'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(ids, 0);
    }
    common::write_into(&path, &records[2_000..]);
    let agg = TelemetryAggregator::open(&path).unwrap();
    assert!(agg.check_rollups().unwrap().is_consistent());
    for range in [
        TimeRange::all(),
        TimeRange::new(Some(DAY0 + 20_000.5), Some(DAY0 + 150_000.25)).unwrap(),
    ] {
        let inside: Vec<&TelemetryRecord> = records
            .iter()
            .filter(|r| range.contains(r.timestamp))
            .collect();
        let summary = agg.summary(&range).unwrap();
        compare(&view_total(&summary), &oracle("", &inside)).unwrap();
        let by_model: Vec<_> = summary.per_model.iter().map(view_model).collect();
        check_list(
            by_model,
            oracle_groups(&records, &range, |r| &r.model_id),
            "per_model",
        )
        .unwrap();
        let by_agent: Vec<_> = summary.per_agent.iter().map(view_agent).collect();
        check_list(
            by_agent,
            oracle_groups(&records, &range, |r| &r.agent),
            "per_agent",
        )
        .unwrap();
        let exported: Vec<TelemetryRecord> = agg
            .export_records(&range)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let want: Vec<TelemetryRecord> = inside.into_iter().cloned().collect();
        assert_eq!(exported, want, "{range:?}");
    }
}
