//! `demo`: records exactly the calls it made (round trip through `export`), says which engine and
//! GPU source produced the numbers, and refuses GPU choices that cannot work.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{exported, on_db, stdout_of, telemetry, temp_db};
use predicates::prelude::*;
use telemetry_core::{EnergyMethod, Outcome};

#[test]
fn demo_then_export_gives_exactly_the_calls_made() {
    let (dir, db) = temp_db();
    let out = stdout_of(on_db(dir.path(), &db).args([
        "demo",
        "--calls",
        "120",
        "--gpu",
        "off",
        "--concurrency",
        "3",
    ]));
    assert!(out.contains("SimulatedEngine (seed 42"), "{out}");
    assert!(out.contains("GPU energy: off"), "{out}");
    assert!(out.contains("recorded 120 calls"), "{out}");
    assert!(out.contains(db.to_str().unwrap()), "{out}");
    let header = out.lines().find(|l| l.starts_with("model")).unwrap();
    assert!(
        header.contains("p99") && header.contains("ttft p50") && !header.contains("energy"),
        "{header}"
    );

    let records = exported(dir.path(), &db);
    assert_eq!(records.len(), 120);
    assert!(
        records
            .iter()
            .all(|r| r.validate().is_ok() && r.engine == "sim")
    );
    assert!(records.iter().all(|r| r.energy_joules.is_none()));
    let agents: std::collections::BTreeSet<_> = records.iter().map(|r| r.agent.as_str()).collect();
    assert_eq!(agents.len(), 2, "{agents:?}");
    let models: std::collections::BTreeSet<_> =
        records.iter().map(|r| r.model_id.as_str()).collect();
    assert_eq!(models.len(), 4, "{models:?}");
    assert!(records.iter().any(|r| r.cost_usd > 0.0));
}

#[test]
fn streaming_demo_with_the_mock_gpu_records_energy() {
    let (dir, db) = temp_db();
    let out = stdout_of(on_db(dir.path(), &db).args([
        "demo", "--calls", "80", "--stream", "--gpu", "mock", "--models", "2",
    ]));
    assert!(out.contains("GPU energy: mock GPU"), "{out}");
    assert!(
        out.contains("energy") && out.contains("J per output token"),
        "{out}"
    );
    let records = exported(dir.path(), &db);
    assert_eq!(records.len(), 80);
    for r in records.iter().filter(|r| r.outcome == Outcome::Ok) {
        assert!(
            r.is_streaming && r.ttft.is_some() && r.mean_itl_ms.is_some(),
            "{r:?}"
        );
        let joules = r.energy_joules.unwrap();
        // 180–690 W over the call's simulated latency.
        assert!(
            joules >= 150.0 * r.latency_seconds && joules <= 700.0 * r.latency_seconds,
            "{r:?}"
        );
        assert_ne!(r.energy_method, EnergyMethod::None);
    }
}

#[test]
fn default_gpu_in_instant_mode_is_the_mock_and_says_why() {
    let (dir, db) = temp_db();
    on_db(dir.path(), &db)
        .args(["demo", "--calls", "10"])
        .assert()
        .success()
        .stdout(predicate::str::contains("GPU energy: mock GPU"))
        .stderr(predicate::str::contains("instant mode"));
}

#[test]
fn realtime_auto_falls_back_to_the_mock_without_a_gpu() {
    let (dir, db) = temp_db();
    let out = on_db(dir.path(), &db)
        .args(["demo", "--realtime", "--calls", "3", "--models", "1"])
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("real time") && stdout.contains("recorded 3 calls"),
        "{stdout}"
    );
    if stdout.contains("GPU energy: mock GPU") {
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("no usable NVIDIA GPU"), "{stderr}");
    }
    let records = exported(dir.path(), &db);
    assert_eq!(records.len(), 3);
    assert!(
        records
            .iter()
            .filter(|r| r.outcome == Outcome::Ok)
            .all(|r| r.energy_joules.is_some())
    );
}

#[test]
fn impossible_gpu_choices_are_errors() {
    let (dir, db) = temp_db();
    on_db(dir.path(), &db)
        .args(["demo", "--gpu", "nvml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--realtime"));
    assert!(!db.exists());
    // This machine may or may not have a GPU; without one the error is one line, exit 1.
    let out = on_db(dir.path(), &db)
        .args(["demo", "--gpu", "nvml", "--realtime", "--calls", "1"])
        .output()
        .unwrap();
    if !out.status.success() {
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains("GPU") || err.contains("NVML"), "{err}");
        assert!(!db.exists());
    }
}

#[test]
fn demo_writes_to_the_default_location() {
    let dir = tempfile::tempdir().unwrap();
    let xdg = dir.path().join("data");
    telemetry(dir.path())
        .env("XDG_DATA_HOME", &xdg)
        .args(["demo", "--calls", "5", "--gpu", "off"])
        .assert()
        .success()
        .stdout(predicate::str::contains("recorded 5 calls"));
    assert!(xdg.join("telemetry/telemetry.db").is_file());
}

/// What identifies a simulated call: model, agent, prompt and completion tokens, millijoules.
type CallShape = (String, String, u64, u64, Option<u64>);

#[test]
fn same_seed_gives_the_same_calls() {
    let runs: Vec<Vec<CallShape>> = (0..2)
        .map(|_| {
            let (dir, db) = temp_db();
            on_db(dir.path(), &db)
                .args(["demo", "--calls", "40", "--seed", "7"])
                .assert()
                .success();
            exported(dir.path(), &db)
                .into_iter()
                .map(|r| {
                    let millijoules = r.energy_joules.map(|j| (j * 1e3).round() as u64);
                    (
                        r.model_id,
                        r.agent,
                        r.prompt_tokens,
                        r.completion_tokens,
                        millijoules,
                    )
                })
                .collect()
        })
        .collect();
    assert_eq!(runs[0].len(), 40);
    assert_eq!(runs[0], runs[1]);
}

/// The database deleted while `demo` records (real time, so the calls outlast the deletion):
/// the loss is said on stderr and the exit status is 1, not a summary of calls "recorded" into
/// a file that is gone.
#[test]
fn a_database_deleted_during_the_demo_fails_it_and_says_so() {
    let (dir, db) = temp_db();
    let (status, first, stdout, stderr) = common::delete_db_while_recording(
        common::telemetry_std(dir.path())
            .args(["--db", db.to_str().unwrap(), "demo", "--realtime"])
            .args(["--calls", "2", "--concurrency", "2", "--gpu", "off"]),
        &db,
    );
    // The first line is printed once the store is open.
    assert!(first.starts_with("demo: "), "{first}");
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("was deleted"), "{stderr}");
    assert!(stderr.contains("0 records written"), "{stderr}");
    assert!(!stdout.contains("recorded 2 calls"), "{stdout}");
}

#[test]
fn instant_demo_spreads_its_calls_over_a_simulated_day_so_series_has_many_buckets() {
    let (dir, db) = temp_db();
    let out = stdout_of(on_db(dir.path(), &db).args(["demo", "--calls", "240", "--gpu", "off"]));
    assert!(out.contains("recorded 240 calls"), "{out}");
    assert!(out.contains("240"), "the table counts every call: {out}");
    let series =
        stdout_of(on_db(dir.path(), &db).args(["series", "--bucket", "1h", "--format", "json"]));
    let points: Vec<serde_json::Value> = serde_json::from_str(&series).unwrap();
    assert!(points.len() >= 24, "{} hourly buckets", points.len());
    let calls: u64 = points
        .iter()
        .map(|p| p["call_count"].as_u64().unwrap())
        .sum();
    assert_eq!(calls, 240);
    let records = exported(dir.path(), &db);
    let (first, last) = (records[0].timestamp, records[records.len() - 1].timestamp);
    assert!((last - first) > 0.95 * 86_400.0, "{}", last - first);

    // --span 0 keeps the calls' real times; --span 2h spreads over two hours.
    for (span, at_most) in [("0", 60.0), ("2h", 7_200.0)] {
        let (dir, db) = temp_db();
        stdout_of(
            on_db(dir.path(), &db).args(["demo", "--calls", "50", "--gpu", "off", "--span", span]),
        );
        let records = exported(dir.path(), &db);
        let width = records[records.len() - 1].timestamp - records[0].timestamp;
        assert!(
            width <= at_most && width > at_most / 4.0 || span == "0",
            "{span}: {width}"
        );
        assert!(width <= at_most, "{span}: {width}");
    }
}
