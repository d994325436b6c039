//! `summary()` over all records, an aligned and an unaligned range, and `export_records`
//! throughput, on databases built through the real store once per run.
//!
//! By default (and in CI, which runs each benchmark once in criterion's test mode) the database holds
//! 100 000 records. `TELEMETRY_BENCH_FULL=1` builds 1 M and 10 M record databases instead
//! (about a minute per 10 M at ~300 K records/s); `TELEMETRY_BENCH_SIZES=1000000,...` picks the
//! sizes explicitly. Records spread over 30 days, 8 models × 3 engines × 3 agents.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use telemetry_agg::TelemetryAggregator;
use telemetry_core::{EnergyMethod, TelemetryRecord, TimeRange};
use telemetry_store::TelemetryStore;

const DAY: f64 = 86_400.0;
/// 2025-11-01T00:00:00Z, a day boundary.
const START: f64 = 1_761_955_200.0;
const DAYS: f64 = 30.0;
const EXPORT_ROWS: u64 = 1_000_000;

fn sizes() -> Vec<u64> {
    if let Ok(s) = std::env::var("TELEMETRY_BENCH_SIZES") {
        return s.split(',').filter_map(|x| x.trim().parse().ok()).collect();
    }
    if std::env::var("TELEMETRY_BENCH_FULL").is_ok_and(|v| v == "1") {
        vec![1_000_000, 10_000_000]
    } else {
        vec![100_000]
    }
}

/// xorshift64*: deterministic and cheap.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const MODELS: [&str; 8] = [
    "llama-3.1-8b",
    "llama-3.1-70b",
    "qwen2.5-7b",
    "qwen2.5-72b",
    "mistral-7b",
    "mixtral-8x7b",
    "gemma-2-9b",
    "phi-3-mini",
];
const ENGINES: [&str; 3] = ["vllm", "llama.cpp", "ollama"];
const AGENTS: [&str; 3] = ["planner", "coder", ""];

fn record(i: u64, n: u64, rng: &mut Rng) -> TelemetryRecord {
    let ts = START + (i as f64 + rng.unit()) * (DAYS * DAY / n as f64);
    let completion = 16 + rng.next() % 512;
    let latency = 0.05 + completion as f64 * 0.02 * (0.5 + rng.unit());
    let ttft = latency * 0.1 * (0.5 + rng.unit());
    let mut r = TelemetryRecord::builder(MODELS[(rng.next() % 8) as usize], ts)
        .engine(ENGINES[(rng.next() % 3) as usize])
        .agent(AGENTS[(rng.next() % 3) as usize])
        .tokens(32 + rng.next() % 2_000, completion)
        .latency_seconds(latency)
        .ttft(ttft)
        .cost_usd(completion as f64 * 2e-6)
        .energy(latency * 300.0, EnergyMethod::Counter)
        .build();
    r.gpu_utilization_pct = Some(40.0 + rng.unit() * 60.0);
    r.throughput_tok_per_sec = Some(completion as f64 / (latency - ttft));
    r.mean_itl_ms = Some((latency - ttft) * 1_000.0 / completion as f64);
    if rng.next().is_multiple_of(50) {
        r.outcome = telemetry_core::Outcome::Error;
        r.error_kind = "timeout".into();
    }
    r
}

/// Builds an `n`-record database through the store, reusing one left by an earlier run.
fn build(dir: &Path, n: u64) -> PathBuf {
    let path = dir.join(format!("bench-{n}.db"));
    let store = TelemetryStore::builder(&path).open().unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n);
    let t = Instant::now();
    for i in 0..n {
        store.record(&record(i, n, &mut rng)).unwrap();
    }
    store.flush().unwrap();
    store.close().unwrap();
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "built {n} records through the store in {secs:.1} s ({:.0} records/s)",
        n as f64 / secs
    );
    path
}

/// Anonymous resident memory (heap, not the file-backed mmap of the database), KiB.
fn rss_anon_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One export pass outside criterion, sampling anonymous memory every 100 000 rows.
fn export_memory(agg: &TelemetryAggregator, range: &TimeRange) {
    let Some(start) = rss_anon_kib() else { return };
    let (mut max, mut rows) = (start, 0u64);
    let t = Instant::now();
    for r in agg.export_records(range).unwrap() {
        black_box(r.unwrap());
        rows += 1;
        if rows.is_multiple_of(100_000) {
            max = max.max(rss_anon_kib().unwrap_or(0));
        }
    }
    eprintln!(
        "export of {rows} rows in {:.2} s: anonymous RSS {start} KiB at start, at most {max} KiB during",
        t.elapsed().as_secs_f64()
    );
}

fn queries(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    for n in sizes() {
        let path = build(dir.path(), n);
        let agg = TelemetryAggregator::open(&path).unwrap();
        let all = TimeRange::all();
        assert_eq!(agg.record_count(&all).unwrap(), n);
        let aligned = TimeRange::new(Some(START + 5.0 * DAY), Some(START + 25.0 * DAY)).unwrap();
        let unaligned = TimeRange::new(
            Some(START + 5.0 * DAY + 4_321.125),
            Some(START + 25.0 * DAY + 51_234.875),
        )
        .unwrap();

        let mut g = c.benchmark_group(format!("summary_{n}"));
        g.sample_size(20).measurement_time(Duration::from_secs(5));
        g.bench_function("all", |b| b.iter(|| agg.summary(black_box(&all)).unwrap()));
        g.bench_function("aligned_days", |b| {
            b.iter(|| agg.summary(black_box(&aligned)).unwrap())
        });
        g.bench_function("unaligned", |b| {
            b.iter(|| agg.summary(black_box(&unaligned)).unwrap())
        });
        g.bench_function("record_count_unaligned", |b| {
            b.iter(|| agg.record_count(black_box(&unaligned)).unwrap())
        });
        g.finish();

        // Export: at most EXPORT_ROWS rows from the start, drained into a sink.
        let rows = n.min(EXPORT_ROWS);
        let until = START + DAYS * DAY * rows as f64 / n as f64;
        let export_range = TimeRange::new(None, Some(until)).unwrap();
        let expected = agg.record_count(&export_range).unwrap();
        export_memory(&agg, &export_range);
        let mut g = c.benchmark_group(format!("export_{n}"));
        g.sample_size(10)
            .measurement_time(Duration::from_secs(10))
            .throughput(Throughput::Elements(expected));
        g.bench_function("rows", |b| {
            b.iter(|| {
                let mut count = 0u64;
                for r in agg.export_records(&export_range).unwrap() {
                    black_box(r.unwrap());
                    count += 1;
                }
                assert_eq!(count, expected);
            })
        });
        g.finish();
    }
}

criterion_group!(benches, queries);
criterion_main!(benches);
