//! Device-level series: the newest [`DeviceReading`] of each GPU, exported as OpenTelemetry's
//! hardware metrics (`hw.energy`, `hw.power`, `hw.gpu.utilization`, `hw.gpu.memory.*`).

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, Sum, metric, number_data_point,
};

use crate::semconv as sc;
use crate::span::{kv_str, nanos};

/// At most this many devices are tracked; readings of further ones are ignored (memory stays
/// bounded whatever ids a caller sends).
const MAX_DEVICES: usize = 1024;

/// One reading of one GPU, for the device-level series (see the [crate] docs): what the device
/// itself did, as opposed to the energy attributed to calls. Give it to
/// [`OtlpExporter::device_reading`](crate::OtlpExporter::device_reading); the exporter keeps the
/// newest reading of each device and sends it with the metrics.
///
/// Values that are not finite or are negative are ignored, as if absent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeviceReading {
    /// `hw.id`: identifies the device on its host (for NVIDIA GPUs, the UUID). Required: a
    /// reading with an empty id is ignored.
    pub id: String,
    /// `hw.name`: the product name (`NVIDIA H100 80GB HBM3`); omitted when empty.
    pub name: String,
    /// When the device was read, seconds since the Unix epoch.
    pub time_unix_s: f64,
    /// The device's cumulative energy counter, joules (NVML: since the driver was loaded);
    /// `None` where the device has none.
    pub energy_joules: Option<f64>,
    /// Power the device draws, watts.
    pub power_watts: Option<f64>,
    /// Fraction of time the device was busy, 0 to 1.
    pub utilization: Option<f64>,
    /// Device memory in use, bytes.
    pub memory_used_bytes: Option<u64>,
    /// Size of the device memory, bytes.
    pub memory_limit_bytes: Option<u64>,
}

/// A value worth sending: finite and not negative.
fn usable(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite() && *v >= 0.0)
}

#[derive(Debug)]
struct Device {
    latest: DeviceReading,
    time_ns: u64,
    /// The last energy counter value and when it was read (kept across readings without one,
    /// so that the cumulative series stays continuous).
    energy: Option<(f64, u64)>,
    /// Start of the `hw.energy` series: the first reading with a counter, moved to the reading
    /// after a counter reset (a value lower than the last one).
    energy_start_ns: u64,
    /// Start of the memory series: the device's first reading.
    start_ns: u64,
}

/// The newest reading of every device seen.
#[derive(Debug, Default)]
pub(crate) struct Devices {
    by_id: BTreeMap<String, Device>,
}

impl Devices {
    /// Keeps `reading` when it is its device's newest; `false` when it was ignored (no id, no
    /// usable time, older than the kept one, or one device too many).
    pub(crate) fn observe(&mut self, mut reading: DeviceReading) -> bool {
        if reading.id.is_empty() || usable(Some(reading.time_unix_s)).is_none() {
            return false;
        }
        reading.energy_joules = usable(reading.energy_joules);
        reading.power_watts = usable(reading.power_watts);
        reading.utilization = usable(reading.utilization);
        let time_ns = nanos(reading.time_unix_s);
        if !self.by_id.contains_key(&reading.id) && self.by_id.len() >= MAX_DEVICES {
            return false;
        }
        let device = self
            .by_id
            .entry(reading.id.clone())
            .or_insert_with(|| Device {
                latest: DeviceReading::default(),
                time_ns,
                energy: None,
                energy_start_ns: time_ns,
                start_ns: time_ns,
            });
        if time_ns < device.time_ns {
            return false;
        }
        if let Some(joules) = reading.energy_joules {
            match device.energy {
                Some((last, _)) if joules >= last => {}
                // First counter value, or the counter went back (reset, wrap): a new series.
                _ => device.energy_start_ns = time_ns,
            }
            device.energy = Some((joules, time_ns));
        }
        device.time_ns = time_ns;
        device.latest = reading;
        true
    }

    /// Appends the device-level metrics (those with at least one data point) to `out`.
    pub(crate) fn metrics(&self, out: &mut Vec<Metric>) {
        if self.by_id.is_empty() {
            return;
        }
        let point =
            |d: &Device, start: u64, time: u64, value: number_data_point::Value| NumberDataPoint {
                attributes: attributes(&d.latest),
                start_time_unix_nano: start,
                time_unix_nano: time,
                value: Some(value),
                ..Default::default()
            };
        let double = number_data_point::Value::AsDouble;
        let int =
            |bytes: u64| number_data_point::Value::AsInt(i64::try_from(bytes).unwrap_or(i64::MAX));
        let devices = || self.by_id.values();

        let energy = devices()
            .filter_map(|d| {
                let (joules, time) = d.energy?;
                Some(point(d, d.energy_start_ns, time, double(joules)))
            })
            .collect();
        out.extend(sum(
            sc::HW_ENERGY,
            "Energy consumed by the component.",
            "J",
            energy,
            true,
        ));

        let power = devices()
            .filter_map(|d| Some(point(d, 0, d.time_ns, double(d.latest.power_watts?))))
            .collect();
        out.extend(gauge(
            sc::HW_POWER,
            "Instantaneous power consumed by the component.",
            "W",
            power,
        ));

        let utilization = devices()
            .filter_map(|d| {
                let mut p = point(d, 0, d.time_ns, double(d.latest.utilization?));
                p.attributes
                    .push(kv_str(sc::HW_GPU_TASK, sc::HW_GPU_TASK_GENERAL));
                Some(p)
            })
            .collect();
        out.extend(gauge(
            sc::HW_GPU_UTILIZATION,
            "Fraction of time spent in a specific task.",
            "1",
            utilization,
        ));

        let used = devices()
            .filter_map(|d| {
                Some(point(
                    d,
                    d.start_ns,
                    d.time_ns,
                    int(d.latest.memory_used_bytes?),
                ))
            })
            .collect();
        out.extend(sum(
            sc::HW_GPU_MEMORY_USAGE,
            "GPU memory used.",
            "By",
            used,
            false,
        ));

        let limit = devices()
            .filter_map(|d| {
                Some(point(
                    d,
                    d.start_ns,
                    d.time_ns,
                    int(d.latest.memory_limit_bytes?),
                ))
            })
            .collect();
        out.extend(sum(
            sc::HW_GPU_MEMORY_LIMIT,
            "Size of the GPU memory.",
            "By",
            limit,
            false,
        ));
    }
}

/// `hw.id`, `hw.type` = `gpu`, and `hw.name` when known.
fn attributes(r: &DeviceReading) -> Vec<KeyValue> {
    let mut a = vec![
        kv_str(sc::HW_ID, &r.id),
        kv_str(sc::HW_TYPE, sc::HW_TYPE_GPU),
    ];
    if !r.name.is_empty() {
        a.push(kv_str(sc::HW_NAME, &r.name));
    }
    a
}

fn gauge(
    name: &str,
    description: &str,
    unit: &str,
    data_points: Vec<NumberDataPoint>,
) -> Option<Metric> {
    (!data_points.is_empty()).then(|| Metric {
        name: name.to_owned(),
        description: description.to_owned(),
        unit: unit.to_owned(),
        data: Some(metric::Data::Gauge(Gauge { data_points })),
        ..Default::default()
    })
}

/// A cumulative sum: a counter when `monotonic`, else an up-down counter; `None` without
/// points. (The GenAI energy counter is built with it too.)
pub(crate) fn sum(
    name: &str,
    description: &str,
    unit: &str,
    data_points: Vec<NumberDataPoint>,
    monotonic: bool,
) -> Option<Metric> {
    (!data_points.is_empty()).then(|| Metric {
        name: name.to_owned(),
        description: description.to_owned(),
        unit: unit.to_owned(),
        data: Some(metric::Data::Sum(Sum {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: monotonic,
        })),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(id: &str, t: f64, joules: Option<f64>) -> DeviceReading {
        DeviceReading {
            id: id.to_owned(),
            name: "GPU".to_owned(),
            time_unix_s: t,
            energy_joules: joules,
            power_watts: Some(100.0),
            ..Default::default()
        }
    }

    fn energy_points(d: &Devices) -> Vec<(u64, u64, f64)> {
        let mut out = Vec::new();
        d.metrics(&mut out);
        let Some(metric::Data::Sum(s)) =
            &out.iter().find(|m| m.name == sc::HW_ENERGY).unwrap().data
        else {
            panic!("not a sum")
        };
        s.data_points
            .iter()
            .map(|p| {
                let Some(number_data_point::Value::AsDouble(v)) = p.value else {
                    panic!("not a double")
                };
                (p.start_time_unix_nano, p.time_unix_nano, v)
            })
            .collect()
    }

    #[test]
    fn the_newest_reading_wins_and_a_counter_reset_starts_a_new_series() {
        let mut d = Devices::default();
        assert!(d.observe(reading("a", 10.0, Some(500.0))));
        assert!(d.observe(reading("a", 12.0, Some(700.0))));
        assert!(
            !d.observe(reading("a", 11.0, Some(900.0))),
            "older: ignored"
        );
        assert_eq!(energy_points(&d), [(10_000_000_000, 12_000_000_000, 700.0)]);
        // No counter in this reading: the last value stays, with its time.
        assert!(d.observe(reading("a", 13.0, None)));
        assert_eq!(energy_points(&d), [(10_000_000_000, 12_000_000_000, 700.0)]);
        // The counter went back: a new cumulative series from this reading.
        assert!(d.observe(reading("a", 14.0, Some(5.0))));
        assert_eq!(energy_points(&d), [(14_000_000_000, 14_000_000_000, 5.0)]);
    }

    #[test]
    fn unusable_readings_and_values_are_ignored() {
        let mut d = Devices::default();
        assert!(!d.observe(reading("", 1.0, Some(1.0))), "no id");
        assert!(!d.observe(reading("a", f64::NAN, Some(1.0))), "no time");
        let mut r = reading("a", 1.0, Some(f64::INFINITY));
        r.power_watts = Some(-3.0);
        assert!(d.observe(r));
        let mut out = Vec::new();
        d.metrics(&mut out);
        assert!(out.is_empty(), "nothing usable to send: {out:?}");
        for i in 0..MAX_DEVICES {
            d.observe(reading(&format!("gpu-{i}"), 2.0, Some(1.0)));
        }
        assert!(!d.observe(reading("one-too-many", 2.0, Some(1.0))));
        assert_eq!(d.by_id.len(), MAX_DEVICES);
    }
}
