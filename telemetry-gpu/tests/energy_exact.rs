//! Exact joules from the mock backend: constant and step profiles, windows shorter than the
//! counter's refresh period, counter wraps and resets, devices without a counter.

mod common;

use std::time::Duration;

use common::{Rig, assert_close, ms, secs};
use telemetry_core::EnergyMethod;
use telemetry_gpu::{MockDevice, PowerProfile};

fn h100(profile: PowerProfile) -> MockDevice {
    MockDevice::new(profile)
}

#[test]
fn constant_700w_gives_35j_for_any_50ms_window() {
    for phase_ms in [0, 37, 99] {
        let rig = Rig::new(vec![h100(PowerProfile::Constant(700.0)).counter_refresh(
            Duration::from_millis(100),
            Duration::from_millis(phase_ms),
        )]);
        rig.tick_to(secs(3.0));
        for offset in (0..400).step_by(7) {
            let t0 = ms(1000 + offset);
            let r = rig
                .sampler
                .energy_between(t0, t0 + Duration::from_millis(50))
                .unwrap();
            assert_close(
                r.joules_total,
                35.0,
                0.01,
                &format!("phase {phase_ms} offset {offset}"),
            );
            assert_eq!(r.method, EnergyMethod::Counter);
            assert_close(r.mean_power_w, 700.0, 0.01, "mean power");
        }
    }
}

#[test]
fn irregular_sampling_still_places_refreshes_from_power() {
    let rig = Rig::new(vec![h100(PowerProfile::Constant(700.0))]);
    // Jittered ticks: 70..130 ms apart, and one 450 ms stall.
    let mut t = 0;
    let mut times = Vec::new();
    for i in 0..40_u64 {
        t += if i == 20 { 450 } else { 70 + (i * 37) % 61 };
        times.push(ms(t));
    }
    rig.sample_at(times);
    for offset in (0..(t - 600)).step_by(23) {
        let t0 = ms(300 + offset);
        let r = rig
            .sampler
            .energy_between(t0, t0 + Duration::from_millis(50))
            .unwrap();
        assert_close(r.joules_total, 35.0, 0.05, &format!("offset {offset}"));
    }
}

#[test]
fn step_profile_is_exact_away_from_the_step_and_in_total() {
    // 300 W, then 700 W from 1.05 s; the counter refreshes at 0.05 s, 0.15 s, ... so the step is
    // at a refresh and the refreshes sit mid-way between samples, where a new run places them.
    let profile = PowerProfile::Steps(vec![(ms(0), 300.0), (ms(1050), 700.0)]);
    let rig =
        Rig::new(vec![h100(profile).counter_refresh(
            Duration::from_millis(100),
            Duration::from_millis(50),
        )]);
    rig.tick_to(secs(3.0));
    let cases = [
        (0.25, 0.30, 15.0),
        (2.0, 2.05, 35.0),
        (0.55, 1.55, 150.0 + 350.0),
    ];
    for (a, b, expected) in cases {
        let r = rig.sampler.energy_between(secs(a), secs(b)).unwrap();
        assert_close(r.joules_total, expected, 0.002, &format!("[{a}, {b}]"));
        assert_close(
            r.joules_total,
            rig.truth(0, secs(a), secs(b)),
            0.002,
            "vs mock truth",
        );
    }
    // A window straddling the step gets a share of the surrounding steps, not 0 J or a whole one.
    let r = rig.sampler.energy_between(ms(1000), ms(1100)).unwrap();
    assert_close(
        r.joules_total,
        rig.truth(0, ms(1000), ms(1100)),
        0.15,
        "straddling",
    );
}

#[test]
fn an_unknown_refresh_phase_shifts_energy_by_at_most_half_a_sampling_interval() {
    // Refreshes exactly at the sample instants: nothing in regular sampling reveals the phase, so
    // refreshes are placed mid-interval, 50 ms early; at a load step that moves at most
    // (700 W − 300 W) × 50 ms = 20 J between neighbouring windows.
    let profile = PowerProfile::Steps(vec![(ms(0), 300.0), (ms(1050), 700.0)]);
    let rig = Rig::new(vec![h100(profile)]);
    rig.tick_to(secs(3.0));
    for (a, b) in [(0.55, 1.55), (0.9, 1.2), (1.0, 1.1)] {
        let r = rig.sampler.energy_between(secs(a), secs(b)).unwrap();
        let truth = rig.truth(0, secs(a), secs(b));
        assert!(
            (r.joules_total - truth).abs() <= 20.0 + 1e-6,
            "[{a}, {b}]: {} vs {truth}",
            r.joules_total
        );
    }
    // The counter is read once a second, so the misplaced refresh shifts energy within the
    // counter step that contains the load step (the same 20 J bound); windows in later counter
    // steps are exact.
    let same_step = rig.sampler.energy_between(secs(1.3), secs(1.9)).unwrap();
    assert!((same_step.joules_total - 700.0 * 0.6).abs() <= 20.0 + 1e-6);
    let steady = rig.sampler.energy_between(secs(2.1), secs(2.8)).unwrap();
    assert_close(steady.joules_total, 700.0 * 0.7, 0.002, "after the step");
}

#[test]
fn step_profile_with_fast_sampling_is_close_everywhere() {
    let profile = PowerProfile::Steps(vec![(ms(0), 300.0), (ms(1020), 700.0), (ms(1610), 150.0)]);
    // The counter every 20 ms tick, then every second (the default).
    for counter_ms in [0, 1000] {
        let config = telemetry_gpu::SamplerConfig {
            interval: Duration::from_millis(20),
            counter_interval: Duration::from_millis(counter_ms),
            manual: true,
            ..Default::default()
        };
        let rig = Rig::with_config(vec![h100(profile.clone())], config);
        rig.tick_to(secs(3.0));
        for start in (500..2400).step_by(50) {
            let (a, b) = (ms(start), ms(start + 50));
            let r = rig.sampler.energy_between(a, b).unwrap();
            let truth = rig.truth(0, a, b);
            // Near a step the refresh grid (100 ms) still blurs up to one step; elsewhere exact,
            // except that with a counter step of a second, an unknown refresh lag at a load step
            // (up to 50 ms × 400 W here) is spread over that whole counter step, in proportion to
            // power: a few percent.
            let near_step = [1020, 1610]
                .iter()
                .any(|&s| start + 150 > s && start < s + 150);
            let same_counter_step = counter_ms > 0 && (950..1950).contains(&start);
            let tol = match (near_step, same_counter_step) {
                (true, _) => 0.6,
                (false, true) => 0.05,
                (false, false) => 0.01,
            };
            let what = format!("counter every {counter_ms} ms: [{start} ms, +50 ms]");
            assert_close(r.joules_total, truth, tol, &what);
        }
        // Over the whole, the same lag moves at most 50 ms × ΔP at each end: within 2 % here.
        let r = rig.sampler.energy_between(ms(400), ms(2500)).unwrap();
        let tol = if counter_ms > 0 { 0.02 } else { 0.01 };
        assert_close(
            r.joules_total,
            rig.truth(0, ms(400), ms(2500)),
            tol,
            "whole",
        );
    }
}

#[test]
fn windows_shorter_than_refresh_get_their_share() {
    let rig = Rig::new(vec![h100(PowerProfile::Constant(400.0))]);
    rig.tick_to(secs(2.0));
    for len_ms in [1, 5, 20, 50, 95] {
        let t0 = ms(1003);
        let r = rig
            .sampler
            .energy_between(t0, t0 + Duration::from_millis(len_ms))
            .unwrap();
        assert_close(
            r.joules_total,
            0.4 * len_ms as f64,
            0.01,
            &format!("{len_ms} ms"),
        );
        assert_eq!(r.samples, 0, "no reading inside a {len_ms} ms window");
    }
}

#[test]
fn counter_wrap_and_reset_never_give_negative_or_wrong_energy() {
    let devices = vec![
        // Wraps every ~1.43 s at 700 W.
        h100(PowerProfile::Constant(700.0)).wrap_counter_at(1_000_000),
        h100(PowerProfile::Constant(700.0))
            .counter_start_mj(9_000_000_000_000)
            .reset_counter_at(ms(1230)),
    ];
    let rig = Rig::new(devices);
    rig.tick_to(secs(4.0));
    for d in rig.sampler.timeline().devices() {
        let samples: Vec<_> = d.samples().filter_map(|s| s.energy_mj).collect();
        assert!(
            samples.windows(2).any(|w| w[1] < w[0]),
            "device {} went backwards",
            d.index()
        );
    }
    for start in (200..3500).step_by(31) {
        let (a, b) = (ms(start), ms(start + 120));
        let r = rig.sampler.energy_between(a, b).unwrap();
        for dev in &r.per_device {
            assert!(dev.joules >= 0.0);
            assert_close(
                dev.joules,
                700.0 * 0.12,
                0.01,
                &format!("device {} at {start}", dev.index),
            );
        }
    }
    // Across the wrap the slice comes from power integration.
    let across = rig.sampler.energy_between(ms(1350), ms(1500)).unwrap();
    assert_eq!(across.per_device[0].method, EnergyMethod::PowerIntegration);
}

#[test]
fn unsupported_counter_integrates_power_exactly_for_linear_profiles() {
    let trace = PowerProfile::Trace(vec![(ms(0), 100.0), (ms(1000), 500.0), (ms(2000), 200.0)]);
    let rig = Rig::new(vec![h100(trace).without_counter()]);
    assert!(!rig.sampler.devices()[0].energy_counter_supported);
    rig.tick_to(secs(2.5));
    for (a, b) in [(0.0, 2.0), (0.13, 0.18), (0.95, 1.07), (1.5, 2.4)] {
        let r = rig.sampler.energy_between(secs(a), secs(b)).unwrap();
        assert_close(
            r.joules_total,
            rig.truth(0, secs(a), secs(b)),
            1e-6,
            &format!("[{a}, {b}]"),
        );
        assert_eq!(r.method, EnergyMethod::PowerIntegration);
    }
}
