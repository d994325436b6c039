//! The energy counter read only every `counter_interval` (power every tick): the schedule is kept,
//! counter steps are spread over time in proportion to sampled power (so energy follows a load
//! step between two counter reads) and the shares sum to the counter's delta, and windows
//! complete at the first counter read past their end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Rig, Sink, assert_close, ms};
use telemetry_core::EnergyMethod;
use telemetry_gpu::{MockDevice, PowerProfile, SamplerConfig};

#[test]
fn the_counter_is_read_only_on_schedule() {
    let rig = Rig::new(vec![
        MockDevice::new(PowerProfile::Constant(500.0)),
        MockDevice::new(PowerProfile::Constant(200.0)),
    ]);
    assert_eq!(
        rig.sampler.config().counter_interval,
        Duration::from_secs(1)
    );
    rig.tick_to(ms(3050));
    // 31 ticks (one at start, then every 100 ms), both devices each; the counter at 0, 1, 2, 3 s.
    let stats = rig.sampler.stats();
    assert_eq!(stats.ticks, 31);
    assert_eq!(stats.counter_ticks, 4);
    assert_eq!(rig.backend.reads(), 62);
    assert_eq!(rig.backend.counter_reads(), 8);
    let with_counter: Vec<u64> = rig.sampler.timeline().devices()[0]
        .samples()
        .filter(|s| s.energy_mj.is_some())
        .map(|s| s.timestamp.as_nanos() / 1_000_000)
        .collect();
    assert_eq!(with_counter, vec![0, 1000, 2000, 3000]);
    // Flush reads the counter whether due or not.
    rig.sampler.flush();
    assert_eq!(rig.backend.counter_reads(), 10);

    // `Duration::ZERO`: every tick.
    let every_tick = SamplerConfig {
        manual: true,
        counter_interval: Duration::ZERO,
        ..SamplerConfig::default()
    };
    let rig = Rig::with_config(
        vec![MockDevice::new(PowerProfile::Constant(1.0))],
        every_tick,
    );
    rig.tick_to(ms(1000));
    assert_eq!(rig.backend.counter_reads(), 11);
    assert_eq!(rig.backend.reads(), 11);
}

#[test]
fn energy_follows_a_load_step_between_counter_reads_and_sums_to_the_counter_delta() {
    // 300 W, then 700 W from 1.45 s: between the counter reads at 1 s and 2 s. The counter
    // refreshes at 0.05 s, 0.15 s, ..., so the reads show the refreshes at 0.95 s and 1.95 s.
    let profile = PowerProfile::Steps(vec![(ms(0), 300.0), (ms(1450), 700.0)]);
    let device = MockDevice::new(profile)
        .counter_refresh(Duration::from_millis(100), Duration::from_millis(50));
    let rig = Rig::new(vec![device]);
    rig.tick_to(ms(3000));
    let counters: Vec<u64> = rig.sampler.timeline().devices()[0]
        .samples()
        .filter_map(|s| s.energy_mj)
        .collect();
    let delta_j = (counters[2] - counters[1]) as f64 / 1000.0;
    assert_close(delta_j, rig.truth(0, ms(950), ms(1950)), 1e-6, "mock");
    // 50 ms windows tiling the counter step sum to its delta and follow the power's shape.
    let mut sum = 0.0;
    for start in (950..1950).step_by(50) {
        let (a, b) = (ms(start), ms(start + 50));
        let r = rig.sampler.energy_between(a, b).unwrap();
        assert_eq!(r.method, EnergyMethod::Counter, "{start} ms");
        sum += r.joules_total;
        let truth = rig.truth(0, a, b);
        // Power is sampled at 1.4 s (300 W) and 1.5 s (700 W) and taken as linear in between.
        let tol = if (1400..1500).contains(&start) {
            0.35
        } else {
            0.005
        };
        assert_close(r.joules_total, truth, tol, &format!("[{start} ms, +50 ms]"));
    }
    assert_close(sum, delta_j, 1e-9, "sum of windows vs counter delta");
    // Spread linearly in time instead, each window would get delta / 20, about 25 J.
    let before = rig.sampler.energy_between(ms(1000), ms(1050)).unwrap();
    let after = rig.sampler.energy_between(ms(1800), ms(1850)).unwrap();
    assert_close(before.joules_total, 15.0, 0.005, "before the step");
    assert_close(after.joules_total, 35.0, 0.005, "after the step");
}

#[test]
fn windows_complete_at_the_first_counter_read_past_their_end() {
    let rig = Rig::new(vec![MockDevice::new(PowerProfile::Constant(600.0))]);
    let sink = Sink::default();
    rig.tick_to(ms(1200));
    let h = rig.sampler.begin(ms(1210));
    rig.sampler.end(h, ms(1234), None, sink.callback("short"));
    rig.tick_to(ms(1900));
    assert!(
        sink.get("short").is_none(),
        "the counter is next read at 2 s"
    );
    rig.tick_to(ms(2000));
    let r = sink
        .get("short")
        .expect("completed at the 2 s counter read");
    assert_eq!(r.method, EnergyMethod::Counter);
    assert_close(r.joules_total, 600.0 * 0.024, 0.001, "24 ms at 600 W");
}
