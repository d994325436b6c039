//! CSV meant for spreadsheets: a text cell starting with = + - @, tab or CR gets a leading `'`
//! (OWASP), unless `--raw`; JSON and NDJSON are never changed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{now, on_db, seed, stdout_of, temp_db};
use telemetry_core::TelemetryRecord;
use telemetry_core::schema::RECORD_COLUMNS;

const MODEL: &str = "=HYPERLINK(\"http://evil.example\",\"click\")";
const ENGINE: &str = "@SUM(A1)";
const AGENT: &str = "+cmd|' /C calc'!A0";
const ERROR_KIND: &str = "-2+3";

fn hostile_db(path: &Path) {
    let r = TelemetryRecord::builder(MODEL, now() - 60.0)
        .engine(ENGINE)
        .agent(AGENT)
        .latency_seconds(0.5)
        .error(ERROR_KIND, "\tTAB")
        .build();
    seed(path, &[r]);
}

fn export_csv(dir: &Path, db: &Path, extra: &[&str]) -> csv::StringRecord {
    let out = stdout_of(on_db(dir, db).args(["export", "-f", "csv"]).args(extra));
    let mut reader = csv::Reader::from_reader(out.as_bytes());
    reader.records().next().unwrap().unwrap()
}

fn column(name: &str) -> usize {
    RECORD_COLUMNS.iter().position(|c| *c == name).unwrap()
}

#[test]
fn export_csv_prefixes_formula_cells_unless_raw() {
    let (dir, db) = temp_db();
    hostile_db(&db);
    let safe = export_csv(dir.path(), &db, &[]);
    assert_eq!(&safe[column("model_id")], format!("'{MODEL}"));
    assert_eq!(&safe[column("engine")], format!("'{ENGINE}"));
    assert_eq!(&safe[column("agent")], format!("'{AGENT}"));
    assert_eq!(&safe[column("error_kind")], format!("'{ERROR_KIND}"));
    assert_eq!(&safe[column("error_message")], "'\tTAB");
    assert_eq!(&safe[column("outcome")], "error");
    let raw = export_csv(dir.path(), &db, &["--raw"]);
    assert_eq!(&raw[column("model_id")], MODEL);
    assert_eq!(&raw[column("engine")], ENGINE);
    assert_eq!(&raw[column("agent")], AGENT);
    assert_eq!(&raw[column("error_message")], "\tTAB");
    // NDJSON is exact either way.
    let ndjson = stdout_of(on_db(dir.path(), &db).args(["export", "-f", "ndjson"]));
    let back: TelemetryRecord = serde_json::from_str(ndjson.trim()).unwrap();
    assert_eq!(
        (back.model_id.as_str(), back.engine.as_str()),
        (MODEL, ENGINE)
    );
}

#[test]
fn series_csv_prefixes_formula_groups_unless_raw() {
    let (dir, db) = temp_db();
    hostile_db(&db);
    let group = |extra: &[&str]| {
        let out = stdout_of(
            on_db(dir.path(), &db)
                .args(["series", "--bucket", "1h"])
                .args(["--by", "model", "--format", "csv"])
                .args(extra),
        );
        let mut reader = csv::Reader::from_reader(out.as_bytes());
        reader.records().next().unwrap().unwrap()[1].to_string()
    };
    assert_eq!(group(&[]), format!("'{MODEL}"));
    assert_eq!(group(&["--raw"]), MODEL);
}
