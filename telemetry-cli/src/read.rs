//! What every read command does first: open the database read-only (waiting briefly for one
//! that another process is creating) and read its `--since`/`--until` range.

use std::path::Path;
use std::time::{Duration, Instant};

use telemetry_agg::{AggError, TelemetryAggregator};
use telemetry_core::TimeRange;

use crate::cli::RangeArgs;
use crate::dbpath::DbPath;
use crate::error::CliError;

/// How long a reader waits for the schema of a database that another process is creating.
const SCHEMA_WAIT: Duration = Duration::from_secs(2);
/// How often it looks again meanwhile.
const SCHEMA_POLL: Duration = Duration::from_millis(50);
/// A file changed this recently, without the schema, may be a database being created.
const RECENT: Duration = Duration::from_secs(5);

/// Opens the database read-only; a missing file is [`DbPathError::MissingDatabase`](crate::dbpath::DbPathError::MissingDatabase) (exit 2) and
/// nothing is created.
///
/// A database being created by another process (`demo` just started) is briefly an empty file,
/// then a file with the migration history but no tables yet: while the file is empty or was
/// changed in the last seconds, the schema is waited for (up to [`SCHEMA_WAIT`]). A file still
/// empty after that is [`CliError::BeingCreated`]; other files keep the aggregator's error.
pub(crate) fn open_aggregator(db: &DbPath) -> Result<TelemetryAggregator, CliError> {
    let path = db.require_existing()?;
    let deadline = Instant::now() + SCHEMA_WAIT;
    loop {
        match TelemetryAggregator::open(path) {
            Ok(agg) => return Ok(agg),
            Err(
                e @ (AggError::NotTelemetry { .. }
                | AggError::UnsupportedSchema { found: None, .. }),
            ) if may_be_in_creation(path) => {
                if Instant::now() >= deadline {
                    return Err(if file_len(path) == 0 {
                        CliError::BeingCreated {
                            path: path.to_path_buf(),
                        }
                    } else {
                        e.into()
                    });
                }
                std::thread::sleep(SCHEMA_POLL);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Empty, or the file or its write-ahead log changed in the last [`RECENT`] seconds.
fn may_be_in_creation(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let recent = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < RECENT)
    };
    file_len(path) == 0 || recent(path) || recent(Path::new(&wal))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The `--since`/`--until` range; `since > until` is a usage error.
pub(crate) fn time_range(args: &RangeArgs) -> Result<TimeRange, CliError> {
    Ok(TimeRange::new(args.since, args.until)?)
}
