//! Names that would drive a terminal (`ESC ] 0 ; ... BEL`, `ESC [ 2 J`) or break a table row
//! (`\n`) are escaped in every human-readable output, and kept exact in JSON, CSV and NDJSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{now, on_db, seed, stderr_on_exit, stdout_of, temp_db};
use serde_json::Value;
use telemetry_core::TelemetryRecord;

const TITLE: &str = "\x1b]0;pwned\x07";
const CLEAR: &str = "\x1b[2J";
const NEWLINE: &str = "a\nb";

fn hostile_db(path: &Path) {
    let t = now() - 60.0;
    let records: Vec<TelemetryRecord> = (0..3)
        .map(|i| {
            TelemetryRecord::builder(TITLE, t + f64::from(i))
                .engine(CLEAR)
                .agent(NEWLINE)
                .tokens(10, 5)
                .latency_seconds(0.5)
                .build()
        })
        .collect();
    seed(path, &records);
}

/// No byte a terminal acts on: C0 controls other than the line ends, DEL.
fn assert_inert(text: &str, what: &str) {
    assert!(
        !text
            .chars()
            .any(|c| (c.is_control() && c != '\n') || c == '\u{9b}'),
        "{what}: {text:?}"
    );
}

#[test]
fn tables_escape_control_characters() {
    let (dir, db) = temp_db();
    hostile_db(&db);
    let run = |args: &[&str]| stdout_of(on_db(dir.path(), &db).args(args));
    let by_model = run(&["stats"]);
    assert_inert(&by_model, "stats");
    assert!(by_model.contains("\\x1b]0;pwned\\x07"), "{by_model}");
    let by_engine = run(&["stats", "--by", "engine"]);
    assert_inert(&by_engine, "stats --by engine");
    assert!(by_engine.contains("\\x1b[2J"), "{by_engine}");
    let by_agent = run(&["stats", "--by", "agent"]);
    assert_inert(&by_agent, "stats --by agent");
    // One row for the agent, not two half rows.
    let row = by_agent.lines().find(|l| l.starts_with("a\\nb")).unwrap();
    assert!(row.contains(" 3 "), "{by_agent}");
    assert!(!by_agent.lines().any(|l| l.starts_with('b')), "{by_agent}");
    for by in ["model", "engine", "agent"] {
        let series = run(&["series", "--bucket", "1h", "--by", by]);
        assert_inert(&series, "series");
        assert_eq!(series.lines().count(), 3, "{series}");
    }
}

#[test]
fn machine_formats_stay_exact() {
    let (dir, db) = temp_db();
    hostile_db(&db);
    let run = |args: &[&str]| stdout_of(on_db(dir.path(), &db).args(args));
    let stats: Value = serde_json::from_str(&run(&["stats", "--format", "json"])).unwrap();
    assert_eq!(stats["per_model"][0]["model_id"], TITLE);
    assert_eq!(stats["per_agent"][0]["agent"], NEWLINE);
    let series: Value = serde_json::from_str(&run(&[
        "series", "--bucket", "1h", "--by", "engine", "--format", "json",
    ]))
    .unwrap();
    assert_eq!(series[0]["group"], CLEAR);
    let ndjson = run(&["export", "--format", "ndjson"]);
    let first: TelemetryRecord = serde_json::from_str(ndjson.lines().next().unwrap()).unwrap();
    assert_eq!(
        (
            first.model_id.as_str(),
            first.engine.as_str(),
            first.agent.as_str()
        ),
        (TITLE, CLEAR, NEWLINE)
    );
    let csv = run(&[
        "series", "--bucket", "1h", "--by", "agent", "--format", "csv",
    ]);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let row = reader.records().next().unwrap().unwrap();
    assert_eq!(&row[1], NEWLINE);
}

#[test]
fn errors_and_reports_escape_paths() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join(format!("{TITLE}.db"));
    let err = stderr_on_exit(on_db(dir.path(), &missing).args(["stats"]), 2);
    assert_inert(&err, "error");
    assert!(err.contains("\\x1b]0;pwned\\x07.db"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let db = dir.path().join(format!("x{NEWLINE}.db"));
    hostile_db(&db);
    let report = stdout_of(on_db(dir.path(), &db).args(["check"]));
    assert_inert(&report, "check");
    assert!(report.contains("xa\\nb.db"), "{report}");
    let cleared = stdout_of(on_db(dir.path(), &db).args(["clear", "--yes"]));
    assert_inert(&cleared, "clear");
    assert_eq!(cleared.lines().count(), 1, "{cleared}");
}
