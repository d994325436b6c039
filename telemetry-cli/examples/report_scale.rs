//! How long `telemetry report` takes and how big its page is on a large database: builds the
//! database through the real store (20 models × 3 engines × 3 agents over 30 days), then runs the
//! release `telemetry report` binary 5 times per bucket choice and prints the median wall time
//! (process start, queries, charts and the file write together) and the file size.
//!
//! ```text
//! cargo build --release -p telemetry-cli --examples --bins
//! cargo run --release -p telemetry-cli --example report_scale                  # 100 000 records
//! TELEMETRY_BENCH_FULL=1 cargo run --release -p telemetry-cli --example report_scale   # 10 M
//! ```
//! `TELEMETRY_BENCH_SIZES=1000000,...` picks the sizes; `TELEMETRY_REPORT_DB=path` reuses (or
//! keeps) the database of a single size, since building 10 M records takes a minute or more.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use telemetry_core::{EnergyMethod, Outcome, TelemetryRecord};
use telemetry_store::TelemetryStore;

const DAY: f64 = 86_400.0;
/// 2025-11-01T00:00:00Z.
const START: f64 = 1_761_955_200.0;
const DAYS: f64 = 30.0;
const MODELS: usize = 20;
const ENGINES: [&str; 3] = ["vllm", "llama.cpp", "ollama"];
const AGENTS: [&str; 3] = ["planner", "coder", ""];
const RUNS: usize = 5;

fn sizes() -> Vec<u64> {
    if let Ok(s) = std::env::var("TELEMETRY_BENCH_SIZES") {
        return s.split(',').filter_map(|x| x.trim().parse().ok()).collect();
    }
    if std::env::var("TELEMETRY_BENCH_FULL").is_ok_and(|v| v == "1") {
        vec![10_000_000]
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

fn record(i: u64, n: u64, models: &[String], rng: &mut Rng) -> TelemetryRecord {
    let ts = START + (i as f64 + rng.unit()) * (DAYS * DAY / n as f64);
    let m = (rng.next() % MODELS as u64) as usize;
    let completion = 16 + rng.next() % 512;
    let latency = 0.05 + completion as f64 * 0.002 * (1 + m) as f64 * (0.5 + rng.unit());
    let ttft = latency * 0.1 * (0.5 + rng.unit());
    let mut r = TelemetryRecord::builder(&models[m], ts)
        .engine(ENGINES[(rng.next() % 3) as usize])
        .agent(AGENTS[(rng.next() % 3) as usize])
        .tokens(32 + rng.next() % 2_000, completion)
        .latency_seconds(latency)
        .ttft(ttft)
        .cost_usd(completion as f64 * 1e-7 * (1 + m) as f64)
        .energy(latency * 300.0, EnergyMethod::Counter)
        .build();
    r.throughput_tok_per_sec = Some(completion as f64 / (latency - ttft));
    if rng.next().is_multiple_of(50) {
        r.outcome = Outcome::Error;
        r.error_kind = "timeout".into();
    }
    r
}

fn build(path: &Path, n: u64) {
    let models: Vec<String> = (0..MODELS).map(|i| format!("model-{i:02}")).collect();
    let store = TelemetryStore::builder(path).open().unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n);
    let t = Instant::now();
    for i in 0..n {
        store.record(&record(i, n, &models, &mut rng)).unwrap();
    }
    store.flush().unwrap();
    store.close().unwrap();
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "built {n} records through the store in {secs:.1} s ({:.0} records/s)",
        n as f64 / secs
    );
}

/// The `telemetry` binary next to this example's directory (`target/<profile>/telemetry`).
fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join("telemetry");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --release -p telemetry-cli --bins` first",
        bin.display()
    );
    bin
}

fn main() {
    let bin = binary();
    let tmp = tempfile::tempdir().unwrap();
    for n in sizes() {
        let db = match std::env::var_os("TELEMETRY_REPORT_DB") {
            Some(p) => PathBuf::from(p),
            None => tmp.path().join(format!("report-{n}.db")),
        };
        if !db.exists() {
            build(&db, n);
        }
        let out = tmp.path().join("report.html");
        for bucket in ["auto", "1h"] {
            let mut times = Vec::with_capacity(RUNS);
            for _ in 0..RUNS {
                let t = Instant::now();
                let status = Command::new(&bin)
                    .arg("--db")
                    .arg(&db)
                    .args(["report", "--bucket", bucket, "-o"])
                    .arg(&out)
                    .stdout(std::process::Stdio::null())
                    .status()
                    .unwrap();
                times.push(t.elapsed().as_secs_f64());
                assert!(status.success(), "telemetry report failed: {status}");
            }
            times.sort_by(f64::total_cmp);
            let bytes = std::fs::metadata(&out).unwrap().len();
            println!(
                "{n} records, {MODELS} models, --bucket {bucket}: median {:.0} ms (min {:.0}, max {:.0}) over {RUNS} runs, {bytes} bytes ({:.2} MB)",
                times[RUNS / 2] * 1e3,
                times[0] * 1e3,
                times[RUNS - 1] * 1e3,
                bytes as f64 / 1e6
            );
        }
    }
}
