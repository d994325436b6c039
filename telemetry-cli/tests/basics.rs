//! Global behaviour: help with examples, database path resolution, missing databases, one-line
//! errors and exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{on_db, seed, standard_records, stderr_on_exit, telemetry, temp_db};
use predicates::prelude::*;

#[test]
fn help_lists_commands_examples_and_the_default_database() {
    let dir = tempfile::tempdir().unwrap();
    telemetry(dir.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(
            predicate::str::contains("Examples:")
                .and(predicate::str::contains("import-openjarvis"))
                .and(predicate::str::contains("TELEMETRY_DB"))
                .and(predicate::str::contains(
                    ".local/share/telemetry/telemetry.db",
                )),
        );
    for cmd in [
        "demo",
        "stats",
        "series",
        "export",
        "prune",
        "clear",
        "import-openjarvis",
        "check",
    ] {
        telemetry(dir.path())
            .args([cmd, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Examples:"));
    }
}

#[test]
fn no_arguments_shows_help_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    telemetry(dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("Usage"));
}

#[test]
fn read_commands_on_a_missing_database_exit_2_and_create_nothing() {
    let (dir, db) = temp_db();
    for cmd in [
        &["stats"][..],
        &["series", "--bucket", "1h"],
        &["export"],
        &["check"],
    ] {
        let err = stderr_on_exit(on_db(dir.path(), &db).args(cmd), 2);
        assert_eq!(err.trim_end().lines().count(), 1, "{cmd:?}: {err}");
        assert!(
            err.contains("no telemetry database") && err.contains("t.db"),
            "{err}"
        );
        assert!(!db.exists(), "{cmd:?} created the database");
    }
}

#[test]
fn env_var_and_default_location_are_used() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    telemetry(dir.path())
        .env("TELEMETRY_DB", &db)
        .arg("stats")
        .assert()
        .success()
        .stdout(predicate::str::contains("calls   30"));
    // Default: $XDG_DATA_HOME/telemetry/telemetry.db.
    let xdg = dir.path().join("xdg");
    let default_db = xdg.join("telemetry").join("telemetry.db");
    telemetry(dir.path())
        .env("XDG_DATA_HOME", &xdg)
        .arg("stats")
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains(default_db.to_str().unwrap())
                .and(predicate::str::contains("default")),
        );
    std::fs::create_dir_all(default_db.parent().unwrap()).unwrap();
    std::fs::copy(&db, &default_db).unwrap();
    telemetry(dir.path())
        .env("XDG_DATA_HOME", &xdg)
        .arg("stats")
        .assert()
        .success()
        .stdout(predicate::str::contains("calls   30"));
    // And ~/.local/share without XDG_DATA_HOME.
    let home_db = dir.path().join(".local/share/telemetry/telemetry.db");
    telemetry(dir.path())
        .arg("check")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(home_db.to_str().unwrap()));
}

#[test]
fn usage_errors_are_one_line_with_exit_2() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    for args in [
        &["stats", "--since", "last tuesday"][..],
        &["stats", "--format", "yaml"],
        &["export", "--format", "xml"],
        &["series"],
        &["series", "--bucket", "1w"],
        &["frobnicate"],
    ] {
        let out = on_db(dir.path(), &db)
            .args(args)
            .assert()
            .code(2)
            .get_output()
            .clone();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
    }
    let err = stderr_on_exit(
        on_db(dir.path(), &db).args(["stats", "--since", "last tuesday"]),
        2,
    );
    assert!(
        err.contains("last tuesday") && err.contains("--since"),
        "{err}"
    );
}

#[test]
fn output_to_a_pipe_has_no_escape_codes() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let out = telemetry(dir.path())
        .env_remove("TELEMETRY_NO_PROGRESS")
        .args(["--db", db.to_str().unwrap(), "stats"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(!out.stdout.contains(&0x1b) && !out.stderr.contains(&0x1b));
}
