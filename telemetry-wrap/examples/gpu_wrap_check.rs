//! Hardware check of the `gpu` feature on a real NVIDIA GPU: the caller's cost with and without a
//! `GpuSampler` attached (the call path must not wait for NVML), and records of simulated
//! real-time calls completed with energy from the sampler. Prints one JSON object.
//!
//! `cargo run --release -p telemetry-wrap --example gpu_wrap_check --features nvml,sim`
//! Without a driver it prints `{"error": ...}` and exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Instant;

use telemetry_core::{EventBus, EventType, TelemetryRecord};
use telemetry_wrap::{
    GenerateParams, GenerateResult, GpuSampler, InferenceEngine, InstrumentedEngine, Message,
    NvmlBackend, SimulatedEngine, SingleChunk, Usage,
};

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

fn percentiles(mut ns: Vec<u64>) -> serde_json::Value {
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q) as usize];
    serde_json::json!({"p50_ns": at(0.5), "p99_ns": at(0.99), "p999_ns": at(0.999), "max_ns": ns[ns.len() - 1]})
}

fn caller_cost(engine: &InstrumentedEngine<Noop>, calls: usize) -> serde_json::Value {
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

fn main() {
    let backend = match NvmlBackend::new() {
        Ok(b) => b,
        Err(e) => {
            println!("{}", serde_json::json!({ "error": e.to_string() }));
            return;
        }
    };
    let sampler = Arc::new(GpuSampler::new(backend).expect("sampler"));
    let records: Arc<Mutex<Vec<Arc<TelemetryRecord>>>> = Arc::default();
    let bus = Arc::new(EventBus::new());
    let sink = Arc::clone(&records);
    bus.subscribe(EventType::TelemetryRecord, move |e| {
        if let Some(r) = e.as_record() {
            sink.lock().unwrap().push(Arc::clone(r));
        }
    });

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
    let flooded = records.lock().unwrap().len();
    let flood_with_energy = records
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.energy_joules.is_some())
        .count();
    records.lock().unwrap().clear();

    // 2. Real-time simulated calls: energy per call vs the device energy over the whole run.
    let sim = InstrumentedEngine::new(
        SimulatedEngine::new().realtime().with_seed(1),
        Arc::clone(&bus),
    )
    .with_gpu_sampler(Arc::clone(&sampler));
    let params = GenerateParams::new("sim-small-8b").with_max_tokens(12);
    let messages = [Message::user("What does a GPU do while it waits?")];
    let t0 = sampler.now();
    for i in 0..20 {
        if i % 2 == 0 {
            sim.generate(&messages, &params).unwrap();
        } else {
            let _ = sim.stream(&messages, &params).unwrap().count();
        }
    }
    let t1 = sampler.now();
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    sim.flush();
    let device = sampler.energy_between(t0, t1).expect("device energy");
    let recs = records.lock().unwrap().clone();
    let sum_j: f64 = recs.iter().filter_map(|r| r.energy_joules).sum();
    let busy_s: f64 = recs.iter().map(|r| r.latency_seconds).sum();
    let per_call: Vec<_> = recs
        .iter()
        .map(|r| {
            serde_json::json!({
                "streaming": r.is_streaming, "latency_s": r.latency_seconds, "ttft_s": r.ttft,
                "energy_j": r.energy_joules, "prefill_j": r.prefill_energy_joules,
                "decode_j": r.decode_energy_joules, "power_w": r.power_watts,
                "util_pct": r.gpu_utilization_pct, "mem_gb": r.gpu_memory_used_gb,
                "temp_c": r.gpu_temperature_c, "method": r.energy_method.as_str(),
                "vendor": r.energy_vendor, "valid": r.validate().is_ok(),
            })
        })
        .collect();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "devices": sampler.devices().len(),
            "caller_cost_no_sampler": cost_plain,
            "caller_cost_with_sampler": cost_gpu,
            "flood_calls": calls,
            "flood_records_after_flush": flooded,
            "flood_records_with_energy": flood_with_energy,
            "flush_ms": flush_ms,
            "sim_records": recs.len(),
            "sim_sum_call_energy_j": sum_j,
            "sim_busy_seconds": busy_s,
            "device_energy_over_run_j": device.joules_total,
            "device_mean_power_w": device.mean_power_w,
            "device_method": device.method.as_str(),
            "sampler_stats": format!("{:?}", sampler.stats()),
            "per_call": per_call,
        }))
        .unwrap()
    );
}
