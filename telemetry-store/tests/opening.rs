//! Opening: directory and file creation, and refusing foreign, corrupt or newer files untouched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use telemetry_core::schema::SCHEMA_VERSION;
use telemetry_store::{StoreError, TelemetryStore};

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn creates_parent_directories_and_a_private_file_with_the_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c/telemetry.db");
    let store = TelemetryStore::open(&path).unwrap();
    assert_eq!(store.path(), Some(path.as_path()));
    store.close().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let conn = common::connect(&path);
    let version: i64 = conn
        .query_row(
            "SELECT MAX(version) FROM refinery_schema_history",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, i64::from(SCHEMA_VERSION));
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    let content = b"these are my notes, not a database\n".repeat(200);
    std::fs::write(&path, &content).unwrap();
    let err = TelemetryStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err}");
    assert!(err.to_string().contains("notes.db"), "{err}");
    assert_eq!(bytes(&path), content);
    assert!(!dir.path().join("notes.db-wal").exists());
}

#[test]
fn a_corrupt_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::builder(&path).open().unwrap();
    store.record(&common::sample("c", 1)).unwrap();
    store.close().unwrap();
    drop(store);
    // Overwrite the schema table's page (page 1 after its 100-byte header).
    let mut content = bytes(&path);
    for b in &mut content[100..600] {
        *b = 0xA5;
    }
    std::fs::write(&path, &content).unwrap();
    let err = TelemetryStore::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt { .. } | StoreError::NotADatabase { .. }
        ),
        "{err}"
    );
    assert_eq!(bytes(&path), content);
}

#[test]
fn a_newer_schema_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    TelemetryStore::open(&path).unwrap().close().unwrap();
    {
        let conn = common::connect(&path);
        conn.execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
             VALUES (?1, 'future', '2030-01-01T00:00:00Z', '0')",
            [i64::from(SCHEMA_VERSION) + 1],
        )
        .unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    let before = bytes(&path);
    let err = TelemetryStore::open(&path).unwrap_err();
    match &err {
        StoreError::SchemaTooNew {
            found, supported, ..
        } => {
            assert_eq!(*found, i64::from(SCHEMA_VERSION) + 1);
            assert_eq!(*supported, SCHEMA_VERSION);
        }
        other => panic!("expected SchemaTooNew, got {other}"),
    }
    assert_eq!(bytes(&path), before);
}

#[test]
fn a_foreign_telemetry_table_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openjarvis.db");
    {
        let conn = common::connect(&path);
        conn.execute_batch("CREATE TABLE telemetry (id INTEGER PRIMARY KEY, model_id TEXT)")
            .unwrap();
    }
    let before = bytes(&path);
    let err = TelemetryStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Migration { .. }), "{err}");
    assert!(err.to_string().contains("import_openjarvis"), "{err}");
    assert_eq!(bytes(&path), before);
}

#[test]
fn in_memory_store_accepts_records() {
    let store = TelemetryStore::in_memory().unwrap();
    assert!(store.path().is_none());
    store.record(&common::sample("m", 2)).unwrap();
    store.flush().unwrap();
    assert_eq!(store.stats().written, 1);
    assert_eq!(store.clear().unwrap(), 1);
}

/// Another application's SQLite file (tables, no telemetry schema) used to get our tables added
/// and be switched to WAL. It is refused, byte for byte untouched, with no side files created.
#[test]
fn another_applications_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    {
        let conn = common::connect(&path);
        conn.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO users (name) VALUES ('ada');",
        )
        .unwrap();
    }
    let before = bytes(&path);
    let err = TelemetryStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NotTelemetry { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("users"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(!text.contains('\n'));
    assert_eq!(bytes(&path), before);
    assert!(!dir.path().join("app.db-wal").exists());
    // An empty file is still a new database.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    TelemetryStore::open(&empty).unwrap().close().unwrap();
}

/// A database damaged in the middle (schema page intact) used to be written to: `demo` put
/// 20 000 records into one. Opening for writing runs `PRAGMA quick_check` and refuses it, naming
/// the corruption, without writing anything.
#[test]
fn a_database_corrupt_in_the_middle_is_refused_before_any_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::open(&path).unwrap();
    for i in 0..5_000 {
        store.record(&common::sample("mid", i)).unwrap();
    }
    store.close().unwrap();
    drop(store);
    let mut content = bytes(&path);
    let page = usize::from(u16::from_be_bytes([content[16], content[17]]));
    let pages = content.len() / page;
    assert!(pages > 20, "{pages} pages");
    // Garble a few pages in the middle, leaving page 1 (the schema) intact.
    for b in &mut content[page * (pages / 2)..page * (pages / 2 + 3)] {
        *b = 0xA5;
    }
    std::fs::write(&path, &content).unwrap();
    let err = TelemetryStore::open(&path).unwrap_err();
    match &err {
        StoreError::Corrupt { detail, .. } => assert!(!detail.is_empty(), "{err}"),
        other => panic!("expected Corrupt, got {other}"),
    }
    assert!(err.to_string().contains("quick_check"), "{err}");
    assert_eq!(bytes(&path), content);
}

#[test]
fn a_version_1_database_gains_the_later_columns_and_keeps_its_rows() {
    use telemetry_core::schema::MIGRATIONS;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        // A file as the first release wrote it: only the first migration applied.
        let mut conn = common::connect(&path);
        let (name, sql) = MIGRATIONS[0];
        let v1 = [refinery::Migration::unapplied(name, sql).unwrap()];
        refinery::Runner::new(&v1).run(&mut conn).unwrap();
        conn.execute(
            "INSERT INTO telemetry (timestamp, model_id) VALUES (1764300000.0, 'old')",
            [],
        )
        .unwrap();
    }
    let store = TelemetryStore::open(&path).unwrap();
    let mut new = common::sample("new", 1);
    new.server_prefill_ms = Some(12.5);
    new.server_decode_ms = Some(80.0);
    store.record(&new).unwrap();
    store.close().unwrap();
    let conn = common::connect(&path);
    let version: i64 = conn
        .query_row(
            "SELECT MAX(version) FROM refinery_schema_history",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, i64::from(SCHEMA_VERSION));
    let rows = common::read_all(&conn);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].model_id, "old");
    assert_eq!(
        (rows[0].server_prefill_ms, rows[0].server_decode_ms),
        (None, None)
    );
    // And the API columns of V3: no names, no counts.
    assert_eq!((rows[0].api.as_str(), rows[0].operation.as_str()), ("", ""));
    assert_eq!(
        (
            rows[0].reasoning_tokens,
            rows[0].prompt_tokens_cache_write,
            rows[0].output_chunks
        ),
        (0, 0, 0)
    );
    assert_ne!(new.api, "");
    assert_eq!(rows[1], new);
}
