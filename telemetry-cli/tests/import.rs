//! `import-openjarvis`: imports a peer database once, reports duplicates and bad rows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{now, on_db, temp_db};
use predicates::prelude::*;

/// An OpenJarvis `telemetry.db` (older schema: no ITL or energy-method columns) with `n` good
/// rows and one row that fails validation (negative latency).
fn openjarvis_db(path: &Path, n: usize) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE telemetry (
            id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp REAL NOT NULL, model_id TEXT NOT NULL,
            engine TEXT NOT NULL DEFAULT '', agent TEXT NOT NULL DEFAULT '',
            prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,
            total_tokens INTEGER NOT NULL DEFAULT 0, latency_seconds REAL NOT NULL DEFAULT 0.0,
            ttft REAL NOT NULL DEFAULT 0.0, cost_usd REAL NOT NULL DEFAULT 0.0,
            energy_joules REAL NOT NULL DEFAULT 0.0, power_watts REAL NOT NULL DEFAULT 0.0,
            gpu_utilization_pct REAL DEFAULT 0.0, gpu_memory_used_gb REAL DEFAULT 0.0,
            gpu_temperature_c REAL DEFAULT 0.0, throughput_tok_per_sec REAL DEFAULT 0.0,
            prefill_latency_seconds REAL DEFAULT 0.0, decode_latency_seconds REAL DEFAULT 0.0,
            metadata TEXT NOT NULL DEFAULT '{}');",
    )
    .unwrap();
    let t = now() - 100.0;
    for i in 0..n {
        conn.execute(
            "INSERT INTO telemetry (timestamp, model_id, engine, prompt_tokens, completion_tokens,
             total_tokens, latency_seconds) VALUES (?1, 'gpt-4o', 'openai', 10, 5, 15, 0.7)",
            [t + i as f64],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO telemetry (timestamp, model_id, latency_seconds) VALUES (?1, 'bad', -1.0)",
        [t],
    )
    .unwrap();
}

#[test]
fn imports_once_and_reports_rejected_rows() {
    let (dir, db) = temp_db();
    let peer = dir.path().join("peer.db");
    openjarvis_db(&peer, 25);
    on_db(dir.path(), &db)
        .args(["import-openjarvis", peer.to_str().unwrap()])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("imported 25 of 26 rows")
                .and(predicate::str::contains("1 rejected"))
                .and(predicate::str::contains("rejected row 26"))
                .and(predicate::str::contains("latency_seconds")),
        );
    on_db(dir.path(), &db)
        .args(["import-openjarvis", peer.to_str().unwrap()])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("imported 0 of 26 rows")
                .and(predicate::str::contains("25 already present")),
        );
}

#[test]
fn missing_source_is_exit_2_and_creates_nothing() {
    let (dir, db) = temp_db();
    on_db(dir.path(), &db)
        .args(["import-openjarvis", "/no/such/peer.db"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/no/such/peer.db"));
    assert!(!db.exists());
}

#[test]
fn a_file_that_is_not_sqlite_is_a_one_line_error() {
    let (dir, db) = temp_db();
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    let out = on_db(dir.path(), &db)
        .args(["import-openjarvis", junk.to_str().unwrap()])
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8(out).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("junk.db"), "{err}");
}
