//! An independent energy reference for the hardware checks: the device's own cumulative energy
//! counter, read directly (not through the sampler) many times a second, and the comparison of the
//! sampler's figures against it. Pure arithmetic, so it is unit-tested without a GPU
//! (`telemetry-gpu/tests/reference_math.rs`); `gpu_wrap_check` includes it by path.
#![allow(dead_code)] // each user takes part of it

/// The counter of one device as read directly: one point per observed change, at the instant the
/// change was seen (seconds on the sampler's clock) with the counter's joules (continued across a
/// reset). Between two points the energy is interpolated linearly: the counter refreshes about every
/// 100 ms, so the interpolation error is bounded by how much the power changes within one refresh
/// period, and is zero at the points themselves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CounterSeries {
    points: Vec<(f64, f64)>,
    last_mj: Option<u64>,
    offset_j: f64,
    reads: u64,
}

impl CounterSeries {
    /// Records one direct read of the counter (`mj`, millijoules) seen at `t` seconds. Keeps a
    /// point only where the value changed (the first read always); a counter that goes backwards
    /// (a driver reset) continues from its previous total. Reads whose time does not move forward
    /// are ignored. Returns whether a point was added.
    pub fn push(&mut self, t: f64, mj: u64) -> bool {
        if !t.is_finite() || self.points.last().is_some_and(|&(last_t, _)| t <= last_t) {
            return false;
        }
        self.reads += 1;
        let changed = match self.last_mj {
            None => true,
            Some(last) if mj == last => false,
            Some(last) if mj < last => {
                self.offset_j += last as f64 / 1000.0;
                true
            }
            Some(_) => true,
        };
        self.last_mj = Some(mj);
        if changed {
            self.points.push((t, self.offset_j + mj as f64 / 1000.0));
        }
        changed
    }

    /// Direct reads recorded (changed or not).
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// The instants at which the counter was seen to change, seconds.
    pub fn edges(&self) -> Vec<f64> {
        self.points.iter().map(|p| p.0).collect()
    }

    /// Cumulative joules at `t` (linear between points), `None` outside the points.
    pub fn energy_at(&self, t: f64) -> Option<f64> {
        let (first, last) = (self.points.first()?, self.points.last()?);
        if !(first.0..=last.0).contains(&t) {
            return None;
        }
        let j = self.points.partition_point(|p| p.0 <= t);
        if j == 0 || j == self.points.len() {
            return Some(if j == 0 { first.1 } else { last.1 });
        }
        let (a, b) = (self.points[j - 1], self.points[j]);
        Some(a.1 + (b.1 - a.1) * (t - a.0) / (b.0 - a.0))
    }

    /// Joules the counter counted over `[t0, t1]`, `None` when either end lies outside the
    /// points or `t1 < t0`.
    pub fn energy_between(&self, t0: f64, t1: f64) -> Option<f64> {
        if t1 < t0 {
            return None;
        }
        Some(self.energy_at(t1)? - self.energy_at(t0)?)
    }

    /// Mean power between consecutive points, watts: the load as the counter saw it.
    pub fn power_between_points(&self) -> Vec<f64> {
        self.points
            .windows(2)
            .filter(|w| w[1].0 > w[0].0)
            .map(|w| (w[1].1 - w[0].1) / (w[1].0 - w[0].0))
            .collect()
    }
}

/// Consecutive, non-overlapping windows within `[from, to]` whose ends are edges (so the reference
/// is exact at both ends on the device the edges come from), each the shortest such window at
/// least `min_len` seconds long.
pub fn windows_on_edges(edges: &[f64], min_len: f64, from: f64, to: f64) -> Vec<(f64, f64)> {
    let inside: Vec<f64> = edges
        .iter()
        .copied()
        .filter(|t| (from..=to).contains(t))
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < inside.len() {
        let start = inside[i];
        let Some(k) = inside[i + 1..]
            .iter()
            .position(|&t| t - start >= min_len)
            .map(|k| i + 1 + k)
        else {
            break;
        };
        out.push((start, inside[k]));
        i = k;
    }
    out
}

/// Relative errors of measured against reference values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorSummary {
    /// Pairs compared (those with a reference above zero).
    pub n: usize,
    /// Median of |measured − reference| / reference.
    pub median: f64,
    /// 90th percentile of the same.
    pub p90: f64,
    /// Largest of the same.
    pub max: f64,
    /// Mean of (measured − reference) / reference: a bias shows here.
    pub mean_signed: f64,
}

/// Summarizes `(measured, reference)` pairs; pairs with a reference of zero or less, or a value
/// that is not finite, are skipped. `None` when nothing is left.
pub fn relative_errors(pairs: &[(f64, f64)]) -> Option<ErrorSummary> {
    let signed: Vec<f64> = pairs
        .iter()
        .filter(|(m, r)| m.is_finite() && r.is_finite() && *r > 0.0)
        .map(|(m, r)| (m - r) / r)
        .collect();
    if signed.is_empty() {
        return None;
    }
    let mut abs: Vec<f64> = signed.iter().map(|e| e.abs()).collect();
    abs.sort_by(f64::total_cmp);
    let at = |q: f64| abs[((abs.len() - 1) as f64 * q).round() as usize];
    Some(ErrorSummary {
        n: abs.len(),
        median: at(0.5),
        p90: at(0.9),
        max: at(1.0),
        mean_signed: signed.iter().sum::<f64>() / signed.len() as f64,
    })
}

/// Total length of the parts of `[from, to]` that none of `intervals` covers, seconds.
pub fn uncovered(intervals: &[(f64, f64)], from: f64, to: f64) -> f64 {
    let mut sorted: Vec<(f64, f64)> = intervals
        .iter()
        .map(|&(a, b)| (a.max(from), b.min(to)))
        .filter(|(a, b)| a < b)
        .collect();
    sorted.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut gap = 0.0;
    let mut reached = from;
    for (a, b) in sorted {
        if a > reached {
            gap += a - reached;
        }
        reached = reached.max(b);
    }
    gap + (to - reached).max(0.0)
}
