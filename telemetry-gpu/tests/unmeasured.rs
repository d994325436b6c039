//! Energy is measured or it is absent, never invented: a lost device, a gap in the readings and a
//! window older than the kept history leave the window unmeasured (issue 11, item 3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Rig, Sink, assert_close, ms, secs};
use telemetry_core::{EnergyMethod, TelemetryRecord};
use telemetry_gpu::{EnergyReading, MockDevice, PowerProfile, SamplerConfig, Window};

fn constant(watts: f64) -> MockDevice {
    MockDevice::new(PowerProfile::Constant(watts))
}

fn assert_unmeasured(r: &EnergyReading, what: &str) {
    assert!(!r.is_measured(), "{what}: {r:?}");
    assert_eq!(r.method, EnergyMethod::None, "{what}");
    assert_eq!(r.joules_total, 0.0, "{what}");
    assert!(r.per_device.is_empty(), "{what}");
    let mut record = TelemetryRecord::builder("m", 1.7e9).build();
    r.apply_to(&mut record);
    assert_eq!(record.energy_joules, None, "{what}");
    assert_eq!(record.energy_method, EnergyMethod::None, "{what}");
}

#[test]
fn a_window_after_the_only_device_vanished_is_unmeasured_and_not_held_back() {
    let rig = Rig::new(vec![constant(300.0)]);
    let sink = Sink::default();
    rig.tick_to(ms(1000));
    rig.backend.lose_device(0);
    rig.tick_to(ms(5000));
    let h = rig.sampler.begin(ms(5000));
    rig.tick_to(ms(6000));
    rig.sampler.end(h, ms(6000), None, sink.callback("lost"));
    // Staleness is judged against now: the lost device holds nothing back, so the window
    // completes at the next tick instead of waiting for the 2 s timeout.
    rig.tick_to(ms(6100));
    let r = sink
        .get("lost")
        .expect("completed without waiting for the timeout");
    assert_eq!(r.samples, 0);
    assert_unmeasured(&r, "window 5-6 s after the loss at 1 s");
    let direct = rig.sampler.energy_between(ms(5000), ms(6000)).unwrap();
    assert_unmeasured(&direct, "energy_between over the loss");
    // Data from before the loss is still measured.
    let before = rig.sampler.energy_between(ms(200), ms(800)).unwrap();
    assert_close(before.joules_total, 180.0, 1e-6, "before the loss");
    assert!(before.is_measured());
}

#[test]
fn flushing_after_the_loss_does_not_invent_energy() {
    let rig = Rig::new(vec![constant(300.0)]);
    let sink = Sink::default();
    rig.tick_to(ms(1000));
    rig.backend.lose_device(0);
    rig.clock.set(ms(5000));
    let h = rig.sampler.begin(ms(5000));
    rig.clock.set(ms(6000));
    rig.sampler.end(h, ms(6000), None, sink.callback("flushed"));
    rig.sampler.flush();
    assert_unmeasured(&sink.get("flushed").unwrap(), "flushed after the loss");
}

#[test]
fn a_gap_in_the_readings_leaves_windows_inside_it_unmeasured() {
    let rig = Rig::new(vec![constant(200.0)]);
    rig.tick_to(ms(1000));
    rig.backend.lose_device(0);
    rig.tick_to(ms(3000));
    rig.backend.restore_device(0);
    rig.tick_to(ms(5000));
    // Readings before 1 s and after 3 s, none in between: nothing to interpolate from.
    let inside = rig.sampler.energy_between(ms(1500), ms(2500)).unwrap();
    assert_unmeasured(&inside, "window inside the gap");
    let across = rig.sampler.energy_between(ms(500), ms(3500)).unwrap();
    assert_unmeasured(&across, "window spanning the gap");
    let after = rig.sampler.energy_between(ms(3500), ms(4500)).unwrap();
    assert_close(
        after.joules_total,
        200.0,
        1e-6,
        "after the device came back",
    );
    assert!(after.is_measured());
}

#[test]
fn a_call_longer_than_the_kept_history_is_not_padded_backwards() {
    let config = SamplerConfig {
        manual: true,
        history: Duration::from_secs(1),
        ..SamplerConfig::default()
    };
    let rig = Rig::with_config(vec![constant(250.0)], config);
    let sink = Sink::default();
    let h = rig.sampler.begin(ms(0));
    rig.tick_to(secs(5.0));
    rig.sampler.end(h, secs(5.0), None, sink.callback("long"));
    let timeline = rig.sampler.timeline();
    assert_eq!(timeline.devices()[0].first_time(), Some(ms(4000)));
    rig.tick_to(secs(7.5));
    assert_unmeasured(
        &sink.get("long").unwrap(),
        "call of 5 s with 1 s of history",
    );
    let old = rig.sampler.energy_between(ms(1000), ms(1500)).unwrap();
    assert_unmeasured(&old, "window older than the history");
    let kept = rig.sampler.energy_between(ms(6600), ms(7000)).unwrap();
    assert_close(kept.joules_total, 100.0, 1e-6, "window inside the history");
}

#[test]
fn a_short_hold_past_the_newest_reading_is_still_measured() {
    let rig = Rig::new(vec![constant(400.0)]);
    rig.tick_to(ms(1000));
    // 50 ms past the newest reading of a live device: power is held, within one gap.
    let r = rig.sampler.energy_between(ms(900), ms(1050)).unwrap();
    assert!(r.is_measured());
    assert_close(r.joules_total, 60.0, 1e-6, "900-1050 ms at 400 W");
    // Far past it (more than the 1 s gap limit) is not.
    let far = rig.sampler.energy_between(ms(900), ms(2500)).unwrap();
    assert_unmeasured(&far, "1.5 s past the newest reading");
}

#[test]
fn a_late_tick_on_a_loaded_machine_is_not_a_lost_device() {
    // Sampling every 5 ms, then the sampler thread is held up for 300 ms (a busy machine): the
    // gap is within the limit (one counter interval, 1 s), so windows across it stay measured.
    let rig = Rig::with_interval(vec![constant(100.0)], Duration::from_millis(5));
    rig.tick_to(ms(100));
    rig.sample_at([ms(400), ms(405), ms(410)]);
    let r = rig.sampler.energy_between(ms(50), ms(410)).unwrap();
    assert!(r.is_measured());
    assert_close(r.joules_total, 36.0, 1e-6, "100 W over 360 ms");
}

#[test]
fn one_lost_device_of_two_is_left_out_of_later_windows() {
    let rig = Rig::new(vec![constant(300.0), constant(100.0)]);
    rig.tick_to(ms(1000));
    rig.backend.lose_device(1);
    rig.tick_to(ms(3000));
    let r = rig.sampler.energy_between(ms(2000), ms(2500)).unwrap();
    assert_eq!(r.per_device.len(), 1);
    assert_eq!(r.per_device[0].index, 0);
    assert_close(r.joules_total, 150.0, 1e-6, "device 0 alone");
}

#[test]
fn attribute_gives_no_joules_to_windows_the_timeline_does_not_cover() {
    let config = SamplerConfig {
        manual: true,
        history: Duration::from_secs(1),
        ..SamplerConfig::default()
    };
    let rig = Rig::with_config(vec![constant(250.0)], config);
    rig.tick_to(secs(7.5));
    assert_eq!(
        rig.sampler.timeline().devices()[0].first_time(),
        Some(ms(6500))
    );
    let windows = [
        Window::new(ms(1000), ms(1500)), // older than the kept history
        Window::new(ms(6200), ms(6800)), // starts before the oldest reading kept
        Window::new(ms(6900), ms(7300)), // inside the history
        Window::new(ms(7300), ms(9000)), // held 1.5 s past the newest reading (limit 1 s)
    ];
    let joules = rig.sampler.attribute(&windows, None).unwrap();
    assert_eq!(joules[0], None, "older than the history");
    assert_eq!(joules[1], None, "partly older than the history");
    assert_eq!(
        joules[3], None,
        "past the newest reading by more than the gap limit"
    );
    let covered = joules[2].expect("inside the history");
    assert_close(covered, 100.0, 1e-6, "250 W for 0.4 s");
    // The completion path's rule, window by window.
    for (w, j) in windows.iter().zip(&joules) {
        let direct = rig.sampler.energy_between(w.start, w.end).unwrap();
        assert_eq!(direct.is_measured(), j.is_some(), "{w:?}");
    }
}

#[test]
fn latest_readings_are_each_devices_newest_and_stay_put_when_it_vanishes() {
    let rig = Rig::new(vec![constant(300.0), constant(150.0)]);
    let first: Vec<_> = rig
        .sampler
        .latest_readings()
        .iter()
        .map(|r| (r.device, r.timestamp))
        .collect();
    assert_eq!(
        first,
        [(0, ms(0)), (1, ms(0))],
        "the reading taken at start"
    );
    rig.tick_to(ms(1000));
    let latest = rig.sampler.latest_readings();
    let seen: Vec<_> = latest
        .iter()
        .map(|r| (r.device, r.timestamp, r.power_w()))
        .collect();
    assert_eq!(seen, [(0, ms(1000), 300.0), (1, ms(1000), 150.0)]);
    // The counter says what the device used so far: 1 s at 300 W.
    assert_close(
        latest[0].energy_mj.unwrap() as f64,
        300_000.0,
        1e-3,
        "device 0 counter",
    );
    rig.backend.lose_device(1);
    rig.tick_to(ms(2000));
    let times: Vec<_> = rig
        .sampler
        .latest_readings()
        .iter()
        .map(|r| (r.device, r.timestamp))
        .collect();
    assert_eq!(
        times,
        [(0, ms(2000)), (1, ms(1000))],
        "a lost device keeps its last reading"
    );
}

#[test]
fn latest_counter_readings_are_each_devices_newest_counter_value_between_counter_reads() {
    let rig = Rig::new(vec![constant(300.0), constant(150.0)]);
    rig.tick_to(ms(1500));
    // Power every 100 ms, the counter once a second: the newest reading has none.
    assert!(
        rig.sampler
            .latest_readings()
            .iter()
            .all(|r| r.timestamp == ms(1500) && r.energy_mj.is_none())
    );
    let counters = rig.sampler.latest_counter_readings();
    let seen: Vec<_> = counters.iter().map(|r| (r.device, r.timestamp)).collect();
    assert_eq!(seen, [(0, ms(1000)), (1, ms(1000))], "the reads at 1 s");
    // What each device used until then: 1 s at 300 W and at 150 W.
    for (r, mj) in counters.iter().zip([300_000.0, 150_000.0]) {
        assert_close(r.energy_mj.unwrap() as f64, mj, 1e-3, "counter");
    }
}
