//! Wrapper overhead: a no-op engine called raw vs through `InstrumentedEngine` (counting
//! subscriber, or a real `TelemetryStore` subscribed), and the per-chunk cost of an instrumented
//! stream.
//!
//! `cargo bench -p telemetry-wrap --bench overhead`; CI runs each benchmark once (test mode). Store rows:
//!
//! - `wrapped_store_subscribed` / `store_only_publish_record`: a writer that commits only when
//!   flushed between timed batches of 10 000 calls (outside the timing): what a caller pays while
//!   the queue has room, with no commit competing for the CPU.
//! - `wrapped_store_default_schedule`: what a user gets: a store built with the defaults, whose
//!   writer commits on its own schedule (every 50 ms or 10 000 records) while the calls run, in
//!   bursts of 1 000 calls separated by 5 ms pauses (outside the timing; about 150 K calls/s, under
//!   the writer's pace, so the queue never fills).
//! - `wrapped_store_default_flood`: the same default store, calls back to back with no pause: the
//!   queue fills and the `Block` policy paces the caller at the writer's rate.
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
/// Calls per timed burst in `wrapped_store_default_schedule`.
const BURST: u64 = 1_000;
/// Untimed pause between bursts: keeps the call rate under the writer's pace.
const BURST_PAUSE: Duration = Duration::from_millis(5);

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
    assert_eq!(store.stats().dropped, 0);
    drop(store);

    // What a user gets: the store's defaults, the writer committing on its own schedule.
    let default_store = TelemetryStore::open(dir.path().join("default.db")).unwrap();
    let bus = Arc::new(EventBus::new());
    default_store.subscribe_to_bus(&bus);
    let user = InstrumentedEngine::new(Noop, bus).with_agent("bench");
    group.bench_function("wrapped_store_default_schedule", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(BURST);
                let t = Instant::now();
                for _ in 0..n {
                    black_box(user.generate(black_box(&messages), black_box(&params)).ok());
                }
                timed += t.elapsed();
                std::thread::sleep(BURST_PAUSE);
                left -= n;
            }
            timed
        })
    });
    group.bench_function("wrapped_store_default_flood", |b| {
        b.iter(|| user.generate(black_box(&messages), black_box(&params)))
    });
    group.finish();
    default_store.flush().unwrap();
    let stats = default_store.stats();
    assert_eq!(stats.dropped, 0);
    assert!(stats.written > 0);
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
