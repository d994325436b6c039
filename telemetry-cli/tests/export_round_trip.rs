//! Generated records written through the store come back equal from `export` in JSON, NDJSON and
//! CSV (`--raw`): every field of core's field table, whatever its kind, survives store → agg →
//! each format. The CSV cells are decoded back through the same table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{on_db, seed, stdout_of, temp_db};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};
use telemetry_core::schema::RECORD_COLUMNS;
use telemetry_core::testing::{arb_record, sample_record};
use telemetry_core::{FieldKind, RECORD_FIELDS, StoredValue, TelemetryRecord};

/// 40 records from the shared strategy (fixed seed) and 40 samples, in export order.
fn generated() -> Vec<TelemetryRecord> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let strategy = arb_record();
    let mut records: Vec<TelemetryRecord> = (0..40)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .chain((0..40).map(|i| sample_record("round-trip", i)))
        .collect();
    records.sort_by(|a, b| a.timestamp.total_cmp(&b.timestamp));
    records
}

fn export(format: &str, records: &[TelemetryRecord]) -> String {
    let (dir, db) = temp_db();
    seed(&db, records);
    stdout_of(on_db(dir.path(), &db).args(["export", "--format", format, "--raw"]))
}

#[test]
fn json_and_ndjson_give_back_every_field() {
    let records = generated();
    let json: Vec<TelemetryRecord> = serde_json::from_str(&export("json", &records)).unwrap();
    assert_eq!(json, records);
    let ndjson: Vec<TelemetryRecord> = export("ndjson", &records)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(ndjson, records);
}

#[test]
fn csv_gives_back_every_field() {
    let records = generated();
    let out = export("csv", &records);
    let mut reader = csv::Reader::from_reader(out.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(headers, RECORD_COLUMNS);
    let back: Vec<TelemetryRecord> = reader
        .records()
        .map(|row| {
            let row = row.unwrap();
            let mut r = TelemetryRecord::default();
            for (i, (cell, field)) in row.iter().zip(RECORD_FIELDS).enumerate() {
                let stored = match field.kind {
                    FieldKind::OptReal if cell.is_empty() => StoredValue::Null,
                    FieldKind::Real | FieldKind::OptReal => {
                        StoredValue::Real(cell.parse().unwrap())
                    }
                    FieldKind::Count => StoredValue::Integer(cell.parse().unwrap()),
                    FieldKind::Flag => StoredValue::Integer(i64::from(cell == "true")),
                    FieldKind::Text | FieldKind::Json => StoredValue::Text(cell.as_bytes()),
                };
                r.set_field(i, stored).unwrap();
            }
            r
        })
        .collect();
    assert_eq!(back, records);
}
