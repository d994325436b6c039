//! An I/O failure that lasts past the write retry budget reaches the callers as
//! `StoreError::WriteFailed` (naming the file and the cause): `record` stops queueing, producers
//! blocked under `Block` are woken, `flush` fails; what was committed before stays intact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use telemetry_store::testing::Tmpfs;
use telemetry_store::{OverflowPolicy, RecordError, StoreError, TelemetryStore};

fn count(path: &Path) -> i64 {
    common::connect(path)
        .query_row("SELECT count(*) FROM telemetry", [], |r| r.get(0))
        .unwrap()
}

/// Runs `record` in a thread until it fails; returns (records accepted, the error), or panics
/// if the producer is still running (blocked) after `limit`.
fn produce_until_refused(
    store: &TelemetryStore,
    n: u64,
    limit: Duration,
) -> (u64, Option<RecordError>) {
    let producer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0..n {
                if let Err(e) = store.record_arc(Arc::new(common::sample("disk", i))) {
                    return (i, Some(e));
                }
            }
            (n, None)
        })
    };
    let deadline = Instant::now() + limit;
    while !producer.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the producer is still blocked after {limit:?}: {:?} {:?}",
            store.stats(),
            store.health()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    producer.join().unwrap()
}

/// Another process holds the write lock for good: within the budget a `Block` producer waits,
/// past it `record` returns `WriteFailed` instead of blocking for ever; once the lock goes the
/// writer commits what it kept and accepts records again.
#[test]
fn a_failure_past_the_retry_budget_reaches_record_instead_of_blocking_for_ever() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::builder(&path)
        .queue_capacity(50)
        .batch_size(10)
        .busy_timeout(Duration::from_millis(1))
        .overflow(OverflowPolicy::Block)
        .write_retry_budget(Duration::from_millis(300))
        .open()
        .unwrap();
    for i in 0..20 {
        store.record(&common::sample("before", i)).unwrap();
    }
    store.flush().unwrap();
    let lock = common::connect(&path);
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = Instant::now();
    let (accepted, err) = produce_until_refused(&store, 10_000, Duration::from_secs(30));
    let err = err.expect("record never failed");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(accepted >= 50, "{accepted}");
    match &err {
        RecordError::WriteFailed { path: p, .. } => assert_eq!(p, &path),
        other => panic!("expected WriteFailed, got {other}"),
    }
    assert!(err.to_string().contains("locked"), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(store.stats().dropped >= 1);
    assert!(matches!(store.flush(), Err(StoreError::WriteFailed { .. })));
    assert!(store.record(&common::sample("x", 1)).is_err());

    drop(lock);
    // The writer's background retry commits what it kept; then records are accepted again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.stats().pending > 0 {
        assert!(Instant::now() < deadline, "{:?}", store.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    store.record(&common::sample("after", 1)).unwrap();
    store.flush().unwrap();
    assert_eq!(count(&path), 20 + accepted as i64 + 1);
    store.close().unwrap();
}

/// A store on a real full disk: a 1 MiB tmpfs (needs root; `None`, the test skipped with one
/// line, otherwise), a batch of 500 and half a second of write retries.
fn store_on_a_small_disk(dir: &Path) -> Option<(Tmpfs, PathBuf, TelemetryStore)> {
    let mount = Tmpfs::mount_or_skip(dir, "1m", "the locked-file test covers the logic")?;
    let path = mount.path().join("t.db");
    let store = TelemetryStore::builder(&path)
        .batch_size(500)
        .write_retry_budget(Duration::from_millis(500))
        .open()
        .unwrap();
    Some((mount, path, store))
}

/// A real full disk (a 1 MiB tmpfs): `record` and `flush` fail with the file and "full" within
/// seconds, and the rows committed before the disk filled are all there afterwards.
#[test]
fn a_full_disk_is_reported_to_callers_and_committed_rows_stay_intact() {
    let dir = tempfile::tempdir().unwrap();
    let Some((mount, path, store)) = store_on_a_small_disk(dir.path()) else {
        return;
    };
    let started = Instant::now();
    let (_, err) = produce_until_refused(&store, 200_000, Duration::from_secs(60));
    let err = err.expect("a 1 MiB disk took 200 000 records");
    assert!(started.elapsed() < Duration::from_secs(30));
    let text = err.to_string();
    assert!(matches!(err, RecordError::WriteFailed { .. }), "{text}");
    assert!(text.contains("full"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(matches!(store.flush(), Err(StoreError::WriteFailed { .. })));
    let written = store.stats().written;
    assert!(written > 0);
    assert!(store.close().is_err());
    drop(store);
    let conn =
        Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM telemetry", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, written as i64);
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    drop(mount);
}

/// Records still pending when a store on a full disk (a 1 MiB tmpfs) is closed are counted:
/// `lost` (and so `dropped`), none left `pending`, and every record offered is written or
/// dropped.
#[test]
fn records_pending_on_a_full_disk_at_close_are_counted_as_lost() {
    let dir = tempfile::tempdir().unwrap();
    let Some((mount, _, store)) = store_on_a_small_disk(dir.path()) else {
        return;
    };
    let (accepted, err) = produce_until_refused(&store, 200_000, Duration::from_secs(60));
    assert!(err.is_some(), "a 1 MiB disk took 200 000 records");
    let before = store.stats();
    assert!(before.pending > 0, "{before:?}");
    assert_eq!(before.lost, 0, "{before:?}");

    assert!(store.close().is_err());
    let after = store.stats();
    assert_eq!(after.pending, 0, "{after:?}");
    assert_eq!(after.lost, before.pending, "{before:?} {after:?}");
    assert_eq!(after.written, before.written, "{after:?}");
    // The refused record is dropped too.
    assert_eq!(after.written + after.dropped, accepted + 1, "{after:?}");
    drop(store);
    drop(mount);
}

/// The same accounting without root: another process holds the write lock until after `close`,
/// so the records queued then are never written; they are counted as lost, none pending.
#[test]
fn records_pending_on_a_locked_file_at_close_are_counted_as_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::builder(&path)
        .batch_size(10)
        .busy_timeout(Duration::from_millis(1))
        .write_retry_budget(Duration::from_millis(200))
        .open()
        .unwrap();
    for i in 0..5 {
        store.record(&common::sample("before", i)).unwrap();
    }
    store.flush().unwrap();
    let lock = common::connect(&path);
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    for i in 0..25 {
        store.record(&common::sample("locked", i)).unwrap();
    }
    assert_eq!(store.stats().pending, 25);
    assert!(store.close().is_err());
    let stats = store.stats();
    assert_eq!(
        (stats.written, stats.pending, stats.lost, stats.dropped),
        (5, 0, 25, 25),
        "{stats:?}"
    );
    drop(lock);
    assert_eq!(count(&path), 5);
}
