//! What recording adds to a real llama.cpp call: 50 calls with a plain client (ureq, the body
//! read and parsed as JSON, or the stream read to `[DONE]`) against 50 calls through
//! `InstrumentedEngine<OpenAiEngine>` with a record subscriber, alternated in one run, medians.
//!
//! `cargo xtask llama` runs it with `TELEMETRY_LLAMA_URL` set; by hand:
//! `TELEMETRY_LLAMA_URL=http://127.0.0.1:8080/v1 cargo run --release -p telemetry-openai --no-default-features --features blocking --example llama_overhead`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{Value, json};
use telemetry_core::{EventBus, EventType};
use telemetry_openai::protocol::{SseEvent, SseParser};
use telemetry_openai::{OpenAiConfig, OpenAiEngine};
use telemetry_wrap::{GenerateParams, InferenceEngine, InstrumentedEngine, Message};

const CALLS: usize = 50;
const PROMPT: &str = "Write one sentence about the sea.";
const MAX_TOKENS: u64 = 16;

fn main() {
    let Ok(url) = std::env::var("TELEMETRY_LLAMA_URL") else {
        eprintln!("set TELEMETRY_LLAMA_URL (cargo xtask llama does)");
        std::process::exit(2);
    };
    let agent = ureq::Agent::new_with_defaults();
    let endpoint = format!("{url}/chat/completions");
    let raw = |stream: bool| {
        let mut body = json!({
            "model": "smollm2-135m",
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": MAX_TOKENS,
            "temperature": 0.0,
            "cache_prompt": false,
        });
        if stream {
            body["stream"] = json!(true);
            body["stream_options"] = json!({"include_usage": true});
        }
        let started = Instant::now();
        let mut request = agent
            .post(&endpoint)
            .header("content-type", "application/json");
        if stream {
            // As OpenAiEngine does: llama.cpp closes the connection after a stream.
            request = request.header("connection", "close");
        }
        let response = request.send(body.to_string()).unwrap();
        let mut reader = response.into_body().into_reader();
        if stream {
            let mut parser = SseParser::new();
            let mut buf = vec![0u8; 16 << 10];
            while !parser.saw_done() {
                let n = std::io::Read::read(&mut reader, &mut buf).unwrap();
                if n == 0 {
                    break;
                }
                parser
                    .feed(&buf[..n], |e| {
                        if let SseEvent::Data(d) = e {
                            let _: Value = serde_json::from_slice(d).unwrap();
                        }
                    })
                    .unwrap();
            }
            std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
        } else {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut reader, &mut bytes).unwrap();
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            assert!(v["usage"]["completion_tokens"].as_u64().is_some());
        }
        started.elapsed().as_secs_f64()
    };

    let bus = Arc::new(EventBus::new());
    let recorded = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&recorded);
    bus.subscribe(EventType::TelemetryRecord, move |e| {
        if e.as_record().is_some() {
            seen.fetch_add(1, Ordering::Relaxed);
        }
    });
    let engine = InstrumentedEngine::new(
        OpenAiEngine::new(
            OpenAiConfig::new(&url)
                .without_api_key()
                .with_engine_id("llama.cpp"),
        ),
        bus,
    );
    let params = GenerateParams::new("smollm2-135m")
        .with_max_tokens(MAX_TOKENS)
        .with_temperature(0.0)
        .with_extra("cache_prompt", Value::Bool(false));
    let messages = [Message::user(PROMPT)];
    let instrumented = |stream: bool| {
        let started = Instant::now();
        if stream {
            for chunk in engine.stream(&messages, &params).unwrap() {
                chunk.unwrap();
            }
        } else {
            engine.generate(&messages, &params).unwrap();
        }
        started.elapsed().as_secs_f64()
    };

    for stream in [false, true] {
        // Warm-up: connections, server caches of the chat template.
        for _ in 0..3 {
            raw(stream);
            instrumented(stream);
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..CALLS {
            // Alternate which goes first, so drift hits both alike.
            if i % 2 == 0 {
                a.push(raw(stream));
                b.push(instrumented(stream));
            } else {
                b.push(instrumented(stream));
                a.push(raw(stream));
            }
        }
        let (ra, rb) = (median(&mut a), median(&mut b));
        println!(
            "{}: raw client median {:.1} ms, instrumented median {:.1} ms, recording adds {:+.2} % ({CALLS} calls each, max_tokens {MAX_TOKENS})",
            if stream { "streaming" } else { "blocking " },
            ra * 1e3,
            rb * 1e3,
            (rb - ra) / ra * 100.0
        );
    }
    assert_eq!(
        recorded.load(Ordering::Relaxed),
        2 * (CALLS as u64 + 3),
        "every instrumented call recorded"
    );
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
