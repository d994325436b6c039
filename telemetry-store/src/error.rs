//! [`StoreError`]: everything the store can report.

use std::path::PathBuf;

use telemetry_core::ValidationError;

/// What went wrong in a [`TelemetryStore`](crate::TelemetryStore) operation.
///
/// Each variant is something a caller can act on: fix the record ([`Invalid`](Self::Invalid)),
/// pick another file ([`NotADatabase`](Self::NotADatabase), [`Corrupt`](Self::Corrupt),
/// [`SchemaTooNew`](Self::SchemaTooNew)), slow down ([`QueueFull`](Self::QueueFull)), retry later
/// ([`WriteFailed`](Self::WriteFailed)) or stop using a closed store ([`Closed`](Self::Closed)).
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
        source: rusqlite::Error,
    },
    /// The writer could not commit (disk full, file removed, permissions, locked by another
    /// process for too long). The records are still queued and are retried in the background;
    /// [`stats`](crate::TelemetryStore::stats) shows the failure count and the last error.
    #[error("the telemetry writer could not commit after {attempts} attempts: {message}")]
    WriteFailed {
        /// Consecutive failed attempts so far.
        attempts: u32,
        /// The last error.
        message: String,
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

impl StoreError {
    pub(crate) fn sqlite(context: impl Into<String>, source: rusqlite::Error) -> Self {
        StoreError::Sqlite {
            context: context.into(),
            source,
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

/// `u64` → SQLite INTEGER, with an error instead of a wrap.
pub(crate) fn to_i64(field: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::ValueTooLarge { field, value })
}

/// SQLite INTEGER → `u64`, refusing negatives.
pub(crate) fn to_u64(column: &'static str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Decode {
        column,
        detail: format!("negative count {value}"),
    })
}
