//! The bus subscription, durability modes and overflow policies, including bounded memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use telemetry_core::{Event, EventBus, TelemetryRecord};
use telemetry_store::{
    Durability, Health, OverflowPolicy, RecordError, Retention, StoreError, TelemetryStore,
};

fn count(conn: &Connection) -> i64 {
    conn.query_row("SELECT COUNT(*) FROM telemetry", [], |r| r.get(0))
        .unwrap()
}

/// Holds the database's write lock from another connection until dropped.
fn lock_writes(path: &std::path::Path) -> Connection {
    let conn = common::connect(path);
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    conn
}

#[test]
fn bus_events_are_recorded_and_bad_ones_counted_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::open(&path).unwrap();
    let bus = EventBus::new();
    let id = store.subscribe_to_bus(&bus);
    for i in 0..1_000 {
        bus.publish(Event::from(common::sample("bus", i)));
    }
    let mut bad = common::sample("bus", 1);
    bad.latency_seconds = f64::INFINITY;
    bus.publish(Event::from(bad));
    store.flush().unwrap();
    let stats = store.stats();
    assert_eq!(stats.written, 1_000);
    assert_eq!(stats.bus_errors, 1);
    assert_eq!(stats.rejected, 1);
    assert_eq!(bus.stats().subscriber_panics, 0);
    assert_eq!(count(&common::connect(&path)), 1_000);

    // After close, publishing is harmless: counted, not panicking.
    store.close().unwrap();
    bus.publish(Event::from(common::sample("bus", 2)));
    assert_eq!(store.stats().bus_errors, 2);
    assert_eq!(bus.stats().subscriber_panics, 0);
    assert!(bus.unsubscribe(id));
}

#[test]
fn waits_of_any_length_are_taken_and_the_longest_are_capped() {
    // `Duration::MAX` overflowed a deadline (the writer's flush) or SQLite's busy timeout
    // (rusqlite panics past `i32::MAX` ms); now each is capped.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::builder(&path)
        .flush_interval(Duration::MAX)
        .busy_timeout(Duration::MAX)
        .write_retry_budget(Duration::MAX)
        .retention(Retention::new(Duration::MAX).check_every(Duration::MAX))
        .open()
        .unwrap();
    for i in 0..5 {
        store.record(&common::sample("long", i)).unwrap();
    }
    store.flush().unwrap();
    assert_eq!(count(&common::connect(&path)), 5);
    store.close().unwrap();
}

#[test]
fn sync_durability_commits_before_record_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::builder(&path)
        .durability(Durability::Sync)
        .flush_interval(Duration::from_secs(3_600))
        .open()
        .unwrap();
    let conn = common::connect(&path);
    for i in 0..20 {
        store.record(&common::sample("sync", i)).unwrap();
        assert_eq!(count(&conn), i as i64 + 1);
    }
    store.close().unwrap();
}

#[test]
fn buffered_records_are_committed_within_the_flush_interval_without_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::builder(&path)
        .flush_interval(Duration::from_millis(20))
        .open()
        .unwrap();
    store.record(&common::sample("b", 1)).unwrap();
    let conn = common::connect(&path);
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&conn) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(count(&conn), 1);
    assert_eq!(store.stats().pending, 0);
    drop(store); // Drop flushes and stops the writer.
}

#[test]
fn drop_newest_counts_what_it_drops_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::builder(&path)
        .queue_capacity(100)
        .batch_size(10)
        .busy_timeout(Duration::from_millis(1))
        .overflow(OverflowPolicy::DropNewest)
        .open()
        .unwrap();
    let lock = lock_writes(&path); // the disk is "slower" than the producer: it does not move
    let mut dropped = 0;
    for i in 0..1_000 {
        match store.record(&common::sample("d", i)) {
            Ok(()) => {}
            Err(RecordError::QueueFull { capacity }) => {
                assert_eq!(capacity, 100);
                dropped += 1;
            }
            Err(e) => panic!("{e}"),
        }
        assert!(store.stats().pending <= 110, "{:?}", store.stats());
    }
    assert!(dropped >= 890, "{dropped}");
    assert_eq!(store.stats().dropped, dropped);
    drop(lock);
    store.flush().unwrap();
    let stats = store.stats();
    assert_eq!(stats.written + stats.dropped, 1_000);
    assert_eq!(count(&common::connect(&path)), stats.written as i64);
    store.close().unwrap();
}

#[test]
fn block_policy_waits_for_room_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::builder(&path)
        .queue_capacity(50)
        .batch_size(10)
        .busy_timeout(Duration::from_millis(1))
        // Within the retry budget a blocked producer waits (past it, it gets an error).
        .write_retry_budget(Duration::from_secs(600))
        .open()
        .unwrap();
    let lock = lock_writes(&path);
    let producer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0..500 {
                store
                    .record_arc(Arc::new(common::sample("blk", i)))
                    .unwrap();
            }
        })
    };
    // The producer fills the queue and blocks; memory stays within capacity + one batch.
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.stats().pending < 50 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    for _ in 0..20 {
        assert!(store.stats().pending <= 60, "{:?}", store.stats());
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(!producer.is_finished());
    drop(lock);
    producer.join().unwrap();
    store.flush().unwrap();
    assert_eq!(store.stats().written, 500);
    assert_eq!(store.stats().dropped, 0);
    store.close().unwrap();
}

#[test]
fn a_locked_database_is_reported_then_recovered_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::builder(&path)
        .busy_timeout(Duration::from_millis(1))
        .open()
        .unwrap();
    let lock = lock_writes(&path);
    for i in 0..100 {
        store.record(&common::sample("f", i)).unwrap();
    }
    let err = store.flush().unwrap_err();
    assert!(matches!(err, StoreError::WriteFailed { .. }), "{err}");
    assert!(err.to_string().contains("locked"), "{err}");
    let stats = store.stats();
    assert!(stats.failed_batches >= 1);
    assert_eq!(stats.pending, 100);
    assert!(stats.last_error.is_some());
    assert!(matches!(store.health(), Health::Failing { .. }));
    // Prune and clear refuse too, rather than run ahead of uncommitted records.
    assert!(store.clear().is_err());

    drop(lock);
    store.flush().unwrap();
    assert_eq!(store.stats().written, 100);
    assert_eq!(store.stats().pending, 0);
    assert_eq!(store.health(), Health::Healthy);
    assert_eq!(count(&common::connect(&path)), 100);
    store.close().unwrap();
    assert_eq!(store.health(), Health::Closed);
}

#[test]
fn store_is_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone>() {}
    check::<TelemetryStore>();
    let store = TelemetryStore::in_memory().unwrap();
    let _ = TelemetryRecord::default();
    assert!(format!("{store:?}").contains("TelemetryStore"));
}
