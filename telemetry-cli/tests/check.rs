//! `check`: rows edited behind the store's back, `--repair`, and files damaged in the middle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{on_db, seed, standard_records, stdout_of, stdout_on_exit, telemetry, temp_db};
use serde_json::Value;

/// Deleting rows with plain SQL used to leave `check` "healthy" with the summaries' count as the
/// record count; now the day is named, the command fails, and `--repair` makes `stats` agree
/// with the rows again.
#[test]
fn rows_deleted_outside_the_store_are_unhealthy_until_repaired() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "DELETE FROM telemetry WHERE id IN (SELECT id FROM telemetry LIMIT 4)",
            [],
        )
        .unwrap();
    let db = db.to_str().unwrap();
    let out = telemetry(dir.path())
        .args(["--db", db, "check"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("records    26"), "{text}");
    assert!(text.contains("status     UNHEALTHY"), "{text}");
    let day_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" summaries): "))
        .collect();
    assert!(!day_lines.is_empty(), "{text}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("disagree"), "{stderr}");

    let json: Value = serde_json::from_str(&stdout_on_exit(
        telemetry(dir.path()).args(["--db", db, "check", "-f", "json"]),
        1,
    ))
    .unwrap();
    assert_eq!(json["healthy"], false);
    assert_eq!(json["records"], 26);
    let drift = json["rollup_drift"].as_array().unwrap();
    let total_rows: u64 = drift
        .iter()
        .filter(|d| d["level"] == 86_400)
        .map(|d| d["rows"].as_u64().unwrap())
        .sum();
    let total_calls: u64 = drift
        .iter()
        .filter(|d| d["level"] == 86_400)
        .map(|d| d["rollup_calls"].as_u64().unwrap())
        .sum();
    assert_eq!(total_calls - total_rows, 4, "{json}");
    assert!(drift.iter().all(|d| d["day"].as_str().unwrap().len() == 10));

    let repaired = stdout_of(telemetry(dir.path()).args(["--db", db, "check", "--repair"]));
    assert!(repaired.contains("rebuilt from 26 rows"), "{repaired}");
    assert!(repaired.contains("status     healthy"), "{repaired}");
    let stats: Value = serde_json::from_str(&stdout_of(
        telemetry(dir.path()).args(["--db", db, "stats", "-f", "json"]),
    ))
    .unwrap();
    assert_eq!(stats["total_calls"], 26);
    telemetry(dir.path())
        .args(["--db", db, "check"])
        .assert()
        .success();
}

/// A row inserted with plain SQL is a drift too; `--repair` on a healthy file changes nothing.
#[test]
fn an_inserted_row_is_named_and_repair_of_a_healthy_file_is_a_no_op() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let columns = telemetry_core::schema::RECORD_COLUMNS[1..].join(", ");
        conn.execute(
            &format!(
                "INSERT INTO telemetry (timestamp, {columns}) \
                 SELECT 1700000000.0, {columns} FROM telemetry WHERE id = 1"
            ),
            [],
        )
        .unwrap();
    }
    let db = db.to_str().unwrap();
    let text = stdout_on_exit(telemetry(dir.path()).args(["--db", db, "check"]), 1);
    // 1700000000 is 2023-11-14T22:13:20Z.
    assert!(
        text.contains("2023-11-14 (day summaries): 1 rows, summaries count 0"),
        "{text}"
    );
    let repaired = stdout_of(telemetry(dir.path()).args(["--db", db, "check", "--repair"]));
    assert!(repaired.contains("rebuilt from 31 rows"), "{repaired}");
    let again = stdout_of(telemetry(dir.path()).args(["--db", db, "check", "--repair"]));
    assert!(!again.contains("rebuilt"), "{again}");
    assert!(again.contains("status     healthy"), "{again}");
}

/// A file damaged in the middle gets a full UNHEALTHY report on stdout listing the damage,
/// and exit 1, not a bare error.
#[test]
fn a_file_damaged_in_the_middle_gets_an_unhealthy_report() {
    let (dir, db) = temp_db();
    let many: Vec<_> = (0..20_000)
        .map(|i| common::record("m", "e", "a", 10.0, i))
        .collect();
    seed(&db, &many);
    let mut bytes = std::fs::read(&db).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 8_192].fill(0xA5);
    std::fs::write(&db, bytes).unwrap();
    let out = on_db(dir.path(), &db)
        .args(["check"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("status     UNHEALTHY"), "{text}");
    let integrity = text
        .lines()
        .find(|l| l.starts_with("integrity  "))
        .unwrap_or_else(|| panic!("no integrity line: {text}"));
    assert_ne!(integrity.trim_end(), "integrity  ok", "{text}");
    // --repair refuses to touch a damaged file.
    let text = stdout_on_exit(on_db(dir.path(), &db).args(["check", "--repair"]), 1);
    assert!(!text.contains("rebuilt"), "{text}");
}

/// A spread database (one record a minute, plus one busy hour): the sparse hours have no
/// minute summaries, and `check` must take that as healthy; a tampered hour summary, and a
/// tampered minute summary of the busy hour, are still found.
#[test]
fn a_spread_database_is_healthy_and_tampered_summaries_are_still_found() {
    let (dir, db) = temp_db();
    let mut records: Vec<_> = (0..600)
        .map(|i| common::record("llama", "vllm", "a", 86_400.0 - i as f64 * 60.0, i))
        .collect();
    // 2 100 calls within 1 050 s: at least 1 050 of them in one hour, above the store's
    // threshold, so that hour keeps minute summaries.
    records.extend(
        (0..2_100).map(|i| common::record("qwen", "vllm", "b", 7_200.0 + i as f64 * 0.5, i)),
    );
    seed(&db, &records);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let minute_hours: i64 = conn
        .query_row(
            "SELECT COUNT(DISTINCT bucket_start / 3600) FROM telemetry_rollup WHERE level = 60",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        (1..=2).contains(&minute_hours),
        "only the busy hour (maybe split over two) keeps minutes: {minute_hours}"
    );
    let db = db.to_str().unwrap();
    let ok = stdout_of(telemetry(dir.path()).args(["--db", db, "check"]));
    assert!(ok.contains("status     healthy"), "{ok}");

    for (level, extra) in [(60, 1), (3_600, 2)] {
        conn.execute(
            "UPDATE telemetry_rollup SET call_count = call_count + ?2 WHERE level = ?1 \
             AND bucket_start = (SELECT MIN(bucket_start) FROM telemetry_rollup WHERE level = ?1) \
             AND model_id = (SELECT MIN(model_id) FROM telemetry_rollup WHERE level = ?1 \
             AND bucket_start = (SELECT MIN(bucket_start) FROM telemetry_rollup WHERE level = ?1))",
            [level, extra],
        )
        .unwrap();
        let json: Value = serde_json::from_str(&stdout_on_exit(
            telemetry(dir.path()).args(["--db", db, "check", "-f", "json"]),
            1,
        ))
        .unwrap();
        let drift = json["rollup_drift"].as_array().unwrap();
        assert!(
            drift.iter().any(|d| d["level"] == level),
            "level {level}: {json}"
        );
        let repaired = stdout_of(telemetry(dir.path()).args(["--db", db, "check", "--repair"]));
        assert!(repaired.contains("status     healthy"), "{repaired}");
    }
}
