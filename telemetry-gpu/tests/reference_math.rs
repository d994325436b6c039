//! The comparison math of the hardware checks (`examples/support/reference.rs`): the directly read
//! counter series, windows on its edges, relative errors and uncovered time. With a scripted mock
//! device read the way `gpu_wrap_check` reads the real one, the sampler agrees with the series.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/support/reference.rs"]
mod reference;

mod common;

use std::time::Duration;

use common::{Rig, assert_close, ms};
use reference::{CounterSeries, ErrorSummary, relative_errors, uncovered, windows_on_edges};
use telemetry_gpu::{Clock, GpuBackend, MockClock, MockDevice, PowerProfile, Timestamp};

#[test]
fn the_series_keeps_changes_interpolates_and_survives_a_reset() {
    let mut s = CounterSeries::default();
    assert!(s.push(0.0, 1_000));
    assert!(!s.push(0.05, 1_000), "no change, no point");
    assert!(s.push(0.1, 11_000));
    assert!(!s.push(0.1, 12_000), "time must move forward");
    assert!(s.push(0.2, 21_000));
    assert!(
        s.push(0.3, 500),
        "a reset continues from the previous total"
    );
    assert_eq!(s.reads(), 5);
    assert_eq!(s.edges(), vec![0.0, 0.1, 0.2, 0.3]);
    assert_close(
        s.energy_between(0.0, 0.2).unwrap(),
        20.0,
        1e-12,
        "two steps",
    );
    assert_close(
        s.energy_between(0.05, 0.15).unwrap(),
        10.0,
        1e-12,
        "interpolated",
    );
    assert_close(
        s.energy_between(0.2, 0.3).unwrap(),
        0.5,
        1e-12,
        "after the reset",
    );
    assert_eq!(s.energy_between(0.2, 0.4), None, "outside the points");
    assert_eq!(s.energy_between(0.2, 0.1), None, "reversed");
    let p = s.power_between_points();
    assert_close(p[0], 100.0, 1e-9, "100 J in 0.1 s");
}

#[test]
fn windows_on_edges_are_consecutive_and_long_enough() {
    let edges: Vec<f64> = (0..=30).map(|i| f64::from(i) * 0.1).collect();
    let w = windows_on_edges(&edges, 1.0, 0.25, 3.0);
    assert_eq!(w.len(), 2);
    assert_close(w[0].0, 0.3, 1e-12, "first edge inside");
    assert_close(w[0].1, 1.3, 1e-12, "a second later");
    assert_close(w[1].0, w[0].1, 1e-12, "consecutive");
    assert!(w.iter().all(|(a, b)| b - a >= 1.0 - 1e-9 && *b <= 3.0));
    assert!(windows_on_edges(&edges, 5.0, 0.0, 3.0).is_empty());
}

#[test]
fn relative_errors_skip_empty_references_and_show_bias() {
    let e = relative_errors(&[(101.0, 100.0), (98.0, 100.0), (5.0, 0.0), (f64::NAN, 1.0)]).unwrap();
    assert_eq!(e.n, 2);
    assert_close(e.max, 0.02, 1e-12, "max");
    assert_close(e.mean_signed, -0.005, 1e-12, "bias");
    assert_eq!(relative_errors(&[(1.0, 0.0)]), None);
}

#[test]
fn uncovered_time_counts_only_what_no_interval_covers() {
    let calls = [(0.0, 1.0), (0.5, 2.0), (2.5, 3.0), (2.9, 3.5)];
    assert_close(
        uncovered(&calls, 0.0, 4.0),
        1.0,
        1e-12,
        "2.0-2.5 and 3.5-4.0",
    );
    assert_close(uncovered(&calls, -1.0, 0.5), 1.0, 1e-12, "before the first");
    assert_eq!(uncovered(&[], 0.0, 2.0), 2.0);
}

/// The check's method on a mock: the counter read directly every 5 ms by a second backend
/// (independent of the sampler's timeline), windows of at least `min_len` seconds on its edges
/// between 0.5 s and 10 s; returns the sampler's errors against the series, after checking the
/// series against the truth the mock knows.
fn sampler_against_direct_counter(device: MockDevice, min_len: f64) -> ErrorSummary {
    let rig = Rig::new(vec![device.clone()]);
    let mut direct = telemetry_gpu::MockBackend::new(vec![device]);
    let clock = MockClock::new();
    let mut series = CounterSeries::default();
    let mut t = 0;
    while t <= 12_000 {
        clock.set(ms(t));
        let r = direct.read(0, &clock).unwrap();
        series.push(clock.now().as_secs_f64(), r.energy_mj.unwrap());
        t += 5;
    }
    rig.tick_to(ms(12_000));
    let windows = windows_on_edges(&series.edges(), min_len, 0.5, 10.0);
    assert!(windows.len() as f64 >= 8.0 / min_len, "{windows:?}");
    let pairs: Vec<(f64, f64)> = windows
        .iter()
        .map(|&(a, b)| {
            let (ta, tb) = (Timestamp::from_secs_f64(a), Timestamp::from_secs_f64(b));
            let reference = series.energy_between(a, b).unwrap();
            // The reference is right: a change is seen at most one 5 ms read after it happened.
            assert_close(reference, rig.truth(0, ta, tb), 0.005, "series vs truth");
            let got = rig.sampler.energy_between(ta, tb).unwrap();
            assert!(got.is_measured());
            (got.joules_total, reference)
        })
        .collect();
    let errors = relative_errors(&pairs).unwrap();
    assert_eq!(errors.n, windows.len());
    errors
}

#[test]
fn in_a_steady_load_the_sampler_matches_the_directly_read_counter() {
    let device = MockDevice::new(PowerProfile::Constant(700.0))
        .counter_refresh(Duration::from_millis(100), Duration::from_millis(37));
    let errors = sampler_against_direct_counter(device, 0.5);
    // Exact once the refresh chain is placed; the first windows, before it is, within 2 %.
    assert!(errors.median < 1e-3, "{errors:?}");
    assert!(errors.max < 0.02, "{errors:?}");
}

#[test]
fn under_a_load_switching_every_700_ms_one_second_windows_are_within_ten_percent() {
    // What gpu_wrap_check measures on hardware, here with a known load: 650 W and 180 W
    // alternating every 700 ms. With the counter read once a second, the sampler spreads each
    // counter step in proportion to the sampled power, whose trapezoid misplaces up to
    // ΔP × 50 ms around each switch; 1 s windows come out up to ~10 % off (median ~8 %) on this
    // mock today. This pins that figure so that a change shows (see docs/benchmarks.md).
    let steps: Vec<(Timestamp, f64)> = (0..20)
        .map(|i| (ms(i * 700), if i % 2 == 0 { 650.0 } else { 180.0 }))
        .collect();
    let device = MockDevice::new(PowerProfile::Steps(steps))
        .counter_refresh(Duration::from_millis(100), Duration::from_millis(37));
    let errors = sampler_against_direct_counter(device, 1.0);
    assert!(errors.max < 0.10, "{errors:?}");
    assert!(errors.mean_signed.abs() < 0.03, "{errors:?}");
}
