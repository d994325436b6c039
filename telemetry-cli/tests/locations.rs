//! Database paths that cannot work: a directory, a path under a file, a read-only file. Each is
//! one line naming the path and the reason, and nothing is created or changed. New directories
//! are private.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{can_run_as_nobody, seed, standard_records, telemetry, telemetry_unprivileged};

/// Runs `cmd --db DB ARGS`, expects it to fail, and returns its stderr, which must be one line.
fn one_line_failure(mut cmd: assert_cmd::Command, db: &Path, args: &[&str]) -> String {
    let out = cmd
        .arg("--db")
        .arg(db)
        .args(args)
        .assert()
        .failure()
        .get_output()
        .clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    err
}

const COMMANDS: [&[&str]; 6] = [
    &["stats"],
    &["export"],
    &["clear", "--yes"],
    &["prune", "--older-than", "1d", "--yes"],
    &["demo", "--calls", "3", "--gpu", "off"],
    &["import-openjarvis", "peer.db"],
];

#[test]
fn a_directory_is_named_as_a_directory() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("peer.db"), "x").unwrap();
    let dir = home.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    for args in COMMANDS {
        let mut cmd_args = args.to_vec();
        let peer = home.path().join("peer.db");
        if args[0] == "import-openjarvis" {
            cmd_args[1] = peer.to_str().unwrap();
        }
        let err = one_line_failure(telemetry(home.path()), &dir, &cmd_args);
        assert!(
            err.contains(dir.to_str().unwrap()) && err.contains("is a directory"),
            "{args:?}: {err}"
        );
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "{args:?}");
    }
}

#[test]
fn a_parent_that_is_a_file_is_named() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("notes.txt");
    std::fs::write(&file, "mine").unwrap();
    let peer = home.path().join("peer.db");
    std::fs::write(&peer, "x").unwrap();
    let db = file.join("t.db");
    for args in COMMANDS {
        let mut cmd_args = args.to_vec();
        if args[0] == "import-openjarvis" {
            cmd_args[1] = peer.to_str().unwrap();
        }
        let err = one_line_failure(telemetry(home.path()), &db, &cmd_args);
        assert!(
            err.contains(&format!("{} is not a directory", file.display())),
            "{args:?}: {err}"
        );
        assert_eq!(std::fs::read(&file).unwrap(), b"mine");
    }
}

#[cfg(unix)]
#[test]
fn new_directories_and_the_database_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("a").join("b").join("t.db");
    telemetry(home.path())
        .arg("--db")
        .arg(&db)
        .args(["demo", "--calls", "3", "--gpu", "off"])
        .assert()
        .success();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&home.path().join("a")), 0o700);
    assert_eq!(mode(&home.path().join("a").join("b")), 0o700);
    assert_eq!(mode(&db), 0o600);
}

/// Read-only files: refused with the path named, untouched, no side file created. Root ignores
/// file permissions, so as root the command runs as `nobody` through `setpriv`.
#[cfg(unix)]
#[test]
fn a_read_only_database_is_refused_with_its_path() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let db = home.path().join("t.db");
    seed(&db, &standard_records());
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    let peer = home.path().join("peer.db");
    std::fs::write(&peer, "x").unwrap();
    std::fs::set_permissions(&peer, std::fs::Permissions::from_mode(0o444)).unwrap();
    let root = std::fs::metadata(&db).unwrap().uid() == 0;
    // As root, nobody must be able to run the binary through setpriv.
    if root && !can_run_as_nobody(home.path()) {
        eprintln!("skipped: running as root, and cannot run the binary as nobody");
        return;
    }
    let before = std::fs::read(&db).unwrap();
    for args in &COMMANDS[2..] {
        let mut cmd_args = args.to_vec();
        if args[0] == "import-openjarvis" {
            cmd_args[1] = peer.to_str().unwrap();
        }
        let err = one_line_failure(telemetry_unprivileged(home.path()), &db, &cmd_args);
        assert!(
            err.contains(db.to_str().unwrap()) && err.contains("read-only"),
            "{args:?}: {err}"
        );
        assert_eq!(std::fs::read(&db).unwrap(), before, "{args:?}");
        for side in ["t.db-wal", "t.db-shm"] {
            assert!(!home.path().join(side).exists(), "{args:?} created {side}");
        }
    }
}

/// A writable file in a read-only directory: SQLite cannot create its write-ahead log there; the
/// error names the file and points at the directory rather than calling the database read-only.
#[cfg(unix)]
#[test]
fn a_read_only_directory_is_named_for_writers() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("ro");
    std::fs::create_dir(&dir).unwrap();
    let db = dir.join("t.db");
    seed(&db, &standard_records());
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = std::fs::metadata(&db).unwrap().uid() == 0;
    if root && !can_run_as_nobody(home.path()) {
        eprintln!("skipped: running as root, and cannot run the binary as nobody");
        return;
    }
    let before = std::fs::read(&db).unwrap();
    for args in [
        &["clear", "--yes"][..],
        &["demo", "--calls", "3", "--gpu", "off"],
    ] {
        let err = one_line_failure(telemetry_unprivileged(home.path()), &db, args);
        assert!(
            err.contains(db.to_str().unwrap()) && err.contains("directory"),
            "{args:?}: {err}"
        );
        assert_eq!(std::fs::read(&db).unwrap(), before, "{args:?}");
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}
