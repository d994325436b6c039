//! A retention window keeps the file flat over a long run: simulated hours go by on a mock
//! clock while a writer records, the background passes delete what falls out of the window (in
//! steps between the writer's batches), and the summaries stay those of the remaining rows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use telemetry_store::{Retention, TelemetryStore};

const T0: f64 = 1_764_288_000.0; // a day boundary
const HOUR: u64 = 3_600;

/// A clock the test moves: unix seconds as f64 bits.
#[derive(Clone, Default)]
struct MockClock(Arc<AtomicU64>);

impl MockClock {
    fn set(&self, t: f64) {
        self.0.store(t.to_bits(), Ordering::Relaxed);
    }
    fn now(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Waits (bounded) until a retention pass has cut at `cutoff` or later.
fn wait_for_pass(store: &TelemetryStore, cutoff: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let retention = store.stats().retention.unwrap();
        if retention.last_cutoff.is_some_and(|c| c >= cutoff) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no retention pass reached {cutoff}: {retention:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_window_keeps_the_file_flat_while_a_writer_records_for_twelve_simulated_hours() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let clock = MockClock::default();
    clock.set(T0);
    let now = clock.clone();
    let store = TelemetryStore::builder(&path)
        .flush_interval(Duration::from_millis(5))
        .retention(
            Retention::new(Duration::from_secs(HOUR))
                .check_every(Duration::from_millis(1))
                .clock(move || now.now()),
        )
        .open()
        .unwrap();
    let mut pages = Vec::new();
    // One call a second: every hour is busy enough for minute summaries.
    for hour in 0..12u64 {
        for s in 0..HOUR {
            let t = T0 + (hour * HOUR + s) as f64;
            let mut r = common::sample("window", hour * HOUR + s);
            r.timestamp = t;
            clock.set(t);
            store.record(&r).unwrap();
        }
        store.flush().unwrap();
        let end = T0 + ((hour + 1) * HOUR) as f64;
        clock.set(end);
        wait_for_pass(&store, (end - HOUR as f64) as i64);
        pages.push(TelemetryStore::file_space(&path).unwrap().pages);
    }
    let stats = store.stats();
    store.close().unwrap();

    // From the third hour on (a window's worth of rows, plus a batch), the file stays flat.
    let steady = &pages[2..];
    let (lo, hi) = (*steady.iter().min().unwrap(), *steady.iter().max().unwrap());
    assert!(hi * 10 <= lo * 12, "pages per hour: {pages:?}");
    let conn = common::connect(&path);
    let rows = common::read_all(&conn);
    assert_eq!(
        rows.len() as u64,
        HOUR,
        "the last hour is kept, nothing more"
    );
    assert!(rows.iter().all(|r| r.timestamp >= T0 + (11 * HOUR) as f64));
    common::assert_rollups_eq(&common::read_rollups(&conn), &common::rollups_of(&rows));
    assert_eq!(stats.pruned, 11 * HOUR, "{stats:?}");
    let retention = stats.retention.clone().unwrap();
    assert_eq!(retention.window, Duration::from_secs(HOUR));
    assert!(retention.passes >= 12, "{retention:?}");
    assert_eq!(retention.last_error, None);
    // The writer waited for one prune step at a time. A generous bound for a debug build on a
    // shared machine; `examples/prune_pause.rs` measures the release figure
    // (docs/benchmarks.md).
    assert!(
        stats.longest_prune_step < Duration::from_secs(2),
        "{stats:?}"
    );
}

#[test]
fn a_pass_runs_at_open_and_deletes_what_is_older_than_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::open(&path).unwrap();
    for i in 0..3_000 {
        let mut r = common::sample("open", i);
        r.timestamp = T0 + i as f64;
        store.record(&r).unwrap();
    }
    store.close().unwrap();
    // 30 minutes of window at T0 + 3 000 s: the rows before T0 + 1 200 s go.
    let store = TelemetryStore::builder(&path)
        .retention(Retention::new(Duration::from_secs(1_800)).clock(|| T0 + 3_000.0))
        .open()
        .unwrap();
    wait_for_pass(&store, (T0 + 1_200.0) as i64);
    let stats = store.stats();
    store.close().unwrap();
    assert_eq!(stats.pruned, 1_200);
    let conn = common::connect(&path);
    let rows = common::read_all(&conn);
    assert_eq!(rows.len(), 1_800);
    common::assert_rollups_eq(&common::read_rollups(&conn), &common::rollups_of(&rows));
}
