//! `EnergyReading::apply_to` fills a `TelemetryRecord` that still validates; an unmeasured
//! reading leaves the record's energy fields empty.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Rig, Sink, assert_close, ms};
use telemetry_core::{EnergyMethod, TelemetryRecord};
use telemetry_gpu::{EnergyReading, MockDevice, PowerProfile};

#[test]
fn a_reading_fills_every_energy_and_gpu_field() {
    let devices = vec![
        MockDevice::new(PowerProfile::Constant(300.0)).state(80, 30_000_000_000, 70),
        MockDevice::new(PowerProfile::Constant(100.0)).state(20, 10_000_000_000, 50),
    ];
    let rig = Rig::new(devices);
    let sink = Sink::default();
    rig.tick_to(ms(1000));
    let h = rig.sampler.begin(ms(1000));
    rig.tick_to(ms(1500));
    rig.sampler
        .end(h, ms(1500), Some(ms(1100)), sink.callback("call"));
    rig.tick_to(ms(2000));
    let reading = sink.get("call").unwrap();
    assert_eq!(
        reading.samples,
        2 * 6,
        "readings at 1.0, 1.1, ..., 1.5 s on two devices"
    );
    assert_close(reading.peak_power_w, 400.0, 1e-9, "peak power");
    assert_close(
        reading.mean_utilization_pct.unwrap(),
        50.0,
        1e-9,
        "mean utilization",
    );
    assert_close(
        reading.peak_utilization_pct.unwrap(),
        80.0,
        1e-9,
        "peak utilization",
    );
    assert_eq!(reading.peak_memory_used_bytes, Some(40_000_000_000));
    assert_eq!(reading.per_device.len(), 2);
    assert_close(reading.per_device[0].joules, 150.0, 1e-6, "device 0");

    let mut record = TelemetryRecord::builder("m", 1_764_300_000.0)
        .tokens(10, 20)
        .latency_seconds(0.5)
        .build();
    reading.apply_to(&mut record);
    assert_close(record.energy_joules.unwrap(), 200.0, 1e-6, "energy");
    assert_close(record.power_watts.unwrap(), 400.0, 1e-6, "power");
    assert_close(
        record.gpu_utilization_pct.unwrap(),
        50.0,
        1e-9,
        "utilization",
    );
    assert_close(record.gpu_memory_used_gb.unwrap(), 40.0, 1e-9, "memory");
    assert_close(record.gpu_temperature_c.unwrap(), 60.0, 1e-9, "temperature");
    assert_close(record.prefill_energy_joules.unwrap(), 40.0, 1e-6, "prefill");
    assert_close(record.decode_energy_joules.unwrap(), 160.0, 1e-6, "decode");
    assert_eq!(record.energy_method, EnergyMethod::Counter);
    assert_eq!(record.energy_vendor, "mock");
    record.validate().unwrap();
}

#[test]
fn an_unmeasured_reading_leaves_the_record_alone() {
    let mut record = TelemetryRecord::builder("m", 1_764_300_000.0).build();
    let before = record.clone();
    let reading = EnergyReading::unmeasured(ms(0), ms(10), "mock");
    assert!(!reading.is_measured());
    reading.apply_to(&mut record);
    assert_eq!(record, before);
}

#[test]
fn a_device_without_utilization_still_gets_its_energy() {
    // A MIG instance answers NotSupported for utilization: the power and counter of the same
    // tick are kept, and only the missing fields stay empty (issue 11, item 3).
    let devices = vec![MockDevice::new(PowerProfile::Constant(300.0)).without_state()];
    let rig = Rig::new(devices);
    let sink = Sink::default();
    rig.tick_to(ms(1000));
    let h = rig.sampler.begin(ms(1000));
    rig.tick_to(ms(1500));
    rig.sampler.end(h, ms(1500), None, sink.callback("mig"));
    rig.tick_to(ms(2500));
    let reading = sink.get("mig").unwrap();
    assert_close(reading.joules_total, 150.0, 1e-6, "energy");
    assert_eq!(reading.method, EnergyMethod::Counter);
    assert_eq!(reading.mean_utilization_pct, None);
    assert_eq!(reading.peak_memory_used_bytes, None);
    assert_eq!(reading.mean_temperature_c, None);
    let mut record = TelemetryRecord::builder("m", 1_764_300_000.0).build();
    reading.apply_to(&mut record);
    assert_close(record.energy_joules.unwrap(), 150.0, 1e-6, "record energy");
    assert_eq!(record.gpu_utilization_pct, None);
    assert_eq!(record.gpu_memory_used_gb, None);
    assert_eq!(record.gpu_temperature_c, None);
    record.validate().unwrap();
}
