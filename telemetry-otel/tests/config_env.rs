//! `OtlpConfig::from_lookup`: the standard variables, as the OpenTelemetry specification reads them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use telemetry_otel::{ConfigError, OtlpConfig};

fn from(vars: &[(&str, &str)]) -> Result<OtlpConfig, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    OtlpConfig::from_lookup(|name| map.get(name).cloned())
}

#[test]
fn nothing_set_is_localhost_4318() {
    let c = from(&[]).unwrap();
    assert_eq!(c.traces_endpoint(), "http://localhost:4318/v1/traces");
    assert_eq!(c.metrics_endpoint(), "http://localhost:4318/v1/metrics");
    assert!(c.resource()[0].1.starts_with("unknown_service"));
}

#[test]
fn the_generic_endpoint_gets_the_signal_path_and_per_signal_ones_are_used_as_is() {
    let c = from(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "http://m:9000/custom",
        ),
    ])
    .unwrap();
    assert_eq!(c.traces_endpoint(), "http://collector:4318/v1/traces");
    assert_eq!(c.metrics_endpoint(), "http://m:9000/custom");
}

#[test]
fn headers_are_decoded_and_per_signal_entries_win() {
    let c = from(&[
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b, x-tenant=blue"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "X-Tenant=red"),
    ])
    .unwrap();
    assert_eq!(
        c.traces_headers(),
        &[
            ("api-key".to_owned(), "a b".to_owned()),
            ("x-tenant".to_owned(), "red".to_owned())
        ]
    );
    assert_eq!(c.metrics_headers()[1].1, "blue");
}

#[test]
fn service_name_wins_over_resource_attributes() {
    let c = from(&[
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=from-list,deployment.environment=prod",
        ),
        ("OTEL_SERVICE_NAME", "chat-backend"),
    ])
    .unwrap();
    assert_eq!(
        c.resource(),
        &[
            ("service.name".to_owned(), "chat-backend".to_owned()),
            ("deployment.environment".to_owned(), "prod".to_owned())
        ]
    );
    let c = from(&[("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-list")]).unwrap();
    assert_eq!(c.resource()[0].1, "from-list");
}

#[test]
fn limits_come_from_the_batch_processor_variables() {
    let c = from(&[
        ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
    ])
    .unwrap();
    assert_eq!(c.queue_capacity(), 100);
    let built = OtlpConfig::new("http://localhost:4318")
        .unwrap()
        .with_timeout(Duration::from_millis(2500))
        .with_queue_capacity(100);
    assert_eq!(c, built);
    assert_ne!(c, built.with_timeout(Duration::from_secs(10)));
    assert_eq!(c.metric_interval(), Duration::from_secs(60), "the default");
    let c = from(&[("OTEL_METRIC_EXPORT_INTERVAL", "1500")]).unwrap();
    assert_eq!(c.metric_interval(), Duration::from_millis(1500));
}

#[test]
fn bad_values_name_the_variable() {
    let cases: &[(&str, &str, &str)] = &[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318", "TLS"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "collector:4318",
            "http://",
        ),
        ("OTEL_EXPORTER_OTLP_HEADERS", "novalue", "key=value"),
        ("OTEL_RESOURCE_ATTRIBUTES", "a=%zz", "key=value"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s", "milliseconds"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0", "above 0"),
    ];
    for (var, value, says) in cases {
        let err = from(&[(var, value)]).unwrap_err().to_string();
        assert!(err.contains(var), "{var}: {err}");
        assert!(err.contains(says), "{var}: {err}");
    }
}

#[test]
fn empty_variables_count_as_unset() {
    let c = from(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", " "),
        ("OTEL_SERVICE_NAME", ""),
    ])
    .unwrap();
    assert_eq!(c.traces_endpoint(), "http://localhost:4318/v1/traces");
    assert!(c.resource()[0].1.starts_with("unknown_service"));
}

#[test]
fn grpc_is_a_protocol_only_with_its_feature() {
    let result = from(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
    if cfg!(feature = "grpc") {
        assert_eq!(result.unwrap().protocol(), telemetry_otel::Protocol::Grpc);
    } else {
        let err = result.unwrap_err().to_string();
        assert!(err.contains("`grpc` feature"), "{err}");
    }
}

#[test]
fn the_longest_waits_are_capped() {
    let huge = u64::MAX.to_string();
    let c = from(&[
        ("OTEL_METRIC_EXPORT_INTERVAL", huge.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", huge.as_str()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", huge.as_str()),
    ])
    .unwrap();
    assert_eq!(c.metric_interval(), telemetry_otel::LONGEST_WAIT);
    let c = from(&[]).unwrap().with_metric_interval(Duration::MAX);
    assert_eq!(c.metric_interval(), telemetry_otel::LONGEST_WAIT);
}
