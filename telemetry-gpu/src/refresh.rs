//! `RefreshTracker`: placing the energy counter's refreshes in time as samples arrive (see
//! [`EnergyCurve`](crate::EnergyCurve) for how the curve uses them).

use crate::GpuReading;

/// Joules of a power ramp from `p0` W at `t0` s to `p1` W at `t1` s (the trapezoid rule): how
/// both the tracker and the curve integrate sampled power.
pub(crate) fn trapezoid(t0: f64, p0: f64, t1: f64, p1: f64) -> f64 {
    (p0 + p1) / 2.0 * (t1 - t0)
}

/// The longest time, seconds, between a counter refresh and the read that first shows it: the
/// counter's refresh period (NVML: ~100 ms on an H100/H200).
pub(crate) const MAX_REFRESH_LAG: f64 = 0.1;

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
    /// The instant after which the refresh certainly happened, seconds.
    pub after: f64,
    /// The read that showed it, seconds (the refresh happened at or before it).
    pub before: f64,
}

/// The current run of a counter.
#[derive(Debug, Clone, Copy)]
struct Run {
    id: u64,
    /// Counter value at the last refresh, millijoules.
    counter: u64,
    /// Chain position of the last refresh, seconds.
    s: f64,
    /// Time, power-integral and power of the read that showed the last refresh.
    seen_t: f64,
    seen_q: f64,
    seen_p: f64,
    /// The phase must lie in `(lo, hi]` for every refresh of the run to fall where it was seen.
    lo: f64,
    hi: f64,
}

/// Places counter refreshes as samples arrive.
///
/// A change of the counter between two counter reads at `t_a` and `t_b` says the refresh happened
/// in `(max(t_a, t_b − MAX_REFRESH_LAG), t_b]`. Within a run the refreshes form a rigid chain: the
/// time between two of them is the counter step divided by the mean sampled power, so one unknown,
/// the run's *phase*, places them all. Every observation bounds the phase; it starts in the middle
/// of the first bound and moves (to the middle of what is still possible) only when an
/// observation rules it out, which shifts every refresh of the run together. Observations that
/// contradict the chain and changes of more than 10 % in the sampled power start a new run.
/// Samples without a counter value (a tick that skipped the counter) only add to the power
/// integral.
#[derive(Debug, Clone, Default)]
pub(crate) struct RefreshTracker {
    run: Option<Run>,
    /// Phase of each run still referenced, from run `first_run` on.
    phases: std::collections::VecDeque<f64>,
    first_run: u64,
    /// Trapezoid energy of the power readings from the first sample to the last one observed.
    q: f64,
    /// The latest counter read: its time and value.
    last_counter: Option<(f64, u64)>,
}

impl RefreshTracker {
    /// Notes the first sample of a timeline. Its counter read, if any, shows the energy as of a
    /// refresh at most [`MAX_REFRESH_LAG`] before it: that refresh starts the first run (so the
    /// first counter step already counts). It does not bound the run's phase, since a counter
    /// that has only just started (or a mock's, at its origin) may not have refreshed at all yet;
    /// the next refreshes place it.
    pub(crate) fn start(&mut self, first: &GpuReading) -> Option<StoredKnot> {
        let c = first.energy_mj?;
        let t = first.timestamp.as_secs_f64();
        self.last_counter = Some((t, c));
        let knot = self.new_run(c, (t - MAX_REFRESH_LAG, t), first.power_w(), None);
        if let Some(run) = self.run.as_mut() {
            (run.lo, run.hi) = (f64::NEG_INFINITY, f64::INFINITY);
        }
        Some(knot)
    }

    /// Starts a run at a refresh seen in `(after, before]`, its phase in the middle.
    fn new_run(
        &mut self,
        counter: u64,
        (after, before): (f64, f64),
        power_w: f64,
        delta_j: Option<f64>,
    ) -> StoredKnot {
        let id = self.first_run + self.phases.len() as u64;
        self.phases.push_back((after + before) / 2.0);
        self.run = Some(Run {
            id,
            counter,
            s: 0.0,
            seen_t: before,
            seen_q: self.q,
            seen_p: power_w,
            lo: after,
            hi: before,
        });
        StoredKnot {
            run: id,
            s: 0.0,
            delta_j,
            after,
            before,
        }
    }

    /// Observes the step from sample `a` to the next sample `b`; returns the refresh that `b`'s
    /// counter read reveals, if any.
    pub(crate) fn observe(&mut self, a: &GpuReading, b: &GpuReading) -> Option<StoredKnot> {
        let (ta, tb) = (a.timestamp.as_secs_f64(), b.timestamp.as_secs_f64());
        if tb <= ta {
            return None;
        }
        self.q += trapezoid(ta, a.power_w(), tb, b.power_w());
        let cb = b.energy_mj?;
        // The first counter read only starts the count.
        let (tc, ca) = self.last_counter.replace((tb, cb))?;
        if ca == cb {
            return None;
        }
        let after = tc.max(tb - MAX_REFRESH_LAG);
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
            && let Some(knot) = self.extend(r, cb, delta, (after, tb), b.power_w())
        {
            return Some(knot);
        }
        // A new run: its phase starts in the middle of the bound.
        Some(self.new_run(cb, (after, tb), b.power_w(), delta_j))
    }

    /// Adds a refresh to run `r` if it fits the chain.
    fn extend(
        &mut self,
        r: Run,
        cb: u64,
        delta: f64,
        (after, tb): (f64, f64),
        pb: f64,
    ) -> Option<StoredKnot> {
        let mean_w = (self.q - r.seen_q) / (tb - r.seen_t);
        if !(mean_w > 0.0 && mean_w.is_finite()) {
            return None;
        }
        let s = r.s + delta / mean_w;
        let (lo, hi) = (r.lo.max(after - s), r.hi.min(tb - s));
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
            after,
            before: tb,
        })
    }

    /// Forgets the phases of runs before `run` (no stored refresh refers to them any more).
    pub(crate) fn forget_before(&mut self, run: u64) {
        while self.first_run < run && self.phases.pop_front().is_some() {
            self.first_run += 1;
        }
    }

    /// The instant of refresh `k`, seconds.
    pub(crate) fn resolve(&self, k: &StoredKnot) -> f64 {
        let phase = usize::try_from(k.run.wrapping_sub(self.first_run))
            .ok()
            .and_then(|i| self.phases.get(i))
            .copied()
            .unwrap_or((k.after + k.before) / 2.0);
        let span = k.before - k.after;
        (k.s + phase).clamp(k.after + span * 1e-3, k.before)
    }
}
