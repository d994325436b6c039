//! [`attribute`]: splitting energy among overlapping windows (calls), and the [`EnergySource`]
//! and [`Window`] it works with.
//!
//! Window boundaries cut the timeline into slices. In each slice the energy is split among the
//! windows active in it in proportion to their weights (equal by default). Every window's share is
//! non-negative and the shares sum to the energy over the union of the windows.

use crate::{GpuError, Timestamp};

/// Anything that can say how many joules were spent between two instants.
///
/// Implemented by [`EnergyCurve`](crate::EnergyCurve), by slices of curves (their sum, for
/// several devices), and by closures `Fn(Timestamp, Timestamp) -> f64`.
pub trait EnergySource {
    /// Joules spent in `[t0, t1]`; `t0 <= t1`. Must be non-negative.
    fn energy_between(&self, t0: Timestamp, t1: Timestamp) -> f64;
}

impl<F: Fn(Timestamp, Timestamp) -> f64> EnergySource for F {
    fn energy_between(&self, t0: Timestamp, t1: Timestamp) -> f64 {
        self(t0, t1)
    }
}

/// A time window `[start, end]` (e.g. one inference call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// Start, inclusive.
    pub start: Timestamp,
    /// End, inclusive; not before `start`.
    pub end: Timestamp,
}

impl Window {
    /// The window `[start, end]`.
    pub const fn new(start: Timestamp, end: Timestamp) -> Self {
        Window { start, end }
    }
}

/// Splits energy among possibly overlapping `windows`: in each slice between window boundaries,
/// the slice's energy goes to the windows active in it in proportion to `weights` (equal when
/// `None`). Returns joules per window, in the order given. The results are non-negative and sum to
/// the energy over the union of the windows; a zero-length window gets 0 J.
///
/// ```
/// use telemetry_gpu::{Timestamp, Window, attribute};
///
/// // A steady 100 W source; two calls overlap during [1 s, 2 s].
/// let watts_100 = |t0: Timestamp, t1: Timestamp| 100.0 * (t1.as_secs_f64() - t0.as_secs_f64());
/// let s = Timestamp::from_secs_f64;
/// let joules = attribute(&watts_100, &[Window::new(s(0.0), s(2.0)), Window::new(s(1.0), s(3.0))], None)?;
/// assert_eq!(joules, vec![150.0, 150.0]); // 100 J alone + half of the shared 100 J, each
/// assert_eq!(joules.iter().sum::<f64>(), 300.0); // the union [0 s, 3 s] at 100 W
/// # Ok::<(), telemetry_gpu::GpuError>(())
/// ```
///
/// # Errors
/// [`GpuError::InvalidWindow`] for a window that ends before it starts,
/// [`GpuError::WeightsLength`] or [`GpuError::InvalidWeight`] for bad weights.
pub fn attribute<S: EnergySource + ?Sized>(
    source: &S,
    windows: &[Window],
    weights: Option<&[f64]>,
) -> Result<Vec<f64>, GpuError> {
    validate(windows, weights)?;
    let weight = |i: usize| weights.map_or(1.0, |w| w[i]);
    let mut points: Vec<Timestamp> = windows.iter().flat_map(|w| [w.start, w.end]).collect();
    points.sort_unstable();
    points.dedup();
    // Weight changes at each point: (point, +w at a start, -w at an end).
    let mut changes: Vec<(Timestamp, f64, i64)> = Vec::with_capacity(windows.len() * 2);
    for (i, w) in windows.iter().enumerate() {
        if w.end > w.start {
            changes.push((w.start, weight(i), 1));
            changes.push((w.end, -weight(i), -1));
        }
    }
    changes.sort_unstable_by_key(|c| c.0);
    // cumulative[k]: joules per unit of weight from points[0] to points[k].
    let mut cumulative = Vec::with_capacity(points.len());
    let (mut active_weight, mut active_count, mut acc) = (0.0_f64, 0_i64, 0.0_f64);
    let mut next_change = 0;
    for (k, &a) in points.iter().enumerate() {
        cumulative.push(acc);
        while let Some(&(t, dw, dc)) = changes.get(next_change).filter(|c| c.0 == a) {
            debug_assert_eq!(t, a);
            active_weight += dw;
            active_count += dc;
            next_change += 1;
        }
        if active_count == 0 {
            active_weight = 0.0;
        }
        if let Some(&b) = points.get(k + 1)
            && active_count > 0
            && active_weight > 0.0
        {
            acc += source.energy_between(a, b).max(0.0) / active_weight;
        }
    }
    let at = |t: Timestamp| {
        let k = points.partition_point(|&p| p < t);
        cumulative.get(k).copied().unwrap_or(acc)
    };
    Ok(windows
        .iter()
        .enumerate()
        .map(|(i, w)| (weight(i) * (at(w.end) - at(w.start))).max(0.0))
        .collect())
}

/// Joules over the union of `windows` (overlaps counted once): what [`attribute`]'s results sum to.
pub fn union_energy<S: EnergySource + ?Sized>(source: &S, windows: &[Window]) -> f64 {
    let mut sorted: Vec<Window> = windows
        .iter()
        .filter(|w| w.end > w.start)
        .copied()
        .collect();
    sorted.sort_unstable_by_key(|w| w.start);
    let mut total = 0.0;
    let mut current: Option<Window> = None;
    for w in sorted {
        match current.as_mut() {
            Some(c) if w.start <= c.end => c.end = c.end.max(w.end),
            _ => {
                if let Some(c) = current.replace(w) {
                    total += source.energy_between(c.start, c.end);
                }
            }
        }
    }
    if let Some(c) = current {
        total += source.energy_between(c.start, c.end);
    }
    total
}

pub(crate) fn validate(windows: &[Window], weights: Option<&[f64]>) -> Result<(), GpuError> {
    for (index, w) in windows.iter().enumerate() {
        if w.end < w.start {
            return Err(GpuError::InvalidWindow {
                index,
                start: w.start,
                end: w.end,
            });
        }
    }
    if let Some(weights) = weights {
        if weights.len() != windows.len() {
            return Err(GpuError::WeightsLength {
                windows: windows.len(),
                weights: weights.len(),
            });
        }
        if let Some((index, &weight)) = weights
            .iter()
            .enumerate()
            .find(|(_, w)| !(w.is_finite() && **w > 0.0))
        {
            return Err(GpuError::InvalidWeight { index, weight });
        }
    }
    Ok(())
}
