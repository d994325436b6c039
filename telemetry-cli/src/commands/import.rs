//! `telemetry import-openjarvis PATH`.

use std::fmt::Write as _;
use std::io::Write;

use telemetry_store::TelemetryStore;

use crate::cli::ImportArgs;
use crate::dbpath::DbPath;
use crate::emit::emit;
use crate::error::CliError;
use crate::output::{self, count, escape_controls};
use crate::progress;

/// How many rejected rows are listed by id; the rest are only counted.
const SHOWN_REJECTIONS: usize = 10;

/// Imports an OpenJarvis database into the telemetry database (creating it if needed).
pub fn run(db: &DbPath, args: &ImportArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if !args.path.is_file() {
        return Err(CliError::InputNotFound {
            what: "OpenJarvis database",
            path: args.path.clone(),
        });
    }
    let store = TelemetryStore::open(&db.path)?;
    // The length is the peer's row count, known at the first report (after 5 000 rows).
    let bar = progress::bar(0, "rows imported", progress::enabled());
    let result = store.import_openjarvis_with_progress(&args.path, |p| {
        bar.set_length(p.total.max(p.read));
        bar.set_position(p.read);
    });
    bar.finish_and_clear();
    let report = result?;
    store.close()?;

    let mut text = format!(
        "imported {} of {} rows from {} into {} ({} already present, {} rejected)\n",
        count(report.imported),
        count(report.read),
        output::path(&args.path),
        output::path(&db.path),
        count(report.skipped_duplicates),
        count(report.rejected.len() as u64),
    );
    for (row, reason) in report.rejected.iter().take(SHOWN_REJECTIONS) {
        let _ = writeln!(
            text,
            "  rejected row {row}: {}",
            escape_controls(&reason.to_string())
        );
    }
    if report.rejected.len() > SHOWN_REJECTIONS {
        let _ = writeln!(
            text,
            "  ... and {} more rejected rows",
            report.rejected.len() - SHOWN_REJECTIONS
        );
    }
    emit(out, &text)
}
