//! `rebuild_rollups`: summaries recomputed from rows edited behind the store's back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use telemetry_store::TelemetryStore;

/// Rows deleted and inserted with plain SQL leave the summaries wrong; the rebuild makes them
/// exactly the rollups of the rows again, at every level, and removes those of emptied days.
#[test]
fn rebuild_recomputes_every_level_from_edited_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::open(&path).unwrap();
    for i in 0..3_000u64 {
        let mut r = common::sample("a", i);
        // Four days, several hours and minutes in each.
        r.timestamp += (i % 4) as f64 * 86_400.0;
        store.record(&r).unwrap();
    }
    store.flush().unwrap();
    {
        let conn = common::connect(&path);
        // One whole day gone, part of another, and a row copied into a day of its own.
        let day0 = 1_764_300_000.0_f64.div_euclid(86_400.0) * 86_400.0;
        conn.execute(
            "DELETE FROM telemetry WHERE timestamp >= ?1 AND timestamp < ?2",
            [day0 + 86_400.0, day0 + 2.0 * 86_400.0],
        )
        .unwrap();
        conn.execute("DELETE FROM telemetry WHERE id % 7 = 0", [])
            .unwrap();
        let columns = telemetry_core::schema::RECORD_COLUMNS[1..].join(", ");
        conn.execute(
            &format!(
                "INSERT INTO telemetry (timestamp, {columns}) \
                 SELECT timestamp + 10 * 86400, {columns} FROM telemetry WHERE id = 2"
            ),
            [],
        )
        .unwrap();
        let rows = common::read_all(&conn);
        let stale = common::read_rollups(&conn);
        assert_ne!(
            stale.keys().collect::<Vec<_>>(),
            common::rollups_of(&rows).keys().collect::<Vec<_>>(),
            "the edit must leave the summaries wrong for this test to mean anything"
        );
    }
    let read = store.rebuild_rollups().unwrap();
    let conn = common::connect(&path);
    let rows = common::read_all(&conn);
    assert_eq!(read, rows.len() as u64);
    common::assert_rollups_eq(&common::read_rollups(&conn), &common::rollups_of(&rows));
    // The store keeps working incrementally on top of the rebuilt summaries.
    store.record(&common::sample("b", 1)).unwrap();
    store.flush().unwrap();
    let rows = common::read_all(&conn);
    common::assert_rollups_eq(&common::read_rollups(&conn), &common::rollups_of(&rows));
    store.close().unwrap();
}

#[test]
fn rebuild_of_an_empty_table_leaves_no_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::open(&path).unwrap();
    store.record(&common::sample("a", 1)).unwrap();
    store.flush().unwrap();
    common::connect(&path)
        .execute("DELETE FROM telemetry", [])
        .unwrap();
    assert_eq!(store.rebuild_rollups().unwrap(), 0);
    let conn = common::connect(&path);
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM telemetry_rollup", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
    store.close().unwrap();
}
