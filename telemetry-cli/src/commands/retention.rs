//! `telemetry prune` and `telemetry clear`: the only deletions, each confirmed.

use std::io::Write;
use std::path::Path;

use telemetry_store::TelemetryStore;

use crate::cli::{ClearArgs, PruneArgs};
use crate::confirm::confirm;
use crate::dbpath::DbPath;
use crate::emit::emit;
use crate::error::CliError;
use crate::output::{self, count};
use crate::timearg::{format_duration, format_time, now_unix};

/// Deletes records older than `--older-than`.
pub fn prune(db: &DbPath, args: &PruneArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let path = db.require_existing()?;
    if is_empty_file(path) {
        return nothing_to_delete(path, out);
    }
    let cutoff = now_unix() - args.older_than.as_secs_f64();
    if cutoff < 0.0 {
        return Err(CliError::Usage(format!(
            "--older-than {} reaches back before 1970, older than any record (use `clear` to delete everything)",
            format_duration(args.older_than)
        )));
    }
    let action = format!(
        "delete records older than {} ({}) from {}",
        format_duration(args.older_than),
        format_time(cutoff),
        output::path(path)
    );
    confirm(&action, args.yes)?;
    let store = TelemetryStore::open(path)?;
    let deleted = store.prune_before(cutoff)?;
    let stats = store.stats();
    store.close()?;
    emit(
        out,
        &format!(
            "deleted {} records older than {} from {}; {}\n",
            count(deleted),
            format_time(cutoff),
            output::path(path),
            space_note(path, stats.reclaimed_bytes)
        ),
    )
}

/// What happened to the space of the deleted records: given back, or (a file created by an
/// earlier version) kept for reuse until `compact`.
fn space_note(path: &Path, reclaimed: u64) -> String {
    match TelemetryStore::file_space(path) {
        Ok(space) if !space.incremental && space.free_pages > 0 => format!(
            "the file keeps {} of free pages for new records (it was created by an earlier \
             version: run `telemetry compact` once so that deletions give space back)",
            output::bytes(space.free_bytes())
        ),
        Ok(space) => format!(
            "{} given back to the file system, the file is {}",
            output::bytes(reclaimed),
            output::bytes(space.file_bytes())
        ),
        Err(_) => format!("{} given back to the file system", output::bytes(reclaimed)),
    }
}

/// Deletes every record.
pub fn clear(db: &DbPath, args: &ClearArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let path = db.require_existing()?;
    if is_empty_file(path) {
        return nothing_to_delete(path, out);
    }
    confirm(
        &format!("delete every record in {}", output::path(path)),
        args.yes,
    )?;
    let store = TelemetryStore::open(path)?;
    let deleted = store.clear()?;
    let stats = store.stats();
    store.close()?;
    emit(
        out,
        &format!(
            "deleted {} records from {}; {}\n",
            count(deleted),
            output::path(path),
            space_note(path, stats.reclaimed_bytes)
        ),
    )
}

/// Whether `path` is a zero-byte file with no write-ahead log holding data: no database yet.
fn is_empty_file(path: &Path) -> bool {
    let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(path).is_ok_and(|m| m.len() == 0) && len(Path::new(&wal)) == 0
}

/// An empty file holds no records: say so rather than turn it into a database.
fn nothing_to_delete(path: &Path, out: &mut dyn Write) -> Result<(), CliError> {
    emit(
        out,
        &format!(
            "nothing to clear: {} is an empty file, not a database yet (left as it is)\n",
            output::path(path)
        ),
    )
}
