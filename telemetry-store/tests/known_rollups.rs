//! The writer merges a batch's summaries into the rows its previous batch wrote, which it keeps
//! in memory rather than reading them back: whatever else writes the summaries in between
//! (another store on the file, a prune, a rebuild), the rows stay the rollups of the records.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use telemetry_core::TelemetryRecord;
use telemetry_store::TelemetryStore;

const START: f64 = 1_764_300_000.0;

/// One label set, so every record adds to the same minute, hour and day rows.
fn call(i: u64) -> TelemetryRecord {
    TelemetryRecord::builder("m", START + i as f64 * 0.5)
        .engine("e")
        .agent("x")
        .tokens(10, i)
        .latency_seconds(0.1 + i as f64 * 0.01)
        .build()
}

#[test]
fn two_stores_adding_to_the_same_rows_in_turn_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let open = || {
        TelemetryStore::builder(&path)
            .minute_rollup_threshold(1)
            .open()
            .unwrap()
    };
    let (a, b) = (open(), open());
    for i in 0..40 {
        let store = if i % 3 == 0 { &b } else { &a };
        store.record(&call(i)).unwrap();
        store.flush().unwrap();
    }
    a.close().unwrap();
    b.close().unwrap();
    let conn = common::connect(&path);
    common::assert_consistent(&conn);
    let calls: i64 = conn
        .query_row(
            "SELECT call_count FROM telemetry_rollup WHERE level = 86400",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(calls, 40);
}

#[test]
fn a_prune_or_a_rebuild_between_batches_leaves_the_rows_right() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::builder(&path)
        .minute_rollup_threshold(1)
        .open()
        .unwrap();
    for i in 0..60 {
        store.record(&call(i)).unwrap();
        store.flush().unwrap();
        if i == 20 {
            // Cuts the minute, hour and day rows the last batch wrote.
            store.prune_before(START + 5.0).unwrap();
        }
        if i == 40 {
            store.rebuild_rollups().unwrap();
        }
    }
    store.close().unwrap();
    let conn = common::connect(&path);
    common::assert_consistent(&conn);
    let calls: i64 = conn
        .query_row(
            "SELECT call_count FROM telemetry_rollup WHERE level = 86400",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(calls, 60 - 10);
}
