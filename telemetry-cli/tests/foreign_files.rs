//! Files that are not ours: another application's SQLite database is refused by every command,
//! byte for byte untouched and with no side file created; an empty file is not turned into a
//! database by `clear`/`prune`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::on_db;
use predicates::prelude::*;

/// An application's database: one `users` table, rollback journal (SQLite's default).
fn app_db(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
         INSERT INTO users (name) VALUES ('ada'), ('grace');",
    )
    .unwrap();
    drop(conn);
    // An existing application's file, not one being created: readers do not wait for a schema.
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3_600);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
}

fn side_files(path: &Path) -> Vec<String> {
    ["-wal", "-shm", "-journal"]
        .iter()
        .map(|s| format!("{}{s}", path.display()))
        .filter(|p| Path::new(p).exists())
        .collect()
}

#[test]
fn every_command_refuses_another_applications_database_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    app_db(&db);
    let before = std::fs::read(&db).unwrap();
    let peer = dir.path().join("peer.db");
    std::fs::write(&peer, "an OpenJarvis file would be here").unwrap();
    let out = dir.path().join("out.json");
    let html = dir.path().join("r.html");
    let commands: Vec<Vec<&str>> = vec![
        vec!["clear", "--yes"],
        vec!["prune", "--older-than", "1d", "--yes"],
        vec!["demo", "--calls", "5", "--gpu", "off"],
        vec!["import-openjarvis", peer.to_str().unwrap()],
        vec!["stats"],
        vec!["series", "--bucket", "1h"],
        vec!["export"],
        vec!["export", "-o", out.to_str().unwrap()],
        vec!["report", "-o", html.to_str().unwrap()],
        vec!["check"],
    ];
    for args in commands {
        let output = on_db(dir.path(), &db)
            .args(&args)
            .assert()
            .failure()
            .get_output()
            .clone();
        let err = String::from_utf8(output.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("app.db") && err.contains("telemetry"),
            "{args:?}: {err}"
        );
        assert_eq!(std::fs::read(&db).unwrap(), before, "{args:?} changed it");
        assert_eq!(side_files(&db), Vec::<String>::new(), "{args:?}");
    }
    assert!(!out.exists() && !html.exists());
    let conn = rusqlite::Connection::open(&db).unwrap();
    let users: i64 = conn
        .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 2);
}

#[test]
fn clear_and_prune_leave_an_empty_file_empty() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("empty.db");
    std::fs::write(&db, b"").unwrap();
    for args in [
        &["clear", "--yes"][..],
        &["prune", "--older-than", "1d", "--yes"],
        // Nothing to confirm either.
        &["clear"],
    ] {
        on_db(dir.path(), &db).args(args).assert().success().stdout(
            predicate::str::contains("nothing to clear").and(predicate::str::contains("empty.db")),
        );
        assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "{args:?}");
        assert_eq!(side_files(&db), Vec::<String>::new(), "{args:?}");
    }
}
