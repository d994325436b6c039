//! The async engine, instrumented, against the fake server: the same records as the blocking
//! engine for a transcript split at odd bytes, and the same failure kinds.

mod common;

use std::time::Duration;

use common::{only, recording_bus, transcript};
use futures::StreamExt;
use telemetry_core::Outcome;
use telemetry_openai::fake::{End, FakeServer, Reply};
use telemetry_openai::{AsyncOpenAiEngine, OpenAiConfig, Timeouts};
use telemetry_wrap::{AsyncInferenceEngine, GenerateParams, InstrumentedEngine, Message};

fn config(server: &FakeServer) -> OpenAiConfig {
    OpenAiConfig::new(server.base_url())
        .without_api_key()
        .with_engine_id("vllm")
}

async fn stream_text(
    engine: &impl AsyncInferenceEngine<Error = telemetry_openai::protocol::OpenAiError>,
) -> Result<String, telemetry_openai::protocol::OpenAiError> {
    let params = GenerateParams::new("m").with_max_tokens(8);
    let mut stream = std::pin::pin!(engine.stream(&[Message::user("hi")], &params).await?);
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        text.push_str(&chunk?.text);
    }
    Ok(text)
}

#[tokio::test(flavor = "current_thread")]
async fn streams_and_blocking_calls_are_recorded() {
    let body = transcript("vllm_chat_stream.sse");
    for split in [1, 13, 4096] {
        let reply = Reply::sse(&body, split, Duration::ZERO);
        let server = FakeServer::start(move |_| reply.clone()).unwrap();
        let (bus, records) = recording_bus();
        let engine =
            InstrumentedEngine::new_async(AsyncOpenAiEngine::new(config(&server)).unwrap(), bus);
        assert_eq!(
            stream_text(&engine).await.unwrap(),
            "Hello! How can I help?"
        );
        let r = only(&records);
        assert_eq!(
            (r.prompt_tokens, r.completion_tokens),
            (12, 7),
            "split {split}"
        );
        assert!(r.is_streaming && r.ttft.is_some() && r.outcome == Outcome::Ok);
        assert_eq!(r.engine, "vllm");
    }
    let server = FakeServer::start(|_| Reply::json(200, transcript("openai_chat.json"))).unwrap();
    let (bus, records) = recording_bus();
    let engine =
        InstrumentedEngine::new_async(AsyncOpenAiEngine::new(config(&server)).unwrap(), bus);
    let out =
        AsyncInferenceEngine::generate(&engine, &[Message::user("hi")], &GenerateParams::new("m"))
            .await
            .unwrap();
    assert_eq!(out.content, "Hi there!");
    let r = only(&records);
    assert_eq!((r.prompt_tokens, r.prompt_tokens_cached), (2006, 1920));
}

#[tokio::test(flavor = "current_thread")]
async fn failures_have_the_same_kinds_as_blocking() {
    let head = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n";
    let cases: Vec<(Reply, Timeouts, &str)> = vec![
        (
            Reply::json(429, transcript("openai_error_429.json")),
            Timeouts::default(),
            "http_429",
        ),
        (
            Reply::sse(head.as_bytes(), 5, Duration::ZERO).ending(End::Abort),
            Timeouts::default(),
            "stream_incomplete",
        ),
        (
            Reply::sse(head.as_bytes(), 64, Duration::ZERO)
                .ending(End::Stall(Duration::from_secs(3))),
            Timeouts {
                idle: Some(Duration::from_millis(200)),
                ..Timeouts::default()
            },
            "timeout_idle",
        ),
        (
            Reply::sse(head.as_bytes(), 64, Duration::ZERO).after(Duration::from_secs(2)),
            Timeouts {
                first_token: Some(Duration::from_millis(200)),
                ..Timeouts::default()
            },
            "timeout_first_token",
        ),
    ];
    for (reply, timeouts, kind) in cases {
        let server = FakeServer::start(move |_| reply.clone()).unwrap();
        let (bus, records) = recording_bus();
        let engine = InstrumentedEngine::new_async(
            AsyncOpenAiEngine::new(config(&server).with_timeouts(timeouts)).unwrap(),
            bus,
        );
        let e = stream_text(&engine).await.unwrap_err();
        assert_eq!(e.error_kind(), kind, "{e}");
        assert_eq!(only(&records).error_kind, kind);
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let engine =
        AsyncOpenAiEngine::new(OpenAiConfig::new(format!("http://127.0.0.1:{port}/v1"))).unwrap();
    assert_eq!(
        stream_text(&engine).await.unwrap_err().error_kind(),
        "connect"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn detects_the_engine() {
    let server = FakeServer::start(|req| match req.path() {
        "/api/version" => Reply::json(200, r#"{"version":"0.5.1"}"#),
        _ => Reply::json(404, "404 page not found"),
    })
    .unwrap();
    let engine = AsyncOpenAiEngine::detect(OpenAiConfig::new(server.base_url()))
        .await
        .unwrap();
    assert_eq!(engine.engine_id(), "ollama");
}
