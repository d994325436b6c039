//! [`LatencyHistogram`]: a histogram drawn from merged quantile sketches, never from raw rows.

use telemetry_core::QuantileSketch;

/// One bar of a [`LatencyHistogram`]: the calls whose latency fell in `(lower, upper]` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HistogramBin {
    /// Lower edge, seconds (exclusive).
    pub lower: f64,
    /// Upper edge, seconds (inclusive).
    pub upper: f64,
    /// Calls in the bin.
    pub count: u64,
}

/// Latency of every call in a range, in log-spaced bins (latencies span orders of magnitude).
///
/// Built from the stored sketches: each sketch bucket (0.5 % wide) is counted in the bin that
/// holds its midpoint, so a bin edge is off by at most half a sketch bucket, and the counts sum
/// to the number of calls exactly.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LatencyHistogram {
    /// The bins, lowest first; empty when the range holds no call.
    pub bins: Vec<HistogramBin>,
    /// Calls counted (the sum of the bins' counts).
    pub count: u64,
    /// Smallest latency, seconds.
    pub min: Option<f64>,
    /// Largest latency, seconds.
    pub max: Option<f64>,
}

/// Latencies below this (1 µs) share the first bin; a log scale has no room for zero.
const FLOOR: f64 = 1e-6;

impl LatencyHistogram {
    /// `bins` log-spaced bins (at least one) from the smallest to the largest value of `sketch`.
    pub fn from_sketch(sketch: &QuantileSketch, bins: usize) -> Self {
        let (Some(min), Some(max)) = (sketch.min(), sketch.max()) else {
            return LatencyHistogram::default();
        };
        let lo = min.max(FLOOR);
        let hi = max.max(lo);
        let n = if hi > lo { bins.max(1) } else { 1 };
        let step = (hi / lo).ln() / n as f64;
        let edge = |i: usize| {
            if i == 0 {
                min.min(lo)
            } else if i == n {
                hi
            } else {
                lo * (step * i as f64).exp()
            }
        };
        let mut out: Vec<HistogramBin> = (0..n)
            .map(|i| HistogramBin {
                lower: edge(i),
                upper: edge(i + 1),
                count: 0,
            })
            .collect();
        for (lower, upper, count) in sketch.buckets() {
            let mid = ((lower * upper).sqrt()).clamp(lo, hi);
            let i = if step > 0.0 {
                // Floor of a finite, non-negative value below n + 1: the cast is exact.
                (((mid / lo).ln() / step).floor() as usize).min(n - 1)
            } else {
                0
            };
            out[i].count += count;
        }
        LatencyHistogram {
            bins: out,
            count: sketch.count(),
            min: Some(min),
            max: Some(max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sum_to_the_calls_and_land_near_their_values() {
        let mut s = QuantileSketch::new();
        for i in 0..1_000 {
            s.add(0.01 + i as f64 * 0.01);
        }
        s.add(0.0);
        let h = LatencyHistogram::from_sketch(&s, 20);
        assert_eq!(h.bins.len(), 20);
        assert_eq!(h.count, 1_001);
        assert_eq!(h.bins.iter().map(|b| b.count).sum::<u64>(), 1_001);
        assert_eq!(h.bins[0].lower, 0.0);
        assert_eq!(h.bins[19].upper, h.max.unwrap());
        // Evenly spaced values: the top (widest) bins hold the most.
        assert!(h.bins[19].count > h.bins[1].count, "{h:?}");
        for w in h.bins.windows(2) {
            assert!((w[0].upper - w[1].lower).abs() < 1e-12);
        }
    }

    #[test]
    fn one_value_is_one_bin_and_empty_is_empty() {
        let mut s = QuantileSketch::new();
        s.add(0.25);
        s.add(0.25);
        let h = LatencyHistogram::from_sketch(&s, 30);
        assert_eq!(h.bins.len(), 1);
        assert_eq!(h.bins[0].count, 2);
        assert_eq!(
            LatencyHistogram::from_sketch(&QuantileSketch::new(), 30),
            LatencyHistogram::default()
        );
    }
}
