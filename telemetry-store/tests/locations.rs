//! Paths that cannot hold a writable database are refused with the reason, creating nothing;
//! directories the store creates are private (0700).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use telemetry_store::{StoreError, TelemetryStore};

#[test]
fn a_directory_is_refused_as_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let err = TelemetryStore::open(dir.path()).err().unwrap();
    assert!(matches!(err, StoreError::Location { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&dir.path().display().to_string()) && msg.contains("is a directory"),
        "{msg}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_parent_that_is_a_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, "x").unwrap();
    let err = TelemetryStore::open(file.join("sub").join("t.db"))
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Location { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{} is not a directory", file.display())),
        "{msg}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[cfg(unix)]
#[test]
fn new_directories_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a").join("b").join("t.db");
    TelemetryStore::open(&path).unwrap().close().unwrap();
    for d in [dir.path().join("a"), dir.path().join("a").join("b")] {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
    }
}

#[cfg(unix)]
#[test]
fn a_read_only_file_is_refused_with_its_path_and_no_side_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    TelemetryStore::open(&path).unwrap().close().unwrap();
    let wal = dir.path().join("t.db-wal");
    let wal_before = wal.exists();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    if std::fs::OpenOptions::new().write(true).open(&path).is_ok() {
        // Root ignores permissions; the CLI tests cover this case as an unprivileged user.
        eprintln!("skipped: this user can write read-only files");
        return;
    }
    let err = TelemetryStore::open(&path).err().unwrap();
    assert!(matches!(err, StoreError::Location { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("read-only"),
        "{msg}"
    );
    assert_eq!(wal.exists(), wal_before);
}
