//! How much of the disk a prune gives back, on a file of `N` records (default 1 000 000; first
//! argument overrides): the file's size full, after pruning the older half, and after pruning
//! the rest, with the time each prune took and its longest step. Exits with status 1 when a
//! prune gives back less than 75 % of the space of what it deleted (what `cargo xtask storage`
//! checks). Run:
//! `cargo run --release -p telemetry-store --example prune_space [N]`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Instant;

use telemetry_core::TelemetryRecord;
use telemetry_store::TelemetryStore;

const T0: f64 = 1_764_288_000.0;
/// A busy server: 100 calls a second.
const RATE: f64 = 100.0;

fn record(i: u64) -> TelemetryRecord {
    let mut r = telemetry_core::testing::sample_record("bench", i);
    r.timestamp = T0 + i as f64 / RATE;
    r
}

/// The file with its write-ahead log (none once every connection is closed).
fn on_disk(path: &Path) -> u64 {
    let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    len(path) + len(&path.with_extension("db-wal"))
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("space.db");
    let empty = {
        let empty = dir.path().join("empty.db");
        TelemetryStore::open(&empty).unwrap().close().unwrap();
        on_disk(&empty)
    };

    let store = TelemetryStore::open(&path).unwrap();
    for i in 0..n {
        store.record(&record(i)).unwrap();
    }
    store.close().unwrap();
    let full = on_disk(&path);
    println!(
        "{n} records at {RATE} calls/s: {} ({:.0} bytes/record; empty file {})",
        mb(full),
        (full - empty) as f64 / n as f64,
        mb(empty)
    );

    let mut ok = true;
    let mut before = full;
    let mut expected_free = (full - empty) / 2;
    for (what, cutoff) in [
        ("older half", T0 + (n / 2) as f64 / RATE),
        ("rest", f64::MAX),
    ] {
        let store = TelemetryStore::open(&path).unwrap();
        let started = Instant::now();
        let deleted = store.prune_before(cutoff).unwrap();
        let took = started.elapsed();
        let stats = store.stats();
        store.close().unwrap();
        let after = on_disk(&path);
        let freed = before.saturating_sub(after);
        let share = freed as f64 / expected_free.max(1) as f64;
        println!(
            "prune {what}: {deleted} records in {took:.2?} (longest step {:.1?}); file {} -> {}: \
             {} back, {:.0} % of the space of what was deleted",
            stats.longest_prune_step,
            mb(before),
            mb(after),
            mb(freed),
            share * 100.0
        );
        ok &= share >= 0.75;
        before = after;
        expected_free = after.saturating_sub(empty);
    }
    if !ok {
        eprintln!("FAIL: a prune gave back less than 75 % of the space it freed");
        std::process::exit(1);
    }
}
