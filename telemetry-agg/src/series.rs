//! Time series: [`Bucket`], [`GroupBy`] and the [`SeriesPoint`]s a chart plots.

use std::str::FromStr;

use telemetry_core::Rollup;

use crate::error::AggError;

/// Width of the buckets of a [`series`](crate::TelemetryAggregator::series), in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Bucket {
    /// 1 second: read from the raw rows (the summaries start at minutes), for short runs.
    Second,
    /// 60 seconds.
    Minute,
    /// 3 600 seconds.
    Hour,
    /// 86 400 seconds.
    Day,
}

impl Bucket {
    /// The width in seconds.
    pub const fn width_seconds(self) -> i64 {
        match self {
            Bucket::Second => 1,
            Bucket::Minute => 60,
            Bucket::Hour => 3_600,
            Bucket::Day => 86_400,
        }
    }
}

impl FromStr for Bucket {
    type Err = AggError;

    /// Parses `1s`/`second`, `1m`/`minute`, `1h`/`hour` or `1d`/`day` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, AggError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "1s" | "s" | "second" => Ok(Bucket::Second),
            "1m" | "m" | "minute" => Ok(Bucket::Minute),
            "1h" | "h" | "hour" => Ok(Bucket::Hour),
            "1d" | "d" | "day" => Ok(Bucket::Day),
            _ => Err(AggError::UnknownBucket {
                input: s.to_owned(),
            }),
        }
    }
}

/// What a [`series`](crate::TelemetryAggregator::series) splits each bucket by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum GroupBy {
    /// One point per bucket.
    #[default]
    None,
    /// One point per bucket and model.
    Model,
    /// One point per bucket and engine.
    Engine,
    /// One point per bucket and agent.
    Agent,
}

impl FromStr for GroupBy {
    type Err = AggError;

    /// Parses `none`, `model`, `engine` or `agent` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, AggError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "" => Ok(GroupBy::None),
            "model" => Ok(GroupBy::Model),
            "engine" => Ok(GroupBy::Engine),
            "agent" => Ok(GroupBy::Agent),
            _ => Err(AggError::UnknownGroupBy {
                input: s.to_owned(),
            }),
        }
    }
}

/// One bucket (and group) of a series. Buckets with no call are absent.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SeriesPoint {
    /// Start of the bucket, unix seconds (UTC, a multiple of the bucket width).
    pub bucket_start: i64,
    /// The model, engine or agent; `None` for [`GroupBy::None`].
    pub group: Option<String>,
    /// Calls.
    pub call_count: u64,
    /// Failed calls.
    pub error_count: u64,
    /// Σ total tokens.
    pub total_tokens: u64,
    /// Σ prompt tokens.
    pub prompt_tokens: u64,
    /// Σ completion tokens.
    pub completion_tokens: u64,
    /// Σ cost, USD.
    pub total_cost: f64,
    /// Σ GPU energy, joules.
    pub total_energy_joules: f64,
    /// Σ latency, seconds.
    pub total_latency: f64,
    /// Mean latency, seconds.
    pub avg_latency: f64,
    /// Mean TTFT over calls that have one, seconds (0 when none has).
    pub avg_ttft: f64,
    /// Median latency, seconds.
    pub latency_p50: Option<f64>,
    /// 90th percentile latency, seconds.
    pub latency_p90: Option<f64>,
    /// 95th percentile latency, seconds.
    pub latency_p95: Option<f64>,
    /// 99th percentile latency, seconds.
    pub latency_p99: Option<f64>,
    /// Median TTFT, seconds.
    pub ttft_p50: Option<f64>,
    /// 95th percentile TTFT, seconds.
    pub ttft_p95: Option<f64>,
    /// 99th percentile TTFT, seconds.
    pub ttft_p99: Option<f64>,
    /// Median per-call mean ITL, milliseconds.
    pub itl_p50: Option<f64>,
    /// 95th percentile per-call mean ITL, milliseconds.
    pub itl_p95: Option<f64>,
    /// Σ energy / Σ completion tokens over the calls with an energy measurement, joules;
    /// `None` when none has one.
    pub energy_per_output_token_joules: Option<f64>,
}

impl SeriesPoint {
    pub(crate) fn from_rollup(bucket_start: i64, group: Option<String>, r: &Rollup) -> Self {
        let mean = |sum: f64, n: u64| if n == 0 { 0.0 } else { sum / n as f64 };
        SeriesPoint {
            bucket_start,
            group,
            call_count: r.call_count,
            error_count: r.error_count,
            total_tokens: r.total_tokens,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            total_cost: r.total_cost,
            total_energy_joules: r.energy_sum,
            total_latency: r.total_latency,
            avg_latency: mean(r.total_latency, r.call_count),
            avg_ttft: mean(r.ttft_sum, r.ttft_count),
            latency_p50: r.latency.quantile(0.50),
            latency_p90: r.latency.quantile(0.90),
            latency_p95: r.latency.quantile(0.95),
            latency_p99: r.latency.quantile(0.99),
            ttft_p50: r.ttft.quantile(0.50),
            ttft_p95: r.ttft.quantile(0.95),
            ttft_p99: r.ttft.quantile(0.99),
            itl_p50: r.itl.quantile(0.50),
            itl_p95: r.itl.quantile(0.95),
            energy_per_output_token_joules: (r.energy_completion_tokens > 0)
                .then(|| r.energy_sum / r.energy_completion_tokens as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_parse() {
        assert_eq!("1m".parse::<Bucket>().unwrap(), Bucket::Minute);
        assert_eq!("Hour".parse::<Bucket>().unwrap(), Bucket::Hour);
        assert_eq!("1d".parse::<Bucket>().unwrap().width_seconds(), 86_400);
        let err = "week".parse::<Bucket>().unwrap_err();
        assert!(err.to_string().contains("\"week\""), "{err}");
    }

    #[test]
    fn group_names_parse() {
        assert_eq!("model".parse::<GroupBy>().unwrap(), GroupBy::Model);
        assert_eq!("AGENT".parse::<GroupBy>().unwrap(), GroupBy::Agent);
        assert_eq!("none".parse::<GroupBy>().unwrap(), GroupBy::None);
        assert!(matches!(
            "gpu".parse::<GroupBy>(),
            Err(AggError::UnknownGroupBy { input }) if input == "gpu"
        ));
    }
}
