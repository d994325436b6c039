//! `prune` and `clear`: refused without `--yes` off a terminal, and report what they deleted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{on_db, seed, standard_records, temp_db};
use predicates::prelude::*;

#[test]
fn prune_without_yes_is_refused_and_deletes_nothing() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    on_db(dir.path(), &db)
        .args(["prune", "--older-than", "30m"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--yes").and(predicate::str::contains("not a terminal")));
    on_db(dir.path(), &db)
        .args(["prune", "--older-than", "30m", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains("deleted 10 records older than"));
}

#[test]
fn prune_keeps_newer_records() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    on_db(dir.path(), &db)
        .args(["prune", "--older-than", "2h", "-y"])
        .assert()
        .success()
        .stdout(predicate::str::contains("deleted 0 records"));
    on_db(dir.path(), &db)
        .args(["clear", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains("deleted 30 records from"));
}

#[test]
fn clear_without_yes_is_refused() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    on_db(dir.path(), &db)
        .args(["clear"])
        .write_stdin("y\n")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("refusing to delete every record"));
    on_db(dir.path(), &db)
        .args(["clear", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains("deleted 30 records"));
}

#[test]
fn deleting_from_a_missing_database_creates_nothing() {
    let (dir, db) = temp_db();
    for args in [
        &["clear", "--yes"][..],
        &["prune", "--older-than", "1d", "--yes"],
    ] {
        on_db(dir.path(), &db)
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("no telemetry database"));
        assert!(!db.exists());
    }
}

#[test]
fn bad_duration_is_a_one_line_usage_error() {
    let (dir, db) = temp_db();
    let out = on_db(dir.path(), &db)
        .args(["prune", "--older-than", "a while"])
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8(out).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("a while"), "{err}");
}
