//! `stats`, `series` and `check` on seeded databases: every format, grouping and time filter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{on_db, seed, standard_records, stderr_on_exit, stdout_of, telemetry, temp_db};
use predicates::prelude::*;
use serde_json::Value;

#[test]
fn stats_table_has_overview_and_groups() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let out = stdout_of(on_db(dir.path(), &db).args(["stats"]));
    assert!(out.contains("calls   30 (2 errors)"), "{out}");
    let header = out.lines().find(|l| l.starts_with("model")).unwrap();
    for col in [
        "calls", "errors", "tokens", "cost", "p50", "p95", "p99", "ttft p50", "tok/s", "energy",
        "J/tok",
    ] {
        assert!(header.contains(col), "missing {col}: {header}");
    }
    let qwen = out.lines().position(|l| l.starts_with("qwen")).unwrap();
    let llama = out.lines().position(|l| l.starts_with("llama")).unwrap();
    assert!(qwen < llama, "ordered by calls: {out}");
}

/// The server's own prefill and decode times (llama.cpp `timings`) are summed per model: in the
/// table when a model has them, and in the JSON of every group and the totals.
#[test]
fn stats_by_model_shows_the_server_times() {
    let (dir, db) = temp_db();
    let mut records = standard_records();
    for (i, r) in records
        .iter_mut()
        .enumerate()
        .filter(|(_, r)| r.model_id == "llama")
    {
        r.server_prefill_ms = Some(100.0 + 2.0 * i as f64);
        r.server_decode_ms = Some(400.0);
    }
    seed(&db, &records);
    let out = stdout_of(on_db(dir.path(), &db).args(["stats", "--by", "model"]));
    let header = out.lines().find(|l| l.starts_with("model")).unwrap();
    assert!(
        header.contains("srv prefill") && header.contains("srv decode"),
        "{header}"
    );
    // 10 calls: Σ prefill = 1000 + 90 ms, Σ decode = 4 s.
    let llama = out.lines().find(|l| l.starts_with("llama")).unwrap();
    assert!(
        llama.contains("1.09 s") && llama.contains("4.00 s"),
        "{llama}"
    );
    let json: Value = serde_json::from_str(&stdout_of(
        on_db(dir.path(), &db).args(["stats", "--format", "json"]),
    ))
    .unwrap();
    assert_eq!(json["total_server_prefill_ms"], 1_090.0);
    assert_eq!(json["total_server_decode_ms"], 4_000.0);
    let qwen = json["per_model"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model_id"] == "qwen")
        .unwrap();
    assert_eq!(qwen["total_server_prefill_ms"], 0.0);
}

#[test]
fn stats_groups_by_engine_and_agent_and_cuts_to_top() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let db = db.to_str().unwrap();
    let out = stdout_of(telemetry(dir.path()).args(["--db", db, "stats", "--by", "engine"]));
    assert!(out.lines().any(|l| l.starts_with("engine")), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("ollama")) && out.lines().any(|l| l.starts_with("vllm"))
    );
    let out =
        stdout_of(telemetry(dir.path()).args(["--db", db, "stats", "--by", "agent", "--top", "1"]));
    assert!(out.lines().any(|l| l.starts_with("b ")), "{out}");
    assert!(!out.lines().any(|l| l.starts_with("a ")), "{out}");
}

#[test]
fn stats_json_is_aggregated_stats_and_filters_by_time() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let db = db.to_str().unwrap();
    let all: Value = serde_json::from_str(&stdout_of(
        telemetry(dir.path()).args(["--db", db, "stats", "--format", "json"]),
    ))
    .unwrap();
    assert_eq!(all["total_calls"], 30);
    assert_eq!(all["error_count"], 2);
    assert_eq!(all["per_model"][0]["model_id"], "qwen");
    assert_eq!(all["per_model"][0]["call_count"], 20);
    assert!(all["latency_p50"].as_f64().unwrap() > 0.0);
    assert!(all["per_engine"].is_array() && all["energy_per_output_token_joules"].is_number());

    let recent: Value = serde_json::from_str(&stdout_of(
        telemetry(dir.path()).args(["--db", db, "stats", "-f", "json", "--since", "30m"]),
    ))
    .unwrap();
    assert_eq!(recent["total_calls"], 20);
    let old: Value = serde_json::from_str(&stdout_of(
        telemetry(dir.path()).args(["--db", db, "stats", "-f", "json", "--until", "30m"]),
    ))
    .unwrap();
    assert_eq!(old["total_calls"], 10);
    let top: Value = serde_json::from_str(&stdout_of(
        telemetry(dir.path()).args(["--db", db, "stats", "-f", "json", "-n", "1"]),
    ))
    .unwrap();
    assert_eq!(top["per_model"].as_array().unwrap().len(), 1);
}

#[test]
fn empty_range_is_not_an_error() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    on_db(dir.path(), &db)
        .args(["stats", "--since", "2099-01-01T00:00:00Z"])
        .assert()
        .success()
        .stdout(predicate::str::contains("no calls recorded"));
}

#[test]
fn since_after_until_is_a_usage_error() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    on_db(dir.path(), &db)
        .args(["stats", "--since", "1h", "--until", "2h"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("since"));
}

#[test]
fn series_in_every_format() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let db = db.to_str().unwrap();
    let table = stdout_of(telemetry(dir.path()).args(["--db", db, "series", "--bucket", "1d"]));
    assert!(table.starts_with("bucket"), "{table}");
    let json: Value = serde_json::from_str(&stdout_of(telemetry(dir.path()).args([
        "--db", db, "series", "--bucket", "1m", "--by", "model", "-f", "json",
    ])))
    .unwrap();
    let points = json.as_array().unwrap();
    let calls: u64 = points
        .iter()
        .map(|p| p["call_count"].as_u64().unwrap())
        .sum();
    assert_eq!(calls, 30);
    assert!(points.iter().all(|p| p["group"].is_string()));
    let csv = stdout_of(
        telemetry(dir.path()).args(["--db", db, "series", "--bucket", "hour", "-f", "csv"]),
    );
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("bucket_start,group,call_count"),
        "{csv}"
    );
    assert!(lines.count() >= 1);
    let empty = stdout_of(telemetry(dir.path()).args([
        "--db",
        db,
        "series",
        "--bucket",
        "1h",
        "-f",
        "csv",
        "--since",
        "2099-01-01T00:00:00Z",
    ]));
    assert_eq!(empty.lines().count(), 1, "{empty}");
}

#[test]
fn check_reports_a_healthy_database() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let db = db.to_str().unwrap();
    telemetry(dir.path())
        .args(["--db", db, "check"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("records    30")
                .and(predicate::str::contains("integrity  ok"))
                .and(predicate::str::contains("healthy")),
        );
    let json: Value = serde_json::from_str(&stdout_of(
        telemetry(dir.path()).args(["--db", db, "check", "-f", "json"]),
    ))
    .unwrap();
    assert_eq!(json["healthy"], true);
    assert_eq!(json["records"], 30);
    assert_eq!(json["schema_version"], json["supported_schema_version"]);
    assert!(json["file_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn check_fails_on_a_damaged_database() {
    let (dir, db) = temp_db();
    let many: Vec<_> = (0..2_000)
        .map(|i| common::record("m", "e", "a", 10.0, i))
        .collect();
    seed(&db, &many);
    // Overwrite the middle of the file (data pages, not the header) with garbage.
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(
        bytes.len() > 16_384,
        "database too small to damage: {}",
        bytes.len()
    );
    let mid = bytes.len() / 2;
    bytes[mid..mid + 8_192].fill(0xA5);
    std::fs::write(&db, bytes).unwrap();
    let err = stderr_on_exit(on_db(dir.path(), &db).args(["check"]), 1);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn not_a_telemetry_database_is_a_clear_error() {
    let (dir, db) = temp_db();
    std::fs::write(
        &db,
        b"this is not sqlite at all, just some text padding it out",
    )
    .unwrap();
    for cmd in [
        &["stats"][..],
        &["series", "--bucket", "1h"],
        &["export"],
        &["check"],
    ] {
        let err = stderr_on_exit(on_db(dir.path(), &db).args(cmd), 1);
        assert_eq!(err.trim_end().lines().count(), 1, "{cmd:?}: {err}");
        assert!(
            err.contains("t.db") && err.contains("not"),
            "{cmd:?}: {err}"
        );
    }
}
