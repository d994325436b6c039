//! `export`: JSON, NDJSON and CSV, to stdout and to a file, filtered by time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{seed, standard_records, stdout_of, telemetry, temp_db};
use predicates::prelude::*;
use serde_json::Value;
use telemetry_core::TelemetryRecord;
use telemetry_core::schema::RECORD_COLUMNS;

#[test]
fn json_is_an_array_of_records() {
    let (dir, db) = temp_db();
    let records = standard_records();
    seed(&db, &records);
    let out = telemetry(dir.path())
        .args(["--db", db.to_str().unwrap(), "export"])
        .assert()
        .success()
        .stderr(predicate::str::contains("wrote 30 records"))
        .get_output()
        .stdout
        .clone();
    let back: Vec<TelemetryRecord> = serde_json::from_slice(&out).unwrap();
    assert_eq!(back.len(), 30);
    // Ordered by timestamp: the oldest (llama, an hour ago) first, values exact.
    assert_eq!(back[0].model_id, "llama");
    let mut sorted = records.clone();
    sorted.sort_by(|a, b| a.timestamp.total_cmp(&b.timestamp));
    assert_eq!(back, sorted);
}

#[test]
fn ndjson_to_a_file_with_a_time_filter() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let file = dir.path().join("out.ndjson");
    telemetry(dir.path())
        .args([
            "--db",
            db.to_str().unwrap(),
            "export",
            "-f",
            "ndjson",
            "--since",
            "30m",
            "-o",
        ])
        .arg(&file)
        .assert()
        .success()
        .stdout(predicate::str::contains("wrote 20 records to"));
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 20);
    for line in text.lines() {
        let r: TelemetryRecord = serde_json::from_str(line).unwrap();
        assert_eq!(r.model_id, "qwen");
    }
}

#[test]
fn csv_has_the_table_columns() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let out = stdout_of(telemetry(dir.path()).args([
        "--db",
        db.to_str().unwrap(),
        "export",
        "--format",
        "csv",
    ]));
    let mut reader = csv::Reader::from_reader(out.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(headers, RECORD_COLUMNS);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 30);
    let outcome = RECORD_COLUMNS.iter().position(|c| *c == "outcome").unwrap();
    assert_eq!(rows.iter().filter(|r| &r[outcome] == "error").count(), 2);
    let metadata = RECORD_COLUMNS
        .iter()
        .position(|c| *c == "metadata")
        .unwrap();
    assert!(
        rows.iter()
            .all(|r| serde_json::from_str::<Value>(&r[metadata]).is_ok())
    );
}

#[test]
fn empty_export_is_valid_json() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let out = stdout_of(telemetry(dir.path()).args([
        "--db",
        db.to_str().unwrap(),
        "export",
        "--since",
        "2099-01-01T00:00:00Z",
    ]));
    let v: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert!(v.is_empty());
}

#[test]
fn unwritable_output_is_a_one_line_error() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let out = telemetry(dir.path())
        .args([
            "--db",
            db.to_str().unwrap(),
            "export",
            "-o",
            "/no/such/dir/out.json",
        ])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("/no/such/dir/out.json"), "{err}");
}
