//! Percentiles of the caller cost of `TelemetryStore::record` while the writer is busy.
//!
//! Times `N` individual calls with `Instant` (default 200 000; first argument overrides), paced
//! at one per 4 µs so the writer is committing throughout but the queue never fills, and prints
//! p50 / p90 / p99 / p99.9 / max. Run:
//! `cargo run --release -p telemetry-store --example record_latency [N]`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use telemetry_core::{EnergyMethod, Event, EventBus, TelemetryRecord};
use telemetry_store::TelemetryStore;

/// One way of recording, timed call by call.
type Call<'a> = Box<dyn Fn() + 'a>;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let dir = std::env::temp_dir().join(format!("record-latency-{}", std::process::id()));
    let store = TelemetryStore::builder(dir.join("bench.db"))
        .queue_capacity(n * 3 + 1)
        .open()
        .unwrap();
    let record = TelemetryRecord::builder("llama-3.1-8b", 1_764_300_000.0)
        .engine("vllm")
        .agent("planner")
        .tokens(200, 64)
        .latency_seconds(0.8)
        .ttft(0.05)
        .energy(42.0, EnergyMethod::Counter)
        .metadata(serde_json::json!({ "request": 1 }))
        .build();
    let shared = Arc::new(record.clone());
    let bus = EventBus::new();
    store.subscribe_to_bus(&bus);

    // Warm up (allocator, caches, the writer's statements).
    for _ in 0..10_000 {
        store.record(&record).unwrap();
    }
    store.flush().unwrap();

    let by_path: [(&str, Call<'_>); 4] = [
        (
            "clone only",
            Box::new(|| drop(std::hint::black_box(Arc::new(record.clone())))),
        ),
        ("record", Box::new(|| store.record(&record).unwrap())),
        (
            "record_arc",
            Box::new(|| store.record_arc(Arc::clone(&shared)).unwrap()),
        ),
        (
            "bus publish",
            Box::new(|| bus.publish(Event::TelemetryRecord(Arc::clone(&shared)))),
        ),
    ];
    println!("{n} calls each, paced at 4 us, writer busy; ns per call");
    for (name, call) in &by_path {
        let mut samples = Vec::with_capacity(n);
        let mut next = Instant::now();
        for _ in 0..n {
            while Instant::now() < next {
                std::hint::spin_loop();
            }
            next += Duration::from_micros(4);
            let t = Instant::now();
            call();
            samples.push(t.elapsed().as_nanos() as u64);
        }
        samples.sort_unstable();
        let q = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
        println!(
            "{name:>12}: p50 {:>6}  p90 {:>6}  p99 {:>6}  p99.9 {:>7}  max {:>9}",
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            samples[samples.len() - 1]
        );
    }
    store.close().unwrap();
    let stats = store.stats();
    assert_eq!(stats.dropped, 0);
    println!(
        "written {} rows, failed batches {}",
        stats.written, stats.failed_batches
    );
    drop(by_path);
    std::fs::remove_dir_all(&dir).ok();
}
