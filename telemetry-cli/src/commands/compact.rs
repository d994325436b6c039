//! `telemetry compact`: rewrites a database once so that prunes give disk space back.
//!
//! Files this version creates hand the pages a prune frees back to the file system on their own
//! (SQLite's incremental auto-vacuum); a file created before keeps them for reuse, so it never
//! shrinks. Converting it takes one `VACUUM`: a full rewrite that holds the write lock
//! throughout and needs free disk for two copies of the data (SQLite's temporary copy and the
//! write-ahead log), checked before anything is written. Before the rewrite, the rows' repeated
//! texts are stored once, as this version stores those of new rows (an older file's rows
//! shrink; every row reads back as before).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use telemetry_store::TelemetryStore;

use crate::cli::CompactArgs;
use crate::confirm::confirm;
use crate::dbpath::DbPath;
use crate::emit::emit;
use crate::error::CliError;
use crate::output::{self, bytes};

/// Rewrite speed assumed for the time estimate, bytes a second: a conservative guess for storing
/// the texts once and the `VACUUM` on an ordinary disk (on this project's 2-core development
/// machine, 60 MiB of proxy records from before V5 took 2.1 s, 29 MB/s); the command prints the
/// time it took.
const ASSUMED_RATE: f64 = 20e6;

/// Runs `compact`.
pub fn run(db: &DbPath, args: &CompactArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let path = db.require_existing()?;
    let before = TelemetryStore::file_space(path)?;
    let need = Need::of(path, before.used_bytes());
    let seconds = before.used_bytes() as f64 / ASSUMED_RATE;
    let plan = format!(
        "rewrite {} ({} in use, {} free{}): needs {} free disk ({}), takes about {:.0} s, \
         and blocks other writers meanwhile (stop the proxy or recorder first)",
        output::path(path),
        bytes(before.used_bytes()),
        bytes(before.free_bytes()),
        if before.incremental {
            "; already gives space back, this only packs it"
        } else {
            ""
        },
        bytes(need.total()),
        need.describe(),
        seconds.max(1.0),
    );
    need.check()?;
    if !args.yes {
        emit(out, &format!("{plan}\n"))?;
    }
    confirm(&format!("rewrite {}", output::path(path)), args.yes)?;
    let started = Instant::now();
    let store = TelemetryStore::open(path)?;
    let after = store.compact()?;
    store.close()?;
    emit(
        out,
        &format!(
            "compacted {} in {:.1} s: {} -> {}; repeated texts stored once, and prunes now give the \
             space they free back\n",
            output::path(path),
            started.elapsed().as_secs_f64(),
            bytes(before.file_bytes()),
            bytes(after),
        ),
    )
}

/// Free disk a `VACUUM` needs: a temporary copy of the data (in SQLite's temporary directory)
/// and the same again in the write-ahead log beside the database, with 10 % to spare.
struct Need {
    /// (directory, bytes needed there, bytes free there), one entry per file system.
    places: Vec<(PathBuf, u64, Option<u64>)>,
}

impl Need {
    fn of(db: &Path, used: u64) -> Need {
        let each = used + used / 10;
        let db_dir = db
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let temp = temp_dir();
        let mut places = vec![(db_dir.clone(), each, free_space(&db_dir))];
        if same_file_system(&db_dir, &temp) {
            places[0].1 += each;
        } else {
            let free = free_space(&temp);
            places.push((temp, each, free));
        }
        Need { places }
    }

    fn total(&self) -> u64 {
        self.places.iter().map(|(_, n, _)| n).sum()
    }

    fn describe(&self) -> String {
        self.places
            .iter()
            .map(|(dir, need, free)| {
                format!(
                    "{} in {} where {} are free",
                    bytes(*need),
                    output::path(dir),
                    free.map_or_else(|| "? bytes".to_owned(), bytes)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Refuses before anything is written when a file system lacks the room.
    fn check(&self) -> Result<(), CliError> {
        for (dir, need, free) in &self.places {
            if let Some(free) = free
                && free < need
            {
                return Err(CliError::Usage(format!(
                    "not enough free disk to compact: {} needed in {}, {} free (set SQLITE_TMPDIR \
                     to a directory on a file system with room for the temporary copy)",
                    bytes(*need),
                    output::path(dir),
                    bytes(*free)
                )));
            }
        }
        Ok(())
    }
}

/// SQLite's temporary directory on unix: the first of `$SQLITE_TMPDIR`, `$TMPDIR`, `/var/tmp`,
/// `/usr/tmp`, `/tmp` that is a directory.
fn temp_dir() -> PathBuf {
    ["SQLITE_TMPDIR", "TMPDIR"]
        .iter()
        .filter_map(|v| std::env::var_os(v).map(PathBuf::from))
        .chain(["/var/tmp", "/usr/tmp", "/tmp"].map(PathBuf::from))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| PathBuf::from("."))
}

#[cfg(unix)]
fn same_file_system(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => true,
    }
}

#[cfg(not(unix))]
fn same_file_system(_: &Path, _: &Path) -> bool {
    true
}

/// Bytes available to this user on the file system of `dir`, when the platform says.
#[cfg(unix)]
fn free_space(dir: &Path) -> Option<u64> {
    rustix::fs::statvfs(dir)
        .ok()
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
}

#[cfg(not(unix))]
fn free_space(_: &Path) -> Option<u64> {
    None
}
