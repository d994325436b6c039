//! `report`: the HTML page parsed back — sections, numbers equal to `stats --format json`,
//! escaping of hostile names, nothing fetched from elsewhere, and the empty cases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{
    now, on_db, record, seed, standard_records, stderr_on_exit, stdout_of, telemetry, temp_db,
};
use scraper::{Html, Selector};
use serde_json::Value;
use telemetry_core::TelemetryRecord;

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

/// Runs `report` with `args` into `out` and returns the parsed page.
fn report(home: &Path, db: &Path, out: &Path, args: &[&str]) -> (String, Html) {
    let printed = stdout_of(on_db(home, db).args(["report", "-o"]).arg(out).args(args));
    assert_eq!(printed.trim(), out.to_str().unwrap());
    let text = std::fs::read_to_string(out).unwrap();
    let doc = Html::parse_document(&text);
    (text, doc)
}

fn stats_json(home: &Path, db: &Path) -> Value {
    let out = stdout_of(on_db(home, db).args(["stats", "--format", "json"]));
    serde_json::from_str(&out).unwrap()
}

fn attr_f64(e: scraper::ElementRef<'_>, name: &str) -> f64 {
    e.value().attr(name).unwrap().parse().unwrap()
}

#[test]
fn sections_charts_and_accessibility_are_there() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let out = dir.path().join("r.html");
    let (_, doc) = report(dir.path(), &db, &out, &[]);
    for id in [
        "header",
        "tiles",
        "groups",
        "charts",
        "models",
        "latency",
        "records",
        "generated",
    ] {
        assert_eq!(
            doc.select(&sel(&format!("#{id}"))).count(),
            1,
            "section #{id}"
        );
    }
    for id in [
        "chart-calls",
        "chart-latency",
        "chart-latency-group",
        "chart-ttft",
        "chart-throughput",
        "chart-energy",
        "chart-cost",
        "chart-joules-per-token",
        "chart-cost-per-million",
        "chart-histogram",
    ] {
        let fig = doc
            .select(&sel(&format!("figure#{id}")))
            .next()
            .unwrap_or_else(|| panic!("figure {id}"));
        let svg = fig.select(&sel("div.svg[role=img] svg")).next();
        assert!(svg.is_some(), "{id} has an SVG");
        let wrapper = fig.select(&sel("div.svg")).next().unwrap();
        assert!(!wrapper.value().attr("aria-label").unwrap().is_empty());
        assert_eq!(fig.select(&sel("svg title")).count(), 1, "{id} title");
    }
    // Lines and bars were drawn.
    assert!(doc.select(&sel("#chart-calls svg polyline")).count() >= 2);
    assert!(doc.select(&sel("#chart-histogram svg rect")).count() >= 2);
    // Table with headers, one row per model; the legend names the models.
    assert_eq!(
        doc.select(&sel("#groups table thead th[scope=col]"))
            .count(),
        13
    );
    let rows: Vec<String> = doc
        .select(&sel("#groups tbody th[scope=row]"))
        .map(|e| e.text().collect())
        .collect();
    assert_eq!(rows, ["qwen", "llama"]);
    let legend: String = doc
        .select(&sel("#chart-calls .legend"))
        .next()
        .unwrap()
        .text()
        .collect();
    assert!(
        legend.contains("qwen") && legend.contains("llama"),
        "{legend}"
    );
    // Light and dark, and a phone-sized viewport.
    let style: String = doc.select(&sel("style")).next().unwrap().text().collect();
    assert!(style.contains("prefers-color-scheme: dark"));
    assert!(doc.select(&sel("meta[name=viewport]")).count() == 1);
}

#[test]
fn numbers_equal_stats_json() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let out = dir.path().join("r.html");
    let (_, doc) = report(dir.path(), &db, &out, &[]);
    let stats = stats_json(dir.path(), &db);
    let mut checked = 0;
    for tile in doc.select(&sel("#tiles .tile[data-field]")) {
        let field = tile.value().attr("data-field").unwrap();
        let want = stats[field].as_f64().unwrap_or_else(|| panic!("{field}"));
        assert_eq!(attr_f64(tile, "data-value"), want, "tile {field}");
        checked += 1;
    }
    assert_eq!(checked, 11, "every tile has a value with this data");
    assert_eq!(
        attr_f64(doc.select(&sel("#records")).next().unwrap(), "data-value"),
        30.0
    );
    for row in doc.select(&sel("#groups tbody tr")) {
        let name = row
            .select(&sel("th"))
            .next()
            .unwrap()
            .value()
            .attr("data-group")
            .unwrap()
            .to_owned();
        let model = stats["per_model"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["model_id"] == name.as_str())
            .unwrap();
        for cell in row.select(&sel("td[data-value]")) {
            let field = cell.value().attr("data-field").unwrap();
            assert_eq!(
                attr_f64(cell, "data-value"),
                model[field].as_f64().unwrap(),
                "{name} {field}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 11 + 2 * 12, "{checked}");
    // Display text matches the formatting of `stats`.
    let calls: String = doc
        .select(&sel("#tiles .tile[data-field=total_calls] .value"))
        .next()
        .unwrap()
        .text()
        .collect();
    assert_eq!(calls, "30");
    let hist = doc.select(&sel("[data-field=histogram_count]")).next();
    assert_eq!(attr_f64(hist.unwrap(), "data-value"), 30.0);
}

#[test]
fn hostile_names_are_escaped_and_nothing_is_fetched() {
    let (dir, db) = temp_db();
    let hostile = r#"<script>alert("x")</script>'"&"#;
    let mut records: Vec<TelemetryRecord> = (0..5)
        .map(|i| {
            record(
                hostile,
                "<img src=x onerror=alert(1)>",
                "a\"b",
                100.0 + i as f64,
                i,
            )
        })
        .collect();
    records.push(record("plain", "vllm", "c", 50.0, 1));
    seed(&db, &records);
    let out = dir.path().join("r.html");
    for by in ["model", "engine", "agent"] {
        let (text, doc) = report(dir.path(), &db, &out, &["--by", by]);
        assert_eq!(
            doc.select(&sel("script")).count(),
            0,
            "--by {by}: no script"
        );
        assert_eq!(doc.select(&sel("img")).count(), 0, "--by {by}: no img");
        assert!(!text.contains("<script"), "--by {by}");
        assert!(!text.contains("<img"), "--by {by}");
        // The names still read as themselves.
        let table: String = doc
            .select(&sel("#groups tbody"))
            .next()
            .unwrap()
            .text()
            .collect();
        let want = match by {
            "model" => hostile,
            "engine" => "<img src=x onerror=alert(1)>",
            _ => "a\"b",
        };
        assert!(table.contains(want), "--by {by}: {table}");
        for e in doc.select(&sel("[src], [href]")) {
            for a in ["src", "href"] {
                if let Some(v) = e.value().attr(a) {
                    assert!(
                        !v.contains("//") && !v.starts_with("http") && !v.starts_with("data:"),
                        "external {a}={v}"
                    );
                }
            }
        }
        assert!(
            !text.contains("@import") && !text.contains("url("),
            "no CSS fetch"
        );
        assert_eq!(doc.select(&sel("link, iframe, object, embed")).count(), 0);
    }
}

#[test]
fn an_empty_range_says_so() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let out = dir.path().join("r.html");
    let (_, doc) = report(
        dir.path(),
        &db,
        &out,
        &["--until", &format!("{}", now() - 86_400.0)],
    );
    let note: String = doc.select(&sel("#empty")).next().unwrap().text().collect();
    assert!(note.contains("No calls recorded"), "{note}");
    assert_eq!(doc.select(&sel("svg")).count(), 0);
    assert_eq!(
        doc.select(&sel("#records"))
            .next()
            .unwrap()
            .value()
            .attr("data-value"),
        Some("0")
    );
}

#[test]
fn missing_energy_cost_and_ttft_say_so() {
    let (dir, db) = temp_db();
    let records: Vec<TelemetryRecord> = (0..8)
        .map(|i| {
            TelemetryRecord::builder("bare", now() - 100.0 + i as f64)
                .tokens(10, 5)
                .latency_seconds(0.3 + i as f64 * 0.01)
                .build()
        })
        .collect();
    seed(&db, &records);
    let out = dir.path().join("r.html");
    let (_, doc) = report(dir.path(), &db, &out, &["--bucket", "1h"]);
    for (id, says) in [
        ("chart-ttft", "No TTFT"),
        ("chart-energy", "No GPU energy"),
        ("chart-cost", "No cost"),
        ("chart-joules-per-token", "No GPU energy"),
        ("chart-cost-per-million", "No cost"),
    ] {
        let fig = doc.select(&sel(&format!("figure#{id}"))).next().unwrap();
        assert_eq!(fig.select(&sel("svg")).count(), 0, "{id}");
        let text: String = fig.text().collect();
        assert!(text.contains(says), "{id}: {text}");
    }
    let missing: Vec<String> = doc
        .select(&sel("#tiles .tile.missing .label"))
        .map(|e| e.text().collect())
        .collect();
    for label in [
        "Cost",
        "GPU energy",
        "J per output token",
        "TTFT p50",
        "TTFT p95",
    ] {
        assert!(missing.iter().any(|m| m == label), "{label}: {missing:?}");
    }
    assert!(doc.select(&sel("figure#chart-calls svg")).count() == 1);
    let meta: String = doc.select(&sel("#header")).next().unwrap().text().collect();
    assert!(meta.contains("1 hour buckets"), "{meta}");
}

#[test]
fn default_file_is_written_in_the_current_directory() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let printed = stdout_of(telemetry(dir.path()).current_dir(dir.path()).args([
        "--db",
        db.to_str().unwrap(),
        "report",
    ]));
    assert_eq!(printed.trim(), "telemetry-report.html");
    assert!(dir.path().join("telemetry-report.html").is_file());
}

#[test]
fn a_missing_database_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    telemetry(dir.path())
        .args([
            "--db",
            dir.path().join("nope.db").to_str().unwrap(),
            "report",
        ])
        .assert()
        .code(2);
    assert!(!dir.path().join("telemetry-report.html").exists());
}

#[test]
fn report_refuses_to_overwrite_the_database() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let before = std::fs::read(&db).unwrap();
    for name in ["t.db", "t.db-wal"] {
        let err = stderr_on_exit(
            on_db(dir.path(), &db)
                .args(["report", "-o"])
                .arg(dir.path().join(name)),
            2,
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains("refusing to write to"), "{err}");
    }
    assert_eq!(std::fs::read(&db).unwrap(), before);
}
