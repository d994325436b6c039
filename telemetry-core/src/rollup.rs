//! [`Rollup`]: the mergeable per-bucket summary the store writes and the query layer reads.
//!
//! The store keeps one `Rollup` per (level, bucket, model, engine, agent) in the
//! `telemetry_rollup` table (see [`schema`](crate::schema)), updated in the same transaction as
//! the rows. The query layer merges whole buckets from there and builds rollups of the raw rows at
//! the unaligned edges of a range with [`Rollup::add`], so both sides share this one definition
//! (the aggregates themselves are described once, in [`ROLLUP_FIELDS`](crate::ROLLUP_FIELDS)).

use crate::record::TelemetryRecord;

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
    use crate::Rollup;
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
