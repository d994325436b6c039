//! The longest pause a recorder sees while old records are pruned.
//!
//! A file gets `N` records a month old (default 1 000 000; first argument overrides), then a
//! recorder records at a fixed rate (`RATE`/s, second argument, default 200), each call
//! followed by `flush`, so each call's time is its enqueue→commit delay, while:
//! 1. nothing else happens (the baseline);
//! 2. the same store's retention window (1 day) prunes them in the background, in steps
//!    between the writer's batches (`telemetry proxy --retain 1d`);
//! 3. a second store on the same file prunes them with `prune_before` (`telemetry prune` while
//!    a proxy records; the steps take the write lock from the recorder's connection);
//! 4. for comparison, one transaction deletes them all from another connection (what
//!    `prune` did before it went in steps; summaries not even repaired).
//!
//! Prints p50 / p99 / max of the delay for each. Run:
//! `cargo run --release -p telemetry-store --example prune_pause [N] [RATE]`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use telemetry_store::{Retention, TelemetryStore};

const DAY: f64 = 86_400.0;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Appends `n` records from 30 days ago, 100 a second.
fn fill_old(path: &Path, n: u64) {
    let start = now() - 30.0 * DAY;
    let store = TelemetryStore::open(path).unwrap();
    for i in 0..n {
        let mut r = telemetry_core::testing::sample_record("old", i);
        r.timestamp = start + i as f64 / 100.0;
        store.record(&r).unwrap();
    }
    store.close().unwrap();
}

/// Records at `rate` per second until `done` is set (and for at least `at_least`), each call
/// followed by a flush; returns each call's enqueue→commit delay.
fn record_until(
    store: &TelemetryStore,
    rate: f64,
    at_least: Duration,
    done: &AtomicBool,
) -> Vec<Duration> {
    let period = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let mut next = started;
    let mut delays = Vec::new();
    let mut i = 0u64;
    while started.elapsed() < at_least || !done.load(Ordering::Acquire) {
        let mut r = telemetry_core::testing::sample_record("live", i);
        r.timestamp = now();
        let t = Instant::now();
        store.record(&r).unwrap();
        store.flush().unwrap();
        delays.push(t.elapsed());
        i += 1;
        next += period;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        assert!(started.elapsed() < Duration::from_secs(600), "gave up");
    }
    delays
}

/// Fills the file with `n` old records again, then records at `rate` (see [`record_until`])
/// while `prune` runs on another thread, started half a second in so that the recorder is
/// going; returns the recorder's delays and what `prune` returned.
fn record_while_pruned<T: Send>(
    path: &Path,
    n: u64,
    rate: f64,
    prune: impl FnOnce(&Path) -> T + Send,
) -> (Vec<Duration>, T) {
    fill_old(path, n);
    let store = TelemetryStore::open(path).unwrap();
    let done = AtomicBool::new(false);
    let (delays, pruned) = thread::scope(|s| {
        let pruner = s.spawn(|| {
            thread::sleep(Duration::from_millis(500));
            let pruned = prune(path);
            done.store(true, Ordering::Release);
            pruned
        });
        let delays = record_until(&store, rate, Duration::ZERO, &done);
        (delays, pruner.join().unwrap())
    });
    store.close().unwrap();
    (delays, pruned)
}

fn report(what: &str, mut delays: Vec<Duration>, prune: Option<Duration>, step: Duration) {
    delays.sort_unstable();
    let q = |p: f64| delays[((delays.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    let prune = prune.map_or(String::new(), |d| format!("; prune took {d:.2?}"));
    let step = if step.is_zero() {
        String::new()
    } else {
        format!(", longest step {:.1} ms", step.as_secs_f64() * 1e3)
    };
    println!(
        "{what:<44} {:>6} calls  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms{prune}{step}",
        delays.len(),
        q(0.5),
        q(0.99),
        q(1.0),
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rate: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200.0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pause.db");
    println!("{n} records a month old; a recorder at {rate}/s, each call flushed");

    fill_old(&path, n);
    let store = TelemetryStore::open(&path).unwrap();
    let idle = AtomicBool::new(true);
    report(
        "1. baseline (nothing else)",
        record_until(&store, rate, Duration::from_secs(3), &idle),
        None,
        Duration::ZERO,
    );
    store.close().unwrap();

    // 2. The recorder's own store prunes in the background.
    let store = TelemetryStore::builder(&path)
        .retention(
            Retention::new(Duration::from_secs(86_400)).check_every(Duration::from_secs(3_600)),
        )
        .open()
        .unwrap();
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (store, done) = (store.clone(), Arc::clone(&done));
        thread::spawn(move || {
            while store.stats().retention.is_none_or(|r| r.passes == 0) {
                thread::sleep(Duration::from_millis(5));
            }
            done.store(true, Ordering::Release);
            started.elapsed()
        })
    };
    let delays = record_until(&store, rate, Duration::ZERO, &done);
    let took = watcher.join().unwrap();
    let stats = store.stats();
    store.close().unwrap();
    assert_eq!(stats.pruned, n, "{stats:?}");
    report(
        "2. background retention, same store",
        delays,
        Some(took),
        stats.longest_prune_step,
    );

    // 3. Another store (another process, in practice) prunes.
    let (delays, (deleted, took, step)) = record_while_pruned(&path, n, rate, |path| {
        let other = TelemetryStore::open(path).unwrap();
        let started = Instant::now();
        let deleted = other.prune_before(now() - DAY).unwrap();
        let took = started.elapsed();
        let step = other.stats().longest_prune_step;
        other.close().unwrap();
        (deleted, took, step)
    });
    assert_eq!(deleted, n);
    report(
        "3. prune_before from a second store",
        delays,
        Some(took),
        step,
    );

    // 4. One transaction, as before.
    let (delays, took) = record_while_pruned(&path, n, rate, |path| {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.busy_timeout(Duration::from_secs(30)).unwrap();
        let started = Instant::now();
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; DELETE FROM telemetry WHERE timestamp < {}; COMMIT;",
            now() - DAY
        ))
        .unwrap();
        started.elapsed()
    });
    report(
        "4. one DELETE transaction (for comparison)",
        delays,
        Some(took),
        Duration::ZERO,
    );
}
