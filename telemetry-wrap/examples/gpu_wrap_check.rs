//! Hardware check of the `gpu` feature on a real NVIDIA GPU, against an independent reference.
//! Prints one JSON object.
//!
//! 1. The caller's cost with and without a `GpuSampler` attached (the call path must not wait for
//!    NVML).
//! 2. Energy against the device's own counter: a second NVML handle, independent of the sampler,
//!    reads every device's cumulative energy counter (`nvmlDeviceGetTotalEnergyConsumption`)
//!    back to back (a few milliseconds apart) for the whole run, keeping the instants at which it
//!    changes. Meanwhile [`THREADS`] threads issue overlapping real-time simulated calls back to
//!    back for `SECONDS` (default 12, at least 10) through one sampler, while something else
//!    varies the GPU's load (`xtask/gpu/run.sh` runs a matmul load that switches intensity every
//!    few hundred milliseconds). Reported: Σ per-call energy / the counter's delta over the calls'
//!    union (the attribution rule says 1), the sampler's device energy over windows of 0.5, 1 and
//!    2 s whose ends are counter refreshes against the counter's delta over them, and the load
//!    the counter saw (mean power between its refreshes: min, p10, p90, max).
//!
//! `cargo run --release -p telemetry-wrap --example gpu_wrap_check --features nvml,sim [-- SECONDS]`
//!
//! Without a driver (or without an energy counter) it prints one line,
//! `{"ok":false,"kind":...,"error":...}`, and exits with status 1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../telemetry-gpu/examples/support/reference.rs"]
mod reference;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use reference::{CounterSeries, relative_errors, uncovered, windows_on_edges};
use serde_json::{Value, json};
use telemetry_core::{EventBus, EventType, TelemetryRecord};
use telemetry_gpu::{BackendError, GpuBackend, GpuError, SystemClock, Timestamp};
use telemetry_wrap::{
    GenerateParams, GenerateResult, GpuSampler, InferenceEngine, InstrumentedEngine, Message,
    NvmlBackend, SimulatedEngine, SingleChunk, Usage,
};

/// Threads issuing overlapping calls.
const THREADS: u64 = 4;
/// Window lengths compared with the counter, seconds (the counter refreshes every ~100 ms).
const WINDOW_LENGTHS_S: [f64; 3] = [0.5, 1.0, 2.0];
/// Models and output lengths the threads draw from (calls of ~50 ms to ~1.5 s).
const MODELS: [&str; 3] = ["sim-tiny-1b", "sim-small-8b", "sim-medium-32b"];

/// Why the check could not run.
#[derive(Debug)]
enum CheckError {
    /// NVML, the devices or the sampler.
    Gpu(GpuError),
    /// The direct counter reads do not cover the run (the reference is missing).
    Reference(String),
}

impl CheckError {
    fn kind(&self) -> &'static str {
        match self {
            CheckError::Gpu(GpuError::Unavailable { .. }) => "unavailable",
            CheckError::Gpu(GpuError::NoDevices) => "no-devices",
            CheckError::Gpu(GpuError::Backend(BackendError::NotSupported { .. })) => {
                "not-supported"
            }
            CheckError::Gpu(_) => "gpu",
            CheckError::Reference(_) => "reference",
        }
    }
}

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckError::Gpu(e) => write!(f, "{e}"),
            CheckError::Reference(why) => write!(f, "no independent reference: {why}"),
        }
    }
}

impl From<GpuError> for CheckError {
    fn from(e: GpuError) -> Self {
        CheckError::Gpu(e)
    }
}

impl From<BackendError> for CheckError {
    fn from(e: BackendError) -> Self {
        CheckError::Gpu(e.into())
    }
}

struct Noop;

impl InferenceEngine for Noop {
    type Error = std::io::Error;
    type Stream = SingleChunk<std::io::Error>;

    fn engine_id(&self) -> &str {
        "noop"
    }

    fn generate(&self, _: &[Message], _: &GenerateParams) -> Result<GenerateResult, Self::Error> {
        Ok(GenerateResult {
            usage: Usage::new(100, 20),
            ..GenerateResult::default()
        })
    }

    fn stream(&self, m: &[Message], p: &GenerateParams) -> Result<Self::Stream, Self::Error> {
        Ok(Some(Ok(self.generate(m, p)?.into())).into_iter())
    }
}

fn percentiles(mut ns: Vec<u64>) -> Value {
    ns.sort_unstable();
    if ns.is_empty() {
        return Value::Null;
    }
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q) as usize];
    json!({"p50_ns": at(0.5), "p99_ns": at(0.99), "p999_ns": at(0.999), "max_ns": ns[ns.len() - 1]})
}

fn caller_cost(engine: &InstrumentedEngine<Noop>, calls: usize) -> Value {
    let messages = [Message::user("hi")];
    let params = GenerateParams::new("noop-model");
    let mut ns = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        std::hint::black_box(engine.generate(&messages, &params).ok());
        ns.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    percentiles(ns)
}

/// Reads every device's energy counter directly, back to back, until `stop`; counts the changes
/// seen on the first device in `edges`.
fn poll_counters(
    mut backend: NvmlBackend,
    sampler: &GpuSampler,
    devices: &[u32],
    stop: &AtomicBool,
    edges: &AtomicU64,
) -> (Vec<CounterSeries>, u64) {
    let clock = SystemClock::new();
    let mut series = vec![CounterSeries::default(); devices.len()];
    let mut previous: Vec<Option<f64>> = vec![None; devices.len()];
    let mut failures = 0;
    while !stop.load(Ordering::Acquire) {
        for (i, &device) in devices.iter().enumerate() {
            let before = Instant::now();
            let read = backend.read(device, &clock);
            let after = Instant::now();
            let t = sampler
                .timestamp_of(before + (after - before) / 2)
                .as_secs_f64();
            match read.map(|r| r.energy_mj) {
                Ok(Some(mj)) => {
                    // The change happened between the previous read and this one: place it
                    // half-way (within a few milliseconds).
                    let at = previous[i].map_or(t, |p| (p + t) / 2.0);
                    if series[i].push(at, mj) && i == 0 {
                        edges.fetch_add(1, Ordering::AcqRel);
                    }
                    previous[i] = Some(t);
                }
                Ok(None) | Err(_) => failures += 1,
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    (series, failures)
}

/// Calls `engine` back to back until `deadline`, alternating generate and stream over models
/// and output lengths drawn from `seed`; returns each call's `[t0, t1]` on the sampler's clock.
fn issue_calls(
    engine: &InstrumentedEngine<SimulatedEngine>,
    sampler: &GpuSampler,
    seed: u64,
    deadline: Instant,
) -> Vec<(f64, f64)> {
    let messages = [Message::user("What does a GPU do while it waits?")];
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut draw = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut windows = Vec::new();
    let mut i = 0_u64;
    while Instant::now() < deadline {
        let model = MODELS[draw(MODELS.len() as u64) as usize];
        let params = GenerateParams::new(model).with_max_tokens(4 + draw(60));
        let t0 = sampler.now().as_secs_f64();
        if i.is_multiple_of(2) {
            let _ = engine.generate(&messages, &params);
        } else if let Ok(stream) = engine.stream(&messages, &params) {
            let _ = stream.count();
        }
        windows.push((t0, sampler.now().as_secs_f64()));
        i += 1;
    }
    windows
}

fn stats_of(mut v: Vec<f64>) -> Value {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    json!({"min": at(0.0), "p10": at(0.1), "p50": at(0.5), "p90": at(0.9), "max": at(1.0)})
}

fn run(seconds: f64) -> Result<Value, CheckError> {
    let backend = NvmlBackend::new()?;
    // A second handle, independent of the sampler, for the reference.
    let reference_backend = NvmlBackend::new()?;
    let devices: Vec<u32> = backend.devices()?.iter().map(|d| d.index).collect();
    if let Some(d) = backend
        .devices()?
        .iter()
        .find(|d| !d.energy_counter_supported)
    {
        return Err(GpuError::from(BackendError::NotSupported {
            device: d.index,
            what: "total energy counter (the reference)",
        })
        .into());
    }
    let sampler = Arc::new(GpuSampler::new(backend)?);
    let records: Arc<Mutex<Vec<Arc<TelemetryRecord>>>> = Arc::default();
    let bus = Arc::new(EventBus::new());
    let sink = Arc::clone(&records);
    bus.subscribe(EventType::TelemetryRecord, move |e| {
        if let Some(r) = e.as_record() {
            sink.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Arc::clone(r));
        }
    });
    let take_records =
        || std::mem::take(&mut *records.lock().unwrap_or_else(PoisonError::into_inner));

    // 1. Caller cost, no sampler vs sampler attached (NVML sampled every 100 ms meanwhile).
    let calls = 200_000;
    let plain = InstrumentedEngine::new(Noop, Arc::clone(&bus));
    let with_gpu =
        InstrumentedEngine::new(Noop, Arc::clone(&bus)).with_gpu_sampler(Arc::clone(&sampler));
    caller_cost(&plain, 10_000);
    let cost_plain = caller_cost(&plain, calls);
    let cost_gpu = caller_cost(&with_gpu, calls);
    let flush_started = Instant::now();
    with_gpu.flush();
    let flush_ms = flush_started.elapsed().as_secs_f64() * 1e3;
    let flooded = take_records();
    let flood_with_energy = flooded.iter().filter(|r| r.energy_joules.is_some()).count();

    // 2. Overlapping calls under a varying load against the counter read directly.
    let stop = Arc::new(AtomicBool::new(false));
    let edges = Arc::new(AtomicU64::new(0));
    let poller = {
        let (sampler, stop, edges, devices) = (
            Arc::clone(&sampler),
            Arc::clone(&stop),
            Arc::clone(&edges),
            devices.clone(),
        );
        std::thread::Builder::new()
            .name("counter-reference".into())
            .spawn(move || poll_counters(reference_backend, &sampler, &devices, &stop, &edges))
            .map_err(|e| GpuError::ThreadSpawn {
                reason: e.to_string(),
            })?
    };
    std::thread::sleep(Duration::from_millis(1500));
    // Start right after a refresh of the first device's counter.
    let seen = edges.load(Ordering::Acquire);
    let waited = Instant::now();
    while edges.load(Ordering::Acquire) == seen && waited.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_micros(200));
    }
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let workers: Vec<_> = (0..THREADS)
        .map(|k| {
            let engine = InstrumentedEngine::new(
                SimulatedEngine::new().realtime().with_seed(k + 1),
                Arc::clone(&bus),
            )
            .with_gpu_sampler(Arc::clone(&sampler));
            let sampler = Arc::clone(&sampler);
            std::thread::spawn(move || issue_calls(&engine, &sampler, k + 1, deadline))
        })
        .collect();
    let mut intervals: Vec<(f64, f64)> = Vec::new();
    for w in workers {
        intervals.extend(w.join().unwrap_or_default());
    }
    // Let the sampler's counter read and the reference both pass the end, then complete.
    std::thread::sleep(sampler.config().counter_interval + Duration::from_millis(1500));
    sampler.flush();
    stop.store(true, Ordering::Release);
    let (series, reference_failures) = poller
        .join()
        .map_err(|_| CheckError::Reference("the counter-reading thread panicked".into()))?;
    let calls_done = take_records();

    let u0 = intervals.iter().map(|w| w.0).fold(f64::INFINITY, f64::min);
    let u1 = intervals
        .iter()
        .map(|w| w.1)
        .fold(f64::NEG_INFINITY, f64::max);
    if intervals.is_empty() {
        return Err(CheckError::Reference("no call completed".into()));
    }
    let counter_between =
        |a: f64, b: f64| -> Option<f64> { series.iter().map(|s| s.energy_between(a, b)).sum() };
    let reference_j = counter_between(u0, u1).ok_or_else(|| {
        CheckError::Reference(format!(
            "the direct counter reads do not span the calls ({u0:.3} s to {u1:.3} s)"
        ))
    })?;
    let per_call_j: f64 = calls_done.iter().filter_map(|r| r.energy_joules).sum();
    let unmeasured = calls_done
        .iter()
        .filter(|r| r.energy_joules.is_none())
        .count();
    let mut methods = std::collections::BTreeMap::<&str, usize>::new();
    for r in &calls_done {
        *methods.entry(r.energy_method.as_str()).or_default() += 1;
    }
    let sampler_union =
        sampler.energy_between(Timestamp::from_secs_f64(u0), Timestamp::from_secs_f64(u1))?;
    let mut by_length = Vec::new();
    let first_edges = series.first().map(CounterSeries::edges).unwrap_or_default();
    for len in WINDOW_LENGTHS_S {
        let windows = windows_on_edges(&first_edges, len, u0, u1);
        let mut pairs = Vec::with_capacity(windows.len());
        let mut unmeasured_windows = 0;
        for &(a, b) in &windows {
            let got =
                sampler.energy_between(Timestamp::from_secs_f64(a), Timestamp::from_secs_f64(b))?;
            match counter_between(a, b) {
                Some(reference) if got.is_measured() => pairs.push((got.joules_total, reference)),
                _ => unmeasured_windows += 1,
            }
        }
        let errors = relative_errors(&pairs);
        by_length.push(json!({
            "min_length_s": len,
            "windows": windows.len(),
            "unmeasured_or_no_reference": unmeasured_windows,
            "rel_err": errors.map(|e| json!({
                "median": e.median, "p90": e.p90, "max": e.max, "mean_signed": e.mean_signed,
            })),
        }));
    }
    let load_w: Vec<f64> = series
        .first()
        .map(|s| {
            let edges = s.edges();
            s.power_between_points()
                .into_iter()
                .zip(edges.windows(2))
                .filter(|(_, w)| w[0] >= u0 && w[1] <= u1)
                .map(|(p, _)| p)
                .collect()
        })
        .unwrap_or_default();
    let reference_reads: u64 = series.iter().map(CounterSeries::reads).sum();
    Ok(json!({
        "ok": true,
        "devices": devices.len(),
        "caller_cost_no_sampler": cost_plain,
        "caller_cost_with_sampler": cost_gpu,
        "flood_calls": calls,
        "flood_records_after_flush": flooded.len(),
        "flood_records_with_energy": flood_with_energy,
        "flush_ms": flush_ms,
        "reference_run": {
            "threads": THREADS,
            "seconds": u1 - u0,
            "calls": intervals.len(),
            "records": calls_done.len(),
            "records_without_energy": unmeasured,
            "records_by_method": methods,
            "uncovered_s": uncovered(&intervals, u0, u1),
            "counter_delta_j": reference_j,
            "sum_per_call_j": per_call_j,
            "sum_per_call_over_counter": per_call_j / reference_j,
            "sampler_device_j_over_union": sampler_union.joules_total,
            "sampler_device_over_counter": sampler_union.joules_total / reference_j,
            "reference_reads": reference_reads,
            "reference_read_failures": reference_failures,
            "reference_period_ms": 1e3 * (u1 - u0) * devices.len() as f64 / reference_reads.max(1) as f64,
            "load_power_w_between_refreshes": stats_of(load_w),
            "windows": by_length,
        },
        "sampler_stats": format!("{:?}", sampler.stats()),
    }))
}

fn main() {
    let seconds = std::env::args()
        .nth(1)
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite())
        .map_or(12.0, |s| s.max(10.0));
    match run(seconds) {
        Ok(out) => println!(
            "{}",
            serde_json::to_string_pretty(&out).unwrap_or_else(|e| e.to_string())
        ),
        Err(e) => {
            println!(
                "{}",
                json!({ "ok": false, "kind": e.kind(), "error": e.to_string() })
            );
            std::process::exit(1);
        }
    }
}
