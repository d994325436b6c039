//! OTLP from the command line: `demo --otlp URL` exports each call live, `export --format otlp`
//! backfills stored records with their original times, and a collector that is down never fails
//! the recording.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{on_db, seed, standard_records, stdout_of, temp_db};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use predicates::prelude::*;
use telemetry_otel::semconv as sc;
use telemetry_otel::testing::OtlpReceiver;

/// `telemetry --db DB` with no OTEL_* variable from the environment running the tests.
fn isolated(home: &std::path::Path, db: &std::path::Path) -> assert_cmd::Command {
    let mut cmd = on_db(home, db);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OTEL_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

fn duration_count(receiver: &OtlpReceiver) -> u64 {
    let metrics = receiver.last_metrics();
    let m = metrics
        .iter()
        .find(|m| m.name == sc::GEN_AI_CLIENT_OPERATION_DURATION)
        .expect("duration metric");
    let Some(Data::Histogram(h)) = &m.data else {
        panic!("not a histogram")
    };
    h.data_points.iter().map(|p| p.count).sum()
}

#[test]
fn demo_with_otlp_sends_a_span_and_a_duration_per_call() {
    let receiver = OtlpReceiver::start().unwrap();
    let (dir, db) = temp_db();
    let out = stdout_of(isolated(dir.path(), &db).args([
        "demo",
        "--calls",
        "150",
        "--stream",
        "--gpu",
        "mock",
        "--otlp",
        &receiver.endpoint(),
    ]));
    assert!(out.contains("otlp: 150 spans sent to"), "{out}");
    assert!(out.contains("0 dropped, 0 failed"), "{out}");
    let spans = receiver.spans();
    assert_eq!(spans.len(), 150);
    assert!(spans.iter().all(|s| s.name.starts_with("chat sim-")));
    assert_eq!(duration_count(&receiver), 150);
    let resource = receiver.received().traces[0].resource_spans[0]
        .resource
        .clone()
        .unwrap();
    assert!(
        resource
            .attributes
            .iter()
            .any(|kv| kv.key == "service.name" && format!("{:?}", kv.value).contains("telemetry")),
        "{resource:?}"
    );
}

/// The value of the one data point of the gauge or sum `name` in the last metrics request,
/// with that point's `hw.*` attributes (`hw.id`, `hw.type`, `hw.name`).
fn device_point(receiver: &OtlpReceiver, name: &str) -> (f64, Vec<(String, String)>, Option<bool>) {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as Number;
    let metrics = receiver.last_metrics();
    let m = metrics.iter().find(|m| m.name == name).unwrap_or_else(|| {
        panic!(
            "no {name} in {:?}",
            metrics.iter().map(|m| &m.name).collect::<Vec<_>>()
        )
    });
    let (points, monotonic) = match &m.data {
        Some(Data::Gauge(g)) => (&g.data_points, None),
        Some(Data::Sum(s)) => (&s.data_points, Some(s.is_monotonic)),
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(points.len(), 1, "one mock GPU: {points:?}");
    let value = match points[0].value {
        Some(Number::AsDouble(v)) => v,
        Some(Number::AsInt(v)) => v as f64,
        None => panic!("{name}: no value"),
    };
    let attributes = points[0]
        .attributes
        .iter()
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) if kv.key.starts_with("hw.") => Some((kv.key.clone(), s.clone())),
            _ => None,
        })
        .collect();
    (value, attributes, monotonic)
}

#[test]
fn demo_with_otlp_and_the_mock_gpu_exports_its_device_series() {
    let receiver = OtlpReceiver::start().unwrap();
    let (dir, db) = temp_db();
    let out = stdout_of(isolated(dir.path(), &db).args([
        "demo",
        "--calls",
        "40",
        "--gpu",
        "mock",
        "--otlp",
        &receiver.endpoint(),
    ]));
    assert!(out.contains("otlp: 40 spans sent to"), "{out}");
    let mock_gpu = vec![
        ("hw.id".to_owned(), "GPU-mock-0000".to_owned()),
        ("hw.type".to_owned(), "gpu".to_owned()),
        ("hw.name".to_owned(), "Mock H100".to_owned()),
    ];
    let (watts, attributes, monotonic) = device_point(&receiver, sc::HW_POWER);
    assert_eq!(attributes, mock_gpu);
    assert_eq!(monotonic, None, "hw.power is a gauge");
    assert!(
        (180.0..=690.0).contains(&watts),
        "the mock trace's range: {watts} W"
    );
    let (joules, attributes, monotonic) = device_point(&receiver, sc::HW_ENERGY);
    assert_eq!(attributes, mock_gpu);
    assert_eq!(monotonic, Some(true), "hw.energy is a counter");
    // The mock's counter starts at 0 with the simulated clock, and the calls take turns on it:
    // the device's energy is about the energy of the calls.
    let calls = {
        let metrics = receiver.last_metrics();
        let m = metrics
            .iter()
            .find(|m| m.name == sc::TELEMETRY_CLIENT_ENERGY)
            .expect("the calls' energy");
        let Some(Data::Sum(s)) = &m.data else {
            panic!("not a sum")
        };
        s.data_points
            .iter()
            .map(|p| match p.value {
                Some(
                    opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(v),
                ) => v,
                _ => 0.0,
            })
            .sum::<f64>()
    };
    // (The counter refreshes on its own period, so it may lag the last call a little.)
    assert!(
        calls > 0.0 && (joules - calls).abs() <= 0.02 * calls,
        "hw.energy {joules} J, calls {calls} J"
    );
}

#[test]
fn demo_with_the_collector_down_still_records_and_says_what_failed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (dir, db) = temp_db();
    let out = stdout_of(
        isolated(dir.path(), &db).args(["demo", "--calls", "40", "--gpu", "off", "--otlp", &dead]),
    );
    assert!(out.contains("recorded 40 calls"), "{out}");
    assert!(out.contains("otlp: 0 spans sent"), "{out}");
    assert!(out.contains("40 failed"), "{out}");
    assert!(out.contains("could not connect"), "{out}");
}

#[test]
fn otlp_urls_that_cannot_work_are_usage_errors() {
    let (dir, db) = temp_db();
    isolated(dir.path(), &db)
        .args(["demo", "--calls", "1"])
        .args(["--otlp", "https://collector:4318"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--otlp").and(predicate::str::contains("TLS")));
    seed(&db, &standard_records());
    isolated(dir.path(), &db)
        .args(["export", "--format", "otlp"])
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("OTEL_EXPORTER_OTLP_PROTOCOL"));
}

#[test]
fn export_format_otlp_backfills_spans_with_their_stored_times() {
    let receiver = OtlpReceiver::start().unwrap();
    let (dir, db) = temp_db();
    let records = standard_records();
    seed(&db, &records);
    let out = stdout_of(isolated(dir.path(), &db).args([
        "export",
        "--format",
        "otlp",
        "--endpoint",
        &receiver.endpoint(),
    ]));
    assert!(
        out.contains(&format!("exported {} records as spans", records.len())),
        "{out}"
    );
    let mut got: Vec<u64> = receiver
        .spans()
        .iter()
        .map(|s| s.start_time_unix_nano)
        .collect();
    let mut want: Vec<u64> = records.iter().map(|r| (r.timestamp * 1e9) as u64).collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        // Stored timestamps round-trip through SQLite REAL: equal to the microsecond.
        assert!(g.abs_diff(*w) < 1_000, "{g} vs {w}");
    }
    assert_eq!(duration_count(&receiver), records.len() as u64);
}

#[test]
fn export_format_otlp_with_since_sends_only_the_range_and_fails_when_refused() {
    let receiver = OtlpReceiver::start().unwrap();
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    stdout_of(isolated(dir.path(), &db).args([
        "export",
        "--format",
        "otlp",
        "--since",
        "30m",
        "--endpoint",
        &receiver.endpoint(),
    ]));
    assert_eq!(receiver.spans().len(), 20, "the 20 recent records");
    receiver.set_status(500);
    isolated(dir.path(), &db)
        .args(["export", "--format", "otlp"])
        .args(["--endpoint", &receiver.endpoint()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("HTTP 500"));
    isolated(dir.path(), &db)
        .args(["export", "--format", "otlp"])
        .args(["-o", "x.bin"])
        .assert()
        .code(2);
}
