//! `telemetry series`: calls, tokens, cost, energy and latency per time bucket.

use std::io::Write;

use telemetry_agg::{Bucket, GroupBy, SeriesPoint};

use crate::cli::{BucketArg, SeriesArgs, SeriesFormat, SeriesGroup};
use crate::csv_record;
use crate::dbpath::DbPath;
use crate::emit::emit;
use crate::error::CliError;
use crate::output::{Align, Table, count, joules, seconds, usd};
use crate::read::{open_aggregator, time_range};
use crate::timearg::format_time;

/// Runs `series`.
pub fn run(db: &DbPath, args: &SeriesArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let agg = open_aggregator(db)?;
    let range = time_range(&args.range)?;
    let bucket = match args.bucket {
        BucketArg::Second => Bucket::Second,
        BucketArg::Minute => Bucket::Minute,
        BucketArg::Hour => Bucket::Hour,
        BucketArg::Day => Bucket::Day,
    };
    let group_by = match args.by {
        SeriesGroup::None => GroupBy::None,
        SeriesGroup::Model => GroupBy::Model,
        SeriesGroup::Engine => GroupBy::Engine,
        SeriesGroup::Agent => GroupBy::Agent,
    };
    let points = agg.series(&range, bucket, group_by)?;
    match args.format {
        SeriesFormat::Json => {
            let mut text = serde_json::to_string_pretty(&points)?;
            text.push('\n');
            emit(out, &text)
        }
        SeriesFormat::Csv => {
            let mut csv = csv::Writer::from_writer(Vec::new());
            for p in &points {
                match &p.group {
                    // The group is the only text cell.
                    Some(group) if !args.raw => {
                        let mut safe = p.clone();
                        safe.group = Some(csv_record::spreadsheet_safe(group).into_owned());
                        csv.serialize(&safe)?;
                    }
                    _ => csv.serialize(p)?,
                }
            }
            let bytes = csv
                .into_inner()
                .map_err(|e| CliError::Csv(e.into_error().into()))?;
            if points.is_empty() {
                return emit(out, &csv_header()?);
            }
            out.write_all(&bytes)
                .and_then(|()| out.flush())
                .map_err(CliError::stdout)
        }
        SeriesFormat::Table => emit(out, &render(&points, args.by)),
    }
}

/// The CSV header of a series (the serialized fields of [`SeriesPoint`]), for an empty series:
/// csv writes the header with the first row, so it is taken from a default point.
fn csv_header() -> Result<String, CliError> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.serialize(SeriesPoint::default())?;
    let bytes = csv
        .into_inner()
        .map_err(|e| CliError::Csv(e.into_error().into()))?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(format!("{}\n", text.lines().next().unwrap_or_default()))
}

fn render(points: &[SeriesPoint], by: SeriesGroup) -> String {
    if points.is_empty() {
        return "no calls recorded in this range\n".to_string();
    }
    let group_heading = match by {
        SeriesGroup::None => "group",
        SeriesGroup::Model => "model",
        SeriesGroup::Engine => "engine",
        SeriesGroup::Agent => "agent",
    };
    let mut table = Table::new(&[
        ("bucket", Align::Left),
        (group_heading, Align::Left),
        ("calls", Align::Right),
        ("errors", Align::Right),
        ("tokens", Align::Right),
        ("cost", Align::Right),
        ("energy", Align::Right),
        ("p50", Align::Right),
        ("p95", Align::Right),
        ("p99", Align::Right),
        ("ttft p50", Align::Right),
    ]);
    for p in points {
        table.push(vec![
            Some(format_time(p.bucket_start as f64)),
            p.group.as_ref().map(|g| {
                if g.is_empty() {
                    "(none)".to_string()
                } else {
                    g.clone()
                }
            }),
            Some(count(p.call_count)),
            Some(count(p.error_count)),
            Some(count(p.total_tokens)),
            Some(usd(p.total_cost)),
            (p.total_energy_joules > 0.0).then(|| joules(p.total_energy_joules)),
            p.latency_p50.map(seconds),
            p.latency_p95.map(seconds),
            p.latency_p99.map(seconds),
            p.ttft_p50.map(seconds),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_leaves_out_group_when_ungrouped() {
        let points = vec![SeriesPoint {
            bucket_start: 1_764_302_400,
            call_count: 5,
            latency_p50: Some(0.25),
            ..SeriesPoint::default()
        }];
        let text = render(&points, SeriesGroup::None);
        assert!(text.contains("2025-11-28T04:00:00Z"), "{text}");
        let header = text.lines().next().unwrap();
        assert!(
            !header.contains("group") && !header.contains("energy"),
            "{header}"
        );
        assert!(header.contains("p50"), "{header}");
    }

    #[test]
    fn empty_csv_still_has_a_header() {
        let header = csv_header().unwrap();
        assert!(
            header.starts_with("bucket_start,group,call_count,"),
            "{header}"
        );
        assert!(header.ends_with('\n') && header.lines().count() == 1);
    }
}
