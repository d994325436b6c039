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

/// `prune` says how much space came back; `compact` converts a file from before incremental
/// auto-vacuum once, keeping every record (the export is the same) and the summaries (`check`).
#[test]
fn prune_gives_space_back_and_compact_converts_an_old_file_keeping_every_record() {
    let (dir, db) = temp_db();
    // A thousand records at each of 3 h, 2 h and 10 min ago.
    let records: Vec<_> = (0..3_000)
        .map(|i| {
            let age = [10_800.0, 7_200.0, 600.0][(i / 1_000) as usize] + (i % 1_000) as f64 * 0.01;
            common::record("m", "vllm", "a", age, i)
        })
        .collect();
    seed(&db, &records);
    // A file as earlier versions created it.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA auto_vacuum = NONE; VACUUM;")
        .unwrap();
    let out =
        common::stdout_of(on_db(dir.path(), &db).args(["prune", "--older-than", "150m", "-y"]));
    assert!(out.contains("deleted 1,000 records"), "{out}");
    assert!(out.contains("run `telemetry compact` once"), "{out}");
    let before = common::exported(dir.path(), &db);

    on_db(dir.path(), &db)
        .args(["compact"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--yes"));
    let out = common::stdout_of(on_db(dir.path(), &db).arg("check"));
    assert!(out.contains("kept for reuse"), "{out}");
    let out = common::stdout_of(on_db(dir.path(), &db).args(["compact", "--yes"]));
    assert!(out.contains("compacted"), "{out}");
    let out = common::stdout_of(on_db(dir.path(), &db).arg("check"));
    assert!(out.contains("0 B free, given back by prunes"), "{out}");
    assert_eq!(common::exported(dir.path(), &db), before);
    on_db(dir.path(), &db).arg("check").assert().success();

    let out = common::stdout_of(on_db(dir.path(), &db).args(["prune", "--older-than", "1h", "-y"]));
    assert!(out.contains("deleted 1,000 records"), "{out}");
    assert!(out.contains("given back to the file system"), "{out}");
    on_db(dir.path(), &db).arg("check").assert().success();
}
