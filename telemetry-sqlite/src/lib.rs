//! # telemetry-sqlite
//!
//! What the writer (`telemetry-store`) and the read-only query layer (`telemetry-agg`) both need
//! from SQLite, written once. The layering keeps those two apart (the query layer opens the file
//! on its own and never depends on the writer), so what they share lives here, below both:
//!
//! - [`SqliteError`]: an error from SQLite, kept opaque so that neither crate's public API names
//!   rusqlite's types (which would pin their callers to this workspace's exact rusqlite). Both
//!   crates carry it in their `Sqlite { context, source }` variant, beside what was being done,
//!   and re-export it, so a caller handling both errors sees one type.
//!   [`SqliteError::code`] gives SQLite's result code and [`SqliteError::is_corruption`] tells a
//!   damaged file apart. The two crates make one with [`wrap`] and classify it with
//!   [`error_code`]: free functions, not methods, so that they stay out of the re-exported type.
//! - [`stored_value`]: a value read from a row as core's
//!   [`StoredValue`](telemetry_core::StoredValue), which the record's field table
//!   ([`TelemetryRecord::set_field`](telemetry_core::TelemetryRecord::set_field)) and the summary
//!   table ([`Rollup::merge_stored`](telemetry_core::Rollup::merge_stored)) decode.
//! - [`applied_version`]: the schema version refinery recorded in [`MIGRATION_HISTORY`], which
//!   the writer compares before migrating and the readers before reading.
//!
//! ```
//! use rusqlite::Connection;
//! use telemetry_core::StoredValue;
//! use telemetry_sqlite::{MIGRATION_HISTORY, applied_version, stored_value, wrap};
//!
//! let conn = Connection::open_in_memory()?;
//! conn.execute_batch(&format!(
//!     "CREATE TABLE {MIGRATION_HISTORY} (version INTEGER); INSERT INTO {MIGRATION_HISTORY} VALUES (3), (4);"
//! ))?;
//! assert_eq!(applied_version(&conn)?, Some(4));
//!
//! let text = conn.query_row("SELECT 'llama', 7, NULL", [], |row| {
//!     assert_eq!(stored_value(row.get_ref(1)?), StoredValue::Integer(7));
//!     assert_eq!(stored_value(row.get_ref(2)?), StoredValue::Null);
//!     Ok(stored_value(row.get_ref(0)?) == StoredValue::Text(b"llama"))
//! })?;
//! assert!(text);
//!
//! // SQLITE_ERROR (1): no such table. The message is SQLite's.
//! let e = wrap(conn.execute("INSERT INTO nowhere VALUES (1)", []).unwrap_err());
//! assert_eq!(e.code(), Some(1));
//! assert!(e.to_string().contains("no such table: nowhere"), "{e}");
//! assert!(!e.is_corruption());
//! # Ok::<(), rusqlite::Error>(())
//! ```
//!
//! ## Feature flags
//!
//! None: the crate exists for SQLite (bundled through `rusqlite`).
#![deny(missing_docs)]

mod error;
mod schema;
mod value;

pub use error::{SqliteError, error_code, wrap};
pub use schema::{MIGRATION_HISTORY, applied_version};
pub use value::stored_value;
