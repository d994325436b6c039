//! Opening a database read-only and refusing what this crate cannot read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};
use telemetry_core::schema::SCHEMA_VERSION;
use telemetry_sqlite::{MIGRATION_HISTORY, SqliteError, applied_version, error_code};

use crate::error::AggError;

/// How long a statement waits on a lock (only WAL recovery by another process takes one).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How a reader opens the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Through the write-ahead log and its `-shm` index, as any SQLite reader: sees every
    /// commit, including a running writer's.
    Shared,
    /// `immutable=1`: no lock, no `-wal`/`-shm` created. Only where no writer can be at work
    /// and every commit is in the main file: no log with content, and either the file is not
    /// writable or its directory is not (a writer could not create its log there).
    Immutable,
}

/// Removes the `-wal`/`-shm` files a [`Access::Shared`] reader had SQLite create next to a
/// checkpointed database, once that reader's connection is closed: a read-write connection is
/// opened and closed, and SQLite, closing the last connection to the file, checkpoints the
/// (empty) log and deletes both. While any other connection is open (a writer, another
/// reader), SQLite leaves them, as they are then in use. Declared after the connection it
/// follows, so it drops after it.
#[derive(Debug)]
pub(crate) struct SideFileCleanup {
    path: PathBuf,
}

impl Drop for SideFileCleanup {
    fn drop(&mut self) {
        // READ_WRITE without CREATE: never creates the database. Errors only mean the files
        // stay, as they would have without this.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if let Ok(conn) = Connection::open_with_flags(&self.path, flags) {
            let _ = conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            });
            let _ = conn.close();
        }
    }
}

/// `path` with `suffix` appended (`-wal`, `-shm`, `-journal`).
pub(crate) fn side_file(path: &Path, suffix: &str) -> PathBuf {
    let mut os = path.as_os_str().to_owned();
    os.push(suffix);
    os.into()
}

/// Length of `path`, `None` when it does not exist.
fn len_of(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// A read-only connection and, when opening it created the `-wal`/`-shm` files, what removes
/// them after it (keep it alongside the connection, declared after it).
pub(crate) type ReadOnly = (Connection, Option<SideFileCleanup>);

/// Opens `path` read-only (`SQLITE_OPEN_READ_ONLY`, then `PRAGMA query_only`), without ever
/// creating it, and checks that it is a telemetry database at [`SCHEMA_VERSION`].
///
/// No write access is needed and no side file is left behind:
/// - a log with content (a writer at work, or one that stopped without checkpointing) is read
///   through its `-shm` index like any reader does; when that is impossible (the index is
///   missing and cannot be created, e.g. in a read-only directory),
///   [`AggError::WalUnreadable`] says why;
/// - otherwise every commit is in the main file. Where a writer could work (the file and its
///   directory are writable), the file is opened as a normal reader, so that commits made
///   while it is open are seen; the `-wal`/`-shm` files SQLite creates for that are removed
///   once the reader closes, if no other connection uses them ([`SideFileCleanup`]). Where
///   no writer can work (a read-only file, or a directory where the log cannot be created), it
///   is opened `immutable=1`: no lock and nothing created.
pub(crate) fn open_read_only(path: &Path) -> Result<ReadOnly, AggError> {
    if !path.is_file() {
        return Err(AggError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let wal = side_file(path, "-wal");
    let shm = side_file(path, "-shm");
    let wal_bytes = len_of(&wal).unwrap_or(0);
    let journal = len_of(&side_file(path, "-journal")).unwrap_or(0);
    if wal_bytes > 0 || journal > 0 {
        return match open_with(path, Access::Shared) {
            Err(AggError::Sqlite { source, .. }) if cannot_open_log(&source) => {
                Err(AggError::WalUnreadable {
                    path: path.to_path_buf(),
                    wal,
                    wal_bytes,
                    shm,
                    detail: source.to_string(),
                })
            }
            other => other.map(|conn| (conn, None)),
        };
    }
    // Opening for writing changes nothing in the file; it only asks whether a writer could.
    let writable = std::fs::OpenOptions::new().write(true).open(path).is_ok();
    if !writable {
        return open_with(path, Access::Immutable).map(|conn| (conn, None));
    }
    let (had_wal, had_shm) = (wal.exists(), shm.exists());
    match open_with(path, Access::Shared) {
        Ok(conn) => {
            let made = (!had_wal && wal.exists()) || (!had_shm && shm.exists());
            let cleanup = made.then(|| SideFileCleanup {
                path: path.to_path_buf(),
            });
            Ok((conn, cleanup))
        }
        // The log cannot be created: no writer can work here either.
        Err(AggError::Sqlite { source, .. }) if cannot_open_log(&source) => {
            open_with(path, Access::Immutable).map(|conn| (conn, None))
        }
        Err(e) => Err(e),
    }
}

/// Opens, configures and checks `path` with `access`. SQLite opens the log on the first read
/// (the pragmas already read), so a log that cannot be opened fails here.
fn open_with(path: &Path, access: Access) -> Result<Connection, AggError> {
    // READ_ONLY without CREATE: SQLite refuses to create the file, and every write fails.
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(uri(path, access), flags)
        .map_err(|e| classify(path, format!("opening {}", path.display()), e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| AggError::sqlite("setting the busy timeout", e))?;
    configure(&conn, path)?;
    check_schema(&conn, path)?;
    Ok(conn)
}

/// Errors SQLite gives when it cannot open or write the log's index, or replay the log.
fn cannot_open_log(e: &SqliteError) -> bool {
    matches!(
        error_code(e),
        Some(
            ErrorCode::CannotOpen
                | ErrorCode::ReadOnly
                | ErrorCode::PermissionDenied
                | ErrorCode::SystemIoFailure
        )
    )
}

/// The `file:` URI of `path` for `access`, with the characters URIs reserve escaped.
fn uri(path: &Path, access: Access) -> String {
    let mut out = String::from("file:");
    if path.as_os_str().as_encoded_bytes().starts_with(b"//") {
        // "file://x/.." would make `x` an authority; an explicit empty-host one keeps the path.
        out.push_str("//localhost");
    }
    for b in path.as_os_str().as_encoded_bytes() {
        match *b {
            b'?' | b'#' | b'%' => out.push_str(&format!("%{b:02X}")),
            // Non-ASCII bytes (UTF-8 or not) percent-encoded: SQLite decodes them back to bytes.
            b if b >= 0x80 => out.push_str(&format!("%{b:02X}")),
            b => out.push(char::from(b)),
        }
    }
    out.push_str("?mode=ro");
    if access == Access::Immutable {
        out.push_str("&immutable=1");
    }
    out
}

fn configure(conn: &Connection, path: &Path) -> Result<(), AggError> {
    // Belt and braces: even a statement that slipped past READ_ONLY cannot write.
    // Memory-mapped reads spare a copy per page; the mapping is file-backed and read-only.
    conn.execute_batch(
        "PRAGMA query_only = ON; PRAGMA cache_size = -32768; PRAGMA mmap_size = 2147418112;",
    )
    .map_err(|e| classify(path, format!("configuring {}", path.display()), e))
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
    let found = if has(MIGRATION_HISTORY) {
        applied_version(conn).map_err(|e| classify(path, ctx(), e))?
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
    let found = applied_version(conn)
        .map_err(|e| AggError::sqlite(format!("reading {MIGRATION_HISTORY}"), e))?;
    found
        .and_then(|v| i32::try_from(v).ok())
        .ok_or(AggError::UnsupportedSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        })
}
