//! The exposition of a real store: names, labels, escaping, counter values and histogram buckets
//! against the records written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use telemetry_agg::TelemetryAggregator;
use telemetry_core::{EnergyMethod, TelemetryRecord, TimeRange};
use telemetry_prometheus::{Format, RenderError, RenderOptions, render};
use telemetry_store::TelemetryStore;

const T0: f64 = 1_764_288_000.0;

fn write(path: &Path, records: &[TelemetryRecord]) {
    let store = TelemetryStore::open(path).unwrap();
    for r in records {
        store.record(r).unwrap();
    }
    store.close().unwrap();
}

fn records() -> Vec<TelemetryRecord> {
    let mut v = Vec::new();
    for i in 0..10 {
        let mut r = TelemetryRecord::builder("llama", T0 + i as f64 * 7_000.0)
            .engine("vllm")
            .agent("planner")
            .tokens(100, 10 + i)
            .latency_seconds(0.05 * (i + 1) as f64)
            .cost_usd(0.25)
            .energy(2.0, EnergyMethod::Counter)
            .ttft(0.015)
            .build();
        r.is_streaming = true;
        r.mean_itl_ms = Some(20.0);
        v.push(r);
    }
    v.push(
        TelemetryRecord::builder("llama", T0 + 5.0)
            .engine("vllm")
            .agent("planner")
            .latency_seconds(30.0)
            .error("timeout", "slow")
            .build(),
    );
    v.push(
        TelemetryRecord::builder("we\"ird\\mo\ndel", T0 + 9.0)
            .engine("ollama")
            .tokens(1, 1)
            .latency_seconds(100.0)
            .build(),
    );
    v
}

fn line_value(text: &str, prefix: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix} in\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn counters_follow_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    write(&path, &records());
    let text = render(
        &TelemetryAggregator::open(&path).unwrap(),
        &RenderOptions::default(),
    )
    .unwrap();
    let l = r#"{model="llama",engine="vllm",agent="planner""#;
    assert_eq!(
        line_value(
            &text,
            &format!(r#"inference_calls_total{l},outcome="ok"}}"#)
        ),
        10.0
    );
    assert_eq!(
        line_value(
            &text,
            &format!(r#"inference_calls_total{l},outcome="error"}}"#)
        ),
        1.0
    );
    assert_eq!(
        line_value(&text, &format!("inference_input_tokens_total{l}}}")),
        1000.0
    );
    assert_eq!(
        line_value(&text, &format!("inference_output_tokens_total{l}}}")),
        145.0
    );
    assert_eq!(
        line_value(&text, &format!("inference_cost_usd_total{l}}}")),
        2.5
    );
    assert_eq!(
        line_value(&text, &format!("inference_energy_joules_total{l}}}")),
        20.0
    );
    for family in [
        "# TYPE inference_calls_total counter",
        "# TYPE inference_cost_usd_total counter",
        "# TYPE inference_energy_joules_total counter",
        "# TYPE inference_latency_seconds histogram",
        "# TYPE inference_time_to_first_token_seconds histogram",
        "# TYPE inference_time_per_output_token_seconds histogram",
    ] {
        assert!(text.contains(family), "{family} missing in\n{text}");
    }
}

#[test]
fn histograms_rebin_the_sketches_into_fixed_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    write(&path, &records());
    let text = render(
        &TelemetryAggregator::open(&path).unwrap(),
        &RenderOptions::default(),
    )
    .unwrap();
    let l = r#"model="llama",engine="vllm",agent="planner""#;
    let bucket = |name: &str, le: &str| {
        line_value(
            &text,
            &format!(r#"inference_{name}_bucket{{{l},le="{le}"}}"#),
        )
    };
    // Latencies 0.05 .. 0.5 s in steps of 0.05 and one 30 s failure.
    assert_eq!(bucket("latency_seconds", "0.04"), 0.0);
    assert_eq!(bucket("latency_seconds", "0.08"), 1.0);
    assert_eq!(bucket("latency_seconds", "0.16"), 3.0);
    assert_eq!(bucket("latency_seconds", "0.32"), 6.0);
    assert_eq!(bucket("latency_seconds", "0.64"), 10.0);
    assert_eq!(bucket("latency_seconds", "20.48"), 10.0);
    assert_eq!(bucket("latency_seconds", "40.96"), 11.0);
    assert_eq!(bucket("latency_seconds", "+Inf"), 11.0);
    assert_eq!(
        line_value(&text, &format!("inference_latency_seconds_count{{{l}}}")),
        11.0
    );
    let sum = line_value(&text, &format!("inference_latency_seconds_sum{{{l}}}"));
    assert!((sum - 32.75).abs() < 1e-9, "{sum}");
    assert_eq!(bucket("time_to_first_token_seconds", "0.01"), 0.0);
    assert_eq!(bucket("time_to_first_token_seconds", "0.02"), 10.0);
    // ITL 20 ms per call, exposed in seconds.
    assert_eq!(bucket("time_per_output_token_seconds", "0.01"), 0.0);
    assert_eq!(bucket("time_per_output_token_seconds", "0.025"), 10.0);
    let itl_sum = line_value(
        &text,
        &format!("inference_time_per_output_token_seconds_sum{{{l}}}"),
    );
    assert!((itl_sum - 0.2).abs() <= 0.2 * 0.005, "{itl_sum}");
    // The odd model has no TTFT: no TTFT series for it.
    assert!(!text.contains(r#"inference_time_to_first_token_seconds_count{model="we"#));
}

#[test]
fn label_values_are_escaped_into_one_series() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    write(&path, &records());
    let text = render(
        &TelemetryAggregator::open(&path).unwrap(),
        &RenderOptions::default(),
    )
    .unwrap();
    let want = r#"inference_calls_total{model="we\"ird\\mo\ndel",engine="ollama",agent="",outcome="ok"} 1"#;
    assert!(text.contains(want), "{want} missing in\n{text}");
    // Every line is a comment or one sample: name{labels} value.
    for line in text.lines() {
        assert!(
            line.starts_with("# HELP ")
                || line.starts_with("# TYPE ")
                || line.ends_with(|c: char| c.is_ascii_digit() || c == 'f'),
            "bad line {line:?}"
        );
    }
}

#[test]
fn namespace_and_range_options_apply() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    write(&path, &records());
    let agg = TelemetryAggregator::open(&path).unwrap();
    let options = RenderOptions::new()
        .with_namespace("llm")
        .with_range(TimeRange::since(T0 + 60_000.0).unwrap());
    let text = render(&agg, &options).unwrap();
    // Records at T0 + 63 000 s only.
    assert_eq!(
        line_value(
            &text,
            r#"llm_calls_total{model="llama",engine="vllm",agent="planner",outcome="ok"}"#
        ),
        1.0
    );
    assert!(!text.contains("inference_"));
    let bad = render(&agg, &RenderOptions::new().with_namespace("9lives"));
    assert!(matches!(bad, Err(RenderError::BadNamespace(ns)) if ns == "9lives"));
}

#[test]
fn an_empty_database_renders_the_families_without_series() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    write(&path, &[]);
    let text = render(
        &TelemetryAggregator::open(&path).unwrap(),
        &RenderOptions::default(),
    )
    .unwrap();
    assert!(text.contains("# TYPE inference_calls_total counter"));
    let samples: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("inference_"))
        .collect();
    assert_eq!(samples, ["inference_folded_series 0"]);
}

#[test]
fn label_sets_beyond_the_series_limit_fold_into_the_overflow_series() {
    const MODELS: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    // Day 0 holds models 0..MODELS, day 1 one more call of model 0 and a new name that sorts
    // first: the groups met first (day 0, by name) keep their series.
    let mut records: Vec<TelemetryRecord> = (0..MODELS)
        .map(|i| {
            TelemetryRecord::builder(format!("model-{i:06}"), T0 + (i % 80_000) as f64)
                .engine("vllm")
                .tokens(10, 5)
                .latency_seconds(0.2)
                .build()
        })
        .collect();
    for model in ["model-000000", "a-new-name"] {
        records.push(
            TelemetryRecord::builder(model, T0 + 86_400.0)
                .engine("vllm")
                .latency_seconds(0.2)
                .error("timeout", "slow")
                .build(),
        );
    }
    write(&path, &records);
    let agg = TelemetryAggregator::open(&path).unwrap();
    let limit = telemetry_prometheus::DEFAULT_SERIES_LIMIT;
    let text = render(&agg, &RenderOptions::default()).unwrap();
    let ok_series = text
        .lines()
        .filter(|l| l.starts_with("inference_calls_total{") && l.contains(r#"outcome="ok""#))
        .count();
    assert_eq!(ok_series, limit + 1, "the kept series and the overflow one");
    let overflow = r#"{otel_metric_overflow="true",outcome="#;
    let folded_ok = line_value(&text, &format!("inference_calls_total{overflow}\"ok\"}}"));
    let folded_errors = line_value(
        &text,
        &format!("inference_calls_total{overflow}\"error\"}}"),
    );
    assert_eq!(folded_ok, (MODELS - limit) as f64);
    assert_eq!(folded_errors, 1.0, "the new name of day 1");
    assert_eq!(
        line_value(&text, "inference_folded_series "),
        (MODELS - limit + 1) as f64
    );
    assert_eq!(
        line_value(
            &text,
            r#"inference_calls_total{model="model-000000",engine="vllm",agent="",outcome="error"}"#
        ),
        1.0,
        "a kept group keeps its later calls"
    );
    assert_eq!(
        line_value(
            &text,
            r#"inference_latency_seconds_count{otel_metric_overflow="true"}"#
        ),
        (MODELS - limit + 1) as f64
    );
    // The scrape is the size of `limit` series, not of 100 000 (about 2 KB per series).
    assert!(text.len() < (limit + 1) * 3000, "{} bytes", text.len());

    let small = render(&agg, &RenderOptions::new().with_series_limit(1)).unwrap();
    assert_eq!(
        line_value(&small, "inference_folded_series "),
        MODELS as f64
    );
}

#[test]
fn openmetrics_has_the_same_samples_with_its_own_framing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    write(&path, &records());
    let agg = TelemetryAggregator::open(&path).unwrap();
    let prometheus = render(&agg, &RenderOptions::default()).unwrap();
    let openmetrics = render(&agg, &RenderOptions::new().with_format(Format::OpenMetrics)).unwrap();
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    assert!(!prometheus.contains("# EOF"));
    // OpenMetrics names a counter family without `_total` and its samples with it.
    assert!(
        openmetrics.contains("# TYPE inference_calls counter"),
        "{openmetrics}"
    );
    assert!(openmetrics.contains("# TYPE inference_latency_seconds histogram"));
    assert!(openmetrics.contains("# UNIT inference_latency_seconds seconds"));
    // Every sample (calls, tokens, cost, energy, buckets, sums, counts, escaped labels) is the
    // same in both formats, up to label order and how a bound is spelt (`1` vs `1.0`).
    let samples = |text: &str| {
        let mut v: Vec<(String, Vec<String>, f64)> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').unwrap();
                // `inference_folded_series` has no labels.
                let (name, labels) = series.split_once('{').unwrap_or((series, ""));
                let mut labels: Vec<String> = labels
                    .trim_end_matches('}')
                    .split("\",")
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap();
                        let v = v.trim_matches('"');
                        match (k, v.parse::<f64>()) {
                            ("le", Ok(bound)) => format!("le={bound}"),
                            _ => format!("{k}={v}"),
                        }
                    })
                    .collect();
                labels.sort();
                (name.to_owned(), labels, value.parse::<f64>().unwrap())
            })
            .collect();
        v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        v
    };
    let (p, o) = (samples(&prometheus), samples(&openmetrics));
    assert!(p.len() > 40, "{} samples", p.len());
    assert_eq!(p, o);
    assert!(openmetrics.contains(r#"inference_calls_total{model="we\"ird\\mo\ndel""#));
}
