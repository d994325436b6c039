//! Overlapping calls split each slice of device energy: per-call joules sum to the device energy
//! over the union of the calls, equally or by weight; prefill + decode = the call's joules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Rig, Sink, assert_close, ms};
use telemetry_gpu::{
    EnergySource, MockDevice, PowerProfile, Timestamp, Window, attribute, union_energy,
};

fn steps() -> PowerProfile {
    PowerProfile::Steps(vec![(ms(0), 250.0), (ms(1250), 650.0), (ms(2150), 400.0)])
}

#[test]
fn concurrent_calls_sum_to_the_device_energy_over_their_union() {
    let rig = Rig::new(vec![MockDevice::new(steps()), MockDevice::new(steps())]);
    let sink = Sink::default();
    let calls: [(&'static str, u64, u64); 5] = [
        ("a", 500, 1700),
        ("b", 600, 650),
        ("c", 1000, 2600),
        ("d", 1600, 1900),
        ("e", 3000, 3100), // alone
    ];
    rig.tick_to(ms(400));
    let mut handles: Vec<_> = calls
        .iter()
        .map(|&(tag, t0, t1)| (tag, t1, Some(rig.sampler.begin(ms(t0)))))
        .collect();
    handles.sort_by_key(|h| h.1);
    for (tag, t1, handle) in &mut handles {
        rig.tick_to(ms(*t1));
        let handle = handle.take().unwrap();
        rig.sampler.end(handle, ms(*t1), None, sink.callback(tag));
    }
    rig.tick_to(ms(4000));
    assert_eq!(sink.tags(), vec!["b", "a", "d", "c", "e"]);
    let total: f64 = calls
        .iter()
        .map(|(tag, ..)| sink.get(tag).unwrap().joules_total)
        .sum();
    let windows: Vec<Window> = calls
        .iter()
        .map(|&(_, a, b)| Window::new(ms(a), ms(b)))
        .collect();
    let timeline = rig.sampler.timeline();
    let union = union_energy(&timeline, &windows);
    assert_close(total, union, 1e-9, "sum of calls vs union");
    let truth = 2.0 * (rig.truth(0, ms(500), ms(2600)) + rig.truth(0, ms(3000), ms(3100)));
    // The mock's refreshes fall exactly on the counter reads, a lag nothing reveals, so each load
    // step moves up to 50 ms × ΔP per device within its one-second counter step: 2.5 % here.
    assert_close(union, truth, 0.03, "union vs mock truth");
    // A call alone gets the whole device energy of both devices.
    assert_close(
        sink.get("e").unwrap().joules_total,
        2.0 * 40.0,
        0.01,
        "alone",
    );
    // b shares every slice with a: exactly half of the device energy.
    let b_device = timeline.energy_between(ms(600), ms(650));
    assert_close(
        sink.get("b").unwrap().joules_total,
        b_device / 2.0,
        1e-9,
        "b",
    );
    // The same split from the pure function.
    let shares = rig.sampler.attribute(&windows, None).unwrap();
    for ((tag, ..), share) in calls.iter().zip(&shares) {
        let share = share.expect("covered by the timeline");
        assert_close(sink.get(tag).unwrap().joules_total, share, 1e-9, tag);
    }
}

#[test]
fn weights_split_shared_slices_proportionally() {
    let rig = Rig::new(vec![MockDevice::new(PowerProfile::Constant(400.0))]);
    let sink = Sink::default();
    rig.tick_to(ms(200));
    let light = rig.sampler.begin_weighted(ms(200), 1.0).unwrap();
    let heavy = rig.sampler.begin_weighted(ms(200), 3.0).unwrap();
    rig.tick_to(ms(700));
    rig.sampler
        .end(light, ms(700), None, sink.callback("light"));
    rig.sampler
        .end(heavy, ms(700), None, sink.callback("heavy"));
    rig.tick_to(ms(1000));
    assert_close(
        sink.get("light").unwrap().joules_total,
        50.0,
        1e-6,
        "1/4 of 200 J",
    );
    assert_close(
        sink.get("heavy").unwrap().joules_total,
        150.0,
        1e-6,
        "3/4 of 200 J",
    );
}

#[test]
fn prefill_and_decode_split_the_call_at_the_first_token() {
    let rig = Rig::new(vec![MockDevice::new(PowerProfile::Constant(400.0))]);
    let sink = Sink::default();
    rig.tick_to(ms(1000));
    let h = rig.sampler.begin(ms(1000));
    let other = rig.sampler.begin(ms(1400));
    rig.tick_to(ms(1800));
    rig.sampler
        .end(other, ms(1800), None, sink.callback("other"));
    rig.sampler
        .end(h, ms(1800), Some(ms(1250)), sink.callback("call"));
    rig.tick_to(ms(2500));
    let r = sink.get("call").unwrap();
    let (prefill, decode) = (r.prefill_joules.unwrap(), r.decode_joules.unwrap());
    assert_close(prefill + decode, r.joules_total, 1e-9, "prefill + decode");
    // Prefill ran alone; decode shared [1.4 s, 1.8 s] with the other call.
    assert_close(prefill, 400.0 * 0.25, 1e-6, "prefill");
    assert_close(decode, 400.0 * 0.15 + 400.0 * 0.4 / 2.0, 1e-6, "decode");
    assert_eq!(sink.get("other").unwrap().prefill_joules, None);
}

#[test]
fn attribute_checks_its_arguments() {
    let flat = |a: Timestamp, b: Timestamp| b.as_secs_f64() - a.as_secs_f64();
    let w = [Window::new(ms(0), ms(10)), Window::new(ms(5), ms(6))];
    assert!(attribute(&flat, &w, Some(&[1.0])).is_err());
    assert!(attribute(&flat, &w, Some(&[1.0, f64::NAN])).is_err());
    assert!(attribute(&flat, &[Window::new(ms(3), ms(2))], None).is_err());
    let zero = attribute(&flat, &[Window::new(ms(3), ms(3))], None).unwrap();
    assert_eq!(zero, vec![0.0]);
    let _ = flat.energy_between(ms(0), ms(1));
}
