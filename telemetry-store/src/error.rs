//! [`StoreError`]: everything the store can report.

use std::path::PathBuf;

use telemetry_core::ValidationError;
pub use telemetry_sqlite::SqliteError;

/// What went wrong in a [`TelemetryStore`](crate::TelemetryStore) operation.
///
/// Each variant is something a caller can act on: fix the record ([`Invalid`](Self::Invalid)),
/// pick another file ([`NotADatabase`](Self::NotADatabase), [`NotTelemetry`](Self::NotTelemetry),
/// [`Corrupt`](Self::Corrupt),
/// [`SchemaTooNew`](Self::SchemaTooNew)), slow down ([`QueueFull`](Self::QueueFull)), retry later
/// ([`WriteFailed`](Self::WriteFailed)), open the store again
/// ([`FileGone`](Self::FileGone)) or stop using a closed store ([`Closed`](Self::Closed)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record failed [`TelemetryRecord::validate`](telemetry_core::TelemetryRecord::validate);
    /// nothing was written. The inner error names the field and the value.
    #[error("record refused: {0}")]
    Invalid(#[from] ValidationError),
    /// The file exists but is not an SQLite database; it was left untouched.
    #[error("{path} is not an SQLite database (the file was left untouched)")]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// The file is an SQLite database, but damaged; it was left untouched.
    #[error("{path} is a corrupt SQLite database: {detail} (the file was left untouched)")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },
    /// The file is an SQLite database of something else (it holds tables, indexes or views and
    /// not the telemetry schema); it was left untouched. The schema is only ever created in a
    /// new or empty file.
    #[error(
        "{path} is an SQLite database of another application (it holds {objects}, not the telemetry schema); it was left untouched, use a new file"
    )]
    NotTelemetry {
        /// The file.
        path: PathBuf,
        /// Some of the tables, indexes or views it holds (up to five, comma-separated).
        objects: String,
    },
    /// The database was migrated by a newer version of this crate; it was left untouched.
    #[error(
        "{path} has telemetry schema version {found}, newer than version {supported} that this build knows (the file was left untouched)"
    )]
    SchemaTooNew {
        /// The file.
        path: PathBuf,
        /// Version recorded in the file's `refinery_schema_history`.
        found: i64,
        /// [`telemetry_core::schema::SCHEMA_VERSION`].
        supported: i32,
    },
    /// Applying the schema migrations failed.
    #[error("migrating the telemetry schema of {path} failed: {message}")]
    Migration {
        /// The file (`:memory:` for an in-memory store).
        path: PathBuf,
        /// What refinery or SQLite said.
        message: String,
    },
    /// The path cannot hold a writable database: it is a directory, one of its parents is a file,
    /// or the file is read-only. Nothing was created or changed.
    #[error("cannot write telemetry to {path}: {reason}")]
    Location {
        /// The database path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A filesystem operation failed (creating the parent directory or the file).
    #[error("{action} {path} failed: {source}")]
    Io {
        /// What was being done (`creating directory`, `creating file`, ...).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// SQLite refused an operation outside the writer (opening, configuring, reading an import).
    #[error("SQLite failed while {context}: {source}")]
    Sqlite {
        /// What was being done.
        context: String,
        /// The SQLite error.
        source: SqliteError,
    },
    /// The writer could not commit (disk full, file removed, permissions, locked by another
    /// process for too long). Returned by `flush` and the other controls after a few attempts,
    /// and by `record` once the failure has lasted longer than the
    /// [write retry budget](crate::StoreBuilder::write_retry_budget) (the record is then not
    /// queued, and counted in [`StoreStats::dropped`](crate::StoreStats::dropped)). Records
    /// already queued are kept and retried in the background;
    /// [`stats`](crate::TelemetryStore::stats) shows the failure count and the last error.
    #[error("cannot write telemetry to {path}: {message} ({attempts} failed attempts)")]
    WriteFailed {
        /// The database file (`:memory:` for an in-memory store).
        path: PathBuf,
        /// Consecutive failed attempts so far.
        attempts: u32,
        /// The last error.
        message: String,
    },
    /// The database file was deleted, or another file was moved over it, while the store had
    /// it open. The writer stopped for good: it never writes into a file that is no longer the
    /// one at the path, and everything it still held, or is given later, is dropped and counted
    /// ([`StoreStats::dropped`](crate::StoreStats::dropped), of which
    /// [`StoreStats::lost`](crate::StoreStats::lost) were accepted before). Open the store again
    /// to create (or open) the database now at the path.
    #[error(
        "{path} was {what} while the telemetry store had it open; nothing more is written (records are dropped): open the store again to use the file now at that path"
    )]
    FileGone {
        /// The database file.
        path: PathBuf,
        /// What happened to it: `deleted or moved away` or `replaced by another file`.
        what: &'static str,
    },
    /// The queue was full and the overflow policy is
    /// [`DropNewest`](crate::OverflowPolicy::DropNewest): this record was dropped and counted in
    /// [`StoreStats::dropped`](crate::StoreStats::dropped).
    #[error("telemetry queue is full ({capacity} records); the record was dropped")]
    QueueFull {
        /// The queue capacity.
        capacity: usize,
    },
    /// A value does not fit the SQLite column (an unsigned count above `i64::MAX`).
    #[error("field `{field}` is {value}, too large for an SQLite INTEGER")]
    ValueTooLarge {
        /// The field or rollup column.
        field: &'static str,
        /// The value.
        value: u64,
    },
    /// A stored row could not be decoded (a summary sketch or an enum string).
    #[error("stored value in `{column}` could not be decoded: {detail}")]
    Decode {
        /// The column.
        column: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The file to import is not an OpenJarvis telemetry database.
    #[error("{path} cannot be imported: {reason}")]
    Import {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The store was closed (or its writer stopped); nothing more is accepted.
    #[error("the telemetry store is closed")]
    Closed,
}

/// Why [`record`](crate::TelemetryStore::record) or
/// [`record_arc`](crate::TelemetryStore::record_arc) refused a record: only what recording can
/// return. Nothing of a refused record is stored. Converts into [`StoreError`] for callers that
/// handle every store error in one place.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The record failed [`TelemetryRecord::validate`](telemetry_core::TelemetryRecord::validate).
    /// The inner error names the field and the value. Counted in
    /// [`StoreStats::rejected`](crate::StoreStats::rejected).
    #[error("record refused: {0}")]
    Invalid(#[from] ValidationError),
    /// The queue was full and the overflow policy is
    /// [`DropNewest`](crate::OverflowPolicy::DropNewest): the record was dropped and counted in
    /// [`StoreStats::dropped`](crate::StoreStats::dropped).
    #[error("telemetry queue is full ({capacity} records); the record was dropped")]
    QueueFull {
        /// The queue capacity.
        capacity: usize,
    },
    /// The writer has failed to commit for longer than the
    /// [write retry budget](crate::StoreBuilder::write_retry_budget) (or, with
    /// [`Durability::Sync`](crate::Durability::Sync), the commit of this record failed): the record
    /// was not queued, and is counted in [`StoreStats::dropped`](crate::StoreStats::dropped).
    #[error("cannot write telemetry to {path}: {message} ({attempts} failed attempts)")]
    WriteFailed {
        /// The database file (`:memory:` for an in-memory store).
        path: PathBuf,
        /// Consecutive failed attempts so far.
        attempts: u32,
        /// The last error.
        message: String,
    },
    /// The database file was deleted or replaced while the store had it open (see
    /// [`StoreError::FileGone`]): the record was not queued, and is counted in
    /// [`StoreStats::dropped`](crate::StoreStats::dropped).
    #[error(
        "{path} was {what} while the telemetry store had it open; nothing more is written (records are dropped): open the store again to use the file now at that path"
    )]
    FileGone {
        /// The database file.
        path: PathBuf,
        /// What happened to it: `deleted or moved away` or `replaced by another file`.
        what: &'static str,
    },
    /// The store was closed (or its writer stopped); nothing more is accepted.
    #[error("the telemetry store is closed")]
    Closed,
}

impl RecordError {
    /// The offending field, for [`Invalid`](Self::Invalid).
    pub fn field(&self) -> Option<&'static str> {
        match self {
            RecordError::Invalid(e) => Some(e.field()),
            _ => None,
        }
    }

    /// A writer's answer to a synchronous record, as a recording error: anything but the
    /// recording errors themselves is a failed write of `path`.
    pub(crate) fn from_reply(e: StoreError, path: &std::path::Path) -> RecordError {
        match e {
            StoreError::Invalid(e) => RecordError::Invalid(e),
            StoreError::QueueFull { capacity } => RecordError::QueueFull { capacity },
            StoreError::WriteFailed {
                path,
                attempts,
                message,
            } => RecordError::WriteFailed {
                path,
                attempts,
                message,
            },
            StoreError::Closed => RecordError::Closed,
            StoreError::FileGone { path, what } => RecordError::FileGone { path, what },
            other => RecordError::WriteFailed {
                path: path.to_path_buf(),
                attempts: 1,
                message: other.to_string(),
            },
        }
    }
}

impl From<RecordError> for StoreError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::Invalid(e) => StoreError::Invalid(e),
            RecordError::QueueFull { capacity } => StoreError::QueueFull { capacity },
            RecordError::WriteFailed {
                path,
                attempts,
                message,
            } => StoreError::WriteFailed {
                path,
                attempts,
                message,
            },
            RecordError::Closed => StoreError::Closed,
            RecordError::FileGone { path, what } => StoreError::FileGone { path, what },
        }
    }
}

impl StoreError {
    pub(crate) fn sqlite(context: impl Into<String>, source: rusqlite::Error) -> Self {
        StoreError::Sqlite {
            context: context.into(),
            source: telemetry_sqlite::wrap(source),
        }
    }

    /// The offending field, for [`Invalid`](Self::Invalid) and [`ValueTooLarge`](Self::ValueTooLarge).
    pub fn field(&self) -> Option<&'static str> {
        match self {
            StoreError::Invalid(e) => Some(e.field()),
            StoreError::ValueTooLarge { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Whether `e` comes from the file, the disk or another process (worth retrying as it is), rather
/// than from the records being written (a batch failing for such a reason is split until the
/// offending record is found).
pub(crate) fn is_io(e: &StoreError) -> bool {
    use rusqlite::ErrorCode as C;
    match e {
        StoreError::Io { .. }
        | StoreError::WriteFailed { .. }
        | StoreError::FileGone { .. }
        | StoreError::Closed => true,
        StoreError::Sqlite { source, .. } => matches!(
            telemetry_sqlite::error_code(source),
            Some(
                C::DatabaseBusy
                    | C::DatabaseLocked
                    | C::SystemIoFailure
                    | C::DiskFull
                    | C::CannotOpen
                    | C::ReadOnly
                    | C::PermissionDenied
                    | C::OutOfMemory
                    | C::FileLockingProtocolFailed
                    | C::DatabaseCorrupt
                    | C::NotADatabase
                    | C::NoLargeFileSupport
                    | C::OperationInterrupted
                    | C::SchemaChanged
            )
        ),
        _ => false,
    }
}

/// `u64` → SQLite INTEGER, with an error instead of a wrap.
pub(crate) fn to_i64(field: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::ValueTooLarge { field, value })
}

#[cfg(test)]
mod record_error_tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_writer_reply_keeps_the_recording_errors_and_names_the_file_otherwise() {
        let path = Path::new("/data/t.db");
        assert!(matches!(
            RecordError::from_reply(StoreError::Closed, path),
            RecordError::Closed
        ));
        assert!(matches!(
            RecordError::from_reply(StoreError::QueueFull { capacity: 3 }, path),
            RecordError::QueueFull { capacity: 3 }
        ));
        let other = StoreError::ValueTooLarge {
            field: "prompt_tokens",
            value: u64::MAX,
        };
        match RecordError::from_reply(other, path) {
            RecordError::WriteFailed {
                path: p, message, ..
            } => {
                assert_eq!(p, path);
                assert!(message.contains("prompt_tokens"), "{message}");
            }
            e => panic!("expected WriteFailed, got {e}"),
        }
    }

    /// A file found gone while a failing batch is split (isolating a bad record) ends the
    /// split: its records are lost with the file, not refused one by one as bad records.
    #[test]
    fn a_file_gone_is_not_blamed_on_the_records() {
        assert!(is_io(&StoreError::FileGone {
            path: "/d/t.db".into(),
            what: "deleted or moved away",
        }));
    }

    #[test]
    fn every_recording_error_converts_to_the_same_store_error() {
        let cases = [
            RecordError::QueueFull { capacity: 8 },
            RecordError::Closed,
            RecordError::FileGone {
                path: "/d/t.db".into(),
                what: "replaced by another file",
            },
            RecordError::WriteFailed {
                path: "/d".into(),
                attempts: 2,
                message: "disk full".into(),
            },
        ];
        for e in cases {
            let text = e.to_string();
            assert_eq!(StoreError::from(e).to_string(), text);
        }
    }
}

#[cfg(test)]
mod sqlite_error_tests {
    use super::*;

    /// The public error holds our `SqliteError`, not rusqlite's type, and keeps SQLite's code,
    /// message and source, and the writer still sees whether it is worth retrying.
    #[test]
    fn sqlite_errors_are_ours_with_the_code_message_and_source() {
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(5), None);
        let e = StoreError::sqlite("opening", busy);
        assert!(is_io(&e));
        let StoreError::Sqlite { context, source } = &e else {
            panic!("expected Sqlite, got {e}");
        };
        let source: &SqliteError = source;
        assert_eq!(context, "opening");
        assert_eq!(source.code(), Some(5));
        assert!(e.to_string().contains("database is locked"), "{e}");
        assert!(std::error::Error::source(source).is_some());
        let conversion = StoreError::sqlite("reading", rusqlite::Error::InvalidQuery);
        let StoreError::Sqlite { source, .. } = &conversion else {
            panic!("expected Sqlite");
        };
        assert_eq!(source.code(), None);
        assert!(!is_io(&conversion));
    }
}
