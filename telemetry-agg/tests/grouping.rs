//! Grouping and ordering: per model, engine and agent, ordered by call count then name; top-N.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{DAY0, full_rec, rec, write_db};
use telemetry_agg::TelemetryAggregator;
use telemetry_core::{TelemetryRecord, TimeRange};

fn seed_like() -> Vec<TelemetryRecord> {
    let mut v = Vec::new();
    for i in 0..5 {
        v.push(rec("llama", "vllm", DAY0 + i as f64, 1.0 + i as f64));
    }
    for i in 0..3 {
        v.push(rec("qwen", "ollama", DAY0 + 10.0 + i as f64, 2.0));
    }
    v.push(rec("mistral", "vllm", DAY0 + 20.0, 0.5));
    v
}

#[test]
fn models_are_grouped_and_ordered_by_call_count() {
    let (_dir, path) = write_db(&seed_like());
    let agg = TelemetryAggregator::open(&path).unwrap();
    let models = agg.per_model_stats(&TimeRange::all()).unwrap();
    let names: Vec<(&str, u64)> = models
        .iter()
        .map(|m| (m.model_id.as_str(), m.call_count))
        .collect();
    assert_eq!(names, vec![("llama", 5), ("qwen", 3), ("mistral", 1)]);
    let llama = &models[0];
    assert_eq!(llama.total_tokens, 600);
    assert_eq!(llama.prompt_tokens, 500);
    assert_eq!(llama.completion_tokens, 100);
    assert!((llama.total_latency - 15.0).abs() < 1e-12);
    assert!((llama.avg_latency - 3.0).abs() < 1e-12);
    assert!((llama.total_cost - 0.005).abs() < 1e-12);
    // Exact sorted[floor(0.5 * 4)] = 3.0, within 1 %.
    let p50 = llama.latency_p50.unwrap();
    assert!((p50 - 3.0).abs() <= 0.03, "{p50}");
    // No TTFT recorded: mean 0, percentiles unknown.
    assert_eq!(llama.avg_ttft, 0.0);
    assert_eq!(llama.ttft_p50, None);
}

#[test]
fn engines_are_grouped() {
    let (_dir, path) = write_db(&seed_like());
    let agg = TelemetryAggregator::open(&path).unwrap();
    let engines = agg.per_engine_stats(&TimeRange::all()).unwrap();
    let names: Vec<(&str, u64)> = engines
        .iter()
        .map(|e| (e.engine.as_str(), e.call_count))
        .collect();
    assert_eq!(names, vec![("vllm", 6), ("ollama", 3)]);
    let summary = agg.summary(&TimeRange::all()).unwrap();
    assert_eq!(summary.per_engine, engines);
    assert_eq!(summary.total_calls, 9);
    assert_eq!(summary.per_model.len(), 3);
}

#[test]
fn agents_are_grouped_and_unnamed_agents_are_the_empty_string() {
    let records = vec![
        full_rec("m", "e", "planner", DAY0, 1),
        full_rec("m", "e", "planner", DAY0 + 1.0, 2),
        full_rec("m", "e", "", DAY0 + 2.0, 3),
    ];
    let (_dir, path) = write_db(&records);
    let agg = TelemetryAggregator::open(&path).unwrap();
    let agents = agg.per_agent_stats(&TimeRange::all()).unwrap();
    assert_eq!(agents.len(), 2);
    assert_eq!(
        (agents[0].agent.as_str(), agents[0].call_count),
        ("planner", 2)
    );
    assert_eq!((agents[1].agent.as_str(), agents[1].call_count), ("", 1));
    assert_eq!(agg.summary(&TimeRange::all()).unwrap().per_agent, agents);
}

#[test]
fn ties_are_broken_by_name_and_top_n_limits() {
    let mut records = Vec::new();
    for (model, n) in [("b", 2), ("a", 2), ("c", 3), ("d", 1)] {
        for i in 0..n {
            records.push(rec(model, "e", DAY0 + i as f64, 1.0));
        }
    }
    let (_dir, path) = write_db(&records);
    let agg = TelemetryAggregator::open(&path).unwrap();
    let all = TimeRange::all();
    let top: Vec<String> = agg
        .top_models(3, &all)
        .unwrap()
        .into_iter()
        .map(|m| m.model_id)
        .collect();
    assert_eq!(top, vec!["c", "a", "b"]);
    assert_eq!(agg.top_models(0, &all).unwrap().len(), 0);
    assert_eq!(agg.top_models(10, &all).unwrap().len(), 4);
}

#[test]
fn errors_are_counted_and_ratios_are_ratios_of_sums() {
    let mut failed = rec("m", "e", DAY0 + 3.0, 0.1);
    failed.outcome = telemetry_core::Outcome::Error;
    failed.error_kind = "timeout".into();
    failed.prompt_tokens = 0;
    failed.completion_tokens = 0;
    failed.total_tokens = 0;
    let records = vec![
        full_rec("m", "e", "", DAY0, 1),
        full_rec("m", "e", "", DAY0 + 1.0, 2),
        failed,
    ];
    let (_dir, path) = write_db(&records);
    let agg = TelemetryAggregator::open(&path).unwrap();
    let s = agg.summary(&TimeRange::all()).unwrap();
    assert_eq!((s.total_calls, s.error_count), (3, 1));
    let energy: f64 = records.iter().filter_map(|r| r.energy_joules).sum();
    let tokens: u64 = records
        .iter()
        .filter(|r| r.energy_joules.is_some())
        .map(|r| r.completion_tokens)
        .sum();
    assert!((s.total_energy_joules - energy).abs() < 1e-9);
    assert_eq!(
        s.energy_per_output_token_joules,
        Some(energy / tokens as f64)
    );
    assert_eq!(s.output_tokens_per_joule, Some(tokens as f64 / energy));
    assert!((s.total_prefill_energy_joules - 2.0).abs() < 1e-12);
    assert!(s.itl_p50.is_some() && s.ttft_p99.is_some());
}

#[test]
fn rollups_by_group_keep_the_label_triples_and_their_sketches() {
    let (_dir, path) = write_db(&seed_like());
    let agg = TelemetryAggregator::open(&path).unwrap();
    let groups = agg.rollups_by_group(&TimeRange::all()).unwrap();
    let keys: Vec<(&str, &str, u64)> = groups
        .iter()
        .map(|g| (g.model_id.as_str(), g.engine.as_str(), g.rollup.call_count))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("llama", "vllm", 5),
            ("mistral", "vllm", 1),
            ("qwen", "ollama", 3)
        ]
    );
    assert_eq!(groups[0].rollup.latency.count(), 5);
    assert!((groups[0].rollup.total_latency - 15.0).abs() < 1e-12);
    assert!(
        agg.rollups_by_group(&TimeRange::since(DAY0 + 1e6).unwrap())
            .unwrap()
            .is_empty()
    );
}
