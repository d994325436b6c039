//! [`SqliteError`]: an error from SQLite, opaque to the users of the store and the query layer.

use rusqlite::ErrorCode;

/// An error from SQLite, kept opaque so that the public API names none of rusqlite's types (which
/// would pin callers to this crate's exact rusqlite). It prints SQLite's message;
/// [`code`](Self::code) gives SQLite's extended result code when SQLite itself failed, and
/// [`source`](std::error::Error::source) leads to the underlying error.
#[derive(Debug)]
pub struct SqliteError(rusqlite::Error);

impl SqliteError {
    /// SQLite's extended result code (`SQLITE_BUSY` is 5, `SQLITE_CORRUPT` 11, `SQLITE_FULL` 13,
    /// see <https://sqlite.org/rescode.html>), when the error came from SQLite itself rather than
    /// from converting a value.
    pub fn code(&self) -> Option<i32> {
        match &self.0 {
            rusqlite::Error::SqliteFailure(e, _) => Some(e.extended_code),
            _ => None,
        }
    }

    /// Whether SQLite found the file damaged (`SQLITE_CORRUPT`: "database disk image is
    /// malformed"), as opposed to missing, not a database, or unreadable for another reason.
    pub fn is_corruption(&self) -> bool {
        error_code(self) == Some(ErrorCode::DatabaseCorrupt)
    }
}

impl std::fmt::Display for SqliteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SqliteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// rusqlite's error as a [`SqliteError`]. A function rather than a `From` impl, so that the
/// store's and the query layer's re-exported `SqliteError` shows no rusqlite type.
pub fn wrap(error: rusqlite::Error) -> SqliteError {
    SqliteError(error)
}

/// SQLite's primary result code of `error` (busy, locked, full, corrupt, ...), for the store and
/// the query layer to decide what an error means; `None` when SQLite itself did not fail (a
/// value that did not convert, a query that returned no row).
pub fn error_code(error: &SqliteError) -> Option<ErrorCode> {
    error.0.sqlite_error_code()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32) -> SqliteError {
        wrap(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    }

    /// The code, the message and the source survive the wrapping, and the classification
    /// follows SQLite's primary code whatever the extended one.
    #[test]
    fn the_code_message_and_source_are_sqlites() {
        let busy = failure(5);
        assert_eq!(busy.code(), Some(5));
        assert_eq!(error_code(&busy), Some(ErrorCode::DatabaseBusy));
        assert!(busy.to_string().contains("database is locked"), "{busy}");
        assert!(std::error::Error::source(&busy).is_some());
        assert!(!busy.is_corruption());

        // SQLITE_CORRUPT_VTAB (267) is a corruption too.
        let corrupt = failure(267);
        assert_eq!(corrupt.code(), Some(267));
        assert!(corrupt.is_corruption());
        assert!(failure(11).to_string().contains("malformed"));
    }

    #[test]
    fn an_error_sqlite_did_not_give_has_no_code() {
        let e = wrap(rusqlite::Error::InvalidQuery);
        assert_eq!(e.code(), None);
        assert_eq!(error_code(&e), None);
        assert!(!e.is_corruption());
    }
}
