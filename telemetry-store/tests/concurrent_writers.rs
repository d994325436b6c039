//! Eight threads recording at once: after close and reopen, every record is there, exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use telemetry_store::TelemetryStore;

#[test]
fn eight_threads_times_ten_thousand_records_survive_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/telemetry.db");
    let store = TelemetryStore::builder(&path)
        .queue_capacity(5_000)
        .open()
        .unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let tag = format!("thread-{t}");
                for i in 0..10_000u64 {
                    if i.is_multiple_of(2) {
                        store.record(&common::sample(&tag, i)).unwrap();
                    } else {
                        store.record_arc(Arc::new(common::sample(&tag, i))).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    store.close().unwrap();
    store.close().unwrap(); // idempotent
    assert_eq!(store.stats().written, 80_000);
    assert_eq!(store.stats().pending, 0);
    assert!(store.record(&common::sample("late", 0)).is_err());
    drop(store);

    let conn = common::connect(&path);
    let rows = common::read_all(&conn);
    assert_eq!(rows.len(), 80_000);
    let mut next: HashMap<String, u64> = HashMap::new();
    for row in &rows {
        // Per thread, rows are in recording order and equal to what was recorded.
        let i = next.entry(row.agent.clone()).or_insert(0);
        assert_eq!(row, &common::sample(&row.agent, *i));
        *i += 1;
    }
    assert_eq!(next.len(), 8);
    assert!(next.values().all(|&n| n == 10_000));
    common::assert_rollups_eq(&common::read_rollups(&conn), &common::rollups_of(&rows));

    // A second open of the same file finds the schema in place and appends.
    let again = TelemetryStore::open(&path).unwrap();
    again.record(&common::sample("again", 1)).unwrap();
    again.close().unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM telemetry", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 80_001);
}
