//! Record fields of blocking calls: timings, tokens, cost, agent, metadata, and failed calls.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{Collector, Scripted, ScriptedError, messages, ms};
use telemetry_core::{EventBus, Outcome};
use telemetry_wrap::{
    EngineTimings, GenerateParams, GenerateResult, InferenceEngine, InstrumentedEngine, Price,
    PriceTable, Usage,
};

fn wrapped(engine: Scripted) -> (InstrumentedEngine<Scripted>, Collector) {
    let bus = Arc::new(EventBus::new());
    let seen = Collector::attach(&bus);
    (InstrumentedEngine::new(engine, bus), seen)
}

#[test]
fn latency_is_measured_and_tokens_come_from_usage() {
    let (engine, seen) = wrapped(Scripted {
        result: Some(GenerateResult::new(
            "x",
            Usage::new(100, 20).with_cached(30),
        )),
        delay: ms(20),
        ..Scripted::default()
    });
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    engine
        .generate(&messages(), &GenerateParams::new("m"))
        .unwrap();
    let r = seen.only_record();
    assert!(r.latency_seconds >= 0.020, "{}", r.latency_seconds);
    assert!(r.latency_seconds < 5.0);
    assert!((r.timestamp - before).abs() < 1.0);
    assert_eq!(
        (
            r.prompt_tokens,
            r.completion_tokens,
            r.total_tokens,
            r.prompt_tokens_cached
        ),
        (100, 20, 120, 30)
    );
    assert!(!r.is_streaming && !r.tokens_counted);
    assert_eq!(r.outcome, Outcome::Ok);
    assert_eq!(
        r.ttft, None,
        "a blocking call without engine timings has no TTFT"
    );
    assert_eq!(r.throughput_tok_per_sec, None);
    assert_eq!(r.engine, "scripted");
    assert_eq!(r.model_id, "m");
}

#[test]
fn engine_reported_ttft_gives_prefill_decode_and_throughput() {
    let mut result = GenerateResult::new("x", Usage::new(10, 40));
    result.timings = EngineTimings {
        ttft: Some(ms(100)),
        total: Some(ms(500)),
        ..EngineTimings::default()
    };
    let (engine, seen) = wrapped(Scripted {
        result: Some(result),
        ..Scripted::default()
    });
    engine
        .generate(&messages(), &GenerateParams::new("m"))
        .unwrap();
    let r = seen.only_record();
    // The reported total (synthetic, longer than the instant call) wins.
    assert!(
        (r.latency_seconds - 0.5).abs() < 1e-9,
        "{}",
        r.latency_seconds
    );
    assert_eq!(r.ttft, Some(0.1));
    assert_eq!(r.prefill_latency_seconds, Some(0.1));
    let decode = r.decode_latency_seconds.unwrap();
    assert!((decode - 0.4).abs() < 1e-9);
    assert!((r.throughput_tok_per_sec.unwrap() - 100.0).abs() < 1e-6);
}

#[test]
fn cost_comes_from_engine_then_price_table_else_unknown() {
    let table = PriceTable::new().with(
        "priced",
        Price::PerToken {
            input: 1e-6,
            cached_input: 5e-7,
            output: 2e-6,
        },
    );
    let usage = Usage::new(1000, 100).with_cached(200);
    let make = |cost: Option<f64>| {
        let mut result = GenerateResult::new("x", usage);
        result.cost_usd = cost;
        let bus = Arc::new(EventBus::new());
        let seen = Collector::attach(&bus);
        let engine = InstrumentedEngine::new(
            Scripted {
                result: Some(result),
                ..Scripted::default()
            },
            bus,
        )
        .with_price_table(table.clone());
        (engine, seen)
    };

    let (engine, seen) = make(None);
    engine
        .generate(&messages(), &GenerateParams::new("priced"))
        .unwrap();
    let r = seen.only_record();
    let expected = 800.0 * 1e-6 + 200.0 * 5e-7 + 100.0 * 2e-6;
    assert!((r.cost_usd - expected).abs() < 1e-15);
    assert!(!r.cost_unknown);

    let (engine, seen) = make(None);
    engine
        .generate(&messages(), &GenerateParams::new("other"))
        .unwrap();
    let r = seen.only_record();
    assert_eq!((r.cost_usd, r.cost_unknown), (0.0, true));

    let (engine, seen) = make(Some(0.42));
    engine
        .generate(&messages(), &GenerateParams::new("priced"))
        .unwrap();
    let r = seen.only_record();
    assert_eq!((r.cost_usd, r.cost_unknown), (0.42, false));
}

#[test]
fn per_second_price_uses_latency() {
    let mut result = GenerateResult::new("x", Usage::new(1, 1));
    result.timings.total = Some(ms(2000));
    let bus = Arc::new(EventBus::new());
    let seen = Collector::attach(&bus);
    let engine = InstrumentedEngine::new(
        Scripted {
            result: Some(result),
            ..Scripted::default()
        },
        bus,
    )
    .with_price_table(PriceTable::new().with(
        "local",
        Price::PerSecond {
            usd_per_second: 0.01,
        },
    ));
    engine
        .generate(&messages(), &GenerateParams::new("local"))
        .unwrap();
    assert!((seen.only_record().cost_usd - 0.02).abs() < 1e-9);
}

#[test]
fn agent_and_metadata_are_copied() {
    let bus = Arc::new(EventBus::new());
    let seen = Collector::attach(&bus);
    let engine = InstrumentedEngine::new(Scripted::default(), bus)
        .with_agent("router")
        .with_metadata(serde_json::json!({"user": "u1", "tags": ["a"]}))
        .unwrap();
    engine
        .generate(&messages(), &GenerateParams::new("m"))
        .unwrap();
    let r = seen.only_record();
    assert_eq!(r.agent, "router");
    assert_eq!(r.metadata, serde_json::json!({"user": "u1", "tags": ["a"]}));
    assert!(
        InstrumentedEngine::new(Scripted::default(), EventBus::new())
            .with_metadata(serde_json::json!("not an object"))
            .is_err()
    );
}

#[test]
fn failed_call_is_recorded_and_the_error_returned_unchanged() {
    let error = ScriptedError("upstream timeout after 30s".into());
    let (engine, seen) = wrapped(Scripted {
        error: Some(error.clone()),
        delay: ms(10),
        ..Scripted::default()
    });
    let got = engine
        .generate(&messages(), &GenerateParams::new("m"))
        .unwrap_err();
    assert_eq!(got, error);
    let r = seen.only_record();
    assert_eq!(r.outcome, Outcome::Error);
    assert_eq!(r.error_kind, "timeout");
    assert_eq!(
        r.error_message,
        "scripted failure: upstream timeout after 30s"
    );
    assert!(r.latency_seconds >= 0.010);
    assert_eq!((r.prompt_tokens, r.completion_tokens), (0, 0));
}

#[test]
fn empty_model_is_recorded_as_unknown() {
    let (engine, seen) = wrapped(Scripted::default());
    engine
        .generate(&messages(), &GenerateParams::new(""))
        .unwrap();
    assert_eq!(seen.only_record().model_id, "unknown");
}
