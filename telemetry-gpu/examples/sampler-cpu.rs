//! Measures the CPU cost of `GpuSampler` at its default configuration (every device every 100 ms,
//! the energy counter every second) with the mock backend: the sampler thread's CPU time over a
//! few seconds of real time, idle and with calls completing. The mock's reads cost next to
//! nothing, so this measures the sampler's own work (timeline, completion, energy); NVML's counter
//! read cost comes on top (see the `gpu-check` example). Then two floods, 300 000 calls one every
//! 10 µs and 2 000 000 one every 0.5 µs: the worst `begin` + `end` while the sampler thread
//! completes them.
//!
//! `cargo run --release -p telemetry-gpu --example sampler-cpu --features mock [-- SECONDS]`
//! prints one JSON object. Linux only (reads `/proc`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/cpu.rs"]
mod cpu;

use std::time::{Duration, Instant};

use telemetry_gpu::{GpuSampler, MockBackend, MockDevice, PowerProfile};

fn run(devices: usize, calls_per_sec: u32, seconds: f64) -> serde_json::Value {
    let backend = MockBackend::new(
        (0..devices)
            .map(|_| MockDevice::new(PowerProfile::Constant(700.0)))
            .collect(),
    );
    let sampler = GpuSampler::new(backend).expect("mock sampler");
    // The thread names itself once it runs.
    let tid = (0..100)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(10));
            cpu::thread_id("gpu-sampler")
        })
        .expect("sampler thread");
    let cpu0 = cpu::thread_cpu_ns(&tid).expect("thread CPU time");
    let process0 = cpu::process_cpu_ns().expect("process CPU time");
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    if calls_per_sec == 0 {
        std::thread::sleep(deadline - Instant::now());
    } else {
        let gap = Duration::from_secs_f64(1.0 / f64::from(calls_per_sec));
        while Instant::now() < deadline {
            let h = sampler.begin(sampler.now());
            std::thread::sleep(gap);
            sampler.end(h, sampler.now(), None, |reading| {
                std::hint::black_box(reading);
            });
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu1 = cpu::thread_cpu_ns(&tid).expect("thread CPU time");
    let process1 = cpu::process_cpu_ns().expect("process CPU time");
    let stats = sampler.stats();
    let cpu_s = (cpu1 - cpu0) as f64 / 1e9;
    let process_s = (process1 - process0) as f64 / 1e9;
    serde_json::json!({
        "devices": devices,
        "calls_per_sec": calls_per_sec,
        "wall_s": wall,
        "sampler_thread_cpu_s": cpu_s,
        "pct_of_one_core": 100.0 * cpu_s / wall,
        "process_cpu_s_10ms_ticks": process_s,
        "ticks": stats.ticks,
        "counter_ticks": stats.counter_ticks,
        "completed_windows": stats.completed_windows,
    })
}

/// `calls` `begin` + `end` pairs on this thread, one every `gap` (spinning in between), while
/// the sampler thread completes them in batches (up to a second's worth at each counter read):
/// the call path's worst wait (it must never wait on completion work).
fn flood(calls: u32, gap: Duration) -> serde_json::Value {
    let backend = MockBackend::single(PowerProfile::Constant(700.0));
    let sampler = GpuSampler::new(backend).expect("mock sampler");
    let mut times = Vec::with_capacity(calls as usize);
    let start = Instant::now();
    for i in 0..calls {
        let next = start + gap * i;
        while Instant::now() < next {
            std::hint::spin_loop();
        }
        let t = Instant::now();
        let h = sampler.begin(sampler.now());
        sampler.end(h, sampler.now(), None, |reading| {
            std::hint::black_box(reading);
        });
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let wall = start.elapsed().as_secs_f64();
    let flush_start = Instant::now();
    sampler.flush();
    let flush_s = flush_start.elapsed().as_secs_f64();
    let stats = sampler.stats();
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    serde_json::json!({
        "calls": calls,
        "gap_ns": gap.as_nanos() as u64,
        "wall_s": wall,
        "begin_end_us": { "p50": at(0.5), "p99": at(0.99), "p999": at(0.999), "max": at(1.0) },
        "calls_over_1ms": times.iter().filter(|&&t| t > 1000.0).count(),
        "flush_s": flush_s,
        "completed_windows": stats.completed_windows,
    })
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let runs: Vec<_> = [(1, 0), (1, 50), (8, 50)]
        .into_iter()
        .map(|(d, c)| run(d, c, seconds))
        .collect();
    let config = telemetry_gpu::SamplerConfig::default();
    let out = serde_json::json!({
        "interval_ms": config.interval.as_millis() as u64,
        "counter_interval_ms": config.counter_interval.as_millis() as u64,
        "runs": runs,
        "flood": [
            flood(300_000, Duration::from_micros(10)),
            flood(2_000_000, Duration::from_nanos(500)),
        ],
    });
    println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
}
