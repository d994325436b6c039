//! [`EnergyReading`]: what one window cost, ready to fill a `TelemetryRecord`.

use std::time::Duration;

use telemetry_core::{EnergyMethod, TelemetryRecord};

use crate::{EnergyCurve, EnergySource, Timeline, Timestamp, Window, attribute};

/// Joules of one device attributed to a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceEnergy {
    /// Device index.
    pub index: u32,
    /// Joules attributed to the window on this device.
    pub joules: f64,
    /// How this device's energy was known.
    pub method: EnergyMethod,
}

/// The energy and GPU state of one window (one inference call).
///
/// `joules_total` is the window's *attributed* share: where other windows overlapped it, each
/// slice's energy was split among them. The power, utilization, memory and temperature figures
/// describe the devices themselves over the window (they are not split).
#[derive(Debug, Clone, PartialEq)]
pub struct EnergyReading {
    /// Start of the window.
    pub start: Timestamp,
    /// End of the window.
    pub end: Timestamp,
    /// Joules attributed to the window, all devices.
    pub joules_total: f64,
    /// Joules attributed per device.
    pub per_device: Vec<DeviceEnergy>,
    /// Joules before the first token, when a first-token instant was given.
    pub prefill_joules: Option<f64>,
    /// Joules after the first token, when a first-token instant was given.
    pub decode_joules: Option<f64>,
    /// Mean power of the devices over the window (device energy / duration), watts, all devices.
    pub mean_power_w: f64,
    /// Highest sampled power in the window, watts (sum over devices of each one's peak).
    pub peak_power_w: f64,
    /// Mean sampled utilization, percent, over devices and samples (`None` when no reading had
    /// it, e.g. on a MIG instance).
    pub mean_utilization_pct: Option<f64>,
    /// Highest sampled utilization of any device, percent (`None` when no reading had it).
    pub peak_utilization_pct: Option<f64>,
    /// Highest sampled memory in use, bytes (sum over devices of each one's peak; `None` when
    /// no reading had it).
    pub peak_memory_used_bytes: Option<u64>,
    /// Mean sampled temperature, °C, over devices and samples (`None` when no reading had it).
    pub mean_temperature_c: Option<f64>,
    /// [`EnergyMethod::Counter`] when every device's energy came from its counter,
    /// [`EnergyMethod::PowerIntegration`] when some of it came from power, [`EnergyMethod::None`]
    /// when nothing was measured (no reading at all).
    pub method: EnergyMethod,
    /// Readings that fell inside the window, all devices (0 for a window shorter than the
    /// sampling interval: the state then comes from the nearest reading).
    pub samples: usize,
    /// Other windows that overlapped this one and shared its energy.
    pub overlapping: usize,
    /// `"nvidia"`, `"mock"`.
    pub vendor: &'static str,
}

impl EnergyReading {
    /// A reading with nothing measured (no GPU data): `method` is [`EnergyMethod::None`] and
    /// [`apply_to`](Self::apply_to) leaves a record's energy fields empty.
    pub fn unmeasured(start: Timestamp, end: Timestamp, vendor: &'static str) -> Self {
        EnergyReading {
            start,
            end,
            joules_total: 0.0,
            per_device: Vec::new(),
            prefill_joules: None,
            decode_joules: None,
            mean_power_w: 0.0,
            peak_power_w: 0.0,
            mean_utilization_pct: None,
            peak_utilization_pct: None,
            peak_memory_used_bytes: None,
            mean_temperature_c: None,
            method: EnergyMethod::None,
            samples: 0,
            overlapping: 0,
            vendor,
        }
    }

    /// Whether anything was measured.
    pub fn is_measured(&self) -> bool {
        self.method != EnergyMethod::None
    }

    /// Peak memory in use, GB (10^9 bytes), as records store it.
    pub fn peak_memory_used_gb(&self) -> Option<f64> {
        self.peak_memory_used_bytes.map(|b| b as f64 / 1e9)
    }

    /// Fills the record's energy and GPU fields (`energy_joules`, `power_watts`,
    /// `gpu_utilization_pct`, `gpu_memory_used_gb`, `gpu_temperature_c`, `prefill_energy_joules`,
    /// `decode_energy_joules`, `energy_method`, `energy_vendor`). Does nothing for an
    /// [unmeasured](Self::unmeasured) reading.
    pub fn apply_to(&self, record: &mut TelemetryRecord) {
        if !self.is_measured() {
            return;
        }
        record.energy_joules = Some(self.joules_total);
        record.power_watts = Some(self.mean_power_w);
        record.gpu_utilization_pct = self.mean_utilization_pct.map(|u| u.clamp(0.0, 100.0));
        record.gpu_memory_used_gb = self.peak_memory_used_gb();
        record.gpu_temperature_c = self.mean_temperature_c;
        record.prefill_energy_joules = self.prefill_joules;
        record.decode_energy_joules = self.decode_joules;
        record.energy_method = self.method;
        record.energy_vendor = self.vendor.to_owned();
    }
}

/// A window to compute, with the windows that overlap it (weights included).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct WindowSpec {
    pub window: Window,
    pub first_token: Option<Timestamp>,
    pub weight: f64,
}

/// Computes `target`'s reading from the timeline, splitting each slice with `others`.
pub(crate) fn compute_reading(
    timeline: &Timeline,
    curves: &[EnergyCurve],
    vendor: &'static str,
    target: &WindowSpec,
    others: &[(Window, f64)],
    max_gap: Duration,
) -> EnergyReading {
    let (t0, t1) = (
        target.window.start,
        target.window.end.max(target.window.start),
    );
    if timeline.is_empty() {
        return EnergyReading::unmeasured(t0, t1, vendor);
    }
    // The target, split at the first token, then the others clipped to the target.
    let split = target.first_token.map(|f| f.clamp(t0, t1));
    let mut windows = match split {
        Some(f) => vec![Window::new(t0, f), Window::new(f, t1)],
        None => vec![Window::new(t0, t1)],
    };
    let parts = windows.len();
    let mut weights = vec![target.weight; parts];
    for &(w, weight) in others {
        let (s, e) = (w.start.max(t0), w.end.min(t1));
        if s < e || (s == e && t0 == t1 && w.start <= t0 && w.end >= t1) {
            windows.push(Window::new(s, e));
            weights.push(weight);
        }
    }
    let overlapping = windows.len() - parts;
    let mut reading = EnergyReading::unmeasured(t0, t1, vendor);
    reading.overlapping = overlapping;
    let (mut prefill, mut decode) = (0.0, 0.0);
    let mut all_counter = true;
    let mut device_joules_unsplit = 0.0;
    let mut power_at_t0 = 0.0;
    let (mut util_sum, mut util_n) = (0.0, 0_usize);
    let (mut temp_sum, mut temp_n) = (0.0, 0_usize);
    for (dev, curve) in timeline.devices().iter().zip(curves) {
        // A device whose readings do not cover the window (it stopped answering before or
        // during it, or the window is older than the kept history) has nothing to say about
        // it: its energy there is unknown, never extrapolated.
        if !dev.covers(t0, t1, max_gap) {
            continue;
        }
        if curve.is_empty() {
            continue;
        }
        // Weights are validated positive and windows well-formed here, so this cannot fail;
        // an error would leave the device out rather than panic.
        let Ok(shares) = attribute(curve, &windows, Some(&weights)) else {
            continue;
        };
        let joules: f64 = shares[..parts].iter().sum();
        prefill += shares[0];
        decode += shares.get(1).copied().unwrap_or(0.0);
        let method = curve.method_between(t0, t1);
        all_counter &= method == EnergyMethod::Counter;
        reading.per_device.push(DeviceEnergy {
            index: dev.index(),
            joules,
            method,
        });
        device_joules_unsplit += curve.energy_between(t0, t1);
        power_at_t0 += curve.power_at(t0);
        let state = dev.state_in(t0, t1);
        reading.samples += state.inside;
        reading.peak_power_w += state.peak_power_w;
        if let Some(mem) = state.peak_memory_used_bytes {
            reading.peak_memory_used_bytes = Some(
                reading
                    .peak_memory_used_bytes
                    .map_or(mem, |m| m.saturating_add(mem)),
            );
        }
        if let Some(util) = state.peak_utilization_pct {
            reading.peak_utilization_pct =
                Some(reading.peak_utilization_pct.map_or(util, |p| p.max(util)));
        }
        util_sum += state.utilization_sum;
        util_n += state.utilization_count;
        temp_sum += state.temperature_sum;
        temp_n += state.temperature_count;
    }
    if reading.per_device.is_empty() {
        return reading;
    }
    reading.joules_total = reading.per_device.iter().map(|d| d.joules).sum();
    if split.is_some() {
        reading.prefill_joules = Some(prefill);
        reading.decode_joules = Some(decode);
    }
    let secs = t1.saturating_duration_since(t0).as_secs_f64();
    reading.mean_power_w = if secs > 0.0 {
        device_joules_unsplit / secs
    } else {
        power_at_t0
    };
    if util_n > 0 {
        reading.mean_utilization_pct = Some(util_sum / util_n as f64);
    }
    if temp_n > 0 {
        reading.mean_temperature_c = Some(temp_sum / temp_n as f64);
    }
    reading.method = if all_counter {
        EnergyMethod::Counter
    } else {
        EnergyMethod::PowerIntegration
    };
    reading
}
