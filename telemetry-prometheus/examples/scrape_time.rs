//! Measures [`render`] over a database of N records built through the real store.
//!
//! `cargo run --release -p telemetry-prometheus --example scrape_time -- 1000000 [DB] [OUT]`
//!
//! Writes N records (8 models × 3 engines × 4 agents, one call every 0.25 s of a spread of
//! days, half of them streamed) into `DB` (a temporary file by default; an existing `DB` with
//! records is reused), then renders `/metrics` 20 times and prints the median and the slowest
//! scrape. `OUT`, when given, receives the rendered text (e.g. for `promtool check metrics`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use telemetry_agg::TelemetryAggregator;
use telemetry_core::{EnergyMethod, TelemetryRecord, TimeRange};
use telemetry_prometheus::{RenderOptions, render};
use telemetry_store::TelemetryStore;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(1_000_000, |s| s.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = args
        .next()
        .map_or_else(|| dir.path().join("scrape.db"), Into::into);
    let out = args.next();
    let existing = if path.exists() {
        TelemetryAggregator::open(&path)
            .and_then(|a| a.record_count(&TimeRange::all()))
            .unwrap_or(0)
    } else {
        0
    };
    if existing == 0 {
        let t = Instant::now();
        let store = TelemetryStore::open(&path).unwrap();
        let t0 = 1_764_288_000.0;
        for i in 0..n {
            let mut r = TelemetryRecord::builder(format!("model-{}", i % 8), t0 + i as f64 * 0.25)
                .engine(["vllm", "llama.cpp", "ollama"][(i % 3) as usize])
                .agent(format!("agent-{}", i % 4))
                .tokens(100 + i % 50, 10 + i % 90)
                .latency_seconds(0.05 + (i % 1000) as f64 * 0.004)
                .cost_usd(0.0001)
                .energy(1.0 + (i % 7) as f64, EnergyMethod::Counter)
                .build();
            if i % 2 == 0 {
                r.is_streaming = true;
                r.ttft = Some(0.01 + (i % 100) as f64 * 0.002);
                r.mean_itl_ms = Some(5.0 + (i % 40) as f64);
            }
            if i % 97 == 0 {
                r.outcome = telemetry_core::Outcome::Error;
                r.error_kind = "timeout".into();
            }
            store.record(&r).unwrap();
        }
        store.close().unwrap();
        eprintln!("wrote {n} records in {:.1?}", t.elapsed());
    } else {
        eprintln!("reusing {existing} records in {}", path.display());
    }
    let agg = TelemetryAggregator::open(&path).unwrap();
    let mut times = Vec::new();
    let mut text = String::new();
    for _ in 0..20 {
        let t = Instant::now();
        text = render(&agg, &RenderOptions::default()).unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "records={} scrape median={:.2?} max={:.2?} bytes={}",
        agg.record_count(&TimeRange::all()).unwrap(),
        times[times.len() / 2],
        times[times.len() - 1],
        text.len()
    );
    if let Some(out) = out {
        std::fs::write(out, &text).unwrap();
    }
}
