//! Opening a database read-only and refusing what this crate cannot read.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};
use telemetry_core::schema::SCHEMA_VERSION;

use crate::error::AggError;

/// How long a statement waits on a lock (only WAL recovery by another process takes one).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens `path` read-only (`SQLITE_OPEN_READ_ONLY`, then `PRAGMA query_only`), without ever
/// creating it, and checks that it is a telemetry database at [`SCHEMA_VERSION`].
pub(crate) fn open_read_only(path: &Path) -> Result<Connection, AggError> {
    if !path.is_file() {
        return Err(AggError::NotFound {
            path: path.to_path_buf(),
        });
    }
    // READ_ONLY without CREATE: SQLite refuses to create the file, and every write fails.
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| classify(path, format!("opening {}", path.display()), e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| AggError::sqlite("setting the busy timeout", e))?;
    // Belt and braces: even a statement that slipped past READ_ONLY cannot write.
    // Memory-mapped reads spare a copy per page; the mapping is file-backed and read-only.
    conn.execute_batch(
        "PRAGMA query_only = ON; PRAGMA cache_size = -32768; PRAGMA mmap_size = 2147418112;",
    )
    .map_err(|e| classify(path, format!("configuring {}", path.display()), e))?;
    check_schema(&conn, path)?;
    Ok(conn)
}

/// Maps SQLite's "not a database" to its typed error.
fn classify(path: &Path, context: String, e: rusqlite::Error) -> AggError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => AggError::NotADatabase {
            path: path.to_path_buf(),
        },
        _ => AggError::sqlite(context, e),
    }
}

fn check_schema(conn: &Connection, path: &Path) -> Result<(), AggError> {
    let ctx = || format!("reading the schema of {}", path.display());
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| classify(path, ctx(), e))?;
    let has = |name: &str| tables.iter().any(|t| t == name);
    if !has("telemetry") {
        return Err(AggError::NotTelemetry {
            path: path.to_path_buf(),
            table: "telemetry",
        });
    }
    let found = if has("refinery_schema_history") {
        conn.query_row(
            "SELECT MAX(version) FROM refinery_schema_history",
            [],
            |r| r.get::<_, Option<i64>>(0),
        )
        .optional()
        .map_err(|e| classify(path, ctx(), e))?
        .flatten()
    } else {
        None
    };
    if found != Some(i64::from(SCHEMA_VERSION)) {
        return Err(AggError::UnsupportedSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if !has("telemetry_rollup") {
        return Err(AggError::NotTelemetry {
            path: path.to_path_buf(),
            table: "telemetry_rollup",
        });
    }
    Ok(())
}

/// `MAX(version)` of the migration history of `path`.
pub(crate) fn schema_version(conn: &Connection, path: &Path) -> Result<i32, AggError> {
    let found: Option<i64> = conn
        .query_row(
            "SELECT MAX(version) FROM refinery_schema_history",
            [],
            |r| r.get(0),
        )
        .map_err(|e| AggError::sqlite("reading refinery_schema_history", e))?;
    found
        .and_then(|v| i32::try_from(v).ok())
        .ok_or(AggError::UnsupportedSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        })
}
