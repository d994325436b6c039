//! Backfill throughput to a local receiver: `cargo run --release -p telemetry-otel --features
//! testing --example backfill_throughput [RECORDS]` pushes RECORDS (default 200 000) in-memory
//! records through [`Backfill`] to an in-process OTLP/HTTP receiver that decodes every request,
//! and prints spans per second (encode, HTTP and decode included; the receiver shares the CPU).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use telemetry_core::{EnergyMethod, TelemetryRecord};
use telemetry_otel::testing::OtlpReceiver;
use telemetry_otel::{Backfill, OtlpConfig};

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("RECORDS must be a number"))
        .unwrap_or(200_000);
    let receiver = OtlpReceiver::counting().expect("receiver");
    let records: Vec<TelemetryRecord> = (0..n)
        .map(|i| {
            let mut r = TelemetryRecord::builder(
                ["qwen2.5-7b", "llama-3.1-8b"][(i % 2) as usize],
                1_764_300_000.0 + i as f64,
            )
            .engine("vllm")
            .agent("bench")
            .tokens(100 + i % 50, 20 + i % 30)
            .latency_seconds(0.5 + (i % 10) as f64 * 0.1)
            .ttft(0.05)
            .energy(10.0, EnergyMethod::Counter)
            .cost_usd(0.001)
            .build();
            r.is_streaming = true;
            r.mean_itl_ms = Some(20.0);
            r
        })
        .collect();
    let config = OtlpConfig::new(&receiver.endpoint()).expect("endpoint");
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut backfill = Backfill::new(config);
    for r in records {
        backfill.push(r).expect("push");
    }
    let summary = backfill.finish().expect("finish");
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    assert_eq!(receiver.received().span_count, n);
    println!(
        "backfill: {} spans in {} requests in {:.3} s = {:.0} spans/s (receiver decoded all {})",
        summary.spans,
        summary.span_requests,
        seconds,
        summary.spans as f64 / seconds,
        n
    );
    if let Some(cpu) = cpu {
        // On a shared machine the wall-clock rate depends on the neighbours; the CPU time does
        // not (it counts this process: sender and receiver together).
        println!(
            "cpu: {cpu:.2} s for sender and receiver together = {:.0} spans per CPU-second",
            summary.spans as f64 / cpu
        );
    }
}

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`, 100 ticks/s).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
