//! A database file deleted (`rm`) or replaced (`mv` over it) under a running store: the writer
//! notices before its next write, stops for good and says so (`health`, `flush`, `record`,
//! `close`), counts what it could not write as lost (never as written), writes nothing more into
//! the old file, and a file moved over the path keeps its own records.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use telemetry_store::{Health, RecordError, StoreError, StoreStats, TelemetryStore};

const BATCH: u64 = 100;

fn open(path: &Path) -> TelemetryStore {
    TelemetryStore::builder(path)
        .batch_size(BATCH as usize)
        .flush_interval(Duration::from_millis(5))
        .queue_capacity(5_000)
        .open()
        .unwrap()
}

/// Records until told to stop; returns (accepted, refused).
struct Producer {
    stop: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
    thread: JoinHandle<(u64, u64)>,
}

impl Producer {
    fn start(store: &TelemetryStore) -> Producer {
        let stop = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicU64::new(0));
        let thread = {
            let (store, stop, refused) = (store.clone(), Arc::clone(&stop), Arc::clone(&refused));
            std::thread::spawn(move || {
                let mut accepted = 0;
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    match store.record_arc(Arc::new(common::sample("load", i))) {
                        Ok(()) => accepted += 1,
                        Err(_) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    i += 1;
                    if i % 200 == 0 {
                        // Load, not a flood: a few batches a millisecond at most.
                        std::thread::sleep(Duration::from_micros(500));
                    }
                }
                (accepted, refused.load(Ordering::Relaxed))
            })
        };
        Producer {
            stop,
            refused,
            thread,
        }
    }

    /// Records refused so far.
    fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn read_only(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// Rows of the file, and how many carry `agent`.
fn rows(path: &Path, agent: &str) -> (i64, i64) {
    read_only(path)
        .query_row(
            "SELECT count(*), count(*) FILTER (WHERE agent = ?1) FROM telemetry_records",
            [agent],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

/// What every test checks once the file is gone: the store says so everywhere, nothing is
/// pending after `close`, and every record offered is written, refused or lost.
fn assert_stopped(store: &TelemetryStore, path: &Path, what: &str, offered: u64) -> StoreStats {
    match store.health() {
        Health::Stopped { reason } => {
            assert!(reason.contains(what), "{reason}");
            assert!(reason.contains(&path.display().to_string()), "{reason}");
        }
        other => panic!("expected Stopped, got {other:?}"),
    }
    match store.flush() {
        Err(StoreError::FileGone { path: p, what: w }) => {
            assert_eq!(p, path);
            assert!(w.contains(what), "{w}");
        }
        other => panic!("flush: expected FileGone, got {other:?}"),
    }
    assert!(matches!(
        store.record(&common::sample("late", 0)),
        Err(RecordError::FileGone { .. })
    ));
    assert!(matches!(store.close(), Err(StoreError::FileGone { .. })));
    assert!(matches!(store.health(), Health::Stopped { .. }));
    let stats = store.stats();
    assert_eq!(stats.pending, 0, "{stats:?}");
    assert!(stats.lost <= stats.dropped, "{stats:?}");
    // `offered` plus the late record above.
    assert_eq!(
        stats.written + stats.dropped + stats.rejected,
        offered + 1,
        "{stats:?}"
    );
    stats
}

/// `rm` of the file while records flow: nothing recorded after it is claimed as written or
/// written into the deleted file (kept reachable here by a hard link to look inside), and the
/// `-wal` file at the path, the old file's, is left empty, so that a database created or moved
/// there later is not read through it.
#[test]
fn a_database_deleted_under_load_stops_the_writer_and_counts_the_rest_as_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let keep = dir.path().join("keep.db");
    let store = open(&path);
    std::fs::hard_link(&path, &keep).unwrap();
    let producer = Producer::start(&store);
    wait_until("2 000 records are written", || {
        store.stats().written >= 2_000
    });

    std::fs::remove_file(&path).unwrap();
    let written_at_rm = store.stats().written;
    // The producer goes on recording after the file went, until the store refuses.
    wait_until("the store refuses records", || producer.refused() > 0);
    std::thread::sleep(Duration::from_millis(50));
    let (accepted, refused) = producer.finish();

    let stats = assert_stopped(&store, &path, "deleted", accepted + refused);
    // At most the batch being committed when the file went is counted, and it is counted once.
    assert!(
        stats.written <= written_at_rm + BATCH,
        "{written_at_rm} written when the file went, {stats:?}"
    );
    drop(store);
    let (in_old_file, _) = rows(&keep, "load");
    assert!(
        in_old_file >= stats.written as i64,
        "{in_old_file} {stats:?}"
    );
    assert!(
        in_old_file <= (written_at_rm + BATCH) as i64,
        "the writer went on writing into the deleted file: {in_old_file} rows, \
         {written_at_rm} when it went"
    );
    // SQLite leaves the log of a file that moved at the path; the store empties it first.
    let wal = dir.path().join("t.db-wal");
    let left = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(left, 0, "{} keeps the deleted file's pages", wal.display());
}

/// `mv` of another telemetry database over the file while records flow: readers of the path see
/// that file's own records, while the store still runs and after it is closed; the store writes
/// nothing into either file after the move.
#[test]
fn a_database_replaced_under_load_keeps_the_new_files_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let other = dir.path().join("other.db");
    {
        let o = TelemetryStore::open(&other).unwrap();
        for i in 0..2_000 {
            o.record(&common::sample("other", i)).unwrap();
        }
        o.close().unwrap();
    }
    assert_eq!(rows(&other, "other"), (2_000, 2_000));

    let store = open(&path);
    let producer = Producer::start(&store);
    wait_until("2 000 records are written", || {
        store.stats().written >= 2_000
    });
    std::fs::rename(&other, &path).unwrap();
    let written_at_mv = store.stats().written;
    wait_until("the store refuses records", || producer.refused() > 0);

    // While the store is still open (its handle and the producer alive).
    let (all, own) = rows(&path, "other");
    assert_eq!(
        (all, own),
        (2_000, 2_000),
        "readers of the path see other rows"
    );
    let (accepted, refused) = producer.finish();
    let stats = assert_stopped(&store, &path, "replaced", accepted + refused);
    assert!(
        stats.written <= written_at_mv + BATCH,
        "{written_at_mv} written when the file was replaced, {stats:?}"
    );
    drop(store);

    assert_eq!(rows(&path, "other"), (2_000, 2_000));
    let check: String = read_only(&path)
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    // The moved-in file opens as a store again, and takes records.
    let again = TelemetryStore::open(&path).unwrap();
    again.record(&common::sample("again", 1)).unwrap();
    again.close().unwrap();
    assert_eq!(rows(&path, "again"), (2_001, 1));
}

/// A file deleted while nothing is recorded shows in `health` at once, and `flush` and `close`
/// fail rather than report success about a file that is gone.
#[test]
fn a_database_deleted_while_idle_shows_in_health_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = open(&path);
    for i in 0..10 {
        store.record(&common::sample("idle", i)).unwrap();
    }
    store.flush().unwrap();
    assert_eq!(store.health(), Health::Healthy);

    std::fs::remove_file(&path).unwrap();
    let stats = assert_stopped(&store, &path, "deleted", 10);
    assert_eq!((stats.written, stats.lost, stats.dropped), (10, 0, 1));
}

/// Recreating the path by hand (or another store opening it) after a deletion gives a new
/// database that the stopped store never touches.
#[test]
fn a_stopped_store_never_writes_into_a_file_created_at_its_path_later() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = open(&path);
    store.record(&common::sample("first", 1)).unwrap();
    store.flush().unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(store.flush().is_err());

    let fresh = TelemetryStore::open(&path).unwrap();
    fresh.record(&common::sample("fresh", 1)).unwrap();
    fresh.flush().unwrap();
    assert!(store.record(&common::sample("first", 2)).is_err());
    assert!(store.close().is_err());
    fresh.close().unwrap();
    assert_eq!(rows(&path, "fresh"), (1, 1));
}
