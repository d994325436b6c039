//! A collector that is down, slow or refusing costs the caller nothing: records are dropped and
//! counted, memory stays bounded, and shutdown keeps its deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use telemetry_core::{Event, EventBus, TelemetryRecord};
use telemetry_otel::testing::OtlpReceiver;
use telemetry_otel::{ExportError, FlushError, OtlpConfig, OtlpExporter};

fn record() -> Arc<TelemetryRecord> {
    Arc::new(
        TelemetryRecord::builder("m", 1_764_300_000.0)
            .engine("vllm")
            .tokens(10, 5)
            .latency_seconds(0.2)
            .build(),
    )
}

/// A loopback port nobody listens on.
fn dead_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[test]
fn a_collector_that_is_down_drops_and_counts_without_blocking_the_caller() {
    let config = OtlpConfig::new(&dead_endpoint())
        .unwrap()
        .with_queue_capacity(100)
        .with_max_batch(10);
    let exporter = OtlpExporter::start(config).unwrap();
    let bus = EventBus::new();
    exporter.subscribe_to_bus(&bus);
    let r = record();
    let started = Instant::now();
    for _ in 0..20_000 {
        bus.publish(Event::TelemetryRecord(Arc::clone(&r)));
    }
    let elapsed = started.elapsed();
    // 20 000 publishes; a blocked caller would take at least one connection attempt each.
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    exporter.shutdown(Duration::from_secs(5)).unwrap();
    let stats = exporter.stats();
    assert_eq!(stats.accepted + stats.dropped, 20_000, "{stats:?}");
    assert_eq!(stats.spans_exported, 0);
    assert_eq!(stats.spans_failed, stats.accepted, "{stats:?}");
    assert!(stats.export_errors > 0);
    assert_eq!(stats.pending, 0);
    assert!(
        matches!(exporter.last_error(), Some(ExportError::Connect { .. })),
        "{:?}",
        exporter.last_error()
    );
}

#[test]
fn a_slow_collector_fills_the_bounded_queue_then_drops_and_shutdown_keeps_its_deadline() {
    let receiver = OtlpReceiver::start().unwrap();
    receiver.set_delay(Duration::from_secs(3));
    let config = OtlpConfig::new(&receiver.endpoint())
        .unwrap()
        .with_queue_capacity(64)
        .with_max_batch(16)
        .with_schedule_delay(Duration::from_millis(1));
    let exporter = OtlpExporter::start(config).unwrap();
    // Let the thread take a first batch and hang on the slow answer. (At least one request:
    // once in a CI run the exact `== 1` was not seen within 5 s, cause not found; the counts
    // are printed if it happens again.)
    exporter.record(record());
    assert!(
        receiver.wait_until(Duration::from_secs(5), |r| r.trace_requests >= 1),
        "no trace request reached the receiver: {:?}, exporter {:?}",
        receiver.received(),
        exporter.stats()
    );
    let r = record();
    let started = Instant::now();
    for _ in 0..1000 {
        exporter.record(Arc::clone(&r));
    }
    assert!(started.elapsed() < Duration::from_millis(500));
    let stats = exporter.stats();
    assert_eq!(
        stats.accepted,
        1 + 64,
        "the queue holds its capacity: {stats:?}"
    );
    assert_eq!(stats.dropped, 1000 - 64);

    let started = Instant::now();
    let result = exporter.shutdown(Duration::from_millis(300));
    let waited = started.elapsed();
    assert!(
        matches!(result, Err(FlushError::Timeout { .. })),
        "{result:?}"
    );
    assert!(waited < Duration::from_secs(1), "{waited:?}");
}

#[test]
fn refused_requests_are_counted_as_failed() {
    let receiver = OtlpReceiver::start().unwrap();
    receiver.set_status(503);
    let exporter = OtlpExporter::start(OtlpConfig::new(&receiver.endpoint()).unwrap()).unwrap();
    for _ in 0..5 {
        exporter.record(record());
    }
    exporter.shutdown(Duration::from_secs(5)).unwrap();
    let stats = exporter.stats();
    assert_eq!(stats.spans_failed, 5, "{stats:?}");
    assert_eq!(stats.spans_exported, 0);
    let err = exporter.last_error().unwrap();
    assert!(
        matches!(err, ExportError::Status { status: 503, .. }),
        "{err:?}"
    );
}

#[test]
fn flush_after_shutdown_says_closed() {
    let exporter = OtlpExporter::start(OtlpConfig::new(&dead_endpoint()).unwrap()).unwrap();
    exporter.shutdown(Duration::from_secs(1)).unwrap();
    assert_eq!(
        exporter.flush(Duration::from_secs(1)),
        Err(FlushError::Closed)
    );
}

#[test]
fn metrics_refused_once_are_sent_again_with_the_current_totals_until_acknowledged() {
    let receiver = OtlpReceiver::start().unwrap();
    let exporter = OtlpExporter::start(OtlpConfig::new(&receiver.endpoint()).unwrap()).unwrap();
    receiver.set_status(503);
    for _ in 0..3 {
        exporter.record(record());
    }
    exporter.flush(Duration::from_secs(5)).unwrap();
    let refused = exporter.stats();
    assert_eq!(refused.metric_exports, 0, "{refused:?}");
    assert_eq!(
        refused.export_errors, 2,
        "spans and metrics refused: {refused:?}"
    );
    receiver.set_status(200);
    // Nothing new since the refused export: only its totals are left to send.
    exporter.shutdown(Duration::from_secs(5)).unwrap();
    let stats = exporter.stats();
    assert_eq!(stats.metric_exports, 1, "{stats:?}");
    // Cumulative: the acknowledged export carries the calls of the refused one.
    let duration = receiver
        .last_metrics()
        .into_iter()
        .find(|m| m.name == "gen_ai.client.operation.duration")
        .expect("the duration histogram reached the collector");
    let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Histogram(h)) = duration.data
    else {
        panic!("not a histogram: {duration:?}");
    };
    assert_eq!(h.data_points.iter().map(|p| p.count).sum::<u64>(), 3);
}
