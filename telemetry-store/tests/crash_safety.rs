//! A writer process killed with SIGKILL mid-ingest, ten times: the file opens, passes
//! `PRAGMA integrity_check`, and holds every record a completed `flush` or Sync `record`
//! acknowledged.
//!
//! The child is this test binary re-run with `TELEMETRY_STORE_CHILD` set, executing the
//! `#[ignore]`d `child_ingest` test, which prints `ack <id>` lines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use telemetry_store::{Durability, TelemetryStore};

const CHILD_ENV: &str = "TELEMETRY_STORE_CHILD";

/// Child mode: records forever from id `base`, acknowledging after each flush (or each Sync
/// record).
#[test]
#[ignore = "child process of crash_safety; runs only when re-executed by it"]
fn child_ingest() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(3, '|');
    let base: u64 = parts.next().unwrap().parse().unwrap();
    let sync = parts.next().unwrap() == "sync";
    let path = parts.next().unwrap();
    let store = TelemetryStore::builder(path)
        .durability(if sync {
            Durability::Sync
        } else {
            Durability::Buffered
        })
        .batch_size(256)
        .open()
        .unwrap();
    let mut out = std::io::stdout().lock();
    let mut id = base;
    loop {
        let mut record = common::sample("crash", id);
        record.metadata = serde_json::json!({ "id": id }).into();
        store.record(&record).unwrap();
        if sync {
            writeln!(out, "ack {id}").unwrap();
            out.flush().unwrap();
        } else if id.is_multiple_of(97) {
            store.flush().unwrap();
            writeln!(out, "ack {id}").unwrap();
            out.flush().unwrap();
        }
        id += 1;
    }
}

#[test]
fn killed_writers_leave_a_sound_file_with_every_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let mut acknowledged: HashSet<u64> = HashSet::new();
    for round in 0..10u64 {
        let sync = round % 3 == 2;
        let mut child = common::child("child_ingest")
            .env(
                CHILD_ENV,
                format!(
                    "{}|{}|{}",
                    round * 1_000_000,
                    if sync { "sync" } else { "buffered" },
                    path.display()
                ),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut acks = 0;
        // Kill after a varying number of acknowledgements, mid-ingest.
        let wanted = 3 + round * 2;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(id) = line.strip_prefix("ack ") {
                acknowledged.insert(id.trim().parse().unwrap());
                acks += 1;
                if acks >= wanted {
                    break;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL on unix
        child.wait().unwrap();
        assert!(acks >= wanted, "round {round}: child stopped early");

        let conn = common::connect(&path);
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "round {round}");
        let mut stmt = conn
            .prepare("SELECT json_extract(metadata, '$.id') FROM telemetry_records")
            .unwrap();
        let stored: HashSet<u64> = stmt
            .query_map([], |r| r.get::<_, i64>(0))
            .unwrap()
            .map(|id| id.unwrap() as u64)
            .collect();
        let missing: Vec<_> = acknowledged.difference(&stored).collect();
        assert!(missing.is_empty(), "round {round}: lost {missing:?}");
    }
    // The store itself reopens the file and its summaries match its rows.
    let store = TelemetryStore::open(&path).unwrap();
    store.close().unwrap();
    let conn = common::connect(&path);
    let rows = common::read_all(&conn);
    assert!(rows.len() >= acknowledged.len());
    common::assert_rollups_eq(&common::read_rollups(&conn), &common::rollups_of(&rows));
}
