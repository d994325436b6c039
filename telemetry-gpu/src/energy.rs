//! [`EnergyCurve`]: cumulative joules of one device as a function of time, built from its samples.
//!
//! ## How a curve is built
//!
//! The energy counter refreshes on its own period (~100 ms on an H100), so sampled counter values
//! repeat and then jump. A *refresh* is detected where the counter changed between two consecutive
//! samples: it happened somewhere in between. Within a run of steady load the refreshes form a
//! rigid chain (the time between two is the counter step divided by the sampled power), so one
//! unknown, the run's phase, places them all; every observation bounds it, and it moves only when an
//! observation rules it out, shifting the whole run together (see `RefreshTracker`). Between two
//! refreshes the counter step is spread linearly over the time it covers, so a 50 ms call in a
//! steady 700 W load gets 35 J, not 0 J or a whole 70 J step, with regular or jittery sampling, and
//! the counter still decides the total. What cannot be known is a phase no observation reveals
//! (refreshes in step with the samples): refreshes are then placed mid-interval, up to half a
//! sampling interval off, which moves at most `ΔP × interval / 2` across a change of load `ΔP`
//! between neighbouring windows. A refined phase also changes, by at most that much, the energy of
//! windows completed before the refinement.
//!
//! Everywhere else — before the first refresh, after the last one, across a counter that went
//! backwards (a reset or wrap), and on devices without a counter — energy is the trapezoid integral
//! of the sampled power. Outside the samples the first or last power is held constant.

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

/// A counter refresh placed in time, between two consecutive samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CounterKnot {
    /// Estimated refresh instant, seconds.
    pub t: f64,
    /// Power at that instant (interpolated), watts.
    pub p: f64,
    /// Joules since the previous refresh, when that segment is a valid counter step.
    pub delta_j: Option<f64>,
}

/// A detected counter refresh as the tracker records it: its place on its run's chain, which the
/// run's phase turns into a time (see [`RefreshTracker`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct StoredKnot {
    /// The run (chain) it belongs to.
    pub run: u64,
    /// Position on the chain, seconds; the time is `s + phase(run)`.
    pub s: f64,
    /// Joules since the previous refresh, when that segment is a valid counter step.
    pub delta_j: Option<f64>,
    /// The sample time after which the refresh certainly happened, seconds.
    pub after: f64,
}

/// The current run of a counter.
#[derive(Debug, Clone, Copy)]
struct Run {
    id: u64,
    /// Counter value at the last refresh, millijoules.
    counter: u64,
    /// Chain position of the last refresh, seconds.
    s: f64,
    /// Time, power-integral and power of the sample that showed the last refresh.
    seen_t: f64,
    seen_q: f64,
    seen_p: f64,
    /// The phase must lie in `(lo, hi]` for every refresh of the run to fall where it was seen.
    lo: f64,
    hi: f64,
}

/// Places counter refreshes as samples arrive.
///
/// A change of the counter between samples `a` and `b` says the refresh happened in
/// `(t_a, t_b]`. Within a run the refreshes form a rigid chain: the time between two of them is
/// the counter step divided by the mean sampled power, so one unknown, the run's *phase*, places
/// them all. Every observation bounds the phase; it starts in the middle of the first interval and
/// moves (to the middle of what is still possible) only when an observation rules it out, which
/// shifts every refresh of the run together and so keeps their spacing, and the energy of a steady
/// load, exact. Observations that contradict the chain (power readings off, a step in the load
/// between refreshes) and changes of more than 10 % in the sampled power start a new run.
#[derive(Debug, Clone, Default)]
pub(crate) struct RefreshTracker {
    run: Option<Run>,
    /// Phase of each run still referenced, from run `first_run` on.
    phases: std::collections::VecDeque<f64>,
    first_run: u64,
    /// Trapezoid energy of the power readings from the first sample to the last one observed.
    q: f64,
}

impl RefreshTracker {
    /// Observes the step from sample `a` to the next sample `b`; returns the refresh between them,
    /// if the counter changed.
    pub(crate) fn observe(&mut self, a: &GpuReading, b: &GpuReading) -> Option<StoredKnot> {
        let (ta, tb) = (a.timestamp.as_secs_f64(), b.timestamp.as_secs_f64());
        self.q += trapezoid(ta, a.power_w(), tb, b.power_w());
        let (ca, cb) = match (a.energy_mj, b.energy_mj) {
            (_, None) | (None, _) => {
                self.run = None;
                return None;
            }
            (Some(ca), Some(cb)) => (ca, cb),
        };
        if ca == cb || tb <= ta {
            return None;
        }
        // A counter that went backwards was reset or wrapped: the step before it is unknown, so
        // that slice is integrated from power instead.
        let run = self.run.filter(|r| cb > r.counter);
        let delta_j = run.map(|r| (cb - r.counter) as f64 / 1000.0);
        // A change in the load breaks the chain: the sampled power no longer says how long a
        // counter step took.
        let steady = |p: f64, reference: f64| (p - reference).abs() <= 0.1 * reference;
        if let (Some(r), Some(delta)) = (run, delta_j)
            && steady(a.power_w(), r.seen_p)
            && steady(b.power_w(), r.seen_p)
            && let Some(knot) = self.extend(r, cb, delta, (ta, tb), b.power_w())
        {
            return Some(knot);
        }
        // A new run: its phase starts in the middle of the interval.
        let id = self.first_run + self.phases.len() as u64;
        self.phases.push_back((ta + tb) / 2.0);
        self.run = Some(Run {
            id,
            counter: cb,
            s: 0.0,
            seen_t: tb,
            seen_q: self.q,
            seen_p: b.power_w(),
            lo: ta,
            hi: tb,
        });
        Some(StoredKnot {
            run: id,
            s: 0.0,
            delta_j,
            after: ta,
        })
    }

    /// Adds a refresh to run `r` if it fits the chain.
    fn extend(
        &mut self,
        r: Run,
        cb: u64,
        delta: f64,
        (ta, tb): (f64, f64),
        pb: f64,
    ) -> Option<StoredKnot> {
        let mean_w = (self.q - r.seen_q) / (tb - r.seen_t);
        if !(mean_w > 0.0 && mean_w.is_finite()) {
            return None;
        }
        let s = r.s + delta / mean_w;
        let (lo, hi) = (r.lo.max(ta - s), r.hi.min(tb - s));
        if lo >= hi {
            return None;
        }
        let slot = usize::try_from(r.id - self.first_run).ok()?;
        let phase = self.phases.get_mut(slot)?;
        if !(lo < *phase && *phase <= hi) {
            *phase = (lo + hi) / 2.0;
        }
        self.run = Some(Run {
            counter: cb,
            s,
            seen_t: tb,
            seen_q: self.q,
            seen_p: pb,
            lo,
            hi,
            ..r
        });
        Some(StoredKnot {
            run: r.id,
            s,
            delta_j: Some(delta),
            after: ta,
        })
    }

    /// Forgets the phases of runs before `run` (no stored refresh refers to them any more).
    pub(crate) fn forget_before(&mut self, run: u64) {
        while self.first_run < run && self.phases.pop_front().is_some() {
            self.first_run += 1;
        }
    }

    /// The refresh `k`, seen between samples `a` and `b`, placed in time.
    pub(crate) fn resolve(&self, k: &StoredKnot, a: &GpuReading, b: &GpuReading) -> CounterKnot {
        let (ta, tb) = (a.timestamp.as_secs_f64(), b.timestamp.as_secs_f64());
        let span = tb - ta;
        let phase = usize::try_from(k.run.wrapping_sub(self.first_run))
            .ok()
            .and_then(|i| self.phases.get(i))
            .copied()
            .unwrap_or((ta + tb) / 2.0);
        let dt = (k.s + phase - ta).clamp(span * 1e-3, span);
        let (pa, pb) = (a.power_w(), b.power_w());
        CounterKnot {
            t: ta + dt,
            p: pa + (pb - pa) * dt / span,
            delta_j: k.delta_j,
        }
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
        EnergyCurve::from_parts(parts, &tracker)
    }

    /// Builds the curve from samples in increasing time order, each with the refresh detected
    /// between it and the previous one, placed by `tracker`. The first refresh is taken as the
    /// start of a run (the segment before it comes from power), so the caller starts the slice
    /// before the window.
    pub(crate) fn from_parts<'a>(
        parts: impl IntoIterator<Item = (&'a GpuReading, Option<StoredKnot>)>,
        tracker: &RefreshTracker,
    ) -> Self {
        let mut prev: Option<&GpuReading> = None;
        let resolved = parts.into_iter().map(|(s, k)| {
            let ck = prev.zip(k).map(|(a, k)| tracker.resolve(&k, a, s));
            prev = Some(s);
            (s, ck)
        });
        let mut knots: Vec<Knot> = Vec::new();
        // Samples since the last refresh: inside a counter step (dropped) or not (power knots),
        // which only the next refresh tells.
        let mut held: Vec<(f64, f64)> = Vec::new();
        let mut seen_refresh = false;
        for (s, ck) in resolved {
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
