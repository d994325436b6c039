//! Shared test helpers: writing records through the real store, and a naive oracle.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use telemetry_agg::{AgentStats, AggregatedStats, EngineStats, ModelStats};
use telemetry_core::{EnergyMethod, TelemetryRecord, TimeRange};
use telemetry_store::TelemetryStore;
use tempfile::TempDir;

/// A day boundary (2025-11-28T00:00:00Z).
pub const DAY0: f64 = 1_764_288_000.0;

/// Writes `records` through a real [`TelemetryStore`] into a new file and closes the store.
pub fn write_db(records: &[TelemetryRecord]) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("telemetry.db");
    write_into(&path, records);
    (dir, path)
}

/// [`write_db`] with a store that keeps minute summaries for the hours of at least `threshold`
/// calls.
pub fn write_db_with_threshold(records: &[TelemetryRecord], threshold: u64) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("telemetry.db");
    let store = TelemetryStore::builder(&path)
        .minute_rollup_threshold(threshold)
        .open()
        .unwrap();
    for r in records {
        store.record(r).unwrap();
    }
    store.flush().unwrap();
    store.close().unwrap();
    (dir, path)
}

/// Appends `records` to `path` through a real store.
pub fn write_into(path: &Path, records: &[TelemetryRecord]) {
    let store = TelemetryStore::open(path).unwrap();
    for r in records {
        store.record(r).unwrap();
    }
    store.flush().unwrap();
    store.close().unwrap();
}

/// A plain valid record.
pub fn rec(model: &str, engine: &str, ts: f64, latency: f64) -> TelemetryRecord {
    TelemetryRecord::builder(model, ts)
        .engine(engine)
        .tokens(100, 20)
        .latency_seconds(latency)
        .cost_usd(0.001)
        .build()
}

/// A record with every measured field set.
pub fn full_rec(model: &str, engine: &str, agent: &str, ts: f64, i: u64) -> TelemetryRecord {
    let latency = 0.2 + (i % 17) as f64 * 0.1;
    let mut r = TelemetryRecord::builder(model, ts)
        .engine(engine)
        .agent(agent)
        .tokens(50 + i % 7, 10 + i % 13)
        .latency_seconds(latency)
        .ttft(latency / 4.0)
        .cost_usd(0.0001 * (1 + i % 5) as f64)
        .energy(10.0 + (i % 11) as f64, EnergyMethod::Counter)
        .build();
    r.gpu_utilization_pct = Some((i % 100) as f64);
    r.throughput_tok_per_sec = Some(20.0 + (i % 9) as f64);
    r.mean_itl_ms = Some(5.0 + (i % 23) as f64);
    r.prefill_energy_joules = Some(1.0);
    r.decode_energy_joules = Some(2.0 + (i % 3) as f64);
    r
}

/// Exact `sorted[floor(q * (n - 1))]`.
pub fn exact_quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some(v[(q * (v.len() - 1) as f64).floor() as usize])
}

/// What the oracle computes for a set of records, in the shape every stats type shares.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct View {
    pub key: String,
    pub call_count: u64,
    pub error_count: u64,
    pub total_tokens: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_latency: f64,
    pub avg_latency: f64,
    pub total_cost: f64,
    pub avg_ttft: f64,
    pub total_energy_joules: f64,
    pub total_prefill_energy_joules: f64,
    pub total_decode_energy_joules: f64,
    pub energy_per_output_token_joules: Option<f64>,
    pub output_tokens_per_joule: Option<f64>,
    pub avg_gpu_utilization_pct: f64,
    pub avg_throughput_tok_per_sec: f64,
    pub percentiles: Vec<Option<f64>>,
}

macro_rules! view_of {
    ($s:expr, $key:expr, $calls:expr) => {
        View {
            key: $key,
            call_count: $calls,
            error_count: $s.error_count,
            total_tokens: $s.total_tokens,
            prompt_tokens: $s.prompt_tokens,
            completion_tokens: $s.completion_tokens,
            total_latency: $s.total_latency,
            avg_latency: $s.avg_latency,
            total_cost: $s.total_cost,
            avg_ttft: $s.avg_ttft,
            total_energy_joules: $s.total_energy_joules,
            total_prefill_energy_joules: $s.total_prefill_energy_joules,
            total_decode_energy_joules: $s.total_decode_energy_joules,
            energy_per_output_token_joules: $s.energy_per_output_token_joules,
            output_tokens_per_joule: $s.output_tokens_per_joule,
            avg_gpu_utilization_pct: $s.avg_gpu_utilization_pct,
            avg_throughput_tok_per_sec: $s.avg_throughput_tok_per_sec,
            percentiles: vec![
                $s.latency_p50,
                $s.latency_p90,
                $s.latency_p95,
                $s.latency_p99,
                $s.ttft_p50,
                $s.ttft_p95,
                $s.ttft_p99,
                $s.itl_p50,
                $s.itl_p95,
                $s.itl_p99,
            ],
        }
    };
}

pub fn view_model(s: &ModelStats) -> View {
    view_of!(s, s.model_id.clone(), s.call_count)
}
pub fn view_engine(s: &EngineStats) -> View {
    view_of!(s, s.engine.clone(), s.call_count)
}
pub fn view_agent(s: &AgentStats) -> View {
    view_of!(s, s.agent.clone(), s.call_count)
}
pub fn view_total(s: &AggregatedStats) -> View {
    view_of!(s, String::new(), s.total_calls)
}

fn mean(sum: f64, n: usize) -> f64 {
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// The naive oracle: plain Rust over the records.
pub fn oracle(key: &str, rs: &[&TelemetryRecord]) -> View {
    let sum = |f: &dyn Fn(&TelemetryRecord) -> f64| rs.iter().map(|r| f(r)).sum::<f64>();
    let some = |f: &dyn Fn(&TelemetryRecord) -> Option<f64>| -> Vec<f64> {
        rs.iter().filter_map(|r| f(r)).collect()
    };
    let latencies: Vec<f64> = rs.iter().map(|r| r.latency_seconds).collect();
    let ttfts = some(&|r| r.ttft);
    let itls = some(&|r| r.mean_itl_ms);
    let utils = some(&|r| r.gpu_utilization_pct);
    let thr = some(&|r| r.throughput_tok_per_sec);
    let with_energy: Vec<&&TelemetryRecord> =
        rs.iter().filter(|r| r.energy_joules.is_some()).collect();
    let energy: f64 = with_energy.iter().filter_map(|r| r.energy_joules).sum();
    let energy_tokens: u64 = with_energy.iter().map(|r| r.completion_tokens).sum();
    let total_latency = sum(&|r| r.latency_seconds);
    View {
        key: key.to_owned(),
        call_count: rs.len() as u64,
        error_count: rs.iter().filter(|r| r.is_error()).count() as u64,
        total_tokens: rs.iter().map(|r| r.total_tokens).sum(),
        prompt_tokens: rs.iter().map(|r| r.prompt_tokens).sum(),
        completion_tokens: rs.iter().map(|r| r.completion_tokens).sum(),
        total_latency,
        avg_latency: mean(total_latency, rs.len()),
        total_cost: sum(&|r| r.cost_usd),
        avg_ttft: mean(ttfts.iter().sum(), ttfts.len()),
        total_energy_joules: energy,
        total_prefill_energy_joules: sum(&|r| r.prefill_energy_joules.unwrap_or(0.0)),
        total_decode_energy_joules: sum(&|r| r.decode_energy_joules.unwrap_or(0.0)),
        energy_per_output_token_joules: (energy_tokens > 0).then(|| energy / energy_tokens as f64),
        output_tokens_per_joule: (energy > 0.0).then(|| energy_tokens as f64 / energy),
        avg_gpu_utilization_pct: mean(utils.iter().sum(), utils.len()),
        avg_throughput_tok_per_sec: mean(thr.iter().sum(), thr.len()),
        percentiles: [
            (&latencies, 0.5),
            (&latencies, 0.9),
            (&latencies, 0.95),
            (&latencies, 0.99),
            (&ttfts, 0.5),
            (&ttfts, 0.95),
            (&ttfts, 0.99),
            (&itls, 0.5),
            (&itls, 0.95),
            (&itls, 0.99),
        ]
        .iter()
        .map(|(v, q)| exact_quantile(v, *q))
        .collect(),
    }
}

/// Oracle views of `records` in `range`, grouped by `key`, ordered like the aggregator's lists.
pub fn oracle_groups(
    records: &[TelemetryRecord],
    range: &TimeRange,
    key: impl Fn(&TelemetryRecord) -> &str,
) -> Vec<View> {
    let mut groups: std::collections::BTreeMap<&str, Vec<&TelemetryRecord>> = Default::default();
    for r in records.iter().filter(|r| range.contains(r.timestamp)) {
        groups.entry(key(r)).or_default().push(r);
    }
    let mut out: Vec<View> = groups.iter().map(|(k, rs)| oracle(k, rs)).collect();
    out.sort_by(|a, b| b.call_count.cmp(&a.call_count).then(a.key.cmp(&b.key)));
    out
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()) + 1e-12
}

/// Checks `got` against the oracle's `want`: counts exact, sums and means within 1e-9 relative,
/// percentiles within 1 % relative. Returns a description of the first difference.
pub fn compare(got: &View, want: &View) -> Result<(), String> {
    let what = &want.key;
    let ints = [
        ("call_count", got.call_count, want.call_count),
        ("error_count", got.error_count, want.error_count),
        ("total_tokens", got.total_tokens, want.total_tokens),
        ("prompt_tokens", got.prompt_tokens, want.prompt_tokens),
        (
            "completion_tokens",
            got.completion_tokens,
            want.completion_tokens,
        ),
    ];
    for (name, g, w) in ints {
        if g != w {
            return Err(format!("{what:?}.{name}: got {g}, want {w}"));
        }
    }
    if got.key != want.key {
        return Err(format!("key: got {:?}, want {:?}", got.key, want.key));
    }
    let floats = [
        ("total_latency", got.total_latency, want.total_latency),
        ("avg_latency", got.avg_latency, want.avg_latency),
        ("total_cost", got.total_cost, want.total_cost),
        ("avg_ttft", got.avg_ttft, want.avg_ttft),
        (
            "total_energy_joules",
            got.total_energy_joules,
            want.total_energy_joules,
        ),
        (
            "total_prefill",
            got.total_prefill_energy_joules,
            want.total_prefill_energy_joules,
        ),
        (
            "total_decode",
            got.total_decode_energy_joules,
            want.total_decode_energy_joules,
        ),
        (
            "avg_gpu_util",
            got.avg_gpu_utilization_pct,
            want.avg_gpu_utilization_pct,
        ),
        (
            "avg_throughput",
            got.avg_throughput_tok_per_sec,
            want.avg_throughput_tok_per_sec,
        ),
    ];
    for (name, g, w) in floats {
        if !close(g, w, 1e-9) {
            return Err(format!("{what:?}.{name}: got {g}, want {w}"));
        }
    }
    let opts = [
        (
            "energy_per_token",
            got.energy_per_output_token_joules,
            want.energy_per_output_token_joules,
        ),
        (
            "tokens_per_joule",
            got.output_tokens_per_joule,
            want.output_tokens_per_joule,
        ),
    ];
    for (name, g, w) in opts {
        match (g, w) {
            (None, None) => {}
            (Some(g), Some(w)) if close(g, w, 1e-9) => {}
            _ => return Err(format!("{what:?}.{name}: got {g:?}, want {w:?}")),
        }
    }
    for (i, (g, w)) in got.percentiles.iter().zip(&want.percentiles).enumerate() {
        match (g, w) {
            (None, None) => {}
            (Some(g), Some(w)) if (g - w).abs() <= 0.01 * w.abs() + 1e-9 => {}
            _ => return Err(format!("{what:?}.percentile[{i}]: got {g:?}, want {w:?}")),
        }
    }
    Ok(())
}
