//! [`EnergyCurve`]: cumulative joules of one device as a function of time, built from its samples.
//!
//! ## How a curve is built
//!
//! Power is sampled every tick; the energy counter, which costs milliseconds to read, only on some
//! ticks ([`SamplerConfig::counter_interval`](crate::SamplerConfig::counter_interval)), and it
//! shows the energy as of its own last refresh (~100 ms period). A *refresh* is detected where the
//! counter read differs from the previous counter read: it happened after that read, and at most
//! 100 ms (`MAX_REFRESH_LAG`) before the read that showed it. Within a run of steady load the
//! refreshes form a rigid chain (the time between two is the counter step divided by the mean
//! sampled power), so one unknown, the run's phase, places them all; every observation bounds it,
//! and it moves only when an observation rules it out (see `RefreshTracker` in `refresh.rs`). A
//! load change starts a new run, placed in the middle of what is possible.
//!
//! Between two refreshes the counter step is spread over time **in proportion to the integrated
//! sampled power** (power-weighted interpolation): a 50 ms call gets its share of a one-second
//! counter step, following the shape of the load, and the shares of all windows sum to the
//! counter's delta. What cannot be known is a refresh lag no observation reveals: the placement is
//! then up to half a refresh period off, which moves at most `ΔP × 50 ms` across a change of load
//! `ΔP` between neighbouring windows. A refined phase also changes, by at most that much, the
//! energy of windows completed before the refinement.
//!
//! Everywhere else — before the first refresh, after the last one, across a counter that went
//! backwards (a reset or wrap), and on devices without a counter — energy is the trapezoid integral
//! of the sampled power. Outside the samples the first or last power is held constant.

use telemetry_core::EnergyMethod;

use crate::refresh::{RefreshTracker, StoredKnot, trapezoid};
use crate::{EnergySource, GpuReading, Timestamp};

/// A sample's power, and the trapezoid integral of power up to it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PowerKnot {
    t: f64,
    p: f64,
    /// Joules from the first sample to `t` (trapezoid of sampled power).
    q: f64,
}

/// A counter refresh placed in time.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RefreshKnot {
    t: f64,
    /// Cumulative joules at `t` (relative to the first sample).
    e: f64,
    /// Power integral at `t`.
    q: f64,
    /// Whether the segment ending here is a valid counter step (else from power).
    counter_before: bool,
}

/// Cumulative energy of one device as a piecewise function of time, built from its samples.
/// Counter refreshes are placed from power; between two refreshes of one run the counter step is
/// spread in proportion to the integrated sampled power; elsewhere (before the first refresh,
/// across a reset, without a counter) the trapezoid of sampled power is used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnergyCurve {
    power: Vec<PowerKnot>,
    refreshes: Vec<RefreshKnot>,
}

impl EnergyCurve {
    /// Builds the curve from one device's samples in time order; samples without a counter value
    /// between ones with it are ticks that skipped the counter. Samples whose timestamp does not
    /// move forward are skipped.
    pub fn from_samples<'a>(samples: impl IntoIterator<Item = &'a GpuReading>) -> Self {
        let mut tracker = RefreshTracker::default();
        let mut last: Option<&GpuReading> = None;
        let mut parts = Vec::new();
        for s in samples {
            if last.is_some_and(|l| s.timestamp <= l.timestamp) {
                continue;
            }
            let knot = match last {
                Some(l) => tracker.observe(l, s),
                None => tracker.start(s),
            };
            parts.push((s, knot));
            last = Some(s);
        }
        EnergyCurve::from_parts(parts, &tracker)
    }

    /// Builds the curve from samples in increasing time order, each with the refresh its counter
    /// read revealed, placed by `tracker`. The first refresh is taken as the start of a run (the
    /// segment before it comes from power), so the caller starts the slice before the window.
    pub(crate) fn from_parts<'a>(
        parts: impl IntoIterator<Item = (&'a GpuReading, Option<StoredKnot>)>,
        tracker: &RefreshTracker,
    ) -> Self {
        let mut power: Vec<PowerKnot> = Vec::new();
        let mut placed: Vec<(f64, Option<f64>)> = Vec::new();
        for (s, k) in parts {
            let (t, p) = (s.timestamp.as_secs_f64(), s.power_w());
            match power.last() {
                Some(l) if t <= l.t => continue,
                Some(l) => {
                    let q = l.q + trapezoid(l.t, l.p, t, p);
                    power.push(PowerKnot { t, p, q });
                }
                None => power.push(PowerKnot { t, p, q: 0.0 }),
            }
            if let Some(k) = k {
                placed.push((tracker.resolve(&k), k.delta_j));
            }
        }
        let mut curve = EnergyCurve {
            power,
            refreshes: Vec::with_capacity(placed.len()),
        };
        for (t, delta) in placed {
            let q = curve.q_at(t);
            let knot = match curve.refreshes.last() {
                // The first refresh starts the counter's part of the curve.
                None => RefreshKnot {
                    t,
                    e: q,
                    q,
                    counter_before: false,
                },
                Some(last) if t <= last.t => continue,
                Some(last) => match delta {
                    Some(d) => RefreshKnot {
                        t,
                        e: last.e + d,
                        q,
                        counter_before: true,
                    },
                    None => RefreshKnot {
                        t,
                        e: last.e + (q - last.q),
                        q,
                        counter_before: false,
                    },
                },
            };
            curve.refreshes.push(knot);
        }
        curve
    }

    /// Whether the curve has no sample at all (every energy is then 0).
    pub fn is_empty(&self) -> bool {
        self.power.is_empty()
    }

    /// Cumulative joules at `t` relative to the first sample (negative before it).
    pub fn energy_at(&self, t: Timestamp) -> f64 {
        self.energy_at_secs(t.as_secs_f64())
    }

    /// Sampled power at `t` (linear between samples, held outside them), watts.
    fn sampled_power(&self, t: f64) -> f64 {
        let (Some(first), Some(last)) = (self.power.first(), self.power.last()) else {
            return 0.0;
        };
        if t <= first.t {
            return first.p;
        }
        if t >= last.t {
            return last.p;
        }
        let j = self.power.partition_point(|k| k.t <= t);
        let (a, b) = (self.power[j - 1], self.power[j]);
        a.p + (b.p - a.p) * (t - a.t) / (b.t - a.t)
    }

    /// Trapezoid integral of sampled power from the first sample to `t`, joules.
    fn q_at(&self, t: f64) -> f64 {
        let (Some(first), Some(last)) = (self.power.first(), self.power.last()) else {
            return 0.0;
        };
        if t <= first.t {
            return -first.p * (first.t - t);
        }
        if t >= last.t {
            return last.q + last.p * (t - last.t);
        }
        // first.t < t < last.t, so 1 <= j < len.
        let j = self.power.partition_point(|k| k.t <= t);
        let (a, b) = (self.power[j - 1], self.power[j]);
        let dt = t - a.t;
        a.q + a.p * dt + (b.p - a.p) * dt * dt / (2.0 * (b.t - a.t))
    }

    /// The counter segment around `t`: its two refreshes, when `t` lies strictly inside one.
    fn counter_segment(&self, t: f64) -> Option<(RefreshKnot, RefreshKnot)> {
        let j = self.refreshes.partition_point(|k| k.t <= t);
        let b = *self.refreshes.get(j)?;
        let a = *self.refreshes.get(j.checked_sub(1)?)?;
        b.counter_before.then_some((a, b))
    }

    /// Estimated power at `t`, watts (the slope of the curve).
    pub fn power_at(&self, t: Timestamp) -> f64 {
        let t = t.as_secs_f64();
        let p = self.sampled_power(t);
        match self.counter_segment(t) {
            Some((a, b)) if b.q - a.q > 0.0 => p * (b.e - a.e) / (b.q - a.q),
            Some((a, b)) => (b.e - a.e) / (b.t - a.t),
            None => p,
        }
    }

    fn energy_at_secs(&self, t: f64) -> f64 {
        if self.power.is_empty() {
            return 0.0;
        }
        let q = self.q_at(t);
        let j = self.refreshes.partition_point(|k| k.t <= t);
        if j == 0 {
            return q;
        }
        let a = self.refreshes[j - 1];
        match self.refreshes.get(j) {
            Some(b) if b.counter_before => {
                let frac = if b.q - a.q > 0.0 {
                    (q - a.q) / (b.q - a.q)
                } else {
                    (t - a.t) / (b.t - a.t)
                };
                a.e + (b.e - a.e) * frac.clamp(0.0, 1.0)
            }
            _ => a.e + (q - a.q),
        }
    }

    /// How the energy of `[t0, t1]` is known: [`EnergyMethod::Counter`] when every part of the
    /// window lies between two counter refreshes of one run, else
    /// [`EnergyMethod::PowerIntegration`]; [`EnergyMethod::None`] for an empty curve.
    pub fn method_between(&self, t0: Timestamp, t1: Timestamp) -> EnergyMethod {
        let (t0, t1) = (t0.as_secs_f64(), t1.as_secs_f64());
        if self.power.is_empty() {
            return EnergyMethod::None;
        }
        let (Some(first), Some(last)) = (self.refreshes.first(), self.refreshes.last()) else {
            return EnergyMethod::PowerIntegration;
        };
        if t0 < first.t || t1 > last.t || self.refreshes.len() < 2 {
            return EnergyMethod::PowerIntegration;
        }
        // Segments j (refreshes j-1..j) that overlap [t0, t1]; a point window uses the segment
        // that contains it.
        let last = self.refreshes.len() - 1;
        let lo = self.refreshes.partition_point(|k| k.t <= t0).clamp(1, last);
        let hi = self.refreshes.partition_point(|k| k.t < t1).clamp(lo, last);
        if self.refreshes[lo..=hi].iter().all(|k| k.counter_before) {
            EnergyMethod::Counter
        } else {
            EnergyMethod::PowerIntegration
        }
    }
}

impl EnergySource for EnergyCurve {
    fn energy_between(&self, t0: Timestamp, t1: Timestamp) -> f64 {
        (self.energy_at_secs(t1.as_secs_f64()) - self.energy_at_secs(t0.as_secs_f64())).max(0.0)
    }
}

/// Several devices' curves: the sum of their energies.
impl EnergySource for [EnergyCurve] {
    fn energy_between(&self, t0: Timestamp, t1: Timestamp) -> f64 {
        self.iter().map(|c| c.energy_between(t0, t1)).sum()
    }
}

impl EnergySource for Vec<EnergyCurve> {
    fn energy_between(&self, t0: Timestamp, t1: Timestamp) -> f64 {
        self.as_slice().energy_between(t0, t1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(t_ms: u64, energy_mj: Option<u64>, power_mw: u32) -> GpuReading {
        GpuReading {
            device: 0,
            timestamp: Timestamp::from_millis(t_ms),
            energy_mj,
            power_mw,
            instant_power_mw: None,
            utilization_pct: None,
            memory_used_bytes: None,
            temperature_c: None,
        }
    }

    #[test]
    fn point_windows_at_the_last_knot_have_a_method() {
        let samples: Vec<_> = (0..5)
            .map(|i| reading(i * 100, Some(i * 10_000), 100_000))
            .collect();
        let curve = EnergyCurve::from_samples(&samples);
        let last = Timestamp::from_millis(400);
        assert_eq!(
            curve.method_between(last, last),
            EnergyMethod::PowerIntegration
        );
        let mid = Timestamp::from_millis(200);
        assert_eq!(curve.method_between(mid, mid), EnergyMethod::Counter);
        assert!((curve.power_at(mid) - 100.0).abs() < 1e-9);
        assert_eq!(
            EnergyCurve::default().method_between(mid, last),
            EnergyMethod::None
        );
    }

    #[test]
    fn a_reset_is_integrated_from_power() {
        let samples = [
            reading(0, Some(500), 50_000),
            reading(100, Some(5_500), 50_000),
            reading(200, Some(10_500), 50_000),
            reading(300, Some(200), 50_000),
            reading(400, Some(5_200), 50_000),
        ];
        let curve = EnergyCurve::from_samples(&samples);
        let e = curve.energy_between(Timestamp::ZERO, Timestamp::from_millis(400));
        assert!((e - 20.0).abs() < 1e-9, "{e}");
    }
}
