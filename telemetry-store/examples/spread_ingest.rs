//! Ingest rate by how records spread over time: all in one hour (the live case: rollup rows
//! are shared by many records) versus one record every `gap` seconds over months (a backfill or
//! an import of old data: few records per hour, so the store keeps hour and day rows only).
//!
//! Run: `cargo run --release -p telemetry-store --example spread_ingest [N]` (default 200 000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use telemetry_core::{EnergyMethod, TelemetryRecord};
use telemetry_store::TelemetryStore;

const START: f64 = 1_735_689_600.0; // 2025-01-01T00:00:00Z

fn records(n: usize, gap: f64) -> Vec<Arc<TelemetryRecord>> {
    let models = ["llama-3.1-8b", "qwen2.5-7b", "mistral-7b", "phi-3-mini"];
    (0..n)
        .map(|i| {
            let r = TelemetryRecord::builder(models[i % models.len()], START + i as f64 * gap)
                .engine("vllm")
                .agent("planner")
                .tokens(200, 64)
                .latency_seconds(0.8 + (i % 97) as f64 * 0.01)
                .ttft(0.05)
                .energy(42.0, EnergyMethod::Counter)
                .build();
            Arc::new(r)
        })
        .collect()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let dir = std::env::temp_dir().join(format!("spread-ingest-{}", std::process::id()));
    println!("{n} records per case, 4 models; records/s from first record to flush");
    for (name, gap) in [
        ("dense: 1 hour", 3_600.0 / n as f64),
        ("every 10 s", 10.0),
        ("every 60 s", 60.0),
        ("every 150 s", 150.0),
    ] {
        let rs = records(n, gap);
        let path = dir.join(format!("{}.db", gap.to_bits()));
        let store = TelemetryStore::open(&path).unwrap();
        let t = Instant::now();
        for r in &rs {
            store.record_arc(Arc::clone(r)).unwrap();
        }
        store.flush().unwrap();
        let s = t.elapsed().as_secs_f64();
        store.close().unwrap();
        println!(
            "{name:>14}: {:>9.0} records/s ({:.2} s, span {:.1} days)",
            n as f64 / s,
            s,
            gap * n as f64 / 86_400.0
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
