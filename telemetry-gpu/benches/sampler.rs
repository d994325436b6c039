//! Criterion benches of the GPU sampler: the call path (`begin` + `end`), completing a batch of
//! windows, attribution over many windows, and building an energy curve from the timeline.
//!
//! `cargo bench -p telemetry-gpu --features mock` (CI runs each benchmark once, in criterion's test mode).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use telemetry_gpu::{
    GpuSampler, MockBackend, MockClock, PowerProfile, SamplerConfig, Timestamp, Window, attribute,
};

fn profile() -> PowerProfile {
    // A load that changes every 1.7 s, so curves have both flat and changing parts.
    PowerProfile::Steps(
        (0..400_u64)
            .map(|i| {
                (
                    Timestamp::from_millis(i * 1700),
                    200.0 + (i % 5) as f64 * 120.0,
                )
            })
            .collect(),
    )
}

/// A manual sampler on a mock clock with `seconds` of history sampled every 100 ms.
fn warm_sampler(seconds: u64) -> (GpuSampler, MockClock) {
    let clock = MockClock::new();
    let config = SamplerConfig {
        manual: true,
        ..SamplerConfig::default()
    };
    let backend = MockBackend::single(profile());
    let sampler = GpuSampler::with_config(backend, Arc::new(clock.clone()), config).unwrap();
    for _ in 0..seconds * 10 {
        clock.advance(Duration::from_millis(100));
        sampler.sample_now();
    }
    (sampler, clock)
}

fn call_path(c: &mut Criterion) {
    let (sampler, _clock) = warm_sampler(10);
    c.bench_function("gpu/begin+end (call path)", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let chunk = left.min(10_000);
                let start = Instant::now();
                for _ in 0..chunk {
                    let t = sampler.now();
                    let h = sampler.begin(black_box(t));
                    sampler.end(h, t, None, |r| {
                        black_box(r);
                    });
                }
                spent += start.elapsed();
                // Completion happens off the call path; keep the registry small between chunks.
                sampler.flush();
                left -= chunk;
            }
            spent
        });
    });
}

fn completion(c: &mut Criterion) {
    let (sampler, clock) = warm_sampler(600);
    c.bench_function(
        "gpu/complete 100 overlapping windows (10 min timeline)",
        |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    clock.advance(Duration::from_millis(100));
                    let now = sampler.now();
                    for i in 0..100_u64 {
                        let t0 = now - Duration::from_millis(1000 - i * 7);
                        let h = sampler.begin(t0);
                        sampler.end(h, t0 + Duration::from_millis(50 + i * 3), None, |r| {
                            black_box(r);
                        });
                    }
                    let start = Instant::now();
                    sampler.flush();
                    spent += start.elapsed();
                }
                spent
            });
        },
    );
}

fn math(c: &mut Criterion) {
    let (sampler, clock) = warm_sampler(600);
    let timeline = sampler.timeline();
    let end = timeline.last_time().unwrap();
    let windows: Vec<Window> = (0..1000_u64)
        .map(|i| {
            let t0 = end - Duration::from_millis(120_000 - i * 97);
            Window::new(t0, t0 + Duration::from_millis(40 + (i * 37) % 900))
        })
        .collect();
    let curves = timeline.curves(windows[0].start, end);
    c.bench_function("gpu/attribute 1000 windows over 2 min", |b| {
        b.iter(|| attribute(black_box(&curves), black_box(&windows), None).unwrap());
    });
    c.bench_function("gpu/curve around a 1 s window (10 min timeline)", |b| {
        b.iter(|| {
            timeline.curves(
                black_box(end - Duration::from_secs(5)),
                end - Duration::from_secs(4),
            )
        });
    });
    c.bench_function("gpu/sample_now, 1 mock device", |b| {
        b.iter(|| {
            clock.advance(Duration::from_millis(100));
            sampler.sample_now();
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3));
    targets = call_path, completion, math
}
criterion_main!(benches);
