//! Opening: read-only access, refusal of missing, foreign and unknown-version files, and reading
//! while a store writes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{DAY0, rec, write_db};
use rusqlite::Connection;
use telemetry_agg::{AggError, TelemetryAggregator};
use telemetry_core::TimeRange;
use telemetry_core::schema::SCHEMA_VERSION;
use telemetry_store::TelemetryStore;

#[test]
fn missing_file_is_not_found_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.db");
    let err = TelemetryAggregator::open(&path).unwrap_err();
    assert!(
        matches!(&err, AggError::NotFound { path: p } if p == &path),
        "{err}"
    );
    assert!(err.to_string().contains("nope.db"));
    assert!(!path.exists());
}

#[test]
fn a_file_that_is_not_sqlite_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    std::fs::write(
        &path,
        b"these are not the bytes of a SQLite database, not at all....",
    )
    .unwrap();
    let err = TelemetryAggregator::open(&path).unwrap_err();
    assert!(matches!(err, AggError::NotADatabase { .. }), "{err}");
    assert!(err.to_string().contains("notes.db"));
}

#[test]
fn a_sqlite_file_without_telemetry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (x INTEGER);")
        .unwrap();
    let err = TelemetryAggregator::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            AggError::NotTelemetry {
                table: "telemetry",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_telemetry_table_without_migration_history_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peer.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE telemetry (id INTEGER PRIMARY KEY, timestamp REAL);")
        .unwrap();
    let err = TelemetryAggregator::open(&path).unwrap_err();
    assert!(
        matches!(err, AggError::UnsupportedSchema { found: None, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("peer.db"), "{err}");
}

#[test]
fn an_unknown_schema_version_is_refused_naming_it() {
    let (_dir, path) = write_db(&[rec("m", "e", DAY0, 1.0)]);
    Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
             VALUES (?1, 'V7__future', '', '0')",
            [SCHEMA_VERSION + 6],
        )
        .unwrap();
    let err = TelemetryAggregator::open(&path).unwrap_err();
    match &err {
        AggError::UnsupportedSchema {
            found, supported, ..
        } => {
            assert_eq!(*found, Some(i64::from(SCHEMA_VERSION + 6)));
            assert_eq!(*supported, SCHEMA_VERSION);
        }
        other => panic!("unexpected {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&(SCHEMA_VERSION + 6).to_string()) && msg.contains("telemetry.db"));
}

#[test]
fn opens_a_store_database_and_reports_its_health() {
    let (_dir, path) = write_db(&[rec("m", "e", DAY0, 1.0)]);
    let agg = TelemetryAggregator::open(&path).unwrap();
    assert_eq!(agg.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(agg.integrity_check().unwrap(), vec!["ok".to_owned()]);
    assert_eq!(agg.path(), path.as_path());
    assert_eq!(agg.record_count(&TimeRange::all()).unwrap(), 1);
}

#[test]
fn an_empty_store_gives_zeroed_stats() {
    let (_dir, path) = write_db(&[]);
    let agg = TelemetryAggregator::open(&path).unwrap();
    let all = TimeRange::all();
    assert_eq!(agg.summary(&all).unwrap(), Default::default());
    assert_eq!(agg.record_count(&all).unwrap(), 0);
    assert!(agg.per_model_stats(&all).unwrap().is_empty());
    assert!(agg.export_records(&all).unwrap().next().is_none());
}

#[test]
fn the_file_is_left_byte_for_byte_unchanged() {
    let (_dir, path) = write_db(&[rec("m", "e", DAY0, 1.0), rec("n", "e", DAY0 + 5.0, 2.0)]);
    let before = std::fs::read(&path).unwrap();
    {
        let agg = TelemetryAggregator::open(&path).unwrap();
        agg.summary(&TimeRange::all()).unwrap();
        assert_eq!(agg.export_records(&TimeRange::all()).unwrap().count(), 2);
        agg.integrity_check().unwrap();
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn reads_while_a_store_writes_in_another_thread() {
    let (_dir, path) = write_db(&[]);
    let store = Arc::new(
        TelemetryStore::builder(&path)
            .batch_size(50)
            .open()
            .unwrap(),
    );
    let agg = TelemetryAggregator::open(&path).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) || i < 500 {
                store
                    .record(&rec("m", "e", DAY0 + i as f64 * 7.3, 1.0))
                    .unwrap();
                i += 1;
                if i.is_multiple_of(100) {
                    store.flush().unwrap();
                }
            }
            store.flush().unwrap();
            i
        })
    };
    let mut last = 0;
    for _ in 0..50 {
        let all = TimeRange::all();
        let n = agg.record_count(&all).unwrap();
        let s = agg.summary(&all).unwrap();
        assert!(n >= last, "count went backwards: {n} < {last}");
        // Each query is one snapshot, so the summary agrees with itself.
        assert_eq!(
            s.per_model.iter().map(|m| m.call_count).sum::<u64>(),
            s.total_calls
        );
        last = n;
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert_eq!(agg.record_count(&TimeRange::all()).unwrap(), written);
    store.close().unwrap();
}

#[test]
fn an_older_schema_version_is_refused_saying_how_to_upgrade() {
    let (_dir, path) = write_db(&[rec("m", "e", DAY0, 1.0)]);
    Connection::open(&path)
        .unwrap()
        .execute("DELETE FROM refinery_schema_history WHERE version > 1", [])
        .unwrap();
    let err = TelemetryAggregator::open(&path).unwrap_err();
    assert!(
        matches!(&err, AggError::UnsupportedSchema { found: Some(1), .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("older file") && msg.contains("upgrades it"),
        "{msg}"
    );
    // The message says nothing of upgrading a file that is newer than this build.
    assert!(
        !AggError::UnsupportedSchema {
            path: path.clone(),
            found: Some(i64::from(SCHEMA_VERSION) + 1),
            supported: SCHEMA_VERSION,
        }
        .to_string()
        .contains("older")
    );
}
