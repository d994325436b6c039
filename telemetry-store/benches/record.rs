//! Caller cost of `record` while the writer is busy committing (mean per call; for p50/p99 run
//! `cargo run --release -p telemetry-store --example record_latency`).
//!
//! Calls are paced at one per 4 µs (250 000/s, below the writer's rate, so the queue never
//! fills and the caller never blocks) and timed one by one; criterion reports the mean of the
//! timed calls. `cargo bench -p telemetry-store --bench record` (CI runs it once, in criterion's test mode).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use telemetry_core::{EnergyMethod, Event, EventBus, TelemetryRecord};
use telemetry_store::TelemetryStore;

const PACE: Duration = Duration::from_micros(4);

fn sample() -> TelemetryRecord {
    TelemetryRecord::builder("llama-3.1-8b", 1_764_300_000.0)
        .engine("vllm")
        .agent("planner")
        .tokens(200, 64)
        .latency_seconds(0.8)
        .ttft(0.05)
        .energy(42.0, EnergyMethod::Counter)
        .metadata(serde_json::json!({ "request": 1 }))
        .build()
}

fn paced(iters: u64, mut call: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut next = Instant::now();
    for _ in 0..iters {
        while Instant::now() < next {
            std::hint::spin_loop();
        }
        next += PACE;
        let t = Instant::now();
        call();
        total += t.elapsed();
    }
    total
}

fn record_cost(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = TelemetryStore::builder(dir.path().join("bench.db"))
        .queue_capacity(1 << 20)
        .open()
        .unwrap();
    let record = sample();
    let shared = Arc::new(sample());
    let bus = EventBus::new();
    store.subscribe_to_bus(&bus);
    let mut group = c.benchmark_group("record_cost");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("record", |b| {
        b.iter_custom(|iters| paced(iters, || store.record(&record).unwrap()))
    });
    group.bench_function("record_arc", |b| {
        b.iter_custom(|iters| paced(iters, || store.record_arc(Arc::clone(&shared)).unwrap()))
    });
    group.bench_function("bus_publish", |b| {
        b.iter_custom(|iters| {
            paced(iters, || {
                bus.publish(Event::TelemetryRecord(Arc::clone(&shared)))
            })
        })
    });
    group.finish();
    store.close().unwrap();
    assert_eq!(store.stats().dropped, 0);
}

criterion_group!(benches, record_cost);
criterion_main!(benches);
