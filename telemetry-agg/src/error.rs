//! [`AggError`]: everything the query layer can fail with.

use std::path::PathBuf;

pub use telemetry_sqlite::SqliteError;

/// Why opening a database or answering a query failed. Each variant names the file, the value or
/// the row and column involved, so a caller can tell the user what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AggError {
    /// The database file does not exist (the aggregator never creates one).
    #[error("telemetry database {path} does not exist")]
    NotFound {
        /// The path given to [`open`](crate::TelemetryAggregator::open).
        path: PathBuf,
    },
    /// The file exists but is not a SQLite database.
    #[error("{path} is not a SQLite database")]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// The file is SQLite but has no table the telemetry store writes.
    #[error("{path} is not a telemetry database: it has no `{table}` table")]
    NotTelemetry {
        /// The file.
        path: PathBuf,
        /// The missing table.
        table: &'static str,
    },
    /// The schema version recorded in `refinery_schema_history` is not the one this crate reads.
    #[error(
        "{path} has telemetry schema version {}, but this build reads only version {supported}{}",
        found.map_or_else(|| "none (no refinery_schema_history)".to_owned(), |v| v.to_string()),
        if found.is_some_and(|v| v >= 1 && v < i64::from(*supported)) {
            " (an older file: opening it once for writing with `TelemetryStore::open`, as every \
             `telemetry` command that writes does, upgrades it in place and keeps every row)"
        } else {
            ""
        }
    )]
    UnsupportedSchema {
        /// The file.
        path: PathBuf,
        /// The version found; `None` when there is no migration history at all.
        found: Option<i64>,
        /// [`telemetry_core::schema::SCHEMA_VERSION`].
        supported: i32,
    },
    /// The write-ahead log holds commits that may not be in the database file yet (without its
    /// index there is no telling whether they were checkpointed), and SQLite could not read it: reading it needs its shared-memory index (`-shm`), which is missing
    /// and cannot be created (a read-only directory), or cannot be opened.
    #[error(
        "cannot read {path}: its write-ahead log {} holds {wal_bytes} bytes of commits that may \
         not be in the database file yet, and reading them needs the index {}, which could not be \
         opened or created ({detail}); checkpoint the database where its directory is writable \
         (any `telemetry` write, or `sqlite3 FILE 'PRAGMA wal_checkpoint(TRUNCATE)'`), or copy \
         the database and its -wal file to a writable directory",
        wal.display(),
        shm.display()
    )]
    WalUnreadable {
        /// The database file.
        path: PathBuf,
        /// Its write-ahead log.
        wal: PathBuf,
        /// Size of the log when it was opened.
        wal_bytes: u64,
        /// The log's shared-memory index.
        shm: PathBuf,
        /// What SQLite said.
        detail: String,
    },
    /// A stored value could not be read back into a record (export).
    #[error("row {row_id} of `telemetry`, column `{column}`: {detail}")]
    BadRow {
        /// `telemetry.id` of the row.
        row_id: i64,
        /// The column.
        column: &'static str,
        /// What was wrong with the value.
        detail: String,
    },
    /// A stored summary row could not be decoded.
    #[error(
        "telemetry_rollup row (level {level}, bucket_start {bucket_start}), column `{column}`: {detail}"
    )]
    BadRollup {
        /// Bucket width, seconds.
        level: i64,
        /// Bucket start, unix seconds.
        bucket_start: i64,
        /// The column.
        column: &'static str,
        /// What was wrong with the value.
        detail: String,
    },
    /// A string is not a [`Bucket`](crate::Bucket) name.
    #[error("unknown bucket {input:?}: expected one of 1m, minute, 1h, hour, 1d, day")]
    UnknownBucket {
        /// The string given.
        input: String,
    },
    /// A string is not a [`GroupBy`](crate::GroupBy) name.
    #[error("unknown grouping {input:?}: expected one of none, model, engine, agent")]
    UnknownGroupBy {
        /// The string given.
        input: String,
    },
    /// The operating system refused something (starting an export thread).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// SQLite failed (I/O error, lock held too long, corruption found while reading).
    #[error("{context}: {source}")]
    Sqlite {
        /// What was being done.
        context: String,
        /// The SQLite error.
        #[source]
        source: SqliteError,
    },
}

impl AggError {
    /// Whether SQLite found the file damaged (`SQLITE_CORRUPT`: "database disk image is
    /// malformed"), as opposed to missing, not ours, or unreadable for another reason.
    pub fn is_corruption(&self) -> bool {
        matches!(self, AggError::Sqlite { source, .. } if source.is_corruption())
    }

    pub(crate) fn sqlite(context: impl Into<String>, source: rusqlite::Error) -> Self {
        AggError::Sqlite {
            context: context.into(),
            source: telemetry_sqlite::wrap(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The public error holds our `SqliteError`, not rusqlite's type, with SQLite's code, and
    /// corruption is still told apart.
    #[test]
    fn sqlite_errors_are_ours_and_corruption_is_recognised() {
        let corrupt = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(11), None);
        let e = AggError::sqlite("reading", corrupt);
        assert!(e.is_corruption());
        let AggError::Sqlite { source, .. } = &e else {
            panic!("expected Sqlite, got {e}");
        };
        let source: &SqliteError = source;
        assert_eq!(source.code(), Some(11));
        assert!(e.to_string().contains("malformed"), "{e}");
        let busy = AggError::sqlite("reading", rusqlite::Error::InvalidQuery);
        assert!(!busy.is_corruption());
    }
}
