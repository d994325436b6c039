//! What the report page is drawn from, read from the aggregator's summaries.

use std::path::PathBuf;

use telemetry_agg::{
    AggregatedStats, Bucket, GroupBy, LatencyHistogram, SeriesPoint, TelemetryAggregator,
};
use telemetry_core::TimeRange;

use crate::cli::{ReportBucket, StatsGroup};
use crate::error::CliError;

/// Bins of the latency histogram.
const HISTOGRAM_BINS: usize = 40;

/// What the page is drawn from.
pub struct ReportData {
    /// The database file, as given.
    pub db: PathBuf,
    /// The `--since`/`--until` filter.
    pub range: TimeRange,
    /// First and last record in the range.
    pub extent: Option<(f64, f64)>,
    /// Width of the chart buckets.
    pub bucket: Bucket,
    /// Grouping of the table and of the per-group charts.
    pub by: StatsGroup,
    /// Totals and per-group stats (what `stats --format json` prints).
    pub stats: AggregatedStats,
    /// One point per bucket, all groups together.
    pub overall: Vec<SeriesPoint>,
    /// One point per bucket and group.
    pub grouped: Vec<SeriesPoint>,
    /// Latency of every call, from the merged sketches.
    pub histogram: LatencyHistogram,
    /// When the page was made, unix seconds.
    pub generated_at: f64,
}

/// Reads everything the page shows from `agg`.
pub fn gather(
    agg: &TelemetryAggregator,
    range: &TimeRange,
    bucket: ReportBucket,
    by: StatsGroup,
    generated_at: f64,
) -> Result<ReportData, CliError> {
    let extent = agg.time_extent(range)?;
    let bucket = match bucket {
        ReportBucket::Auto => auto_bucket(extent),
        ReportBucket::Second => Bucket::Second,
        ReportBucket::Minute => Bucket::Minute,
        ReportBucket::Hour => Bucket::Hour,
        ReportBucket::Day => Bucket::Day,
    };
    let group_by = match by {
        StatsGroup::Model => GroupBy::Model,
        StatsGroup::Engine => GroupBy::Engine,
        StatsGroup::Agent => GroupBy::Agent,
    };
    let stats = agg.summary(range)?;
    let (overall, grouped, histogram) = if stats.total_calls == 0 {
        Default::default()
    } else {
        (
            agg.series(range, bucket, GroupBy::None)?,
            agg.series(range, bucket, group_by)?,
            agg.latency_histogram(range, HISTOGRAM_BINS)?,
        )
    };
    Ok(ReportData {
        db: agg.path().to_path_buf(),
        range: *range,
        extent,
        bucket,
        by,
        stats,
        overall,
        grouped,
        histogram,
        generated_at,
    })
}

/// The finest bucket that keeps a chart to a few hundred points: seconds up to 10 minutes of
/// data (a short run: those come from the raw rows, a few thousand at most), minutes up to 6
/// hours, hours up to 15 days, days beyond.
pub fn auto_bucket(extent: Option<(f64, f64)>) -> Bucket {
    let span = extent.map_or(0.0, |(a, b)| b - a);
    if extent.is_some() && span <= 600.0 {
        Bucket::Second
    } else if span <= 6.0 * 3_600.0 {
        Bucket::Minute
    } else if span <= 15.0 * 86_400.0 {
        Bucket::Hour
    } else {
        Bucket::Day
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_bucket_keeps_charts_to_hundreds_of_points() {
        assert_eq!(auto_bucket(None), Bucket::Minute);
        assert_eq!(auto_bucket(Some((0.0, 3_600.0))), Bucket::Minute);
        assert_eq!(auto_bucket(Some((0.0, 22.0))), Bucket::Second);
        assert_eq!(auto_bucket(Some((0.0, 7.0 * 3_600.0))), Bucket::Hour);
        assert_eq!(auto_bucket(Some((0.0, 30.0 * 86_400.0))), Bucket::Day);
    }
}
