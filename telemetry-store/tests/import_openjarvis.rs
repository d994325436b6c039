//! Importing OpenJarvis `telemetry.db` files (old and new schemas): mapping, rejections, idempotence.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use rusqlite::{Connection, params};
use telemetry_store::{StoreError, TelemetryStore};

/// The peer's `store.py` schema; `newer` adds the columns of later versions.
fn peer_db(path: &Path, newer: bool) -> Connection {
    let conn = Connection::open(path).unwrap();
    let mut sql = String::from(
        "CREATE TABLE IF NOT EXISTS telemetry (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            timestamp REAL NOT NULL,
            model_id TEXT NOT NULL,
            engine TEXT NOT NULL DEFAULT '',
            agent TEXT NOT NULL DEFAULT '',
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            total_tokens INTEGER NOT NULL DEFAULT 0,
            latency_seconds REAL NOT NULL DEFAULT 0.0,
            ttft REAL NOT NULL DEFAULT 0.0,
            cost_usd REAL NOT NULL DEFAULT 0.0,
            energy_joules REAL NOT NULL DEFAULT 0.0,
            power_watts REAL NOT NULL DEFAULT 0.0,
            gpu_utilization_pct REAL DEFAULT 0.0,
            gpu_memory_used_gb REAL DEFAULT 0.0,
            gpu_temperature_c REAL DEFAULT 0.0,
            throughput_tok_per_sec REAL DEFAULT 0.0,
            prefill_latency_seconds REAL DEFAULT 0.0,
            decode_latency_seconds REAL DEFAULT 0.0,
            metadata TEXT NOT NULL DEFAULT '{}'",
    );
    if newer {
        sql.push_str(
            ",
            prompt_tokens_cached INTEGER DEFAULT 0,
            is_streaming INTEGER DEFAULT 0,
            mean_itl_ms REAL, median_itl_ms REAL, p90_itl_ms REAL, p95_itl_ms REAL,
            p99_itl_ms REAL, std_itl_ms REAL,
            prefill_energy_joules REAL, decode_energy_joules REAL,
            energy_method TEXT DEFAULT '', energy_vendor TEXT DEFAULT '',
            batch_id TEXT DEFAULT '', is_warmup INTEGER DEFAULT 0",
        );
    }
    sql.push(')');
    conn.execute_batch(&sql).unwrap();
    conn
}

#[test]
fn imports_an_old_schema_file_once_mapping_zero_to_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let peer_path = dir.path().join("openjarvis-telemetry.db");
    let peer = peer_db(&peer_path, false);
    let insert = "INSERT INTO telemetry (timestamp, model_id, engine, agent, prompt_tokens, \
        completion_tokens, total_tokens, latency_seconds, ttft, cost_usd, energy_joules, \
        metadata) VALUES (?1, ?2, 'ollama', 'a', ?3, ?4, ?5, ?6, ?7, 0.01, ?8, ?9)";
    // Good row, measured values.
    peer.execute(
        insert,
        params![
            1_764_300_000.0,
            "m1",
            10,
            5,
            15,
            1.5,
            0.2,
            30.0,
            r#"{"k":1}"#
        ],
    )
    .unwrap();
    // Zeros meaning "unknown", and a wrong total (fixed to prompt + completion).
    peer.execute(
        insert,
        params![1_764_300_001.0, "m1", 10, 5, 99, 2.0, 0.0, 0.0, "{}"],
    )
    .unwrap();
    // Invalid: empty model, then negative latency.
    peer.execute(
        insert,
        params![1_764_300_002.0, "", 1, 1, 2, 1.0, 0.0, 0.0, "{}"],
    )
    .unwrap();
    peer.execute(
        insert,
        params![1_764_300_003.0, "m2", 1, 1, 2, -1.0, 0.0, 0.0, "{}"],
    )
    .unwrap();
    drop(peer);

    let store_path = dir.path().join("ours.db");
    let store = TelemetryStore::open(&store_path).unwrap();
    let report = store.import_openjarvis(&peer_path).unwrap();
    assert_eq!(report.read, 4);
    assert_eq!(report.imported, 2);
    assert_eq!(report.skipped_duplicates, 0);
    assert_eq!(report.rejected.len(), 2);
    assert_eq!(report.rejected[0].0, 3);
    assert!(
        report.rejected[0].1.contains("model_id"),
        "{:?}",
        report.rejected
    );
    assert!(
        report.rejected[1].1.contains("latency_seconds"),
        "{:?}",
        report.rejected
    );

    let again = store.import_openjarvis(&peer_path).unwrap();
    assert_eq!(again.imported, 0);
    assert_eq!(again.skipped_duplicates, 2);

    // A copy of the file is the same data: still nothing new.
    let copy = dir.path().join("copy.db");
    std::fs::copy(&peer_path, &copy).unwrap();
    assert_eq!(store.import_openjarvis(&copy).unwrap().imported, 0);

    let conn = common::connect(&store_path);
    let rows = common::read_all(&conn);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].ttft, Some(0.2));
    assert_eq!(rows[0].energy_joules, Some(30.0));
    assert_eq!(rows[0].metadata, serde_json::json!({"k": 1}));
    assert_eq!(rows[1].ttft, None);
    assert_eq!(rows[1].energy_joules, None);
    assert_eq!(rows[1].power_watts, None);
    assert_eq!(rows[1].total_tokens, 15);
    common::assert_rollups_eq(&common::read_rollups(&conn), &common::rollups_of(&rows));
    store.close().unwrap();
}

#[test]
fn imports_the_newer_columns() {
    let dir = tempfile::tempdir().unwrap();
    let peer_path = dir.path().join("peer.db");
    let peer = peer_db(&peer_path, true);
    peer.execute_batch("BEGIN").unwrap();
    for i in 0..12_000 {
        peer.execute(
            "INSERT INTO telemetry (timestamp, model_id, prompt_tokens, completion_tokens, \
             total_tokens, latency_seconds, prompt_tokens_cached, is_streaming, mean_itl_ms, \
             energy_method, energy_vendor, batch_id, is_warmup) \
             VALUES (?1, 'm', 8, 4, 12, 1.0, 2, 1, 21.5, 'counter', 'nvidia', 'b', ?2)",
            params![1_764_300_000.0 + f64::from(i), i % 2],
        )
        .unwrap();
    }
    peer.execute_batch("COMMIT").unwrap();
    drop(peer);
    let store = TelemetryStore::in_memory().unwrap();
    let report = store.import_openjarvis(&peer_path).unwrap();
    assert_eq!(report.read, 12_000);
    assert_eq!(report.imported, 12_000);
    assert!(report.rejected.is_empty());
    assert_eq!(store.stats().written, 12_000);
    let report = store.import_openjarvis(&peer_path).unwrap();
    assert_eq!(report.skipped_duplicates, 12_000);
    store.close().unwrap();

    // Values: through a file store, read back raw.
    let ours = dir.path().join("ours.db");
    let store = TelemetryStore::open(&ours).unwrap();
    store.import_openjarvis(&peer_path).unwrap();
    store.close().unwrap();
    let rows = common::read_all(&common::connect(&ours));
    assert_eq!(rows.len(), 12_000);
    let r = &rows[1];
    assert_eq!(r.prompt_tokens_cached, 2);
    assert!(r.is_streaming && r.is_warmup);
    assert_eq!(r.mean_itl_ms, Some(21.5));
    assert_eq!(r.energy_method, telemetry_core::EnergyMethod::Counter);
    assert_eq!(r.energy_vendor, "nvidia");
}

#[test]
fn a_file_without_the_peer_table_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE things (x)")
        .unwrap();
    let store = TelemetryStore::in_memory().unwrap();
    let err = store.import_openjarvis(&path).unwrap_err();
    assert!(matches!(err, StoreError::Import { .. }), "{err}");
    let err = store
        .import_openjarvis(dir.path().join("missing.db"))
        .unwrap_err();
    assert!(matches!(err, StoreError::Import { .. }), "{err}");
}

#[test]
fn progress_counts_every_row_read_including_rejected_ones() {
    let dir = tempfile::tempdir().unwrap();
    let peer_path = dir.path().join("peer.db");
    let peer = peer_db(&peer_path, false);
    peer.execute_batch("BEGIN").unwrap();
    // 11 000 rows; every 4th has a negative latency and is rejected (2 750 rows).
    for i in 0..11_000 {
        let latency = if i % 4 == 0 { -1.0 } else { 0.5 };
        peer.execute(
            "INSERT INTO telemetry (timestamp, model_id, prompt_tokens, completion_tokens, \
             total_tokens, latency_seconds) VALUES (?1, 'm', 3, 2, 5, ?2)",
            params![1_764_300_000.0 + f64::from(i), latency],
        )
        .unwrap();
    }
    peer.execute_batch("COMMIT").unwrap();
    drop(peer);

    let store = TelemetryStore::in_memory().unwrap();
    let mut seen = Vec::new();
    let report = store
        .import_openjarvis_with_progress(&peer_path, |p| seen.push(p))
        .unwrap();
    assert_eq!(report.read, 11_000);
    assert_eq!(report.rejected.len(), 2_750);
    assert_eq!(report.imported, 8_250);

    // After 5 000 and 10 000 rows read, and at the end.
    let read: Vec<u64> = seen.iter().map(|p| p.read).collect();
    assert_eq!(read, vec![5_000, 10_000, 11_000]);
    assert!(seen.iter().all(|p| p.total == 11_000));
    // Imported counts what was committed by then: 3 of every 4 rows read.
    let imported: Vec<u64> = seen.iter().map(|p| p.imported).collect();
    assert_eq!(imported, vec![3_750, 7_500, 8_250]);
    assert_eq!(store.stats().written, 8_250);

    // A second run reports the same reads and imports nothing.
    let mut last = None;
    let again = store
        .import_openjarvis_with_progress(&peer_path, |p| last = Some(p))
        .unwrap();
    assert_eq!(again.skipped_duplicates, 8_250);
    assert_eq!(
        last,
        Some(telemetry_store::ImportProgress {
            read: 11_000,
            total: 11_000,
            imported: 0
        })
    );
}

/// One cell of the wrong type (text in `prompt_tokens`) used to abort the import half way
/// ("Invalid column type Text at index: 5", no row id, earlier chunks committed and not
/// reported). Now it rejects that row only, listed with its peer id and the column.
#[test]
fn a_mistyped_cell_rejects_its_row_only() {
    let dir = tempfile::tempdir().unwrap();
    let peer_path = dir.path().join("peer.db");
    let mut peer = peer_db(&peer_path, true);
    let tx = peer.transaction().unwrap();
    for i in 0..8_000i64 {
        let prompt: rusqlite::types::Value = if i == 5_999 {
            rusqlite::types::Value::Text("lots".to_owned())
        } else {
            rusqlite::types::Value::Integer(10)
        };
        tx.execute(
            "INSERT INTO telemetry (timestamp, model_id, prompt_tokens, completion_tokens, \
             total_tokens, latency_seconds) VALUES (?1, 'm', ?2, 5, 15, 1.0)",
            params![1_764_300_000.0 + i as f64, prompt],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    let store = TelemetryStore::open(dir.path().join("t.db")).unwrap();
    let report = store.import_openjarvis(&peer_path).unwrap();
    assert_eq!(report.read, 8_000);
    assert_eq!(report.imported, 7_999);
    assert_eq!(report.skipped_duplicates, 0);
    assert_eq!(report.rejected.len(), 1);
    let (id, reason) = &report.rejected[0];
    assert_eq!(*id, 6_000);
    assert!(reason.contains("prompt_tokens"), "{reason}");
    let again = store.import_openjarvis(&peer_path).unwrap();
    assert_eq!(again.imported, 0);
    assert_eq!(again.skipped_duplicates, 7_999);
    assert_eq!(again.rejected.len(), 1);
    store.close().unwrap();
}
