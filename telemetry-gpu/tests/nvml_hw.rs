//! The NVML backend: clean failure without a driver, and (ignored here) real-hardware checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use telemetry_gpu::{GpuBackend, GpuError, GpuSampler, NvmlBackend, SamplerConfig, SystemClock};

#[test]
fn new_returns_unavailable_without_a_driver_or_works_with_one() {
    match NvmlBackend::new() {
        Err(GpuError::Unavailable { reason }) => assert!(!reason.is_empty()),
        Err(GpuError::NoDevices) => {}
        Ok(backend) => assert!(!backend.devices().unwrap().is_empty()),
        Err(other) => panic!("unexpected error kind: {other}"),
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU + driver"]
fn reads_every_device() {
    let mut backend = NvmlBackend::new().unwrap();
    let clock = SystemClock::new();
    for d in backend.devices().unwrap() {
        let r = backend.read(d.index, &clock).unwrap();
        assert!(r.power_mw > 0, "device {} reports power", d.index);
        assert_eq!(r.energy_mj.is_some(), d.energy_counter_supported);
        assert!(r.temperature_c.is_none_or(|t| t > 0 && t < 120));
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU + driver"]
fn the_sampler_measures_a_window_on_real_hardware() {
    let backend = NvmlBackend::new().unwrap();
    let sampler = GpuSampler::with_config(
        backend,
        Arc::new(SystemClock::new()),
        SamplerConfig::default(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let t0 = sampler.now();
    let h = sampler.begin(t0);
    std::thread::sleep(Duration::from_millis(300));
    let rx = sampler.end_to_channel(h, sampler.now(), None);
    let r = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(r.is_measured());
    assert!(r.joules_total > 0.0);
    assert!(r.mean_power_w > 1.0 && r.mean_power_w < 5000.0);
    assert_eq!(r.vendor, "nvidia");
}
