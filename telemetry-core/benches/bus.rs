//! Cost of publishing on the bus: no subscriber, one subscriber, four subscribers.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use telemetry_core::{Event, EventBus, EventType, TelemetryRecord};

fn publish(c: &mut Criterion) {
    let record = Arc::new(
        TelemetryRecord::builder("bench-model", 1_764_300_000.0)
            .tokens(100, 50)
            .latency_seconds(0.5)
            .build(),
    );
    let mut group = c.benchmark_group("bus_publish");
    for subscribers in [0usize, 1, 4] {
        let bus = EventBus::new();
        let hits = Arc::new(AtomicU64::new(0));
        for _ in 0..subscribers {
            let hits = Arc::clone(&hits);
            bus.subscribe(EventType::TelemetryRecord, move |e| {
                if e.as_record().is_some() {
                    hits.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        group.bench_function(format!("{subscribers}_subscribers"), |b| {
            b.iter(|| bus.publish(black_box(Event::TelemetryRecord(Arc::clone(&record)))))
        });
    }
    group.finish();
}

criterion_group!(benches, publish);
criterion_main!(benches);
