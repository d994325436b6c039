//! `telemetry stats`: an overview of the range plus a per-group table.

use std::io::Write;

use crate::cli::{StatsArgs, StatsFormat};
use crate::dbpath::DbPath;
use crate::emit::emit;
use crate::error::CliError;
use crate::present::render;
use crate::read::{open_aggregator, time_range};

/// Runs `stats`.
pub fn run(db: &DbPath, args: &StatsArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let agg = open_aggregator(db)?;
    let range = time_range(&args.range)?;
    let mut stats = agg.summary(&range)?;
    if let Some(n) = args.top.map(|n| usize::try_from(n).unwrap_or(usize::MAX)) {
        stats.per_model.truncate(n);
        stats.per_engine.truncate(n);
        stats.per_agent.truncate(n);
    }
    match args.format {
        StatsFormat::Json => {
            let mut text = serde_json::to_string_pretty(&stats)?;
            text.push('\n');
            emit(out, &text)
        }
        StatsFormat::Table => emit(out, &render(&stats, &range, args.by)),
    }
}
