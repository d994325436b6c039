//! Helpers shared by the integration tests: sample records, raw-SQL readers and a naive rollup
//! oracle.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use rusqlite::Connection;
use telemetry_core::schema::{RECORD_COLUMNS, ROLLUP_COLUMNS};
use telemetry_core::{
    ROLLUP_FIELDS, ROLLUP_LEVELS, Rollup, RollupKey, RollupValue, TelemetryRecord,
};
use telemetry_sqlite::stored_value;
use telemetry_store::DEFAULT_MINUTE_ROLLUP_THRESHOLD;

/// A valid record whose fields all depend on `i` (and `tag`, stored in `agent`).
pub fn sample(tag: &str, i: u64) -> TelemetryRecord {
    telemetry_core::testing::sample_record(tag, i)
}

/// Every row of `telemetry`, in id order, decoded through core's field table (through the
/// `telemetry_records` view, which shows the texts stored once).
pub fn read_all(conn: &Connection) -> Vec<TelemetryRecord> {
    let sql = format!(
        "SELECT {} FROM telemetry_records ORDER BY id",
        RECORD_COLUMNS.join(", ")
    );
    let mut stmt = conn.prepare(&sql).unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        let mut r = TelemetryRecord::default();
        for i in 0..RECORD_COLUMNS.len() {
            r.set_field(i, stored_value(row.get_ref(i).unwrap()))
                .unwrap();
        }
        out.push(r);
    }
    out
}

/// Turns a file back into what a store before schema V5 wrote: every text in its row (none
/// stored once), no `telemetry_strings` or `telemetry_records`, no V5 in the history.
pub fn texts_back_into_rows(conn: &Connection) {
    let set: Vec<String> = telemetry_core::RECORD_FIELDS
        .iter()
        .filter(|f| f.kind.stored_once())
        .map(|f| {
            let c = f.name;
            format!("{c} = (SELECT {c} FROM telemetry_records AS v WHERE v.id = telemetry.id)")
        })
        .collect();
    conn.execute_batch(&format!(
        "UPDATE telemetry SET {};
         DROP VIEW telemetry_records;
         DROP TABLE telemetry_strings;
         DELETE FROM refinery_schema_history WHERE version = 5;",
        set.join(", ")
    ))
    .unwrap();
}

/// Opens a plain connection (not through the store).
pub fn connect(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

/// The stored `telemetry_rollup` rows.
pub fn read_rollups(conn: &Connection) -> BTreeMap<RollupKey, Rollup> {
    let sql = format!(
        "SELECT level, bucket_start, model_id, engine, agent, {} FROM telemetry_rollup",
        ROLLUP_COLUMNS.join(", ")
    );
    let mut stmt = conn.prepare(&sql).unwrap();
    stmt.query_map([], |r| {
        let mut rollup = Rollup::default();
        for i in 0..ROLLUP_COLUMNS.len() {
            rollup
                .merge_stored(i, stored_value(r.get_ref(i + 5)?))
                .unwrap();
        }
        Ok((
            RollupKey {
                level: r.get(0)?,
                bucket_start: r.get(1)?,
                model_id: r.get(2)?,
                engine: r.get(3)?,
                agent: r.get(4)?,
            },
            rollup,
        ))
    })
    .unwrap()
    .collect::<rusqlite::Result<BTreeMap<_, _>>>()
    .unwrap()
}

/// The hour (start) a record's summaries file it under: that of its minute bucket.
pub fn hour_of(r: &TelemetryRecord) -> i64 {
    RollupKey::of(r, 60).bucket_start.div_euclid(3_600) * 3_600
}

/// The naive oracle: rollups of `records` built one record at a time, with minute rollups for
/// the hours holding at least [`DEFAULT_MINUTE_ROLLUP_THRESHOLD`] records (what the store
/// keeps when nothing was pruned).
pub fn rollups_of(records: &[TelemetryRecord]) -> BTreeMap<RollupKey, Rollup> {
    rollups_with_threshold(records, DEFAULT_MINUTE_ROLLUP_THRESHOLD)
}

/// [`rollups_of`] for a store opened with `minute_rollup_threshold(threshold)`.
pub fn rollups_with_threshold(
    records: &[TelemetryRecord],
    threshold: u64,
) -> BTreeMap<RollupKey, Rollup> {
    let mut calls: BTreeMap<i64, u64> = BTreeMap::new();
    for r in records {
        *calls.entry(hour_of(r)).or_default() += 1;
    }
    let detailed: BTreeSet<i64> = calls
        .into_iter()
        .filter(|&(_, n)| n >= threshold)
        .map(|(h, _)| h)
        .collect();
    rollups_with_detail(records, &detailed)
}

/// The oracle with minute rollups for the hours of `detailed` only.
pub fn rollups_with_detail(
    records: &[TelemetryRecord],
    detailed: &BTreeSet<i64>,
) -> BTreeMap<RollupKey, Rollup> {
    let mut out: BTreeMap<RollupKey, Rollup> = BTreeMap::new();
    for r in records {
        for level in ROLLUP_LEVELS {
            if level == 60 && !detailed.contains(&hour_of(r)) {
                continue;
            }
            out.entry(RollupKey::of(r, level)).or_default().add(r);
        }
    }
    out
}

/// Hours that have minute rows among `stored`.
pub fn detailed_hours(stored: &BTreeMap<RollupKey, Rollup>) -> BTreeSet<i64> {
    stored
        .keys()
        .filter(|k| k.level == 60)
        .map(|k| k.bucket_start.div_euclid(3_600) * 3_600)
        .collect()
}

/// The invariant readers rely on: day and hour rows are the rollups of the rows, and every hour
/// has minute rows for all of its rows or none.
pub fn assert_consistent(conn: &Connection) {
    let stored = read_rollups(conn);
    let rows = read_all(conn);
    assert_rollups_eq(
        &stored,
        &rollups_with_detail(&rows, &detailed_hours(&stored)),
    );
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Asserts two rollup tables are equal: counts and sketches exactly, sums to 1e-9 relative
/// (the store sums in batch order, the oracle in row order).
pub fn assert_rollups_eq(got: &BTreeMap<RollupKey, Rollup>, want: &BTreeMap<RollupKey, Rollup>) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "rollup keys differ"
    );
    for (key, g) in got {
        let w = &want[key];
        for ((field, a), b) in ROLLUP_FIELDS.iter().zip(g.values()).zip(w.values()) {
            match (a, b) {
                (RollupValue::Sum(a), RollupValue::Sum(b)) => {
                    assert!(close(a, b), "{key:?} {}: {a} vs {b}", field.name);
                }
                (a, b) => assert_eq!(a, b, "{key:?} {}", field.name),
            }
        }
    }
}

/// This test binary, re-run to execute one `#[ignore]`d child-mode test.
pub fn child(test_name: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        test_name,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    cmd
}
