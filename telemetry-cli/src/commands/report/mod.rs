//! `telemetry report`: one self-contained HTML file (inline CSS and SVG, no script or font fetched)
//! with tiles, the per-group table and charts over time.
//!
//! Everything comes from the aggregator's summaries, never from raw rows: the summary (as in
//! `stats`), two series (all calls, and per group) and a latency histogram from the merged
//! sketches. So the cost grows with the number of buckets and groups, not with the records.

mod charts;
mod data;
mod format;
mod page;

pub(crate) use charts::ChartError;

use std::io::Write;
use std::path::PathBuf;

use crate::cli::ReportArgs;
use crate::dbpath::DbPath;
use crate::emit::emit;
use crate::error::CliError;
use crate::outfile::OutputFile;
use crate::output;
use crate::read::{open_aggregator, time_range};
use crate::timearg::now_unix;

/// File written when `-o` is not given, in the current directory.
pub const DEFAULT_FILE: &str = "telemetry-report.html";
/// Runs `report`: writes the page and prints its path.
pub fn run(db: &DbPath, args: &ReportArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let agg = open_aggregator(db)?;
    let range = time_range(&args.range)?;
    let data = data::gather(&agg, &range, args.bucket, args.by, now_unix())?;
    let html = page::render(&data)?;
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_FILE));
    let mut file = OutputFile::create(&db.path, &path)?;
    file.file()
        .write_all(html.as_bytes())
        .map_err(|source| CliError::Io {
            action: "writing the report to",
            path: path.clone(),
            source,
        })?;
    file.commit()?;
    emit(out, &format!("{}\n", output::path(&path)))
}
