//! Wrapper overhead: a no-op engine called raw vs through `InstrumentedEngine` (counting
//! subscriber, or a real `TelemetryStore` subscribed), and the per-chunk cost of an instrumented
//! stream.
//!
//! `cargo bench -p telemetry-wrap --bench overhead`; CI runs it with `-- --quick`. The store rows
//! time batches of 10 000 calls and flush the store between batches (outside the timing), so
//! they measure what a caller pays while the store's queue has room, not the disk's pace.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use telemetry_core::{EventBus, EventType};
use telemetry_store::TelemetryStore;
use telemetry_wrap::{
    GenerateParams, GenerateResult, InferenceEngine, InstrumentedEngine, Message, StreamChunk,
    Usage,
};

const CHUNKS: u64 = 256;
const STORE_BATCH: u64 = 10_000;

/// Answers at once without allocating; streams `CHUNKS` one-byte chunks.
struct Noop;

struct NoopStream(u64);

impl Iterator for NoopStream {
    type Item = Result<StreamChunk, std::io::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0 == 0 {
            return None;
        }
        self.0 -= 1;
        Some(Ok(StreamChunk::text("x")))
    }
}

impl InferenceEngine for Noop {
    type Error = std::io::Error;
    type Stream = NoopStream;

    fn engine_id(&self) -> &str {
        "noop"
    }

    fn generate(&self, _: &[Message], _: &GenerateParams) -> Result<GenerateResult, Self::Error> {
        Ok(GenerateResult {
            usage: Usage::new(100, 20),
            ..GenerateResult::default()
        })
    }

    fn stream(&self, _: &[Message], _: &GenerateParams) -> Result<Self::Stream, Self::Error> {
        Ok(NoopStream(CHUNKS))
    }
}

fn counting_bus() -> Arc<EventBus> {
    let bus = Arc::new(EventBus::new());
    let seen = Arc::new(AtomicU64::new(0));
    bus.subscribe(EventType::TelemetryRecord, move |e| {
        if e.as_record().is_some() {
            seen.fetch_add(1, Ordering::Relaxed);
        }
    });
    bus
}

fn generate(c: &mut Criterion) {
    let messages = [Message::user("hello")];
    let params = GenerateParams::new("bench-model");
    let mut group = c.benchmark_group("generate");

    group.bench_function("raw", |b| {
        b.iter(|| Noop.generate(black_box(&messages), black_box(&params)))
    });

    let counted = InstrumentedEngine::new(Noop, counting_bus()).with_agent("bench");
    group.bench_function("wrapped_counting_subscriber", |b| {
        b.iter(|| counted.generate(black_box(&messages), black_box(&params)))
    });

    let dir = tempfile::tempdir().unwrap();
    // The writer commits only when flushed between timed batches, so that on this 2-core machine
    // the timing is the caller's cost rather than time lost to the writer thread's CPU.
    let store = TelemetryStore::builder(dir.path().join("bench.db"))
        .batch_size(STORE_BATCH as usize * 2)
        .flush_interval(Duration::from_secs(3600))
        .open()
        .unwrap();
    let bus = Arc::new(EventBus::new());
    store.subscribe_to_bus(&bus);
    let stored = InstrumentedEngine::new(Noop, bus).with_agent("bench");
    group.bench_function("wrapped_store_subscribed", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(STORE_BATCH);
                let t = Instant::now();
                for _ in 0..n {
                    black_box(
                        stored
                            .generate(black_box(&messages), black_box(&params))
                            .ok(),
                    );
                }
                timed += t.elapsed();
                store.flush().unwrap();
                left -= n;
            }
            timed
        })
    });
    // The store's own share: publishing a ready record to the same subscribed bus.
    let record = Arc::new(
        telemetry_core::TelemetryRecord::builder("bench-model", 1_764_300_000.0)
            .engine("noop")
            .tokens(100, 20)
            .build(),
    );
    let bus = Arc::clone(stored.bus());
    group.bench_function("store_only_publish_record", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(STORE_BATCH);
                let t = Instant::now();
                for _ in 0..n {
                    bus.publish(telemetry_core::Event::TelemetryRecord(Arc::clone(&record)));
                }
                timed += t.elapsed();
                store.flush().unwrap();
                left -= n;
            }
            timed
        })
    });
    group.finish();
    assert_eq!(store.stats().dropped, 0);
}

fn stream(c: &mut Criterion) {
    let messages = [Message::user("hello")];
    let params = GenerateParams::new("bench-model").with_max_tokens(CHUNKS);
    let mut group = c.benchmark_group("stream_256_chunks");
    group.throughput(Throughput::Elements(CHUNKS));
    group.bench_function("raw", |b| {
        b.iter(|| {
            Noop.stream(&messages, &params)
                .unwrap()
                .map(black_box)
                .count()
        })
    });
    let wrapped = InstrumentedEngine::new(Noop, counting_bus());
    group.bench_function("wrapped", |b| {
        b.iter(|| {
            wrapped
                .stream(&messages, &params)
                .unwrap()
                .map(black_box)
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, generate, stream);
criterion_main!(benches);
