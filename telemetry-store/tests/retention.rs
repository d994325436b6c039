//! `prune_before` and `clear`: the only deletions, keeping the summaries those of the remaining rows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use telemetry_store::TelemetryStore;

#[test]
fn prune_before_keeps_summaries_equal_to_the_remaining_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::builder(&path)
        .batch_size(700)
        .open()
        .unwrap();
    // Timestamps span 1_764_300_000 + [0, 37_500) s: about ten hours.
    let records: Vec<_> = (0..5_000).map(|i| common::sample("p", i)).collect();
    for r in &records {
        store.record(r).unwrap();
    }
    let conn = common::connect(&path);
    // Cut inside a minute, an hour and a day bucket.
    let mut gone = 0;
    for cut in [1_764_310_012.5, 1_764_321_030.0, 1_764_400_000.0] {
        let deleted = store.prune_before(cut).unwrap();
        let before = records.iter().filter(|r| r.timestamp < cut).count() as u64;
        let rows = common::read_all(&conn);
        assert!(rows.iter().all(|r| r.timestamp >= cut));
        assert_eq!(rows.len() as u64, 5_000 - before);
        assert_eq!(deleted, before - gone);
        gone = before;
        common::assert_rollups_eq(&common::read_rollups(&conn), &common::rollups_of(&rows));
    }
    assert_eq!(common::read_all(&conn).len(), 0);
    store.close().unwrap();
}

#[test]
fn prune_counts_what_went_and_clear_empties_both_tables() {
    let store_dir = tempfile::tempdir().unwrap();
    let path = store_dir.path().join("t.db");
    let store = TelemetryStore::open(&path).unwrap();
    for i in 0..1_000 {
        store.record(&common::sample("c", i)).unwrap();
    }
    // Ordered after the queued records even without a flush.
    let cut = 1_764_300_000.0 + 500.0 * 7.5;
    assert_eq!(store.prune_before(cut).unwrap(), 500);
    assert_eq!(store.prune_before(cut).unwrap(), 0);
    assert_eq!(store.clear().unwrap(), 500);
    let conn = common::connect(&path);
    let count = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count("telemetry"), 0);
    assert_eq!(count("telemetry_rollup"), 0);
    // Appending still works after a clear.
    store.record(&common::sample("c", 1)).unwrap();
    store.flush().unwrap();
    assert_eq!(count("telemetry"), 1);
    // Day and hour; a lone record's hour keeps no minute summary.
    assert_eq!(count("telemetry_rollup"), 2);
    store.close().unwrap();
}

/// `prune_before(1e300)` used to compute a bucket start that saturated then overflowed, so the
/// rollups drifted from the rows (1 row vs 101 calls). Timestamps beyond the valid range are
/// clamped: everything (or nothing) goes, and the summaries stay those of the rows.
#[test]
fn prune_before_an_out_of_range_timestamp_keeps_rollups_in_step_with_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::open(&path).unwrap();
    for i in 0..100 {
        store.record(&common::sample("huge", i)).unwrap();
    }
    assert_eq!(store.prune_before(-1e300).unwrap(), 0);
    assert_eq!(store.prune_before(f64::MAX).unwrap(), 100);
    store.record(&common::sample("huge", 7)).unwrap();
    assert_eq!(store.prune_before(1e300).unwrap(), 1);
    store.record(&common::sample("huge", 8)).unwrap();
    store.flush().unwrap();
    let conn = common::connect(&path);
    let rows = common::read_all(&conn);
    assert_eq!(rows.len(), 1);
    common::assert_rollups_eq(&common::read_rollups(&conn), &common::rollups_of(&rows));
    store.close().unwrap();
}
