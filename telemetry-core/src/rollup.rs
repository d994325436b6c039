//! [`Rollup`]: the mergeable per-bucket summary the store writes and the query layer reads.
//!
//! The store keeps one `Rollup` per (level, bucket, model, engine, agent) in the
//! `telemetry_rollup` table (see [`schema`](crate::schema)), updated in the same transaction as
//! the rows. The query layer merges whole buckets from there and builds rollups of the raw rows at
//! the unaligned edges of a range with [`Rollup::add`], so both sides share this one definition.

use crate::record::TelemetryRecord;
use crate::sketch::QuantileSketch;

/// Bucket widths, in seconds, kept in `telemetry_rollup.level`: minute, hour, day (UTC).
pub const ROLLUP_LEVELS: [i64; 3] = [60, 3_600, 86_400];

/// Start (unix seconds) of the bucket of width `width` that holds `timestamp`.
///
/// ```
/// assert_eq!(telemetry_core::bucket_start(3_601.5, 3_600), 3_600);
/// ```
///
/// Never overflows: a timestamp outside what `i64` bucket starts can hold (or NaN, taken as 0)
/// gives the first or last bucket that can, and a `width` below 1 is taken as 1.
///
/// ```
/// assert_eq!(telemetry_core::bucket_start(1e300, 60), i64::MAX / 60 * 60);
/// ```
pub fn bucket_start(timestamp: f64, width: i64) -> i64 {
    let width = width.max(1);
    // `as` saturates (NaN becomes 0); clamping the quotient keeps the product inside i64.
    let q = ((timestamp / width as f64).floor() as i64).clamp(i64::MIN / width, i64::MAX / width);
    q * width
}

/// Sums, counts and sketches of a set of records. Every field merges by addition, so rollups of
/// disjoint sets combine into the rollup of their union.
///
/// Means are over the records that have the value: `ttft_sum / ttft_count`, and so on. Ratios are
/// ratios of sums: energy per output token is `energy_sum / energy_completion_tokens`, over the
/// records that have an energy measurement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rollup {
    /// Records.
    pub call_count: u64,
    /// Records with outcome `error`.
    pub error_count: u64,
    /// Σ prompt tokens.
    pub prompt_tokens: u64,
    /// Σ completion tokens.
    pub completion_tokens: u64,
    /// Σ total tokens.
    pub total_tokens: u64,
    /// Σ latency, seconds.
    pub total_latency: f64,
    /// Σ cost, USD.
    pub total_cost: f64,
    /// Σ TTFT over records that have one.
    pub ttft_sum: f64,
    /// Records with a TTFT.
    pub ttft_count: u64,
    /// Σ energy, joules, over records that have one.
    pub energy_sum: f64,
    /// Records with an energy measurement.
    pub energy_count: u64,
    /// Σ completion tokens over records with an energy measurement.
    pub energy_completion_tokens: u64,
    /// Σ prefill energy, joules.
    pub prefill_energy_sum: f64,
    /// Σ decode energy, joules.
    pub decode_energy_sum: f64,
    /// Σ GPU utilization over records that have one.
    pub gpu_util_sum: f64,
    /// Records with a GPU utilization.
    pub gpu_util_count: u64,
    /// Σ throughput over records that have one.
    pub throughput_sum: f64,
    /// Records with a throughput.
    pub throughput_count: u64,
    /// Latency, seconds.
    pub latency: QuantileSketch,
    /// TTFT, seconds.
    pub ttft: QuantileSketch,
    /// Per-call mean inter-token latency, milliseconds.
    pub itl: QuantileSketch,
}

impl Rollup {
    /// Largest value a count or token sum holds: `i64::MAX`, so that every sum fits an SQLite
    /// INTEGER. Sums stop there rather than wrap or fail (with validated records, at most
    /// [`MAX_TOKENS`](crate::MAX_TOKENS) tokens each, that takes over 9 × 10^9 calls in one bucket).
    pub const COUNT_MAX: u64 = i64::MAX as u64;

    /// Adds one (validated) record. Counts saturate at [`Rollup::COUNT_MAX`] rather than wrap.
    pub fn add(&mut self, r: &TelemetryRecord) {
        sat(&mut self.call_count, 1);
        sat(&mut self.error_count, u64::from(r.is_error()));
        sat(&mut self.prompt_tokens, r.prompt_tokens);
        sat(&mut self.completion_tokens, r.completion_tokens);
        sat(&mut self.total_tokens, r.total_tokens);
        self.total_latency += r.latency_seconds;
        self.total_cost += r.cost_usd;
        self.latency.add(r.latency_seconds);
        if let Some(t) = r.ttft {
            self.ttft_sum += t;
            sat(&mut self.ttft_count, 1);
            self.ttft.add(t);
        }
        if let Some(e) = r.energy_joules {
            self.energy_sum += e;
            sat(&mut self.energy_count, 1);
            sat(&mut self.energy_completion_tokens, r.completion_tokens);
        }
        self.prefill_energy_sum += r.prefill_energy_joules.unwrap_or(0.0);
        self.decode_energy_sum += r.decode_energy_joules.unwrap_or(0.0);
        if let Some(u) = r.gpu_utilization_pct {
            self.gpu_util_sum += u;
            sat(&mut self.gpu_util_count, 1);
        }
        if let Some(t) = r.throughput_tok_per_sec {
            self.throughput_sum += t;
            sat(&mut self.throughput_count, 1);
        }
        if let Some(itl) = r.mean_itl_ms {
            self.itl.add(itl);
        }
    }

    /// Adds everything in `other` (counts saturate at [`Rollup::COUNT_MAX`]).
    pub fn merge(&mut self, o: &Rollup) {
        sat(&mut self.call_count, o.call_count);
        sat(&mut self.error_count, o.error_count);
        sat(&mut self.prompt_tokens, o.prompt_tokens);
        sat(&mut self.completion_tokens, o.completion_tokens);
        sat(&mut self.total_tokens, o.total_tokens);
        self.total_latency += o.total_latency;
        self.total_cost += o.total_cost;
        self.ttft_sum += o.ttft_sum;
        sat(&mut self.ttft_count, o.ttft_count);
        self.energy_sum += o.energy_sum;
        sat(&mut self.energy_count, o.energy_count);
        sat(
            &mut self.energy_completion_tokens,
            o.energy_completion_tokens,
        );
        self.prefill_energy_sum += o.prefill_energy_sum;
        self.decode_energy_sum += o.decode_energy_sum;
        self.gpu_util_sum += o.gpu_util_sum;
        sat(&mut self.gpu_util_count, o.gpu_util_count);
        self.throughput_sum += o.throughput_sum;
        sat(&mut self.throughput_count, o.throughput_count);
        self.latency.merge(&o.latency);
        self.ttft.merge(&o.ttft);
        self.itl.merge(&o.itl);
    }
}

/// `*sum += add`, stopping at [`Rollup::COUNT_MAX`].
fn sat(sum: &mut u64, add: u64) {
    *sum = sum.saturating_add(add).min(Rollup::COUNT_MAX);
}

/// Identifies one row of `telemetry_rollup`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RollupKey {
    /// Bucket width in seconds, one of [`ROLLUP_LEVELS`].
    pub level: i64,
    /// Bucket start, unix seconds, a multiple of `level`.
    pub bucket_start: i64,
    /// Model.
    pub model_id: String,
    /// Engine.
    pub engine: String,
    /// Agent.
    pub agent: String,
}

impl RollupKey {
    /// The key of `record`'s bucket at `level`.
    pub fn of(record: &TelemetryRecord, level: i64) -> Self {
        RollupKey {
            level,
            bucket_start: bucket_start(record.timestamp, level),
            model_id: record.model_id.clone(),
            engine: record.engine.clone(),
            agent: record.agent.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::EnergyMethod;

    #[test]
    fn bucket_start_floors_to_the_width() {
        assert_eq!(bucket_start(59.999, 60), 0);
        assert_eq!(bucket_start(60.0, 60), 60);
        assert_eq!(bucket_start(1_764_300_061.0, 86_400), 1_764_288_000);
    }

    #[test]
    fn bucket_start_never_overflows() {
        for ts in [
            1e300,
            -1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            9.3e18,
        ] {
            for &w in &ROLLUP_LEVELS {
                let b = bucket_start(ts, w);
                assert_eq!(b % w, 0, "{ts} {w}");
            }
        }
        assert!(bucket_start(1e300, 86_400) > 0);
        assert!(bucket_start(-1e300, 86_400) < 0);
        assert_eq!(bucket_start(f64::NAN, 60), 0);
    }

    #[test]
    fn sums_saturate_instead_of_overflowing() {
        let mut big = Rollup {
            prompt_tokens: Rollup::COUNT_MAX - 5,
            call_count: Rollup::COUNT_MAX,
            ..Rollup::default()
        };
        let r = TelemetryRecord::builder("m", 1.7e9)
            .tokens(1_000, 1)
            .build();
        big.add(&r);
        assert_eq!(big.prompt_tokens, Rollup::COUNT_MAX);
        assert_eq!(big.call_count, Rollup::COUNT_MAX);
        let copy = big.clone();
        big.merge(&copy);
        assert_eq!(big.prompt_tokens, Rollup::COUNT_MAX);
        assert_eq!(big.completion_tokens, 2);
    }

    #[test]
    fn add_then_merge_equals_adding_all() {
        let a = TelemetryRecord::builder("m", 1.7e9)
            .tokens(10, 20)
            .latency_seconds(1.0)
            .ttft(0.1)
            .energy(50.0, EnergyMethod::Counter)
            .build();
        let b = TelemetryRecord::builder("m", 1.7e9)
            .tokens(5, 0)
            .latency_seconds(2.0)
            .error("timeout", "took too long")
            .build();
        let mut one = Rollup::default();
        one.add(&a);
        one.add(&b);
        let mut x = Rollup::default();
        x.add(&a);
        let mut y = Rollup::default();
        y.add(&b);
        x.merge(&y);
        assert_eq!(one, x);
        assert_eq!(one.call_count, 2);
        assert_eq!(one.error_count, 1);
        assert_eq!(one.ttft_count, 1);
        assert_eq!(one.energy_completion_tokens, 20);
        assert_eq!(one.total_latency, 3.0);
    }
}
