//! Against a real llama.cpp server (`cargo xtask llama` starts one and sets
//! `TELEMETRY_LLAMA_URL`): the records agree with what the server itself reports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{only, recording_bus};
use serde_json::{Value, json};
use telemetry_core::{Outcome, TelemetryRecord};
use telemetry_openai::{OpenAiConfig, OpenAiEngine};
use telemetry_wrap::{EngineTimings, GenerateParams, InferenceEngine, InstrumentedEngine, Message};

const IGNORE: &str = "needs a llama.cpp server: run by cargo xtask llama";
const PROMPT: &str = "Name three colours of the rainbow.";

fn url() -> String {
    std::env::var("TELEMETRY_LLAMA_URL").expect(IGNORE)
}

fn params() -> GenerateParams {
    GenerateParams::new("smollm2-135m")
        .with_max_tokens(24)
        .with_temperature(0.0)
        .with_extra("cache_prompt", Value::Bool(false))
}

/// The same call made without our code: the server's own usage and timings.
fn raw_call() -> (Value, Value) {
    let body = json!({
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 24,
        "temperature": 0.0,
        "cache_prompt": false,
        "stream": false,
    });
    let mut response = ureq::post(format!("{}/chat/completions", url()))
        .header("content-type", "application/json")
        .send(body.to_string())
        .expect("raw call");
    let v: Value = serde_json::from_slice(&response.body_mut().read_to_vec().unwrap()).unwrap();
    (v["usage"].clone(), v["timings"].clone())
}

fn engine() -> (
    InstrumentedEngine<OpenAiEngine>,
    std::sync::Arc<std::sync::Mutex<Vec<TelemetryRecord>>>,
) {
    let (bus, records) = recording_bus();
    let engine = OpenAiEngine::detect(OpenAiConfig::new(url()).without_api_key());
    (InstrumentedEngine::new(engine, bus), records)
}

/// The record of a call against the server's own timings of the same call (carried by the
/// engine's result or last chunk).
fn assert_consistent_with_server(r: &TelemetryRecord, timings: &EngineTimings) {
    let prefill = timings
        .server_prefill
        .expect("llama.cpp reports prompt_ms")
        .as_secs_f64()
        * 1e3;
    let decode = timings
        .server_decode
        .expect("llama.cpp reports predicted_ms")
        .as_secs_f64()
        * 1e3;
    // The record keeps the server's own times (within float rounding of the ms conversion).
    let kept = |got: Option<f64>, want: f64| got.is_some_and(|g| (g - want).abs() < 1e-6);
    assert!(kept(r.server_prefill_ms, prefill), "{r:?}");
    assert!(kept(r.server_decode_ms, decode), "{r:?}");
    let latency_ms = r.latency_seconds * 1000.0;
    assert!(
        prefill + decode <= latency_ms,
        "server phases {prefill} + {decode} ms > latency {latency_ms} ms"
    );
    if let Some(ttft) = r.ttft {
        assert!(
            prefill <= ttft * 1000.0,
            "server prefill {prefill} ms > TTFT {} ms",
            ttft * 1000.0
        );
    }
}

#[test]
#[ignore = "needs a llama.cpp server: run by cargo xtask llama"]
fn blocking_call_records_the_servers_tokens_and_timings() {
    let (usage, timings) = raw_call();
    let (engine, records) = engine();
    assert_eq!(engine.engine_id(), "llama.cpp");
    let out = engine
        .generate(&[Message::user(PROMPT)], &params())
        .unwrap();
    assert!(!out.content.is_empty());
    let r = only(&records);
    assert_eq!(r.outcome, Outcome::Ok);
    assert_eq!(Some(r.prompt_tokens), usage["prompt_tokens"].as_u64());
    assert_eq!(
        Some(r.completion_tokens),
        usage["completion_tokens"].as_u64()
    );
    assert!(
        timings["prompt_ms"].as_f64().is_some(),
        "raw call has timings: {timings}"
    );
    assert_consistent_with_server(&r, &out.timings);
}

#[test]
#[ignore = "needs a llama.cpp server: run by cargo xtask llama"]
fn streamed_call_records_the_servers_tokens_and_timings() {
    let (usage, _) = raw_call();
    let (engine, records) = engine();
    let mut text = String::new();
    let mut server = None;
    for chunk in engine.stream(&[Message::user(PROMPT)], &params()).unwrap() {
        let chunk = chunk.unwrap();
        text.push_str(&chunk.text);
        server = server.or(chunk.timings);
    }
    assert!(!text.is_empty());
    let r = only(&records);
    assert!(r.is_streaming && !r.tokens_counted && r.outcome == Outcome::Ok);
    assert_eq!(Some(r.prompt_tokens), usage["prompt_tokens"].as_u64());
    assert_eq!(
        Some(r.completion_tokens),
        usage["completion_tokens"].as_u64()
    );
    assert!(r.ttft.is_some() && r.mean_itl_ms.is_some());
    assert_consistent_with_server(
        &r,
        &server.expect("the last chunk carries the server timings"),
    );
}

#[test]
#[ignore = "needs a llama.cpp server: run by cargo xtask llama"]
fn invalid_request_is_recorded_as_http_400_with_the_servers_message() {
    let (engine, records) = engine();
    let bad = params().with_extra("response_format", json!({"type": "bogus"}));
    let e = engine.generate(&[Message::user(PROMPT)], &bad).unwrap_err();
    assert_eq!(e.error_kind(), "http_400", "{e}");
    let r = only(&records);
    assert_eq!(
        (r.outcome, r.error_kind.as_str()),
        (Outcome::Error, "http_400")
    );
    assert!(
        r.error_message.contains("response_format"),
        "{}",
        r.error_message
    );
}

#[test]
#[ignore = "needs a llama.cpp server: run by cargo xtask llama"]
fn four_concurrent_streams_are_all_recorded() {
    let (engine, records) = engine();
    std::thread::scope(|s| {
        for i in 0..4 {
            let engine = &engine;
            s.spawn(move || {
                let messages = [Message::user(format!("Count to {}.", i + 3))];
                for chunk in engine.stream(&messages, &params()).unwrap() {
                    chunk.unwrap();
                }
            });
        }
    });
    let records = records.lock().unwrap();
    assert_eq!(records.len(), 4);
    for r in records.iter() {
        assert!(
            r.outcome == Outcome::Ok && r.is_streaming && !r.tokens_counted,
            "{r:?}"
        );
        assert!(r.completion_tokens > 0 && r.prompt_tokens > 0);
        assert!(r.latency_seconds < Duration::from_secs(120).as_secs_f64());
    }
}
