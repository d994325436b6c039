//! Readers racing a brand-new database: they wait for the schema rather than call the file "not
//! a telemetry database", and a file left empty is reported as being created.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use common::{on_db, seed, spawn, standard_records, telemetry_std, temp_db};
use serde_json::Value;

/// Seeds `db` with the standard records 300 ms from now, on a thread of its own: a writer
/// that is still creating the database when the command under test starts.
fn seed_soon(db: &Path) -> std::thread::JoinHandle<()> {
    let db = db.to_owned();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        seed(&db, &standard_records());
    })
}

#[test]
fn a_reader_waits_for_a_database_being_created() {
    let (dir, db) = temp_db();
    // What a starting writer leaves for a moment: the empty file it created.
    std::fs::write(&db, b"").unwrap();
    let writer = seed_soon(&db);
    let out = on_db(dir.path(), &db)
        .args(["stats", "--format", "json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    writer.join().unwrap();
    let stats: Value = serde_json::from_slice(&out).unwrap();
    assert!(stats["total_calls"].is_u64(), "{stats}");
}

#[test]
fn a_file_that_stays_empty_is_said_to_be_being_created() {
    let (dir, db) = temp_db();
    std::fs::write(&db, b"").unwrap();
    let started = Instant::now();
    let out = on_db(dir.path(), &db)
        .args(["stats"])
        .assert()
        .failure()
        .get_output()
        .clone();
    assert!(started.elapsed() >= Duration::from_secs(1), "did not wait");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains(db.to_str().unwrap()) && err.contains("being created"),
        "{err}"
    );
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0);
}

#[test]
fn an_old_foreign_file_is_refused_without_waiting() {
    let (dir, db) = temp_db();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE users (id INTEGER)")
        .unwrap();
    drop(conn);
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3_600);
    std::fs::File::options()
        .write(true)
        .open(&db)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    let started = Instant::now();
    on_db(dir.path(), &db).args(["stats"]).assert().failure();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "waited for nothing"
    );
}

#[test]
fn serve_waits_for_a_database_being_created() {
    let (dir, db) = temp_db();
    std::fs::write(&db, b"").unwrap();
    let writer = seed_soon(&db);
    let mut serve = spawn(
        telemetry_std(dir.path())
            .args([
                "--db",
                db.to_str().unwrap(),
                "serve",
                "--listen",
                "127.0.0.1:0",
            ])
            .stderr(std::process::Stdio::piped()),
    );
    let first = serve.first_line.clone();
    let _ = serve.child.kill();
    let status = serve.child.wait().unwrap();
    writer.join().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut serve.child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        first.starts_with("serving http://"),
        "{first:?} {status:?} {err}"
    );
}
