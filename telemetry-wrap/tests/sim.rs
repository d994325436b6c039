//! The simulated engine behind the wrapper: realistic, deterministic records without waiting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{Collector, messages};
use telemetry_core::{EventBus, Outcome, TelemetryRecord};
use telemetry_wrap::{GenerateParams, InferenceEngine, InstrumentedEngine, SimulatedEngine};

fn run(engine: SimulatedEngine, calls: usize, stream: bool) -> Vec<Arc<TelemetryRecord>> {
    let bus = Arc::new(EventBus::new());
    let seen = Collector::attach(&bus);
    let wrapped = InstrumentedEngine::new(engine, bus)
        .with_price_table(SimulatedEngine::price_table())
        .with_agent("sim-test");
    for i in 0..calls {
        let model = SimulatedEngine::models()[i % SimulatedEngine::models().len()].id;
        let params = GenerateParams::new(model).with_max_tokens(64);
        if stream {
            if let Ok(s) = wrapped.stream(&messages(), &params) {
                let _ = s.count();
            }
        } else {
            let _ = wrapped.generate(&messages(), &params);
        }
    }
    let records = seen.records();
    assert!(records.iter().all(|r| r.validate().is_ok()));
    records
}

#[test]
fn instant_records_look_real() {
    for stream in [false, true] {
        let records = run(SimulatedEngine::new().with_seed(11), 50, stream);
        assert_eq!(records.len(), 50);
        for r in &records {
            let model = SimulatedEngine::models()
                .iter()
                .find(|m| m.id == r.model_id)
                .unwrap();
            let ttft = r.ttft.unwrap();
            assert!(ttft >= model.ttft_base_ms / 1000.0 * 0.5, "{r:?}");
            assert!(r.latency_seconds >= ttft);
            assert!(r.completion_tokens > 0 && r.completion_tokens <= 64);
            let per_token_ms = 1000.0 / r.throughput_tok_per_sec.unwrap();
            // Decode time covers completion − 1 gaps, so the per-token figure is a little lower.
            assert!(
                per_token_ms <= model.decode_ms_per_token * (1.0 + model.jitter) + 1e-9,
                "{per_token_ms} for {}",
                model.id
            );
            assert!(per_token_ms >= model.decode_ms_per_token * (1.0 - model.jitter) * 0.5);
            assert!(r.cost_usd > 0.0 && !r.cost_unknown);
            assert_eq!(r.agent, "sim-test");
            assert_eq!(r.is_streaming, stream);
        }
    }
}

#[test]
fn same_seed_same_records() {
    let strip = |records: Vec<Arc<TelemetryRecord>>| {
        records
            .iter()
            .map(|r| {
                (
                    r.model_id.clone(),
                    r.prompt_tokens,
                    r.completion_tokens,
                    r.ttft.map(f64::to_bits),
                    r.mean_itl_ms.map(f64::to_bits),
                )
            })
            .collect::<Vec<_>>()
    };
    let a = strip(run(SimulatedEngine::new().with_seed(4), 20, true));
    let b = strip(run(SimulatedEngine::new().with_seed(4), 20, true));
    let c = strip(run(SimulatedEngine::new().with_seed(5), 20, true));
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn error_rate_shows_up_as_error_records() {
    let records = run(
        SimulatedEngine::new().with_error_rate(0.3).with_seed(8),
        200,
        false,
    );
    let errors = records
        .iter()
        .filter(|r| r.outcome == Outcome::Error)
        .count();
    assert!((30..=90).contains(&errors), "{errors}");
    assert!(
        records
            .iter()
            .filter(|r| r.is_error())
            .all(|r| !r.error_kind.is_empty() && r.completion_tokens == 0)
    );
}

#[test]
fn without_usage_chunk_tokens_are_counted() {
    let records = run(SimulatedEngine::new().with_usage_chunk(false), 5, true);
    assert!(
        records
            .iter()
            .all(|r| r.tokens_counted && r.prompt_tokens == 0)
    );
    assert!(records.iter().all(|r| r.completion_tokens > 0));
}

#[test]
fn per_second_priced_model_costs_by_latency() {
    let records = run(SimulatedEngine::new(), 5, false);
    let local = records
        .iter()
        .find(|r| r.model_id == "sim-local-8b")
        .unwrap();
    assert!((local.cost_usd - local.latency_seconds * 0.0004).abs() < 1e-12);
}
