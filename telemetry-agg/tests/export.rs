//! Export: every field round-trips, rows come in timestamp order, the range filters, pages join
//! seamlessly, and a bad stored value is an error naming its row and column.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{DAY0, rec, write_db, write_into};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rusqlite::Connection;
use serde_json::json;
use telemetry_agg::{AggError, TelemetryAggregator};
use telemetry_core::schema::RECORD_COLUMNS;
use telemetry_core::testing::{arb_record, sample_record};
use telemetry_core::{EnergyMethod, TelemetryRecord, TimeRange};

/// A record with every field set to something other than its default (from the shared sample,
/// so fields added to the table are set too).
fn rich(ts: f64) -> TelemetryRecord {
    let mut r = sample_record("planner", 13);
    r.timestamp = ts;
    r.is_streaming = true;
    r.output_chunks = 7;
    r.is_warmup = true;
    r.tokens_counted = true;
    r.cost_unknown = true;
    r.energy_method = EnergyMethod::PowerIntegration;
    r.metadata = json!({"request": {"id": 42, "tags": ["a", "b"]}, "ratio": 0.1 + 0.2}).into();
    r
}

#[test]
fn every_field_round_trips() {
    let default = TelemetryRecord::default();
    let full = rich(DAY0 + 1.5);
    for ((value, unset), name) in full
        .field_values()
        .iter()
        .zip(default.field_values())
        .zip(RECORD_COLUMNS)
    {
        assert_ne!(
            *value, unset,
            "{name} is not set, so its round trip is not tested"
        );
    }
    let records = vec![full, rec("m", "", DAY0 + 2.0, 0.25)];
    let (_dir, path) = write_db(&records);
    let agg = TelemetryAggregator::open(&path).unwrap();
    let out: Vec<TelemetryRecord> = agg
        .export_records(&TimeRange::all())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(out, records);
}

#[test]
fn generated_records_round_trip() {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let strategy = arb_record();
    let mut records: Vec<TelemetryRecord> = (0..200)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();
    let (_dir, path) = write_db(&records);
    let agg = TelemetryAggregator::open(&path).unwrap();
    let out: Vec<TelemetryRecord> = agg
        .export_records(&TimeRange::all())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    records.sort_by(|a, b| a.timestamp.total_cmp(&b.timestamp));
    assert_eq!(out, records);
}

/// `n` records over about 50 minutes, many sharing a timestamp, written out of order.
fn shuffled(n: u64) -> Vec<TelemetryRecord> {
    (0..n)
        .map(|i| {
            let mut r = rec("m", "e", DAY0 + ((i * 7_919) % 3_001) as f64, 1.0);
            r.prompt_tokens = i;
            r.total_tokens = i + r.completion_tokens;
            r
        })
        .collect()
}

fn check_order(n: u64, range: TimeRange) {
    let mut records = shuffled(n);
    let (_dir, path) = write_db(&records);
    let agg = TelemetryAggregator::open(&path).unwrap();
    let out: Vec<TelemetryRecord> = agg
        .export_records(&range)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // A stable sort keeps insertion order among equal timestamps, as the export must.
    records.retain(|r| range.contains(r.timestamp));
    records.sort_by(|a, b| a.timestamp.total_cmp(&b.timestamp));
    assert_eq!(out.len(), records.len());
    assert!(
        out == records,
        "export order differs from (timestamp, insertion)"
    );
}

#[test]
fn pages_join_in_timestamp_then_insertion_order() {
    // Several pages, read on the caller's thread.
    check_order(12_345, TimeRange::all());
}

#[test]
fn large_exports_read_in_parallel_keep_the_order() {
    // Above the threshold: time slices read by worker threads, slice edges on shared timestamps.
    check_order(30_011, TimeRange::all());
    check_order(
        30_011,
        TimeRange::new(Some(DAY0 + 100.0), Some(DAY0 + 2_900.0)).unwrap(),
    );
}

#[test]
fn dropping_a_parallel_export_early_stops_it() {
    let (_dir, path) = write_db(&shuffled(40_000));
    let agg = TelemetryAggregator::open(&path).unwrap();
    let first: Vec<TelemetryRecord> = agg
        .export_records(&TimeRange::all())
        .unwrap()
        .take(5)
        .map(Result::unwrap)
        .collect();
    assert_eq!(first.len(), 5);
    assert!(first.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    // The aggregator is still usable afterwards.
    assert_eq!(agg.record_count(&TimeRange::all()).unwrap(), 40_000);
}

/// Rows committed after `export_records` was called are not exported, whether the export reads
/// on the caller's thread (few rows) or on worker connections (many), and even when they fall
/// in slices not read yet.
fn rows_written_during_an_export_are_left_out(n: u64) {
    let (_dir, path) = write_db(&shuffled(n));
    let agg = TelemetryAggregator::open(&path).unwrap();
    let before = agg.record_count(&TimeRange::all()).unwrap();
    let mut export = agg.export_records(&TimeRange::all()).unwrap();
    let first = export.next().unwrap().unwrap();
    // New rows across the whole span (and beyond it), committed while the export is open.
    let extra: Vec<TelemetryRecord> = (0..5_000)
        .map(|i| rec("late", "e", DAY0 + (i % 4_000) as f64, 1.0))
        .collect();
    write_into(&path, &extra);
    let rest: Vec<TelemetryRecord> = export.map(Result::unwrap).collect();
    assert_eq!(1 + rest.len() as u64, before);
    assert!(
        std::iter::once(&first)
            .chain(&rest)
            .all(|r| r.model_id == "m")
    );
    // A new export sees them.
    assert_eq!(
        agg.export_records(&TimeRange::all()).unwrap().count() as u64,
        before + 5_000
    );
}

#[test]
fn a_small_export_leaves_out_rows_written_while_it_runs() {
    rows_written_during_an_export_are_left_out(9_000);
}

#[test]
fn a_parallel_export_leaves_out_rows_written_while_it_runs() {
    rows_written_during_an_export_are_left_out(30_000);
}

#[test]
fn export_is_filtered_by_the_range() {
    let records: Vec<TelemetryRecord> = (0..100)
        .map(|i| rec("m", "e", DAY0 + i as f64 * 10.0, 1.0))
        .collect();
    let (_dir, path) = write_db(&records);
    let agg = TelemetryAggregator::open(&path).unwrap();
    let range = TimeRange::new(Some(DAY0 + 100.0), Some(DAY0 + 200.0)).unwrap();
    let ts: Vec<f64> = agg
        .export_records(&range)
        .unwrap()
        .map(|r| r.unwrap().timestamp - DAY0)
        .collect();
    assert_eq!(ts, (10..=20).map(|i| i as f64 * 10.0).collect::<Vec<_>>());
    assert_eq!(
        agg.export_records(&TimeRange::since(DAY0 + 5_000.0).unwrap())
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn a_bad_stored_value_names_row_and_column_and_the_export_goes_on() {
    let records: Vec<TelemetryRecord> = (0..3)
        .map(|i| rec("m", "e", DAY0 + i as f64, 1.0))
        .collect();
    let (_dir, path) = write_db(&records);
    let id: i64 = {
        let conn = Connection::open(&path).unwrap();
        let id = conn
            .query_row(
                "SELECT id FROM telemetry ORDER BY timestamp LIMIT 1 OFFSET 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        conn.execute(
            "UPDATE telemetry SET outcome = 'exploded' WHERE id = ?1",
            [id],
        )
        .unwrap();
        conn.execute(
            "UPDATE telemetry SET metadata = 'not json' WHERE id <> ?1",
            [id],
        )
        .unwrap();
        id
    };
    let agg = TelemetryAggregator::open(&path).unwrap();
    let out: Vec<Result<TelemetryRecord, AggError>> =
        agg.export_records(&TimeRange::all()).unwrap().collect();
    assert_eq!(out.len(), 3);
    match &out[1] {
        Err(AggError::BadRow {
            row_id,
            column,
            detail,
        }) => {
            assert_eq!((*row_id, *column), (id, "outcome"));
            assert!(detail.contains("exploded"), "{detail}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        &out[0],
        Err(AggError::BadRow {
            column: "metadata",
            ..
        })
    ));
    // The summaries never read `metadata`; a raw edge row with a bad outcome is reported.
    let edge = TimeRange::new(Some(DAY0), Some(DAY0 + 30.0)).unwrap();
    let err = agg.summary(&edge).unwrap_err();
    assert!(matches!(err, AggError::BadRow { column: "outcome", row_id, .. } if row_id == id));
}
