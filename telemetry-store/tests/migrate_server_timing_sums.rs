//! Migration V4 adds the server's prefill and decode time sums to the summaries: those stored
//! before it are back-filled from the rows, at every level.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use telemetry_store::TelemetryStore;

#[test]
fn summaries_stored_before_v4_get_their_server_timing_sums() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::open(&path).unwrap();
    for i in 0..3_300u64 {
        let mut r = common::sample("a", i);
        // Three days, 1 100 calls in one hour of each (so that the hour keeps minute
        // summaries); a third of the calls without timings.
        r.timestamp = 1_764_300_000.0 + (i % 3) as f64 * 86_400.0 + (i / 3) as f64;
        if i % 3 != 1 {
            r.server_prefill_ms = Some(0.5 + (i % 17) as f64 * 1.25);
            r.server_decode_ms = Some(3.0 + (i % 29) as f64 * 0.75);
        }
        store.record(&r).unwrap();
    }
    store.flush().unwrap();
    store.close().unwrap();
    {
        // The database as a version-3 store left it: no sum columns, no V4 in the history.
        let conn = common::connect(&path);
        common::texts_back_into_rows(&conn);
        conn.execute_batch(
            "ALTER TABLE telemetry_rollup DROP COLUMN server_prefill_ms_sum;
             ALTER TABLE telemetry_rollup DROP COLUMN server_decode_ms_sum;
             DELETE FROM refinery_schema_history WHERE version = 4;",
        )
        .unwrap();
    }
    let store = TelemetryStore::open(&path).unwrap();
    store.close().unwrap();
    let conn = common::connect(&path);
    let stored = common::read_rollups(&conn);
    assert!(
        stored.values().any(|r| r.server_prefill_ms_sum > 0.0),
        "the back-fill must have something to fill for this test to mean anything"
    );
    assert!(
        stored.keys().any(|k| k.level == 60),
        "minute summaries are back-filled too"
    );
    common::assert_consistent(&conn);
}
