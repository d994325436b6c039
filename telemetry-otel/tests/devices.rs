//! Device readings reach an in-process OTLP/HTTP receiver as OpenTelemetry's hardware metrics:
//! `hw.energy` (cumulative, monotonic, J), `hw.power` (gauge, W), `hw.gpu.utilization` (gauge,
//! 1), `hw.gpu.memory.usage` / `.limit` (cumulative up-down sums, By), each with `hw.id`,
//! `hw.type` = `gpu` and `hw.name`, valued as the newest reading of each device.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric, NumberDataPoint, metric::Data, number_data_point,
};
use telemetry_otel::semconv as sc;
use telemetry_otel::testing::{OtlpReceiver, attribute_text};
use telemetry_otel::{DeviceReading, OtlpConfig, OtlpExporter};

const T0: f64 = 1_764_300_000.0;
const WAIT: Duration = Duration::from_secs(10);

fn metric<'a>(metrics: &'a [Metric], name: &str) -> &'a Metric {
    metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

/// The points of `m` by `hw.id`, checking the attributes every `hw.*` point carries.
fn points(m: &Metric) -> Vec<(String, &NumberDataPoint)> {
    let points = match &m.data {
        Some(Data::Gauge(g)) => &g.data_points,
        Some(Data::Sum(s)) => &s.data_points,
        other => panic!("{}: not a gauge or sum: {other:?}", m.name),
    };
    let mut out: Vec<_> = points
        .iter()
        .map(|p| {
            assert_eq!(
                attribute_text(&p.attributes, sc::HW_TYPE).as_deref(),
                Some("gpu"),
                "{}",
                m.name
            );
            (
                attribute_text(&p.attributes, sc::HW_ID).expect("hw.id is required"),
                p,
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn double(p: &NumberDataPoint) -> f64 {
    match p.value {
        Some(number_data_point::Value::AsDouble(v)) => v,
        other => panic!("not a double: {other:?}"),
    }
}

fn int(p: &NumberDataPoint) -> i64 {
    match p.value {
        Some(number_data_point::Value::AsInt(v)) => v,
        other => panic!("not an int: {other:?}"),
    }
}

fn reading(id: &str, t: f64, joules: f64, watts: f64) -> DeviceReading {
    DeviceReading {
        id: id.to_owned(),
        name: "NVIDIA H100 80GB HBM3".to_owned(),
        time_unix_s: T0 + t,
        energy_joules: Some(joules),
        power_watts: Some(watts),
        utilization: Some(0.25),
        memory_used_bytes: Some(40_000_000_000),
        memory_limit_bytes: Some(85_899_345_920),
    }
}

#[test]
fn device_readings_become_hw_metrics_with_the_conventions_names_units_and_attributes() {
    let receiver = OtlpReceiver::start().unwrap();
    let config = OtlpConfig::new(&receiver.endpoint())
        .unwrap()
        .with_metric_interval(Duration::from_secs(3600));
    let exporter = OtlpExporter::start(config).unwrap();
    // Two GPUs; GPU-a read twice (the newest wins), GPU-b without a counter or utilization.
    assert!(exporter.device_reading(reading("GPU-a", 0.0, 1_000.0, 300.0)));
    assert!(exporter.device_reading(reading("GPU-a", 1.0, 1_450.5, 450.0)));
    let mut b = reading("GPU-b", 1.0, 0.0, 75.0);
    b.energy_joules = None;
    b.utilization = None;
    assert!(exporter.device_reading(b));
    exporter.flush(WAIT).unwrap();
    let metrics = receiver.last_metrics();

    let energy = metric(&metrics, sc::HW_ENERGY);
    assert_eq!(
        (energy.unit.as_str(), energy.name.as_str()),
        ("J", "hw.energy")
    );
    let Some(Data::Sum(sum)) = &energy.data else {
        panic!("hw.energy is not a sum")
    };
    assert!(sum.is_monotonic, "hw.energy is a counter");
    assert_eq!(
        sum.aggregation_temporality,
        AggregationTemporality::Cumulative as i32
    );
    let energy = points(energy);
    assert_eq!(energy.len(), 1, "GPU-b has no counter: no hw.energy point");
    let (id, p) = &energy[0];
    assert_eq!(id, "GPU-a");
    assert_eq!(double(p), 1_450.5, "the newest counter value");
    assert_eq!(
        p.start_time_unix_nano, 1_764_300_000_000_000_000,
        "from the first reading"
    );
    assert_eq!(p.time_unix_nano, 1_764_300_001_000_000_000);
    assert_eq!(
        attribute_text(&p.attributes, sc::HW_NAME).as_deref(),
        Some("NVIDIA H100 80GB HBM3")
    );

    let power = metric(&metrics, sc::HW_POWER);
    assert_eq!(power.unit, "W");
    assert!(
        matches!(power.data, Some(Data::Gauge(_))),
        "hw.power is a gauge"
    );
    let power: Vec<_> = points(power)
        .into_iter()
        .map(|(id, p)| (id, double(p)))
        .collect();
    assert_eq!(
        power,
        [("GPU-a".to_owned(), 450.0), ("GPU-b".to_owned(), 75.0)]
    );

    let util = metric(&metrics, sc::HW_GPU_UTILIZATION);
    assert_eq!(util.unit, "1");
    assert!(matches!(util.data, Some(Data::Gauge(_))));
    let util = points(util);
    assert_eq!(util.len(), 1);
    assert_eq!((util[0].0.as_str(), double(util[0].1)), ("GPU-a", 0.25));
    assert_eq!(
        attribute_text(&util[0].1.attributes, sc::HW_GPU_TASK).as_deref(),
        Some("general")
    );

    for (name, bytes) in [
        (sc::HW_GPU_MEMORY_USAGE, 40_000_000_000),
        (sc::HW_GPU_MEMORY_LIMIT, 85_899_345_920),
    ] {
        let m = metric(&metrics, name);
        assert_eq!(m.unit, "By", "{name}");
        let Some(Data::Sum(sum)) = &m.data else {
            panic!("{name} is not a sum")
        };
        assert!(!sum.is_monotonic, "{name} is an up-down counter");
        assert_eq!(
            sum.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        let values: Vec<_> = points(m).into_iter().map(|(id, p)| (id, int(p))).collect();
        assert_eq!(
            values,
            [("GPU-a".to_owned(), bytes), ("GPU-b".to_owned(), bytes)],
            "{name}"
        );
    }
    assert_eq!(
        (
            exporter.stats().device_readings,
            exporter.stats().device_readings_dropped
        ),
        (3, 0)
    );
    // No record was sent: the device series alone make a metrics request, and no span.
    assert_eq!(receiver.received().span_count, 0);
}

#[test]
fn later_exports_carry_the_cumulative_energy_on_and_shutdown_sends_the_last_reading() {
    let receiver = OtlpReceiver::start().unwrap();
    let config = OtlpConfig::new(&receiver.endpoint())
        .unwrap()
        .with_metric_interval(Duration::from_secs(3600));
    let exporter = OtlpExporter::start(config).unwrap();
    exporter.device_reading(reading("GPU-a", 0.0, 100.0, 300.0));
    exporter.flush(WAIT).unwrap();
    // Nothing new: no second request.
    exporter.flush(WAIT).unwrap();
    assert_eq!(receiver.received().metric_requests, 1);
    exporter.device_reading(reading("GPU-a", 5.0, 1_600.0, 310.0));
    exporter.shutdown(WAIT).unwrap();
    assert_eq!(receiver.received().metric_requests, 2);
    let metrics = receiver.last_metrics();
    let energy = points(metric(&metrics, sc::HW_ENERGY));
    assert_eq!(double(energy[0].1), 1_600.0);
    assert_eq!(
        energy[0].1.start_time_unix_nano, 1_764_300_000_000_000_000,
        "the same series: its start did not move"
    );
    // Shut down: readings are refused and counted.
    assert!(!exporter.device_reading(reading("GPU-a", 6.0, 1_700.0, 300.0)));
    assert_eq!(exporter.stats().device_readings_dropped, 1);
}
