//! [`EnergyCurve`]: cumulative joules of one device as a function of time, built from its samples.
//!
//! ## How a curve is built
//!
//! The energy counter refreshes on its own period (~100 ms on an H100), so sampled counter values
//! repeat and then jump. A *refresh instant* is detected where the counter changed between two
//! consecutive samples; the change happened somewhere in between. The first refresh of a run is
//! placed at the midpoint; each later one where the sampled power says the counter step was used up
//! since the previous refresh, kept inside the interval where the change was seen (so a bias in the
//! power readings cannot drift the estimate by more than one sampling interval). Between two
//! refresh instants of the same run the counter step is spread linearly over the time it covers, so
//! a 50 ms call in a steady 700 W load gets 35 J, not 0 J or a whole 70 J step, and the counter
//! still decides the total. The estimate is exact under regular sampling and steady power; after
//! an irregular gap in sampling the placement can re-anchor by up to one sampling interval, which
//! moves a fraction of one counter step between neighbouring short windows (their sum, and every
//! window spanning whole refreshes, are unaffected). Everywhere else — before the first refresh, after
//! the last one, across a counter that went backwards (a reset or wrap), and on devices without a
//! counter — energy is the trapezoid integral of the sampled power. Outside the samples the first
//! or last power is held constant.

use telemetry_core::EnergyMethod;

use crate::{EnergySource, GpuReading, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq)]
struct Knot {
    t: f64,
    /// Cumulative joules at `t`.
    e: f64,
    /// Power at `t`, watts (for the trapezoid segments around it).
    p: f64,
    /// Whether the segment ending at this knot comes from the counter (else from power).
    counter_before: bool,
}

/// Cumulative energy of one device as a piecewise function of time, built from its samples.
/// Refreshes are placed from power between the samples where the counter changed; between two
/// refreshes of one run the counter step is spread linearly; elsewhere (before the first refresh,
/// across a reset, without a counter) the trapezoid of sampled power is used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnergyCurve {
    knots: Vec<Knot>,
}

/// A detected counter refresh between two consecutive samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CounterKnot {
    /// Estimated refresh instant, seconds.
    pub t: f64,
    /// Power at that instant (interpolated), watts.
    pub p: f64,
    /// Joules since the previous refresh, when that segment is a valid counter step.
    pub delta_j: Option<f64>,
}

/// Places counter refreshes as samples arrive. Placement depends on the previous refresh, so the
/// timeline runs one tracker per device over its whole history and stores the result.
#[derive(Debug, Clone, Default)]
pub(crate) struct RefreshTracker {
    /// Counter value and power-integral at the last refresh of the current run.
    run: Option<(u64, f64)>,
    /// Trapezoid energy of the power readings from the first sample to the last one observed.
    q: f64,
}

impl RefreshTracker {
    /// Observes the step from sample `a` to the next sample `b`; returns the refresh between them,
    /// if the counter changed.
    pub(crate) fn observe(&mut self, a: &GpuReading, b: &GpuReading) -> Option<CounterKnot> {
        let (ta, tb) = (a.timestamp.as_secs_f64(), b.timestamp.as_secs_f64());
        let (pa, pb) = (a.power_w(), b.power_w());
        let span = tb - ta;
        let q_a = self.q;
        self.q += trapezoid(ta, pa, tb, pb);
        let (ca, cb) = match (a.energy_mj, b.energy_mj) {
            (_, None) | (None, _) => {
                self.run = None;
                return None;
            }
            (Some(ca), Some(cb)) => (ca, cb),
        };
        if ca == cb || span <= 0.0 {
            return None;
        }
        // A counter that went backwards was reset or wrapped: the step before it is unknown, so
        // that slice is integrated from power instead.
        let (dt, delta_j) = match self.run.filter(|&(prev, _)| cb > prev) {
            Some((prev, q_prev)) => {
                let delta = (cb - prev) as f64 / 1000.0;
                // Place the refresh where the sampled power says the step was used up, within
                // the interval where it must have happened.
                let dt = solve_quadratic(pa, pb, span, q_prev + delta - q_a);
                (dt.clamp(span / 8.0, span), Some(delta))
            }
            None => (span / 2.0, None),
        };
        self.run = Some((cb, q_a + pa * dt + (pb - pa) * dt * dt / (2.0 * span)));
        Some(CounterKnot {
            t: ta + dt,
            p: pa + (pb - pa) * dt / span,
            delta_j,
        })
    }
}

impl EnergyCurve {
    /// Builds the curve from one device's samples in time order. Samples whose timestamp does not
    /// move forward are skipped.
    pub fn from_samples<'a>(samples: impl IntoIterator<Item = &'a GpuReading>) -> Self {
        let mut tracker = RefreshTracker::default();
        let mut last: Option<&GpuReading> = None;
        let mut parts = Vec::new();
        for s in samples {
            if last.is_some_and(|l| s.timestamp <= l.timestamp) {
                continue;
            }
            let knot = last.and_then(|l| tracker.observe(l, s));
            parts.push((s, knot));
            last = Some(s);
        }
        EnergyCurve::from_parts(parts)
    }

    /// Builds the curve from samples in increasing time order, each with the refresh detected
    /// between it and the previous one. The first refresh is taken as the start of a run (the
    /// segment before it comes from power), so the caller starts the slice before the window.
    pub(crate) fn from_parts<'a>(
        parts: impl IntoIterator<Item = (&'a GpuReading, Option<CounterKnot>)>,
    ) -> Self {
        let mut knots: Vec<Knot> = Vec::new();
        // Samples since the last refresh: inside a counter step (dropped) or not (power knots),
        // which only the next refresh tells.
        let mut held: Vec<(f64, f64)> = Vec::new();
        let mut seen_refresh = false;
        for (s, ck) in parts {
            let (t, p) = (s.timestamp.as_secs_f64(), s.power_w());
            if knots.is_empty() {
                knots.push(Knot {
                    t,
                    e: 0.0,
                    p,
                    counter_before: false,
                });
                continue;
            }
            if let Some(mut ck) = ck {
                if !seen_refresh {
                    ck.delta_j = None;
                    seen_refresh = true;
                }
                if ck.delta_j.is_none() {
                    for &(ht, hp) in &held {
                        push_power_knot(&mut knots, ht, hp);
                    }
                }
                held.clear();
                push_counter_knot(&mut knots, &ck);
            }
            if seen_refresh {
                held.push((t, p));
            } else {
                push_power_knot(&mut knots, t, p);
            }
        }
        for (ht, hp) in held {
            push_power_knot(&mut knots, ht, hp);
        }
        EnergyCurve { knots }
    }

    /// Whether the curve has no sample at all (every energy is then 0).
    pub fn is_empty(&self) -> bool {
        self.knots.is_empty()
    }

    /// Cumulative joules at `t` relative to the first sample (negative before it).
    pub fn energy_at(&self, t: Timestamp) -> f64 {
        self.energy_at_secs(t.as_secs_f64())
    }

    /// Estimated power at `t`, watts (the slope of the curve).
    pub fn power_at(&self, t: Timestamp) -> f64 {
        let t = t.as_secs_f64();
        let (Some(first), Some(last)) = (self.knots.first(), self.knots.last()) else {
            return 0.0;
        };
        if t <= first.t {
            return first.p;
        }
        if t >= last.t {
            return last.p;
        }
        let j = self.knots.partition_point(|k| k.t <= t);
        let (a, b) = (self.knots[j - 1], self.knots[j]);
        if b.counter_before {
            (b.e - a.e) / (b.t - a.t)
        } else {
            a.p + (b.p - a.p) * (t - a.t) / (b.t - a.t)
        }
    }

    fn energy_at_secs(&self, t: f64) -> f64 {
        let (Some(first), Some(last)) = (self.knots.first(), self.knots.last()) else {
            return 0.0;
        };
        if t <= first.t {
            return first.e - first.p * (first.t - t);
        }
        if t >= last.t {
            return last.e + last.p * (t - last.t);
        }
        // first.t < t < last.t, so 1 <= j < len.
        let j = self.knots.partition_point(|k| k.t <= t);
        let (a, b) = (self.knots[j - 1], self.knots[j]);
        let span = b.t - a.t;
        let dt = t - a.t;
        if b.counter_before {
            a.e + (b.e - a.e) * dt / span
        } else {
            a.e + a.p * dt + (b.p - a.p) * dt * dt / (2.0 * span)
        }
    }

    /// How the energy of `[t0, t1]` is known: [`EnergyMethod::Counter`] when every part of the
    /// window lies between two counter refreshes of one run, else
    /// [`EnergyMethod::PowerIntegration`]; [`EnergyMethod::None`] for an empty curve.
    pub fn method_between(&self, t0: Timestamp, t1: Timestamp) -> EnergyMethod {
        let (t0, t1) = (t0.as_secs_f64(), t1.as_secs_f64());
        let (Some(first), Some(last)) = (self.knots.first(), self.knots.last()) else {
            return EnergyMethod::None;
        };
        if t0 < first.t || t1 > last.t || self.knots.len() < 2 {
            return EnergyMethod::PowerIntegration;
        }
        // Segments j (knots j-1..j) that overlap [t0, t1]; a point window uses the segment
        // that contains it.
        let last = self.knots.len() - 1;
        let lo = self.knots.partition_point(|k| k.t <= t0).clamp(1, last);
        let hi = self.knots.partition_point(|k| k.t < t1).clamp(lo, last);
        if self.knots[lo..=hi].iter().all(|k| k.counter_before) {
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

/// The `dt` in `[0, span]` at which the energy of a power ramp from `p0` to `p1` over `span`
/// reaches `target`: solves `p0·dt + (p1 − p0)·dt²/(2·span) = target`. Out-of-range targets give
/// values outside `[0, span]`, which the caller clamps.
fn solve_quadratic(p0: f64, p1: f64, span: f64, target: f64) -> f64 {
    if target <= 0.0 {
        return 0.0;
    }
    let a = (p1 - p0) / (2.0 * span);
    if a.abs() < 1e-12 {
        return if p0 > 0.0 { target / p0 } else { span };
    }
    let disc = p0 * p0 + 4.0 * a * target;
    if disc < 0.0 {
        return span;
    }
    (-p0 + disc.sqrt()) / (2.0 * a)
}

fn push_counter_knot(knots: &mut Vec<Knot>, ck: &CounterKnot) {
    let Some(last) = knots.last().copied() else {
        return;
    };
    if ck.t <= last.t {
        return;
    }
    let (e, counter_before) = match ck.delta_j {
        Some(d) => (last.e + d, true),
        None => (last.e + trapezoid(last.t, last.p, ck.t, ck.p), false),
    };
    knots.push(Knot {
        t: ck.t,
        e,
        p: ck.p,
        counter_before,
    });
}

fn push_power_knot(knots: &mut Vec<Knot>, t: f64, p: f64) {
    let Some(last) = knots.last().copied() else {
        return;
    };
    if t <= last.t {
        return;
    }
    knots.push(Knot {
        t,
        e: last.e + trapezoid(last.t, last.p, t, p),
        p,
        counter_before: false,
    });
}

fn trapezoid(t0: f64, p0: f64, t1: f64, p1: f64) -> f64 {
    (p0 + p1) / 2.0 * (t1 - t0)
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
            utilization_pct: 0,
            memory_used_bytes: 0,
            temperature_c: 0,
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
