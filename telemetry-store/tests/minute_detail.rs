//! Minute summaries only for detailed hours: an hour gets minute rows once its calls reach the
//! threshold (backfilled from its rows, in the same transaction), and from then on for every
//! record; other hours have day and hour rows only. Prunes and rebuilds keep "all or none".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use telemetry_core::TelemetryRecord;
use telemetry_store::TelemetryStore;

/// 2025-11-28T03:00:00Z, an hour start.
const HOUR0: f64 = 1_764_298_800.0;
const T: u64 = 50;

fn at(ts: f64, i: u64) -> TelemetryRecord {
    let mut r = common::sample("d", i);
    r.timestamp = ts;
    r
}

fn store(path: &Path) -> TelemetryStore {
    TelemetryStore::builder(path)
        .minute_rollup_threshold(T)
        .open()
        .unwrap()
}

fn write(store: &TelemetryStore, records: &[TelemetryRecord]) {
    for r in records {
        store.record(r).unwrap();
    }
    store.flush().unwrap();
}

fn minute_hours(path: &Path) -> BTreeSet<i64> {
    common::detailed_hours(&common::read_rollups(&common::connect(path)))
}

fn check(path: &Path) {
    let conn = common::connect(path);
    common::assert_rollups_eq(
        &common::read_rollups(&conn),
        &common::rollups_with_threshold(&common::read_all(&conn), T),
    );
}

/// `n` records spread over the hour starting at `hour`, 59 s apart from `offset`.
fn in_hour(hour: f64, n: u64, offset: f64) -> Vec<TelemetryRecord> {
    (0..n)
        .map(|i| at(hour + (offset + i as f64 * 59.0) % 3_600.0, i))
        .collect()
}

#[test]
fn an_hour_crossing_the_threshold_in_one_batch_gets_every_minute_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let s = store(&path);
    // One hour below the threshold, one crossing it in this batch.
    let mut records = in_hour(HOUR0, T - 1, 0.5);
    records.extend(in_hour(HOUR0 + 3_600.0, T + 10, 1.25));
    write(&s, &records);
    assert_eq!(minute_hours(&path), BTreeSet::from([HOUR0 as i64 + 3_600]));
    check(&path);
    s.close().unwrap();
}

#[test]
fn an_hour_crossing_the_threshold_across_batches_is_backfilled_then_kept_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let s = store(&path);
    let records = in_hour(HOUR0, 3 * T, 0.5);
    let (first, rest) = records.split_at(T as usize - 5);
    write(&s, first);
    assert!(minute_hours(&path).is_empty(), "below the threshold");
    check(&path);
    // Crosses the threshold: the minute rows hold the earlier batch's records too.
    write(&s, &rest[..10]);
    assert_eq!(minute_hours(&path), BTreeSet::from([HOUR0 as i64]));
    check(&path);
    // From then on every batch adds to the minute rows.
    for chunk in rest[10..].chunks(7) {
        write(&s, chunk);
        check(&path);
    }
    s.close().unwrap();
}

/// Records one a minute over days (a backfill) get no minute rows at all; a busy hour among
/// them does. With the default threshold.
#[test]
fn spread_records_get_day_and_hour_rows_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let s = TelemetryStore::builder(&path)
        .batch_size(1_000)
        .open()
        .unwrap();
    let mut records: Vec<TelemetryRecord> =
        (0..5_000).map(|i| at(HOUR0 + i as f64 * 60.0, i)).collect();
    let busy = HOUR0 + 10.0 * 3_600.0;
    records.extend((0..1_500).map(|i| at(busy + i as f64 * 2.0, i)));
    write(&s, &records);
    s.close().unwrap();
    let conn = common::connect(&path);
    let stored = common::read_rollups(&conn);
    assert_eq!(
        common::detailed_hours(&stored),
        BTreeSet::from([busy as i64])
    );
    common::assert_rollups_eq(&stored, &common::rollups_of(&common::read_all(&conn)));
}

/// A threshold of 1 keeps minute rows for every hour, as before the option existed.
#[test]
fn a_threshold_of_one_keeps_minute_rows_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let s = TelemetryStore::builder(&path)
        .minute_rollup_threshold(1)
        .open()
        .unwrap();
    let records: Vec<TelemetryRecord> = (0..300).map(|i| at(HOUR0 + i as f64 * 97.0, i)).collect();
    write(&s, &records);
    s.close().unwrap();
    let conn = common::connect(&path);
    common::assert_rollups_eq(
        &common::read_rollups(&conn),
        &common::rollups_with_threshold(&common::read_all(&conn), 1),
    );
}

/// A prune cutting a sparse hour used to rebuild the cut minute from the remaining rows,
/// leaving one minute row in an hour that has no others (readers would take the hour as
/// detailed and miss its other records). A cut in a detailed hour keeps its minute rows whole.
#[test]
fn prune_keeps_sparse_hours_without_minute_rows_and_detailed_hours_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let s = store(&path);
    let mut records = in_hour(HOUR0, T / 2, 0.5);
    records.extend(in_hour(HOUR0 + 3_600.0, 2 * T, 0.75));
    records.extend(in_hour(HOUR0 + 7_200.0, T / 2, 0.25));
    write(&s, &records);
    assert_eq!(minute_hours(&path), BTreeSet::from([HOUR0 as i64 + 3_600]));
    // Inside a minute of the first (sparse) hour.
    s.prune_before(HOUR0 + 1_200.5).unwrap();
    assert_eq!(minute_hours(&path), BTreeSet::from([HOUR0 as i64 + 3_600]));
    common::assert_consistent(&common::connect(&path));
    // Inside a minute of the detailed hour: its remaining minutes keep their rows.
    s.prune_before(HOUR0 + 3_600.0 + 1_800.5).unwrap();
    assert_eq!(minute_hours(&path), BTreeSet::from([HOUR0 as i64 + 3_600]));
    common::assert_consistent(&common::connect(&path));
    // Inside the last sparse hour.
    s.prune_before(HOUR0 + 7_200.0 + 600.5).unwrap();
    assert!(minute_hours(&path).is_empty());
    common::assert_consistent(&common::connect(&path));
    // The hour left with fewer calls than the threshold is sparse again for new records too.
    write(&s, &in_hour(HOUR0 + 7_200.0, 3, 3_000.5));
    assert!(minute_hours(&path).is_empty());
    common::assert_consistent(&common::connect(&path));
    s.close().unwrap();
}

/// A rebuild makes the minute rows the writer would have made: for the hours at or above the
/// threshold only.
#[test]
fn rebuild_keeps_minute_rows_for_busy_hours_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let s = store(&path);
    let mut records = in_hour(HOUR0, T - 1, 0.5);
    records.extend(in_hour(HOUR0 + 3_600.0, T, 0.75));
    write(&s, &records);
    common::connect(&path)
        .execute("DELETE FROM telemetry_rollup", [])
        .unwrap();
    assert_eq!(s.rebuild_rollups().unwrap(), 2 * T - 1);
    assert_eq!(minute_hours(&path), BTreeSet::from([HOUR0 as i64 + 3_600]));
    check(&path);
    s.close().unwrap();
}
