//! The caller's cost of OTLP export: publishing one record on a bus with the exporter
//! subscribed, against a bus without it (no subscriber, and one no-op subscriber).
//!
//! The exporter posts to an in-process receiver. Publishes are timed in chunks that fit the
//! queue, with an untimed flush between chunks, so every timed publish takes the enqueue path
//! (a full queue's drop path is cheaper and would flatter the figure).
#![allow(missing_docs, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use telemetry_core::{Event, EventBus, EventType, TelemetryRecord};
use telemetry_otel::testing::OtlpReceiver;
use telemetry_otel::{OtlpConfig, OtlpExporter};

const CHUNK: u64 = 4096;

fn record() -> Arc<TelemetryRecord> {
    Arc::new(
        TelemetryRecord::builder("bench-model", 1_764_300_000.0)
            .engine("vllm")
            .agent("bench")
            .tokens(100, 50)
            .latency_seconds(0.5)
            .build(),
    )
}

/// Publishes `iters` distinct records (made untimed, in chunks), timing only the publishes;
/// `between` runs untimed after each chunk.
fn timed_publish(bus: &EventBus, iters: u64, mut between: impl FnMut()) -> Duration {
    let template = record();
    let mut timed = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK);
        let events: Vec<Event> = (0..n)
            .map(|_| Event::TelemetryRecord(Arc::new((*template).clone())))
            .collect();
        let started = Instant::now();
        for event in events {
            bus.publish(black_box(event));
        }
        timed += started.elapsed();
        left -= n;
        between();
    }
    timed
}

fn publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("otlp_caller_cost");

    let bus = EventBus::new();
    group.bench_function("bus_without_subscriber", |b| {
        b.iter_custom(|iters| timed_publish(&bus, iters, || {}))
    });

    let bus = EventBus::new();
    bus.subscribe(EventType::TelemetryRecord, |e| {
        black_box(e.as_record());
    });
    group.bench_function("bus_with_noop_subscriber", |b| {
        b.iter_custom(|iters| timed_publish(&bus, iters, || {}))
    });

    let receiver = OtlpReceiver::counting().expect("receiver");
    let config = OtlpConfig::new(&receiver.endpoint())
        .expect("endpoint")
        .with_queue_capacity(2 * CHUNK as usize);
    let exporter = OtlpExporter::start(config).expect("exporter");
    let bus = EventBus::new();
    exporter.subscribe_to_bus(&bus);
    group.bench_function("bus_with_otlp_exporter", |b| {
        b.iter_custom(|iters| {
            timed_publish(&bus, iters, || {
                exporter.flush(Duration::from_secs(30)).expect("flush");
            })
        })
    });
    group.finish();
    exporter
        .shutdown(Duration::from_secs(30))
        .expect("shutdown");
    let stats = exporter.stats();
    assert_eq!(stats.dropped, 0, "{stats:?}");
}

criterion_group!(benches, publish);
criterion_main!(benches);
