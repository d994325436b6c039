//! Caller-thread cost of `TelemetryRecord::validate` (the store runs it inside `record`): a
//! typical record with most optional fields set, and a minimal one.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use telemetry_core::{EnergyMethod, TelemetryRecord};

fn typical() -> TelemetryRecord {
    let mut r = TelemetryRecord::builder("llama-3.1-8b", 1_764_300_000.0)
        .engine("vllm")
        .agent("planner")
        .tokens(240, 96)
        .latency_seconds(0.84)
        .ttft(0.05)
        .cost_usd(1e-4)
        .energy(42.0, EnergyMethod::Counter)
        .metadata(json!({ "request": 7, "user": "bench" }))
        .build();
    r.gpu_utilization_pct = Some(80.0);
    r.gpu_temperature_c = Some(61.0);
    r.throughput_tok_per_sec = Some(120.0);
    r.mean_itl_ms = Some(8.0);
    r.p99_itl_ms = Some(14.0);
    r
}

fn validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate");
    let typical = typical();
    group.bench_function("typical", |b| b.iter(|| black_box(&typical).validate()));
    let minimal = TelemetryRecord::builder("m", 1_764_300_000.0).build();
    group.bench_function("minimal", |b| b.iter(|| black_box(&minimal).validate()));
    group.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
