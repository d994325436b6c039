//! Inter-token latency statistics of a stream, as telemetry-wrap computes them (numpy's
//! linear-interpolation percentiles, population deviation), in milliseconds.

/// Mean, median, p90, p95, p99 and standard deviation of inter-token gaps, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ItlStats {
    pub mean: f64,
    pub median: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub std: f64,
}

impl ItlStats {
    /// Statistics of `gaps` (seconds; sorted in place). `None` without gaps.
    pub fn from_gaps(gaps: &mut [f64]) -> Option<ItlStats> {
        if gaps.is_empty() {
            return None;
        }
        gaps.sort_unstable_by(f64::total_cmp);
        let n = gaps.len() as f64;
        let mean = gaps.iter().sum::<f64>() / n;
        let var = gaps.iter().map(|g| (g - mean) * (g - mean)).sum::<f64>() / n;
        let ms = |s: f64| (s * 1000.0).max(0.0);
        Some(ItlStats {
            mean: ms(mean),
            median: ms(percentile(gaps, 0.5)),
            p90: ms(percentile(gaps, 0.9)),
            p95: ms(percentile(gaps, 0.95)),
            p99: ms(percentile(gaps, 0.99)),
            std: ms(var.sqrt()),
        })
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_match_numpy() {
        assert_eq!(ItlStats::from_gaps(&mut []), None);
        // numpy: mean 0.025, median 0.025, percentile(90) = 0.037, std = 0.01118...
        let s = ItlStats::from_gaps(&mut [0.04, 0.01, 0.03, 0.02]).unwrap();
        assert!((s.mean - 25.0).abs() < 1e-9);
        assert!((s.median - 25.0).abs() < 1e-9);
        assert!((s.p90 - 37.0).abs() < 1e-9);
        assert!((s.std - 11.180_339_887).abs() < 1e-6);
    }
}
