//! `telemetry prune` and `telemetry clear`: the only deletions, each confirmed.

use std::io::Write;

use telemetry_store::TelemetryStore;

use crate::cli::{ClearArgs, PruneArgs};
use crate::commands::emit;
use crate::confirm::confirm;
use crate::dbpath::DbPath;
use crate::error::CliError;
use crate::output::count;
use crate::timearg::{format_time, now_unix};

/// Deletes records older than `--older-than`.
pub fn prune(db: &DbPath, args: &PruneArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let path = db.require_existing()?;
    let cutoff = now_unix() - args.older_than.as_secs_f64();
    let action = format!(
        "delete records older than {} ({}) from {}",
        humantime::format_duration(args.older_than),
        format_time(cutoff),
        path.display()
    );
    confirm(&action, args.yes)?;
    let store = TelemetryStore::open(path)?;
    let deleted = store.prune_before(cutoff)?;
    store.close()?;
    emit(
        out,
        &format!(
            "deleted {} records older than {} from {}\n",
            count(deleted),
            format_time(cutoff),
            path.display()
        ),
    )
}

/// Deletes every record.
pub fn clear(db: &DbPath, args: &ClearArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let path = db.require_existing()?;
    confirm(
        &format!("delete every record in {}", path.display()),
        args.yes,
    )?;
    let store = TelemetryStore::open(path)?;
    let deleted = store.clear()?;
    store.close()?;
    emit(
        out,
        &format!(
            "deleted {} records from {}\n",
            count(deleted),
            path.display()
        ),
    )
}
