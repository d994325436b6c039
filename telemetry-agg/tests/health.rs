//! `check_rollups` and `integrity_check`: summaries that drifted from the rows, and damaged
//! files, are reported rather than trusted or turned into a bare error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{DAY0, rec, write_db, write_db_with_threshold};
use telemetry_agg::{RollupDrift, TelemetryAggregator};

fn two_days() -> Vec<telemetry_core::TelemetryRecord> {
    (0..200)
        .map(|i| {
            let day = f64::from(i % 2) * 86_400.0;
            rec("m", "e", DAY0 + day + f64::from(i) * 61.0, 0.5)
        })
        .collect()
}

#[test]
fn summaries_written_by_the_store_agree_with_the_rows() {
    let (_dir, path) = write_db(&two_days());
    let found = TelemetryAggregator::open(&path)
        .unwrap()
        .check_rollups()
        .unwrap();
    assert!(found.is_consistent(), "{found:?}");
    assert_eq!((found.rows, found.rollup_calls), (200, 200));
}

/// Deletes five rows of day 1 and copies one row of day 0 ten days later, with plain SQL.
fn edit_rows(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute(
        "DELETE FROM telemetry WHERE id IN \
         (SELECT id FROM telemetry WHERE timestamp >= ?1 LIMIT 5)",
        [DAY0 + 86_400.0],
    )
    .unwrap();
    let columns = telemetry_core::schema::RECORD_COLUMNS[1..].join(", ");
    conn.execute(
        &format!(
            "INSERT INTO telemetry (timestamp, {columns}) \
             SELECT timestamp + 10 * 86400, {columns} FROM telemetry WHERE id = 1"
        ),
        [],
    )
    .unwrap();
}

fn drift(day_start: i64, levels: &[i64], rows: u64, rollup_calls: u64) -> Vec<RollupDrift> {
    levels
        .iter()
        .map(|&level| RollupDrift {
            day_start,
            level,
            rows,
            rollup_calls,
        })
        .collect()
}

/// Rows deleted and inserted with plain SQL: every level of the edited days is named, with the
/// row count and what the summaries count; the untouched day is not. Here every hour has minute
/// summaries (threshold 1), so the minute level sees the deletions; the copied row lands in an
/// hour with none, which only the hour and day levels can see.
#[test]
fn rows_edited_outside_the_store_are_reported_per_day_and_level() {
    let (_dir, path) = write_db_with_threshold(&two_days(), 1);
    edit_rows(&path);
    let found = TelemetryAggregator::open(&path)
        .unwrap()
        .check_rollups()
        .unwrap();
    assert_eq!(found.rows, 196);
    assert_eq!(
        found.rollup_calls, 200,
        "the summaries still count the deleted rows"
    );
    let day1 = DAY0 as i64 + 86_400;
    let day10 = DAY0 as i64 + 10 * 86_400;
    let mut want = drift(day1, &[60, 3_600, 86_400], 95, 100);
    want.extend(drift(day10, &[3_600, 86_400], 1, 0));
    assert_eq!(found.drift, want);
}

/// The same edit on a file whose hours are all sparse (no minute summaries, the default for
/// records a minute apart): the hour and day levels still name both days.
#[test]
fn edits_in_sparse_hours_are_reported_by_the_hour_and_day_levels() {
    let (_dir, path) = write_db(&two_days());
    let stored: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM telemetry_rollup WHERE level = 60",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, 0, "records a minute apart keep no minute summaries");
    assert!(
        TelemetryAggregator::open(&path)
            .unwrap()
            .check_rollups()
            .unwrap()
            .is_consistent()
    );
    edit_rows(&path);
    let found = TelemetryAggregator::open(&path)
        .unwrap()
        .check_rollups()
        .unwrap();
    let mut want = drift(DAY0 as i64 + 86_400, &[3_600, 86_400], 95, 100);
    want.extend(drift(DAY0 as i64 + 10 * 86_400, &[3_600, 86_400], 1, 0));
    assert_eq!(found.drift, want);
}

/// A tampered minute summary (one hour's count off by one) is a minute-level drift of its day,
/// though the hour and day summaries still agree with the rows.
#[test]
fn a_tampered_minute_summary_is_reported() {
    let (_dir, path) = write_db_with_threshold(&two_days(), 1);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE telemetry_rollup SET call_count = call_count + 1 WHERE level = 60 \
             AND bucket_start = (SELECT MIN(bucket_start) FROM telemetry_rollup WHERE level = 60)",
            [],
        )
        .unwrap();
    let found = TelemetryAggregator::open(&path)
        .unwrap()
        .check_rollups()
        .unwrap();
    assert_eq!(found.drift, drift(DAY0 as i64, &[60], 100, 101));
}

/// Damage in the middle of the file: the check lists what is wrong instead of failing. (Where
/// the damage lands varies with the page layout: sometimes SQLite lists bad pages, sometimes
/// the whole-file check stops and the damaged tables are named one by one.)
#[test]
fn integrity_check_lists_damage_instead_of_failing() {
    let records: Vec<_> = (0..20_000)
        .map(|i| rec("m", "e", DAY0 + f64::from(i), 0.5))
        .collect();
    let (_dir, path) = write_db(&records);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 8_192].fill(0xA5);
    std::fs::write(&path, bytes).unwrap();
    let agg = TelemetryAggregator::open(&path).unwrap();
    let lines = agg.integrity_check().unwrap();
    assert_ne!(lines, ["ok"]);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("malformed") || l.contains("corrupt") || l.contains("page")),
        "{lines:?}"
    );
}
