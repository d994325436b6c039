//! Records published on a bus reach an in-process OTLP/HTTP receiver as GenAI spans and
//! metrics, decoded with opentelemetry-proto and checked against the records sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric::Data};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use telemetry_core::{EnergyMethod, Event, EventBus, TelemetryRecord};
use telemetry_otel::semconv as sc;
use telemetry_otel::testing::OtlpReceiver;
use telemetry_otel::{Backfill, OtlpConfig, OtlpExporter};

const T0: f64 = 1_764_300_000.0;
const WAIT: Duration = Duration::from_secs(10);

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn s(v: &str) -> Value {
    Value::StringValue(v.to_owned())
}

/// Four calls: plain, streamed with ITL and energy, failed, and a second plain one.
fn records() -> Vec<TelemetryRecord> {
    let plain = TelemetryRecord::builder("qwen2.5-7b", T0)
        .engine("vllm")
        .agent("chat-assistant")
        .tokens(200, 64)
        .latency_seconds(1.5)
        .cost_usd(0.002)
        .build();
    let mut streamed = TelemetryRecord::builder("llama-3.1-8b", T0 + 1.0)
        .engine("llama.cpp")
        .tokens(20, 11)
        .latency_seconds(0.3)
        .ttft(0.05)
        .energy(12.5, EnergyMethod::Counter)
        .server_timings(40.0, 200.0)
        .build();
    streamed.is_streaming = true;
    streamed.output_chunks = 11;
    streamed.mean_itl_ms = Some(20.0);
    streamed.p99_itl_ms = Some(31.0);
    let failed = TelemetryRecord::builder("qwen2.5-7b", T0 + 2.0)
        .engine("vllm")
        .latency_seconds(0.03)
        .error("http_503", "overloaded")
        .build();
    let again = TelemetryRecord::builder("qwen2.5-7b", T0 + 3.0)
        .engine("vllm")
        .tokens(5000, 3)
        .latency_seconds(100.0)
        .build();
    vec![plain, streamed, failed, again]
}

fn metric<'a>(metrics: &'a [Metric], name: &str) -> &'a Metric {
    metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name} in {:?}", names(metrics)))
}

fn names(metrics: &[Metric]) -> Vec<&str> {
    metrics.iter().map(|m| m.name.as_str()).collect()
}

#[test]
fn spans_carry_genai_attributes_kind_status_and_the_records_times() {
    let receiver = OtlpReceiver::start().unwrap();
    let exporter = OtlpExporter::start(OtlpConfig::new(&receiver.endpoint()).unwrap()).unwrap();
    let bus = EventBus::new();
    exporter.subscribe_to_bus(&bus);
    for r in records() {
        bus.publish(Event::from(r));
    }
    exporter.shutdown(WAIT).unwrap();
    let stats = exporter.stats();
    assert_eq!((stats.accepted, stats.spans_exported), (4, 4), "{stats:?}");
    assert_eq!(
        (stats.dropped, stats.export_errors, stats.pending),
        (0, 0, 0)
    );

    let spans = receiver.spans();
    assert_eq!(spans.len(), 4);
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "chat qwen2.5-7b",
            "chat llama-3.1-8b",
            "chat qwen2.5-7b",
            "chat qwen2.5-7b"
        ]
    );
    for span in &spans {
        assert_eq!(span.kind, SpanKind::Client as i32);
        assert_eq!(span.trace_id.len(), 16);
        assert_eq!(span.span_id.len(), 8);
    }
    assert_ne!(spans[0].trace_id, spans[1].trace_id);

    let plain = &spans[0];
    assert_eq!(plain.start_time_unix_nano, 1_764_300_000_000_000_000);
    assert_eq!(plain.end_time_unix_nano, 1_764_300_001_500_000_000);
    let a = &plain.attributes;
    assert_eq!(attr(a, sc::GEN_AI_OPERATION_NAME), Some(&s("chat")));
    assert_eq!(attr(a, sc::GEN_AI_PROVIDER_NAME), Some(&s("vllm")));
    assert_eq!(attr(a, sc::GEN_AI_REQUEST_MODEL), Some(&s("qwen2.5-7b")));
    assert_eq!(attr(a, sc::GEN_AI_RESPONSE_MODEL), Some(&s("qwen2.5-7b")));
    assert_eq!(
        attr(a, sc::GEN_AI_USAGE_INPUT_TOKENS),
        Some(&Value::IntValue(200))
    );
    assert_eq!(
        attr(a, sc::GEN_AI_USAGE_OUTPUT_TOKENS),
        Some(&Value::IntValue(64))
    );
    assert_eq!(attr(a, sc::TELEMETRY_AGENT), Some(&s("chat-assistant")));
    assert_eq!(
        attr(a, sc::TELEMETRY_COST),
        Some(&Value::DoubleValue(0.002))
    );
    assert_eq!(attr(a, sc::ERROR_TYPE), None);
    assert_eq!(attr(a, sc::TELEMETRY_TTFT), None, "not measured: absent");
    assert_eq!(
        plain.status.as_ref().map(|s| s.code),
        Some(StatusCode::Unset as i32)
    );

    let a = &spans[1].attributes;
    assert_eq!(attr(a, sc::TELEMETRY_TTFT), Some(&Value::DoubleValue(0.05)));
    assert_eq!(
        attr(a, sc::TELEMETRY_ITL_P99),
        Some(&Value::DoubleValue(31.0))
    );
    assert_eq!(
        attr(a, sc::TELEMETRY_ENERGY),
        Some(&Value::DoubleValue(12.5))
    );
    assert_eq!(attr(a, sc::TELEMETRY_ENERGY_METHOD), Some(&s("counter")));
    assert_eq!(
        attr(a, sc::TELEMETRY_SERVER_DECODE),
        Some(&Value::DoubleValue(200.0))
    );
    assert_eq!(
        attr(a, sc::TELEMETRY_STREAMING),
        Some(&Value::BoolValue(true))
    );

    let failed = &spans[2];
    assert_eq!(
        attr(&failed.attributes, sc::ERROR_TYPE),
        Some(&s("http_503"))
    );
    let status = failed.status.as_ref().unwrap();
    assert_eq!(status.code, StatusCode::Error as i32);
    assert_eq!(status.message, "overloaded");
}

#[test]
fn metrics_have_the_conventions_names_units_buckets_and_counts() {
    let receiver = OtlpReceiver::start().unwrap();
    let exporter = OtlpExporter::start(OtlpConfig::new(&receiver.endpoint()).unwrap()).unwrap();
    for r in records() {
        assert!(exporter.record(Arc::new(r)));
    }
    exporter.shutdown(WAIT).unwrap();
    assert_eq!(exporter.stats().metric_exports, 1);
    let metrics = receiver.last_metrics();

    let duration = metric(&metrics, sc::GEN_AI_CLIENT_OPERATION_DURATION);
    assert_eq!(duration.unit, "s");
    let Some(Data::Histogram(h)) = &duration.data else {
        panic!("duration is not a histogram")
    };
    assert_eq!(h.aggregation_temporality, 2, "cumulative");
    // vllm ok (2 calls), vllm failed (error.type), llama.cpp ok.
    assert_eq!(h.data_points.len(), 3);
    let total: u64 = h.data_points.iter().map(|p| p.count).sum();
    assert_eq!(total, 4);
    let vllm_ok = h
        .data_points
        .iter()
        .find(|p| {
            attr(&p.attributes, sc::GEN_AI_PROVIDER_NAME) == Some(&s("vllm"))
                && attr(&p.attributes, sc::ERROR_TYPE).is_none()
        })
        .unwrap();
    assert_eq!(vllm_ok.explicit_bounds, sc::DURATION_BUCKETS.to_vec());
    assert_eq!(vllm_ok.bucket_counts.len(), 15);
    // 1.5 s falls in (1.28, 2.56]; 100 s above 81.92.
    assert_eq!(vllm_ok.bucket_counts[8], 1);
    assert_eq!(vllm_ok.bucket_counts[14], 1);
    assert_eq!(vllm_ok.sum, Some(101.5));
    assert_eq!((vllm_ok.min, vllm_ok.max), (Some(1.5), Some(100.0)));
    let failed = h
        .data_points
        .iter()
        .find(|p| attr(&p.attributes, sc::ERROR_TYPE) == Some(&s("http_503")))
        .unwrap();
    assert_eq!(failed.count, 1);

    let tokens = metric(&metrics, sc::GEN_AI_CLIENT_TOKEN_USAGE);
    assert_eq!(tokens.unit, "{token}");
    let Some(Data::Histogram(h)) = &tokens.data else {
        panic!("token usage is not a histogram")
    };
    let input_vllm = h
        .data_points
        .iter()
        .find(|p| {
            attr(&p.attributes, sc::GEN_AI_TOKEN_TYPE) == Some(&s("input"))
                && attr(&p.attributes, sc::GEN_AI_PROVIDER_NAME) == Some(&s("vllm"))
        })
        .unwrap();
    // The failed call has no usage: two vllm calls, 200 and 5000 input tokens.
    assert_eq!(input_vllm.count, 2);
    assert_eq!(input_vllm.sum, Some(5200.0));
    assert_eq!(input_vllm.explicit_bounds, sc::TOKEN_BUCKETS.to_vec());
    assert_eq!(input_vllm.bucket_counts[4], 1, "200 in (64, 256]");
    assert_eq!(input_vllm.bucket_counts[7], 1, "5000 in (4096, 16384]");

    for name in [
        sc::GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
        sc::GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK,
    ] {
        let m = metric(&metrics, name);
        assert_eq!(m.unit, "s");
        let Some(Data::Histogram(h)) = &m.data else {
            panic!("{name} is not a histogram")
        };
        assert_eq!(h.data_points.len(), 1, "{name}: the one stream");
        assert_eq!(h.data_points[0].explicit_bounds, sc::CHUNK_BUCKETS.to_vec());
    }
    let Some(Data::Histogram(tpoc)) =
        &metric(&metrics, sc::GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK).data
    else {
        unreachable!()
    };
    // 11 output chunks: 10 after the first, at the 20 ms mean.
    assert_eq!(tpoc.data_points[0].count, 10);
    assert_eq!(
        tpoc.data_points[0].bucket_counts[1], 10,
        "0.02 in (0.01, 0.025]"
    );

    let energy = metric(&metrics, sc::TELEMETRY_CLIENT_OPERATION_ENERGY);
    assert_eq!(energy.unit, "J");
    let energy_total = metric(&metrics, sc::TELEMETRY_CLIENT_ENERGY);
    let Some(Data::Sum(sum)) = &energy_total.data else {
        panic!("energy total is not a sum")
    };
    assert!(sum.is_monotonic);
    assert_eq!(sum.data_points.len(), 1);
    assert_eq!(
        sum.data_points[0].value,
        Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(12.5))
    );
}

#[test]
fn headers_resource_and_scope_reach_the_collector() {
    let receiver = OtlpReceiver::start().unwrap();
    let config = OtlpConfig::new(&receiver.endpoint())
        .unwrap()
        .with_service_name("chat-backend")
        .with_resource_attribute("deployment.environment", "test")
        .with_header("x-tenant", "blue");
    let exporter = OtlpExporter::start(config).unwrap();
    exporter.record(Arc::new(records().remove(0)));
    exporter.shutdown(WAIT).unwrap();
    let got = receiver.received();
    assert!(
        got.last_headers
            .contains(&("x-tenant".to_owned(), "blue".to_owned())),
        "{:?}",
        got.last_headers
    );
    let rs = &got.traces[0].resource_spans[0];
    let resource = rs.resource.as_ref().unwrap();
    assert_eq!(
        attr(&resource.attributes, "service.name"),
        Some(&s("chat-backend"))
    );
    assert_eq!(
        attr(&resource.attributes, "deployment.environment"),
        Some(&s("test"))
    );
    assert_eq!(
        rs.scope_spans[0].scope.as_ref().map(|s| s.name.as_str()),
        Some("telemetry-otel")
    );
}

#[test]
fn waits_of_any_length_are_taken() {
    // Each is a deadline of now plus the wait: `Duration::MAX` overflowed it.
    let receiver = OtlpReceiver::start().unwrap();
    let config = OtlpConfig::new(&receiver.endpoint())
        .unwrap()
        .with_timeout(Duration::MAX)
        .with_schedule_delay(Duration::MAX)
        .with_metric_interval(Duration::MAX);
    let exporter = OtlpExporter::start(config).unwrap();
    exporter.record(Arc::new(records().remove(0)));
    exporter.flush(WAIT).unwrap();
    assert_eq!(receiver.received().span_count, 1);
}

#[test]
fn flush_sends_now_and_batches_split_at_the_limit() {
    let receiver = OtlpReceiver::start().unwrap();
    let config = OtlpConfig::new(&receiver.endpoint())
        .unwrap()
        .with_schedule_delay(Duration::from_secs(3600))
        .with_metric_interval(Duration::from_secs(3600))
        .with_max_batch(10);
    let exporter = OtlpExporter::start(config).unwrap();
    let record = Arc::new(records().remove(0));
    for _ in 0..25 {
        exporter.record(Arc::clone(&record));
    }
    exporter.flush(WAIT).unwrap();
    let got = receiver.received();
    assert_eq!(got.span_count, 25);
    // No request holds more than the batch limit (full batches may leave before the flush).
    assert!(got.trace_requests >= 3, "{}", got.trace_requests);
    for request in &got.traces {
        let n: usize = request.resource_spans[0]
            .scope_spans
            .iter()
            .map(|s| s.spans.len())
            .sum();
        assert!((1..=10).contains(&n), "{n}");
    }
    assert_eq!(got.metric_requests, 1, "a flush sends the metrics too");
    // Nothing new: a second flush sends no metrics again.
    exporter.flush(WAIT).unwrap();
    assert_eq!(receiver.received().metric_requests, 1);
}

#[test]
fn a_full_batch_is_sent_without_waiting_for_the_timer() {
    let receiver = OtlpReceiver::start().unwrap();
    let config = OtlpConfig::new(&receiver.endpoint())
        .unwrap()
        .with_schedule_delay(Duration::from_secs(3600))
        .with_max_batch(8);
    let exporter = OtlpExporter::start(config).unwrap();
    let record = Arc::new(records().remove(0));
    for _ in 0..8 {
        exporter.record(Arc::clone(&record));
    }
    assert!(receiver.wait_until(WAIT, |r| r.span_count == 8));
}

#[test]
fn a_record_after_an_idle_spell_is_sent_after_the_schedule_delay_not_the_metric_interval() {
    let receiver = OtlpReceiver::start().unwrap();
    let config = OtlpConfig::new(&receiver.endpoint())
        .unwrap()
        .with_schedule_delay(Duration::from_millis(1))
        .with_metric_interval(Duration::from_secs(3600));
    let exporter = OtlpExporter::start(config).unwrap();
    // Time for the export thread to find the queue empty and sleep until the next metric
    // export: the record must wake it (it once slept on until then, an hour here).
    std::thread::sleep(Duration::from_millis(100));
    exporter.record(Arc::new(records().remove(0)));
    assert!(
        receiver.wait_until(WAIT, |r| r.span_count == 1),
        "{:?}",
        exporter.stats()
    );
}
#[test]
fn shutdown_flushes_everything_queued() {
    let receiver = OtlpReceiver::start().unwrap();
    let config = OtlpConfig::new(&receiver.endpoint())
        .unwrap()
        .with_schedule_delay(Duration::from_secs(3600))
        .with_queue_capacity(5000);
    let exporter = OtlpExporter::start(config).unwrap();
    let record = Arc::new(records().remove(0));
    for _ in 0..3000 {
        assert!(exporter.record(Arc::clone(&record)));
    }
    exporter.shutdown(WAIT).unwrap();
    assert_eq!(receiver.received().span_count, 3000);
    let metrics = receiver.last_metrics();
    let Some(Data::Histogram(h)) = &metric(&metrics, sc::GEN_AI_CLIENT_OPERATION_DURATION).data
    else {
        panic!("no duration histogram")
    };
    assert_eq!(h.data_points[0].count, 3000);
    // Shut down: later records are refused and counted, a second shutdown is fine.
    assert!(!exporter.record(record));
    assert_eq!(exporter.stats().dropped, 1);
    exporter.shutdown(WAIT).unwrap();
}

#[test]
fn backfill_keeps_original_times_and_sends_metrics_over_the_whole_range() {
    let receiver = OtlpReceiver::start().unwrap();
    let config = OtlpConfig::new(&receiver.endpoint())
        .unwrap()
        .with_max_batch(3);
    let mut backfill = Backfill::new(config);
    for r in records() {
        backfill.push(r).unwrap();
    }
    let summary = backfill.finish().unwrap();
    assert_eq!(summary.spans, 4);
    assert_eq!(summary.span_requests, 2);
    assert!(summary.metrics_sent);
    let spans = receiver.spans();
    let starts: Vec<u64> = spans.iter().map(|s| s.start_time_unix_nano).collect();
    assert_eq!(
        starts,
        [
            1_764_300_000_000_000_000,
            1_764_300_001_000_000_000,
            1_764_300_002_000_000_000,
            1_764_300_003_000_000_000
        ]
    );
    let metrics = receiver.last_metrics();
    let Some(Data::Histogram(h)) = &metric(&metrics, sc::GEN_AI_CLIENT_OPERATION_DURATION).data
    else {
        panic!("no duration histogram")
    };
    for p in &h.data_points {
        assert_eq!(p.start_time_unix_nano, 1_764_300_000_000_000_000);
        // The last call starts at T0 + 3 and lasts 100 s.
        assert_eq!(p.time_unix_nano, 1_764_300_103_000_000_000);
    }
}

#[test]
fn backfill_stops_at_the_first_refused_request() {
    let receiver = OtlpReceiver::start().unwrap();
    receiver.set_status(503);
    let mut backfill = Backfill::new(
        OtlpConfig::new(&receiver.endpoint())
            .unwrap()
            .with_max_batch(1),
    );
    let err = backfill.push(records().remove(0)).unwrap_err();
    assert!(err.to_string().contains("HTTP 503"), "{err}");
}

#[test]
fn time_per_output_chunk_counts_chunks_not_tokens() {
    // Three chunks 50 ms apart carrying 500 tokens of usage (a server that batches tokens).
    let mut r = TelemetryRecord::builder("m", T0)
        .engine("vllm")
        .tokens(10, 500)
        .latency_seconds(0.2)
        .ttft(0.1)
        .build();
    r.is_streaming = true;
    r.output_chunks = 3;
    r.mean_itl_ms = Some(50.0);
    let receiver = OtlpReceiver::start().unwrap();
    let exporter = OtlpExporter::start(OtlpConfig::new(&receiver.endpoint()).unwrap()).unwrap();
    exporter.record(Arc::new(r));
    exporter.shutdown(WAIT).unwrap();
    let metrics = receiver.last_metrics();
    let Some(Data::Histogram(h)) =
        &metric(&metrics, sc::GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK).data
    else {
        panic!("not a histogram")
    };
    let p = &h.data_points[0];
    assert_eq!(p.count, 2, "the gaps between 3 chunks, not 499 tokens");
    assert!((p.sum.unwrap() - 0.1).abs() < 1e-9, "{:?}", p.sum);
}
