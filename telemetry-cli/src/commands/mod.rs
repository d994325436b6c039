//! One file per command; [`run`] dispatches.

mod check;
mod csv_record;
mod demo;
mod export;
mod import;
mod report;
mod retention;
pub(crate) mod run;
mod series;
mod stats;

use std::io::Write;

use telemetry_agg::TelemetryAggregator;
use telemetry_core::TimeRange;

use crate::cli::{Cli, Command, RangeArgs};
use crate::dbpath::DbPath;
use crate::error::CliError;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let db = DbPath::resolve(cli.db.as_deref())?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cli.command {
        Command::Stats(args) => stats::run(&db, &args, &mut out),
        Command::Series(args) => series::run(&db, &args, &mut out),
        Command::Report(args) => report::run(&db, &args, &mut out),
        Command::Export(args) => export::run(&db, &args, &mut out),
        Command::Check(args) => check::run(&db, &args, &mut out),
        Command::Prune(args) => retention::prune(&db, &args, &mut out),
        Command::Clear(args) => retention::clear(&db, &args, &mut out),
        Command::ImportOpenjarvis(args) => import::run(&db, &args, &mut out),
        Command::Demo(args) => demo::run(&db, &args, &mut out),
        Command::Run(args) => run::run(&db, &args, &mut out),
    }
}

/// Opens the database read-only; a missing file is [`CliError::MissingDatabase`] (exit 2) and
/// nothing is created.
pub(crate) fn open_aggregator(db: &DbPath) -> Result<TelemetryAggregator, CliError> {
    let path = db.require_existing()?;
    Ok(TelemetryAggregator::open(path)?)
}

/// The `--since`/`--until` range; `since > until` is a usage error.
pub(crate) fn time_range(args: &RangeArgs) -> Result<TimeRange, CliError> {
    Ok(TimeRange::new(args.since, args.until)?)
}

/// Writes `text` to `out`, mapping a failure to [`CliError::Output`].
pub(crate) fn emit(out: &mut dyn Write, text: &str) -> Result<(), CliError> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CliError::stdout)
}
