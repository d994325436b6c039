//! Per-chunk cost of a recorded stream through the engine, against the fake server on loopback:
//! the same 1 000-chunk llama.cpp-shaped stream read three ways in one run —
//! `raw_read` (ureq reads the body bytes, nothing parsed), `engine` (OpenAiEngine: SSE + chunk
//! decoding, no recording) and `instrumented` (InstrumentedEngine around it, with a record
//! subscriber on the bus). Per chunk = time / 1 000.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use telemetry_core::{EventBus, EventType};
use telemetry_openai::fake::{FakeServer, Reply};
use telemetry_openai::{OpenAiConfig, OpenAiEngine};
use telemetry_wrap::{GenerateParams, InferenceEngine, InstrumentedEngine, Message};

const CHUNKS: usize = 1000;

fn llama_stream() -> Vec<u8> {
    let head = r#"{"id":"chatcmpl-4RkgjuKoKb8Ps9vZf2FqZ3sWb1oU7yJw","object":"chat.completion.chunk","created":1764345600,"model":"smollm2-135m","system_fingerprint":"b1-7e4c0a9","#;
    let mut body = String::new();
    body.push_str(&format!("data: {head}\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":null}},\"finish_reason\":null}}]}}\n\n"));
    for i in 0..CHUNKS {
        body.push_str(&format!("data: {head}\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" tok{i}\"}},\"finish_reason\":null}}]}}\n\n"));
    }
    body.push_str(&format!("data: {head}\"choices\":[],\"usage\":{{\"completion_tokens\":{CHUNKS},\"prompt_tokens\":12,\"total_tokens\":{}}}}}\n\ndata: [DONE]\n\n", CHUNKS + 12));
    body.into_bytes()
}

fn bench(c: &mut Criterion) {
    let body = llama_stream();
    // 16 KiB writes, as a server flushing a busy stream would.
    let reply = Reply::sse(&body, 16 << 10, Duration::ZERO);
    let server = FakeServer::start(move |_| reply.clone()).unwrap();
    let config = OpenAiConfig::new(server.base_url())
        .without_api_key()
        .with_engine_id("llama.cpp");
    let messages = [Message::user("hi")];
    let params = GenerateParams::new("smollm2-135m");

    let mut group = c.benchmark_group("engine_stream");
    group.throughput(Throughput::Elements(CHUNKS as u64));
    group.sample_size(30);

    let agent = ureq::Agent::new_with_defaults();
    let url = format!("{}/chat/completions", server.base_url());
    group.bench_function("raw_read", |b| {
        let mut buf = vec![0u8; 16 << 10];
        b.iter(|| {
            let response = agent
                .post(&url)
                .header("content-type", "application/json")
                .send(&br#"{"model":"m","messages":[],"stream":true}"#[..])
                .unwrap();
            let mut reader = response.into_body().into_reader();
            let mut n = 0;
            loop {
                let k = reader.read(&mut buf).unwrap();
                if k == 0 {
                    break;
                }
                n += k;
            }
            black_box(n)
        });
    });

    let engine = OpenAiEngine::new(config.clone());
    group.bench_function("engine", |b| {
        b.iter(|| {
            let mut n = 0;
            for chunk in engine.stream(&messages, &params).unwrap() {
                n += chunk.unwrap().text.len();
            }
            black_box(n)
        });
    });

    let bus = Arc::new(EventBus::new());
    let recorded = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&recorded);
    bus.subscribe(EventType::TelemetryRecord, move |e| {
        if let Some(r) = e.as_record() {
            seen.fetch_add(r.completion_tokens, Ordering::Relaxed);
        }
    });
    let instrumented = InstrumentedEngine::new(OpenAiEngine::new(config), bus);
    group.bench_function("instrumented", |b| {
        b.iter(|| {
            let mut n = 0;
            for chunk in instrumented.stream(&messages, &params).unwrap() {
                n += chunk.unwrap().text.len();
            }
            black_box(n)
        });
    });
    group.finish();
    assert!(
        recorded.load(Ordering::Relaxed) >= CHUNKS as u64,
        "records were published"
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
