//! Clients choose model names: the metric series stay bounded by the cardinality limit, and the
//! calls beyond it are counted in one overflow series per instrument
//! (`otel.metric.overflow = true`), as the OpenTelemetry metrics SDK specifies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::metrics::v1::{HistogramDataPoint, Metric, metric};
use telemetry_core::TelemetryRecord;
use telemetry_otel::testing::{OtlpReceiver, attribute_text};
use telemetry_otel::{DEFAULT_CARDINALITY_LIMIT, OtlpConfig, OtlpExporter};

const CALLS: usize = 100_000;

fn histogram_points<'a>(metrics: &'a [Metric], name: &str) -> &'a [HistogramDataPoint] {
    let m = metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name} not sent"));
    match &m.data {
        Some(metric::Data::Histogram(h)) => &h.data_points,
        other => panic!("{name} is not a histogram: {other:?}"),
    }
}

fn overflow_count(points: &[HistogramDataPoint]) -> u64 {
    let overflow: Vec<_> = points
        .iter()
        .filter(|p| attribute_text(&p.attributes, "otel.metric.overflow").is_some())
        .collect();
    assert_eq!(overflow.len(), 1, "one overflow point");
    assert_eq!(
        overflow[0].attributes.len(),
        1,
        "the overflow point has no other attribute"
    );
    overflow[0].count
}

#[test]
fn distinct_model_names_beyond_the_limit_fold_into_the_overflow_series() {
    let receiver = OtlpReceiver::counting().unwrap();
    let exporter = OtlpExporter::start(
        OtlpConfig::new(&receiver.endpoint())
            .unwrap()
            .with_queue_capacity(CALLS),
    )
    .unwrap();
    assert_eq!(
        exporter.config().cardinality_limit(),
        DEFAULT_CARDINALITY_LIMIT
    );
    for i in 0..CALLS {
        let record = TelemetryRecord::builder(format!("model-{i}"), 1_764_300_000.0)
            .engine("vllm")
            .tokens(10, 5)
            .latency_seconds(0.2)
            .build();
        assert!(exporter.record(Arc::new(record)));
    }
    exporter.shutdown(Duration::from_secs(60)).unwrap();
    let stats = exporter.stats();
    assert_eq!(stats.spans_exported, CALLS as u64, "{stats:?}");

    let limit = DEFAULT_CARDINALITY_LIMIT;
    let metrics = receiver.last_metrics();
    // Duration: one attribute set per model, the first `limit` kept.
    let duration = histogram_points(&metrics, "gen_ai.client.operation.duration");
    assert_eq!(duration.len(), limit + 1);
    assert_eq!(overflow_count(duration), (CALLS - limit) as u64);
    assert_eq!(duration.iter().map(|p| p.count).sum::<u64>(), CALLS as u64);
    // Token usage: two attribute sets (input, output) per model, so half as many models fit.
    let tokens = histogram_points(&metrics, "gen_ai.client.token.usage");
    assert_eq!(tokens.len(), limit + 1);
    let models_kept = limit / 2;
    assert_eq!(overflow_count(tokens), 2 * (CALLS - models_kept) as u64);
    // A call is folded when any of its measurements was: here the token usage folds first.
    assert_eq!(stats.calls_folded, (CALLS - models_kept) as u64);
    // The request is the size of `limit` series per instrument, not of 100 000 (a histogram
    // point is about 450 bytes; without the limit this request would be over 100 MB).
    let size = receiver.last_metrics_size();
    assert!(size < 3 * (limit + 1) * 500, "{size} bytes");
}

#[test]
fn a_configured_limit_applies_and_names_seen_before_keep_their_series() {
    let receiver = OtlpReceiver::start().unwrap();
    let exporter = OtlpExporter::start(
        OtlpConfig::new(&receiver.endpoint())
            .unwrap()
            .with_cardinality_limit(3),
    )
    .unwrap();
    for model in ["a", "b", "c", "d", "e", "a", "d"] {
        let record = TelemetryRecord::builder(model, 1_764_300_000.0)
            .latency_seconds(0.1)
            .build();
        exporter.record(Arc::new(record));
    }
    exporter.shutdown(Duration::from_secs(5)).unwrap();
    let metrics = receiver.last_metrics();
    let duration = histogram_points(&metrics, "gen_ai.client.operation.duration");
    let count_of = |model: &str| {
        duration
            .iter()
            .find(|p| {
                attribute_text(&p.attributes, "gen_ai.request.model").as_deref() == Some(model)
            })
            .map(|p| p.count)
    };
    assert_eq!(count_of("a"), Some(2), "a known name keeps its series");
    assert_eq!(count_of("d"), None);
    assert_eq!(overflow_count(duration), 3, "d, e, d");
    // Token usage has two attribute sets (input, output) per model: b's output already folds.
    assert_eq!(exporter.stats().calls_folded, 5);
}
