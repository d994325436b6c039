//! Measures NVML on a real GPU and prints one JSON object: the devices, the cost of each NVML read,
//! how often the energy counter and power refresh, the sampler's CPU cost at its default
//! configuration (power every 100 ms, the energy counter every `counter_interval`, 1 s), and the
//! energy the sampler gives 20/50/100/200 ms windows of a steady load compared with the
//! long-window reference.
//!
//! `cargo run --release -p telemetry-gpu --example gpu-check --features nvml [-- SECONDS]`
//! (or `cargo xtask gpu-check`). Run a steady load on the GPUs meanwhile; see docs/benchmarks.md.
//! Without a driver it prints `{"ok": false, "error": ...}` and exits with status 1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/cpu.rs"]
mod cpu;

use std::time::{Duration, Instant};

use nvml_wrapper::Device;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::sys_exports::field_id::NVML_FI_DEV_POWER_INSTANT;
use serde_json::{Value, json};
use telemetry_gpu::{GpuBackend, GpuError, GpuSampler, NvmlBackend, SystemClock, Timestamp};

const WINDOW_LENGTHS_MS: [u64; 4] = [20, 50, 100, 200];
const WINDOWS_PER_LENGTH: u64 = 40;

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// p50 / p99 of `f` over `n` calls, microseconds.
fn cost_us(n: usize, mut f: impl FnMut() -> bool) -> Value {
    let mut times = Vec::with_capacity(n);
    let mut failures = 0;
    for _ in 0..n {
        let start = Instant::now();
        if !f() {
            failures += 1;
        }
        times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    let times = sorted(times);
    json!({ "p50": percentile(&times, 0.5), "p99": percentile(&times, 0.99), "failures": failures })
}

fn instant_power(device: &Device<'_>) -> Option<String> {
    let values = device
        .field_values_for(&[FieldId(NVML_FI_DEV_POWER_INSTANT)])
        .ok()?;
    let value = values.into_iter().next()?.ok()?.value.ok()?;
    Some(format!("{value:?}"))
}

/// Median time between changes of `read()`'s value over `span`, milliseconds.
fn refresh_period_ms<T: PartialEq>(
    span: Duration,
    pause: Duration,
    mut read: impl FnMut() -> Option<T>,
) -> Value {
    let start = Instant::now();
    let mut last: Option<T> = None;
    let mut changes: Vec<Instant> = Vec::new();
    while start.elapsed() < span {
        let value = read();
        let now = Instant::now();
        if value.is_some() && last.is_some() && value != last {
            changes.push(now);
        }
        if value.is_some() {
            last = value;
        }
        std::thread::sleep(pause);
    }
    let gaps = sorted(
        changes
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3)
            .collect(),
    );
    json!({ "median": percentile(&gaps, 0.5), "changes": changes.len() })
}

fn device_costs(backend: &mut NvmlBackend) -> Value {
    let clock = SystemClock::new();
    let infos = backend.devices().unwrap_or_default();
    let mut out = Vec::new();
    for info in &infos {
        let nvml = backend.nvml();
        let d = nvml.device_by_index(info.index).expect("device handle");
        let costs = json!({
            "total_energy_consumption": cost_us(200, || d.total_energy_consumption().is_ok()),
            "power_usage": cost_us(200, || d.power_usage().is_ok()),
            "power_instant_field": cost_us(200, || instant_power(&d).is_some()),
            "utilization_rates": cost_us(200, || d.utilization_rates().is_ok()),
            "temperature": cost_us(200, || d.temperature(TemperatureSensor::Gpu).is_ok()),
            "memory_info": cost_us(200, || d.memory_info().is_ok()),
        });
        let refresh = json!({
            "energy_counter": refresh_period_ms(Duration::from_millis(1500), Duration::ZERO, || d.total_energy_consumption().ok()),
            "power_usage": refresh_period_ms(Duration::from_millis(1500), Duration::from_millis(1), || d.power_usage().ok()),
            "power_instant_field": refresh_period_ms(Duration::from_millis(1500), Duration::from_millis(1), || instant_power(&d)),
        });
        let index = info.index;
        let full = cost_us(100, || backend.read(index, &clock).is_ok());
        let light = cost_us(100, || backend.read_without_counter(index, &clock).is_ok());
        out.push(json!({
            "index": index,
            "read_cost_us": costs,
            "backend_read_us": full,
            "backend_read_without_counter_us": light,
            "refresh_period_ms": refresh,
        }));
    }
    Value::Array(out)
}

fn windows(sampler: &GpuSampler, reference_start: Timestamp, reference_s: f64) -> Value {
    let reference_end = reference_start + Duration::from_secs_f64(reference_s);
    let reference = sampler
        .energy_between(reference_start, reference_end)
        .expect("reference reading");
    let mean_w = reference.joules_total / reference_s;
    let mut by_length = Vec::new();
    for len_ms in WINDOW_LENGTHS_MS {
        let mut errs = Vec::new();
        for i in 0..WINDOWS_PER_LENGTH {
            let t0 = reference_start + Duration::from_secs_f64(0.5 + i as f64 * 0.2317);
            let t1 = t0 + Duration::from_millis(len_ms);
            let expected = mean_w * len_ms as f64 / 1000.0;
            let got = sampler.energy_between(t0, t1).expect("window reading");
            errs.push((got.joules_total - expected).abs() / expected);
        }
        let errs = sorted(errs);
        by_length.push(json!({
            "length_ms": len_ms,
            "windows": WINDOWS_PER_LENGTH,
            "expected_j": mean_w * len_ms as f64 / 1000.0,
            "sampler_rel_err": { "median": percentile(&errs, 0.5), "p90": percentile(&errs, 0.9), "max": percentile(&errs, 1.0) },
        }));
    }
    json!({
        "reference_s": reference_s,
        "reference_joules": reference.joules_total,
        "reference_mean_power_w": mean_w,
        "reference_method": reference.method.as_str(),
        "by_length": by_length,
    })
}

fn fail(error: &GpuError) -> ! {
    let kind = match error {
        GpuError::Unavailable { .. } => "unavailable",
        GpuError::NoDevices => "no-devices",
        _ => "error",
    };
    println!(
        "{}",
        json!({ "ok": false, "kind": kind, "error": error.to_string() })
    );
    std::process::exit(1);
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse::<f64>().ok())
        .map_or(12.0, |s: f64| s.max(3.0));
    let mut backend = NvmlBackend::new().unwrap_or_else(|e| fail(&e));
    let driver = backend.nvml().sys_driver_version().unwrap_or_default();
    let devices: Vec<Value> = backend
        .devices()
        .unwrap_or_else(|e| fail(&e.into()))
        .iter()
        .map(|d| {
            json!({
                "index": d.index, "name": d.name, "uuid": d.uuid,
                "memory_total_bytes": d.memory_total_bytes,
                "energy_counter_supported": d.energy_counter_supported,
            })
        })
        .collect();
    let per_device = device_costs(&mut backend);

    let sampler = GpuSampler::new(backend).unwrap_or_else(|e| fail(&e));
    let tid = (0..100).find_map(|_| {
        std::thread::sleep(Duration::from_millis(10));
        cpu::thread_id("gpu-sampler")
    });
    std::thread::sleep(Duration::from_millis(500));
    let cpu0 = tid.as_deref().and_then(cpu::thread_cpu_ns);
    let started = Instant::now();
    let reference_start = sampler.now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let wall = started.elapsed().as_secs_f64();
    let cpu1 = tid.as_deref().and_then(cpu::thread_cpu_ns);
    // Let a counter read show a refresh past the end before reading windows.
    std::thread::sleep(sampler.config().counter_interval + Duration::from_millis(500));
    let cpu_s = cpu0.zip(cpu1).map(|(a, b)| (b - a) as f64 / 1e9);
    let stats = sampler.stats();
    let out = json!({
        "ok": true,
        "driver": driver,
        "devices": devices,
        "per_device": per_device,
        "sampler": {
            "interval_ms": sampler.config().interval.as_millis() as u64,
            "counter_interval_ms": sampler.config().counter_interval.as_millis() as u64,
            "counter_ticks": stats.counter_ticks,
            "wall_s": wall,
            "thread_cpu_s": cpu_s,
            "pct_of_one_core": cpu_s.map(|c| 100.0 * c / wall),
            "ticks": stats.ticks,
            "failed_reads": stats.failed_reads,
        },
        "windows": windows(&sampler, reference_start, seconds - 1.0),
    });
    println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
}
