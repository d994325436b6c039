//! Readers on a read-only file in a read-only directory, run as a user the permission bits
//! apply to: when the tests run as root (root ignores them), `telemetry` runs through
//! `setpriv` as `nobody`; without `setpriv` the tests still run, as root, and then only the
//! "no side file" assertions can fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{SETPRIV, is_root, record, seed, standard_records, telemetry_unprivileged};
use telemetry_store::TelemetryStore;

fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn side(path: &Path, suffix: &str) -> PathBuf {
    let mut os = path.as_os_str().to_owned();
    os.push(suffix);
    os.into()
}

/// A directory others may enter, holding `ro/` for the database.
fn layout() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    set_mode(dir.path(), 0o755);
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    (dir, ro.join("t.db"))
}

/// `stats`, `series`, `export` and `check` in a read-only directory, on a read-only file and
/// on a file the user may write (only the directory stops a writer): they used to fail with
/// "attempt to write a readonly database" or "unable to open database file"; now they read,
/// and leave no `-wal`/`-shm` behind.
#[test]
fn every_reader_works_in_a_read_only_directory() {
    for writable_file in [false, true] {
        let (dir, db) = layout();
        seed(&db, &standard_records());
        if writable_file {
            // Owned by the user the command runs as (nobody, when the tests run as root).
            if is_root() {
                std::os::unix::fs::chown(&db, Some(65_534), Some(65_534)).unwrap();
            }
            set_mode(&db, 0o644);
        } else {
            set_mode(&db, 0o444);
        }
        set_mode(db.parent().unwrap(), 0o555);
        let path = db.to_str().unwrap();
        for args in [
            &["stats"][..],
            &["series", "--bucket", "1h"],
            &["export", "--format", "ndjson"],
            &["check"],
        ] {
            let out = telemetry_unprivileged(dir.path())
                .args(["--db", path])
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{args:?} (writable file: {writable_file}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                !side(&db, "-wal").exists() && !side(&db, "-shm").exists(),
                "{args:?} (writable file: {writable_file})"
            );
        }
        set_mode(db.parent().unwrap(), 0o755);
    }
}

/// Commits still in the log, no index, and a read-only directory: the reader cannot create the
/// index, and says exactly that, naming both files, in one line.
#[test]
fn a_log_that_cannot_be_indexed_in_a_read_only_directory_is_explained() {
    let (dir, db) = layout();
    let src_dir = tempfile::tempdir().unwrap();
    let src = src_dir.path().join("src.db");
    seed(&src, &standard_records());
    let store = TelemetryStore::open(&src).unwrap();
    store.record(&record("late", "e", "a", 5.0, 1)).unwrap();
    store.flush().unwrap();
    // The database and its log as a writer holds them, without the index.
    std::fs::copy(&src, &db).unwrap();
    std::fs::copy(side(&src, "-wal"), side(&db, "-wal")).unwrap();
    store.close().unwrap();
    set_mode(&db, 0o444);
    set_mode(&side(&db, "-wal"), 0o444);
    set_mode(db.parent().unwrap(), 0o555);
    let out = telemetry_unprivileged(dir.path())
        .args(["--db", db.to_str().unwrap(), "stats"])
        .output()
        .unwrap();
    set_mode(db.parent().unwrap(), 0o755);
    if !is_root() || Path::new(SETPRIV).exists() {
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.contains("t.db-wal") && err.contains("t.db-shm") && err.contains("writable"),
            "{err}"
        );
    }
}
