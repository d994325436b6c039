//! `export`: JSON, NDJSON and CSV, to stdout and to a file, filtered by time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{on_db, seed, standard_records, stderr_on_exit, stdout_of, temp_db};
use predicates::prelude::*;
use serde_json::Value;
use telemetry_core::TelemetryRecord;
use telemetry_core::schema::RECORD_COLUMNS;

#[test]
fn json_is_an_array_of_records() {
    let (dir, db) = temp_db();
    let records = standard_records();
    seed(&db, &records);
    let out = on_db(dir.path(), &db)
        .args(["export"])
        .assert()
        .success()
        .stderr(predicate::str::contains("wrote 30 records"))
        .get_output()
        .stdout
        .clone();
    let back: Vec<TelemetryRecord> = serde_json::from_slice(&out).unwrap();
    assert_eq!(back.len(), 30);
    // Ordered by timestamp: the oldest (llama, an hour ago) first, values exact.
    assert_eq!(back[0].model_id, "llama");
    let mut sorted = records.clone();
    sorted.sort_by(|a, b| a.timestamp.total_cmp(&b.timestamp));
    assert_eq!(back, sorted);
}

#[test]
fn ndjson_to_a_file_with_a_time_filter() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let file = dir.path().join("out.ndjson");
    on_db(dir.path(), &db)
        .args(["export", "-f", "ndjson", "--since", "30m", "-o"])
        .arg(&file)
        .assert()
        .success()
        .stdout(predicate::str::contains("wrote 20 records to"));
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 20);
    for line in text.lines() {
        let r: TelemetryRecord = serde_json::from_str(line).unwrap();
        assert_eq!(r.model_id, "qwen");
    }
}

#[test]
fn csv_has_the_table_columns() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let out = stdout_of(on_db(dir.path(), &db).args(["export", "--format", "csv"]));
    let mut reader = csv::Reader::from_reader(out.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(headers, RECORD_COLUMNS);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 30);
    let outcome = RECORD_COLUMNS.iter().position(|c| *c == "outcome").unwrap();
    assert_eq!(rows.iter().filter(|r| &r[outcome] == "error").count(), 2);
    let metadata = RECORD_COLUMNS
        .iter()
        .position(|c| *c == "metadata")
        .unwrap();
    assert!(
        rows.iter()
            .all(|r| serde_json::from_str::<Value>(&r[metadata]).is_ok())
    );
}

#[test]
fn empty_export_is_valid_json() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let out = stdout_of(on_db(dir.path(), &db).args(["export", "--since", "2099-01-01T00:00:00Z"]));
    let v: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert!(v.is_empty());
}

#[test]
fn unwritable_output_is_a_one_line_error() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let out = on_db(dir.path(), &db)
        .args(["export", "-o", "/no/such/dir/out.json"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("/no/such/dir/out.json"), "{err}");
}

/// Records in `db`, counted by SQLite directly.
fn count_rows(db: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT COUNT(*) FROM telemetry", [], |r| r.get(0))
        .unwrap()
}

/// Runs `export -o output` and expects the one-line refusal (exit 2).
fn assert_export_refused(dir: &std::path::Path, db: &std::path::Path, output: &std::path::Path) {
    let err = stderr_on_exit(on_db(dir, db).args(["export", "-o"]).arg(output), 2);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("refusing to write to") && err.contains("telemetry database"),
        "{err}"
    );
}

#[test]
fn export_refuses_to_overwrite_the_database_or_its_side_files() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let before = std::fs::read(&db).unwrap();
    let side = |suffix: &str| dir.path().join(format!("t.db{suffix}"));
    for output in [
        db.clone(),
        side("-wal"),
        side("-shm"),
        side("-journal"),
        dir.path().join(".").join("t.db"),
    ] {
        assert_export_refused(dir.path(), &db, &output);
    }
    #[cfg(unix)]
    {
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&db, &link).unwrap();
        assert_export_refused(dir.path(), &db, &link);
        assert!(link.is_symlink());
        let hard = dir.path().join("hard.json");
        std::fs::hard_link(&db, &hard).unwrap();
        assert_export_refused(dir.path(), &db, &hard);
        std::fs::remove_file(&hard).unwrap();
    }
    assert_eq!(std::fs::read(&db).unwrap(), before);
    assert_eq!(count_rows(&db), 30);
}

#[test]
fn export_refuses_a_live_write_ahead_log() {
    // A store that stays open keeps its records in the WAL (no checkpoint on close yet).
    let (dir, db) = temp_db();
    let store = telemetry_store::TelemetryStore::open(&db).unwrap();
    for r in standard_records() {
        store.record(&r).unwrap();
    }
    store.flush().unwrap();
    let wal = dir.path().join("t.db-wal");
    let wal_before = std::fs::read(&wal).unwrap();
    assert!(!wal_before.is_empty());
    assert_export_refused(dir.path(), &db, &wal);
    assert_eq!(std::fs::read(&wal).unwrap(), wal_before);
    store.close().unwrap();
    assert_eq!(count_rows(&db), 30);
}

#[test]
fn a_failed_export_leaves_no_partial_file() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    // The newest row cannot be read back: the export fails after writing the others.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE telemetry SET metadata = 'not json' WHERE id = (SELECT MAX(id) FROM telemetry)",
        [],
    )
    .unwrap();
    drop(conn);
    let fresh = dir.path().join("new.json");
    let kept = dir.path().join("old.json");
    std::fs::write(&kept, "old contents").unwrap();
    for output in [&fresh, &kept] {
        on_db(dir.path(), &db)
            .args(["export", "-o"])
            .arg(output)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("metadata"));
    }
    assert!(!fresh.exists());
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "old contents");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("t.db"))
        .collect();
    assert_eq!(names, ["old.json"], "temporary files left behind");
}

#[test]
fn an_export_replaces_the_file_a_symlink_points_to() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let real = dir.path().join("real.ndjson");
    std::fs::write(&real, "old").unwrap();
    let link = dir.path().join("link.ndjson");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&real, &link).unwrap();
    #[cfg(not(unix))]
    std::fs::copy(&real, &link).unwrap();
    on_db(dir.path(), &db)
        .args(["export", "-f", "ndjson", "-o"])
        .arg(&link)
        .assert()
        .success();
    #[cfg(unix)]
    {
        assert!(link.is_symlink());
        assert_eq!(std::fs::read_to_string(&real).unwrap().lines().count(), 30);
    }
}

#[cfg(unix)]
#[test]
fn export_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let file = dir.path().join("out.csv");
    std::fs::write(&file, "old").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    on_db(dir.path(), &db)
        .args(["export", "-f", "csv", "-o"])
        .arg(&file)
        .assert()
        .success();
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}
