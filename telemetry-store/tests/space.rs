//! Deleting gives the disk back: new files are created with incremental auto-vacuum, prunes hand
//! the pages they free back in steps, and `compact` converts an older file once, keeping every
//! row and summary.
//!
//! The counts here are small enough for a debug build; the 1 M-record figure (167 MB before,
//! what is left after) comes from the release example `examples/prune_space.rs`, run by
//! `cargo xtask storage` in CI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use telemetry_core::TelemetryRecord;
use telemetry_store::TelemetryStore;

const T0: f64 = 1_764_300_000.0;

/// Record `i` of a busy server: two a second, so every hour keeps minute summaries.
fn busy(i: u64) -> TelemetryRecord {
    let mut r = common::sample("space", i);
    r.timestamp = T0 + i as f64 * 0.5;
    r
}

/// The file's size with its write-ahead log (none once every connection is closed).
fn on_disk(path: &Path) -> u64 {
    let wal = path.with_extension("db-wal");
    let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    len(path) + len(&wal)
}

fn fill(path: &Path, from: u64, to: u64) {
    let store = TelemetryStore::builder(path)
        .batch_size(5_000)
        .open()
        .unwrap();
    for i in from..to {
        store.record(&busy(i)).unwrap();
    }
    store.close().unwrap();
}

#[test]
fn a_new_file_is_created_for_incremental_vacuum() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    fill(&path, 0, 10);
    let space = TelemetryStore::file_space(&path).unwrap();
    assert!(space.incremental, "{space:?}");
    assert_eq!(space.free_pages, 0, "{space:?}");
}

#[test]
fn prune_hands_back_at_least_three_quarters_of_what_it_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let n = 40_000;
    fill(&path, 0, n);
    let full = on_disk(&path);
    // The empty database, for what "everything deleted" can come down to.
    let empty_path = dir.path().join("empty.db");
    fill(&empty_path, 0, 0);
    let empty = on_disk(&empty_path);

    // The older half first, then the rest: each time, the space of what went comes back.
    let store = TelemetryStore::open(&path).unwrap();
    let half = T0 + (n / 2) as f64 * 0.5;
    assert_eq!(store.prune_before(half).unwrap(), n / 2);
    store.close().unwrap();
    let after_half = on_disk(&path);
    let freed = full - after_half;
    assert!(
        freed * 4 >= (full - empty) / 2 * 3,
        "pruning half of {full} bytes gave back only {freed}"
    );

    let store = TelemetryStore::open(&path).unwrap();
    assert_eq!(store.prune_before(f64::MAX).unwrap(), n / 2);
    let stats = store.stats();
    store.close().unwrap();
    let after_all = on_disk(&path);
    assert!(
        (full - after_all) * 4 >= (full - empty) * 3,
        "{full} bytes came down to {after_all} only (empty: {empty})"
    );
    assert!(stats.reclaimed_bytes > 0, "{stats:?}");
    assert_eq!(stats.pruned, n / 2);
    assert_eq!(
        TelemetryStore::file_space(&path).unwrap().free_pages,
        0,
        "every free page went back"
    );
}

#[test]
fn clear_hands_the_space_back_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    fill(&path, 0, 20_000);
    let full = on_disk(&path);
    let store = TelemetryStore::open(&path).unwrap();
    assert_eq!(store.clear().unwrap(), 20_000);
    store.close().unwrap();
    assert!(on_disk(&path) * 4 < full, "{} of {full}", on_disk(&path));
}

/// A file from before incremental auto-vacuum: prunes keep its free pages (for reuse), and
/// `compact` converts it once, keeping every row and every summary exactly.
#[test]
fn compact_converts_an_old_file_and_keeps_every_row_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    fill(&path, 0, 30_000);
    // What files created before this change look like.
    common::connect(&path)
        .execute_batch("PRAGMA auto_vacuum = NONE; VACUUM;")
        .unwrap();
    assert!(!TelemetryStore::file_space(&path).unwrap().incremental);

    let store = TelemetryStore::open(&path).unwrap();
    store.prune_before(T0 + 5_000.0).unwrap();
    store.flush().unwrap();
    let kept = TelemetryStore::file_space(&path).unwrap();
    assert!(
        kept.free_pages > 0,
        "an old file keeps what it freed: {kept:?}"
    );

    let conn = common::connect(&path);
    let rows = common::read_all(&conn);
    let rollups = common::read_rollups(&conn);
    drop(conn);
    let size = store.compact().unwrap();
    let converted = TelemetryStore::file_space(&path).unwrap();
    assert!(converted.incremental, "{converted:?}");
    assert_eq!(converted.free_pages, 0);
    assert_eq!(size, converted.file_bytes());
    assert!(size < kept.file_bytes(), "{size} vs {kept:?}");

    let conn = common::connect(&path);
    assert_eq!(common::read_all(&conn), rows);
    assert_eq!(common::read_rollups(&conn), rollups);
    common::assert_rollups_eq(&common::read_rollups(&conn), &common::rollups_of(&rows));
    drop(conn);

    // From now on a prune gives its space back.
    let before = on_disk(&path);
    store.prune_before(T0 + 10_000.0).unwrap();
    store.close().unwrap();
    assert!(on_disk(&path) < before, "{} vs {before}", on_disk(&path));
    assert_eq!(TelemetryStore::file_space(&path).unwrap().free_pages, 0);
}

/// Records keep being committed while a prune runs: it goes in steps between batches, and the
/// summaries equal those of the remaining rows at the end.
#[test]
fn records_written_during_a_prune_are_committed_and_summarised() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let n = 30_000;
    fill(&path, 0, n);
    let store = TelemetryStore::builder(&path)
        .flush_interval(std::time::Duration::from_millis(5))
        .open()
        .unwrap();
    let pruner = {
        let store = store.clone();
        std::thread::spawn(move || store.prune_before(T0 + (n / 2) as f64 * 0.5).unwrap())
    };
    let mut later = Vec::new();
    for i in n..n + 2_000 {
        let r = busy(i);
        store.record(&r).unwrap();
        later.push(r);
    }
    assert_eq!(pruner.join().unwrap(), n / 2);
    store.close().unwrap();
    let conn = common::connect(&path);
    let rows = common::read_all(&conn);
    assert_eq!(rows.len() as u64, n / 2 + 2_000);
    assert_eq!(&rows[rows.len() - 2_000..], &later[..]);
    common::assert_rollups_eq(&common::read_rollups(&conn), &common::rollups_of(&rows));
}
