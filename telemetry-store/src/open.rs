//! Opening the database: directory and file creation, refusing what is not ours, pragmas and
//! the refinery migrations of [`telemetry_core::schema`].

use std::path::Path;
use std::thread;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};
use telemetry_core::schema::{MIGRATIONS, SCHEMA_VERSION};
use telemetry_sqlite::{MIGRATION_HISTORY, applied_version};

use crate::builder::{Durability, Location};
use crate::error::StoreError;
use crate::writer::backoff;

/// WAL pages between automatic checkpoints (SQLite's default is 1 000). A checkpoint copies
/// every page changed since the last one, once; batches of thousands of rows touch the same
/// index and table pages again and again, so checkpointing less often writes fewer copies.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 8_000;

/// Bytes the write-ahead log keeps after a checkpoint resets it (SQLite's default keeps its
/// largest size for ever): a prune or a compaction writes many pages through the log once, and
/// that space goes back to the file system rather than stay beside the database.
const WAL_SIZE_LIMIT: u64 = 64 << 20;

/// Attempts at migrating when another process migrates the same new file at the same time.
const MIGRATION_ATTEMPTS: u32 = 20;

/// Opens `location`, checks it, configures it and brings its schema to [`SCHEMA_VERSION`].
pub(crate) fn open_connection(
    location: &Location,
    durability: Durability,
    busy_timeout: Duration,
) -> Result<Connection, StoreError> {
    let (conn, path) = match location {
        Location::Memory => {
            let conn = Connection::open_in_memory()
                .map_err(|e| StoreError::sqlite("opening an in-memory database", e))?;
            (conn, Path::new(":memory:"))
        }
        Location::File(path) => {
            prepare_file(path)?;
            let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let conn = Connection::open_with_flags(path, flags)
                .map_err(|e| classify(path, format!("opening {}", path.display()), e))?;
            (conn, path.as_path())
        }
    };
    conn.busy_timeout(busy_timeout)
        .map_err(|e| StoreError::sqlite("setting the busy timeout", e))?;
    // Read before writing anything, so that a foreign, corrupt or newer file stays untouched.
    check_existing(&conn, path, matches!(location, Location::File(_)))?;
    configure(&conn, location, durability, path)?;
    migrate(conn, path)
}

/// Checks that `path` can hold a writable database, then creates the missing parent directories
/// (mode 0700) and, when missing, the file (mode 0600). An existing file must be writable: a
/// read-only one is refused here, before SQLite opens it (and creates `-wal`/`-shm` beside it).
fn prepare_file(path: &Path) -> Result<(), StoreError> {
    let refuse = |reason: String| StoreError::Location {
        path: path.to_path_buf(),
        reason,
    };
    if path.is_dir() {
        return Err(refuse("it is a directory, not a database file".to_owned()));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        // The nearest existing ancestor must be a directory ("a/b.db" where "a" is a file).
        if let Some(blocker) = parent
            .ancestors()
            .filter(|p| !p.as_os_str().is_empty())
            .find(|p| p.symlink_metadata().is_ok())
            .filter(|p| !p.is_dir())
        {
            return Err(refuse(format!("{} is not a directory", blocker.display())));
        }
        let mut dirs = std::fs::DirBuilder::new();
        dirs.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            dirs.mode(0o700);
        }
        dirs.create(parent).map_err(|source| StoreError::Io {
            action: "creating directory",
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Opened for writing without truncating: nothing changes, but permissions are checked.
            match std::fs::OpenOptions::new().write(true).open(path) {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(refuse(
                    "the file is read-only (no write permission for this user)".to_owned(),
                )),
                Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem => {
                    Err(refuse("it is on a read-only file system".to_owned()))
                }
                Err(source) => Err(StoreError::Io {
                    action: "opening",
                    path: path.to_path_buf(),
                    source,
                }),
            }
        }
        Err(source) => Err(StoreError::Io {
            action: "creating file",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Maps "not a database" and "corrupt" to their typed errors.
fn classify(path: &Path, context: String, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => StoreError::NotADatabase {
            path: path.to_path_buf(),
        },
        Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
        // The file itself was found writable before SQLite opened it: what SQLite cannot write
        // is beside it, the write-ahead log and its index.
        Some(ErrorCode::ReadOnly) => StoreError::Location {
            path: path.to_path_buf(),
            reason: format!(
                "SQLite cannot create or write its -wal/-shm files beside it (is the directory \
                 read-only for this user?): {e}"
            ),
        },
        _ => StoreError::sqlite(context, e),
    }
}

/// Refuses a file that is not SQLite, has a newer schema, holds a `telemetry` table this crate
/// did not create, or holds anything else that is not our schema (another application's
/// database): the schema is created only in a new or empty file. With `verify`, an existing
/// telemetry database must also pass `PRAGMA quick_check`. Reads only.
fn check_existing(conn: &Connection, path: &Path, verify: bool) -> Result<(), StoreError> {
    let ctx = || format!("reading the schema of {}", path.display());
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| classify(path, ctx(), e))?;
    let has = |name: &str| names.iter().any(|t| t == name);
    let history = has(MIGRATION_HISTORY);
    if history {
        let found = applied_version(conn).map_err(|e| classify(path, ctx(), e))?;
        if let Some(found) = found.filter(|v| *v > i64::from(SCHEMA_VERSION)) {
            return Err(StoreError::SchemaTooNew {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
    }
    // refinery creates its history table before the migration's transaction, so a file holding
    // only that table is one being created (or whose creation was cut short): still empty.
    let others: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| *n != MIGRATION_HISTORY)
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    if history && has("telemetry") && has("telemetry_rollup") {
        return if verify {
            quick_check(conn, path)
        } else {
            Ok(())
        };
    }
    if has("telemetry") {
        return Err(StoreError::Migration {
            path: path.to_path_buf(),
            message: "it has a `telemetry` table that this crate did not create (an OpenJarvis \
                      database? open a new file and use `import_openjarvis`)"
                .to_owned(),
        });
    }
    let mut listed: Vec<&str> = others.into_iter().take(5).collect();
    listed.sort_unstable();
    Err(StoreError::NotTelemetry {
        path: path.to_path_buf(),
        objects: listed.join(", "),
    })
}

/// `PRAGMA quick_check`: refuses a database damaged anywhere (not just in the pages read so far),
/// before anything is written to it.
fn quick_check(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let lines: Vec<String> = conn
        .prepare("PRAGMA quick_check(3)")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| match classify(path, String::new(), e) {
            StoreError::Sqlite { source, .. } => corrupt(format!("quick_check failed: {source}")),
            other => other,
        })?;
    if lines.len() == 1 && lines[0] == "ok" {
        Ok(())
    } else {
        Err(corrupt(format!("quick_check: {}", lines.join("; "))))
    }
}

fn configure(
    conn: &Connection,
    location: &Location,
    durability: Durability,
    path: &Path,
) -> Result<(), StoreError> {
    // Only takes effect while the file has no table yet (a new file): pages freed by a prune
    // can then be handed back to the file system in small steps (`PRAGMA incremental_vacuum`)
    // instead of a full rewrite. On an existing file it changes nothing (`compact` converts one).
    conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL")
        .map_err(|e| {
            classify(
                path,
                format!("setting auto_vacuum on {}", path.display()),
                e,
            )
        })?;
    if matches!(location, Location::File(_)) {
        // Changing the journal mode can meet another process's lock without the busy handler.
        let mut attempt = 0;
        loop {
            match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
                Ok(_) => break,
                Err(e) if attempt < MIGRATION_ATTEMPTS && is_busy(&e) => {
                    attempt += 1;
                    thread::sleep(backoff(attempt));
                }
                Err(e) => {
                    return Err(classify(
                        path,
                        format!("enabling WAL on {}", path.display()),
                        e,
                    ));
                }
            }
        }
    }
    let sync = match durability {
        Durability::Buffered => "NORMAL",
        Durability::Sync => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync}; PRAGMA temp_store = MEMORY; \
         PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}; \
         PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};"
    ))
    .map_err(|e| StoreError::sqlite("setting pragmas", e))
}

/// Applies the embedded migrations through refinery, retrying when another process is doing the
/// same on a new file.
fn migrate(mut conn: Connection, path: &Path) -> Result<Connection, StoreError> {
    let migrations = MIGRATIONS
        .iter()
        .map(|(name, sql)| refinery::Migration::unapplied(name, sql))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Migration {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let runner = refinery::Runner::new(&migrations).set_grouped(true);
    let mut attempt = 0;
    loop {
        match runner.run(&mut conn) {
            Ok(_) => return Ok(conn),
            Err(e) if attempt < MIGRATION_ATTEMPTS => {
                // Most likely a concurrent migration of the same file: wait, re-check, retry.
                attempt += 1;
                tracing::debug!(error = %e, attempt, "telemetry schema migration retry");
                thread::sleep(backoff(attempt));
                check_existing(&conn, path, false)?;
            }
            Err(e) => {
                return Err(StoreError::Migration {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                });
            }
        }
    }
}

pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// The page counts of the database at `path`, read through a read-only connection.
pub(crate) fn read_file_space(path: &Path) -> Result<crate::maintenance::FileSpace, StoreError> {
    if !path.is_file() {
        return Err(StoreError::Location {
            path: path.to_path_buf(),
            reason: "no such database file".to_owned(),
        });
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| classify(path, format!("opening {}", path.display()), e))?;
    crate::maintenance::FileSpace::read(&conn).map_err(|e| match e {
        StoreError::Sqlite { source, .. } if source.code() == Some(26) => {
            StoreError::NotADatabase {
                path: path.to_path_buf(),
            }
        }
        other => other,
    })
}
