//! The blocking engine, instrumented, against the fake server replaying real servers'
//! transcripts: streams split at odd byte boundaries, errors, stalls and timeouts.

mod common;

use std::time::Duration;

use common::{only, recording_bus, transcript};
use telemetry_core::Outcome;
use telemetry_openai::fake::{End, FakeServer, Reply};
use telemetry_openai::{OpenAiConfig, OpenAiEngine, Timeouts};
use telemetry_wrap::{GenerateParams, InferenceEngine, InstrumentedEngine, Message};

fn params() -> GenerateParams {
    GenerateParams::new("smollm2-135m").with_max_tokens(16)
}

fn config(server: &FakeServer) -> OpenAiConfig {
    OpenAiConfig::new(server.base_url())
        .without_api_key()
        .with_engine_id("llama.cpp")
}

fn stream_text(
    engine: &impl InferenceEngine<Error = telemetry_openai::protocol::OpenAiError>,
) -> Result<String, telemetry_openai::protocol::OpenAiError> {
    let mut text = String::new();
    for chunk in engine.stream(&[Message::user("Say hi")], &params())? {
        text.push_str(&chunk?.text);
    }
    Ok(text)
}

#[test]
fn streams_split_anywhere_record_the_servers_usage() {
    for (name, prompt, completion, text) in [
        ("llama_cpp_chat_stream.sse", None, None, None),
        (
            "vllm_chat_stream.sse",
            Some(12),
            Some(7),
            Some("Hello! How can I help?"),
        ),
        (
            "ollama_chat_stream.sse",
            Some(26),
            Some(5),
            Some("The sky is blue."),
        ),
    ] {
        let body = transcript(name);
        for split in [1, 3, 17, 64, 4096] {
            let reply = Reply::sse(&body, split, Duration::ZERO);
            let server = FakeServer::start(move |_| reply.clone()).unwrap();
            let (bus, records) = recording_bus();
            let engine = InstrumentedEngine::new(OpenAiEngine::new(config(&server)), bus);
            let got = stream_text(&engine).unwrap();
            let r = only(&records);
            assert_eq!(r.outcome, Outcome::Ok, "{name} split {split}");
            assert!(r.is_streaming && !r.tokens_counted, "{name}");
            assert!(r.ttft.is_some() && r.completion_tokens > 0, "{name}: {r:?}");
            if let (Some(p), Some(c), Some(t)) = (prompt, completion, text) {
                assert_eq!((r.prompt_tokens, r.completion_tokens), (p, c), "{name}");
                assert_eq!(got, t, "{name} split {split}");
            }
            assert_eq!(r.engine, "llama.cpp");
        }
    }
}

#[test]
fn ttft_waits_for_the_first_chunk_with_content() {
    // llama.cpp sends a role-only chunk at once, then computes: TTFT is the content chunk.
    let body = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"}}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
        "data: [DONE]\n\n",
    );
    let reply = Reply::sse_events(body.as_bytes(), Duration::from_millis(120));
    let server = FakeServer::start(move |_| reply.clone()).unwrap();
    let (bus, records) = recording_bus();
    let engine = InstrumentedEngine::new(OpenAiEngine::new(config(&server)), bus);
    assert_eq!(stream_text(&engine).unwrap(), "Hi!");
    let r = only(&records);
    let ttft = r.ttft.unwrap();
    assert!(
        ttft >= 0.12,
        "TTFT {ttft} must wait for the content chunk, not the role chunk"
    );
    let itl = r.mean_itl_ms.unwrap();
    assert!(
        (100.0..400.0).contains(&itl),
        "one gap of ~120 ms, got {itl}"
    );
    assert_eq!((r.prompt_tokens, r.completion_tokens), (3, 2));
}

#[test]
fn blocking_call_records_usage_and_cached_tokens() {
    let server = FakeServer::start(|_| Reply::json(200, transcript("openai_chat.json"))).unwrap();
    let (bus, records) = recording_bus();
    let engine = InstrumentedEngine::new(OpenAiEngine::new(config(&server)), bus);
    let out = engine.generate(&[Message::user("hi")], &params()).unwrap();
    assert_eq!(out.content, "Hi there!");
    let r = only(&records);
    assert_eq!(
        (r.prompt_tokens, r.completion_tokens, r.prompt_tokens_cached),
        (2006, 3, 1920)
    );
    assert!(!r.is_streaming && r.outcome == Outcome::Ok);
}

#[test]
fn http_errors_carry_status_kind_and_server_message() {
    let server = FakeServer::start(|req| {
        if req.json()["stream"] == true {
            Reply::json(400, transcript("llama_cpp_error_400.json"))
        } else {
            Reply::json(429, transcript("openai_error_429.json"))
        }
    })
    .unwrap();
    let (bus, records) = recording_bus();
    let engine = InstrumentedEngine::new(OpenAiEngine::new(config(&server)), bus);
    let e = engine
        .generate(&[Message::user("hi")], &params())
        .unwrap_err();
    assert_eq!(e.error_kind(), "http_429");
    let e = stream_text(&engine).unwrap_err();
    assert_eq!(e.error_kind(), "http_400");
    let records = records.lock().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].error_kind, "http_429");
    assert!(
        records[0].error_message.contains("Rate limit reached"),
        "{:?}",
        records[0]
    );
    assert_eq!(records[1].error_kind, "http_400");
    assert!(records[1].is_streaming && records[1].outcome == Outcome::Error);
    assert!(!records[1].error_message.is_empty());
}

#[test]
fn stream_failures_have_distinct_kinds() {
    let head = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n";
    let cases: Vec<(Reply, Timeouts, &str)> = vec![
        // Connection closed mid-stream, no [DONE].
        (
            Reply::sse(head.as_bytes(), 5, Duration::ZERO).ending(End::Abort),
            Timeouts::default(),
            "stream_incomplete",
        ),
        // Body ends properly but without [DONE].
        (Reply::sse(head.as_bytes(), 5, Duration::ZERO), Timeouts::default(), "stream_incomplete"),
        // A stall after the first token.
        (
            Reply::sse(head.as_bytes(), 64, Duration::ZERO).ending(End::Stall(Duration::from_secs(3))),
            Timeouts {
                idle: Some(Duration::from_millis(200)),
                ..Timeouts::default()
            },
            "timeout_idle",
        ),
        // No answer at all in time.
        (
            Reply::sse(head.as_bytes(), 64, Duration::ZERO).after(Duration::from_secs(2)),
            Timeouts {
                first_token: Some(Duration::from_millis(200)),
                ..Timeouts::default()
            },
            "timeout_first_token",
        ),
        // llama.cpp's error line inside the stream.
        (
            Reply::sse(
                format!("{head}error: {{\"code\":500,\"message\":\"slot failed\",\"type\":\"server_error\"}}\n\n").as_bytes(),
                7,
                Duration::ZERO,
            ),
            Timeouts::default(),
            "http_500",
        ),
        // Garbage instead of JSON.
        (
            Reply::sse(format!("{head}data: {{oops\n\n").as_bytes(), 3, Duration::ZERO),
            Timeouts::default(),
            "protocol",
        ),
    ];
    for (reply, timeouts, kind) in cases {
        let server = FakeServer::start(move |_| reply.clone()).unwrap();
        let (bus, records) = recording_bus();
        let engine = InstrumentedEngine::new(
            OpenAiEngine::new(config(&server).with_timeouts(timeouts)),
            bus,
        );
        let e = stream_text(&engine).unwrap_err();
        assert_eq!(e.error_kind(), kind, "{e}");
        let r = only(&records);
        assert_eq!(
            (r.outcome, r.error_kind.as_str()),
            (Outcome::Error, kind),
            "{r:?}"
        );
    }
}

#[test]
fn connection_refused_is_connect() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (bus, records) = recording_bus();
    let engine = InstrumentedEngine::new(
        OpenAiEngine::new(OpenAiConfig::new(format!("http://127.0.0.1:{port}/v1"))),
        bus,
    );
    let e = engine
        .generate(&[Message::user("hi")], &params())
        .unwrap_err();
    assert_eq!(e.error_kind(), "connect", "{e}");
    assert_eq!(only(&records).error_kind, "connect");
}

#[test]
fn without_usage_tokens_are_counted() {
    let body = transcript("ollama_chat_stream_no_usage.sse");
    let server = FakeServer::start(move |_| Reply::sse(&body, 11, Duration::ZERO)).unwrap();
    let (bus, records) = recording_bus();
    let engine = InstrumentedEngine::new(
        OpenAiEngine::new(config(&server).with_include_usage(false)),
        bus,
    );
    assert_eq!(stream_text(&engine).unwrap(), "The sky is blue.");
    let r = only(&records);
    assert!(r.tokens_counted);
    assert_eq!(r.completion_tokens, 5);
    let sent = server.requests()[0].json();
    assert!(sent.get("stream_options").is_none(), "{sent}");
}

#[test]
fn requests_carry_key_headers_alias_and_extras() {
    let server = FakeServer::start(|_| Reply::json(200, transcript("openai_chat.json"))).unwrap();
    let engine = OpenAiEngine::new(
        OpenAiConfig::new(server.base_url())
            .with_api_key("sk-test")
            .with_header("x-team", "search")
            .with_alias("small", "smollm2-135m"),
    );
    let params = GenerateParams::new("small")
        .with_temperature(0.0)
        .with_extra("cache_prompt", serde_json::Value::Bool(false));
    engine
        .generate(&[Message::system("s"), Message::user("u")], &params)
        .unwrap();
    let req = &server.requests()[0];
    assert_eq!(
        (req.method.as_str(), req.path()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(req.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(req.header("x-team"), Some("search"));
    let body = req.json();
    assert_eq!(body["model"], "smollm2-135m");
    assert_eq!(body["cache_prompt"], false);
    assert_eq!(body["messages"][1]["content"], "u");
}

#[test]
fn engine_id_is_detected_from_discovery_endpoints() {
    let cases: [(&'static str, &'static str, &'static str); 4] = [
        (
            "/v1/models",
            r#"{"data":[{"id":"m","owned_by":"llamacpp"}]}"#,
            "llama.cpp",
        ),
        ("/version", r#"{"version":"0.6.3"}"#, "vllm"),
        ("/api/version", r#"{"version":"0.5.1"}"#, "ollama"),
        ("/nothing", "", "openai-compatible"),
    ];
    for (path, body, engine_id) in cases {
        let server = FakeServer::start(move |req| {
            if req.path() == path {
                Reply::json(200, body)
            } else {
                Reply::json(404, r#"{"detail":"Not Found"}"#)
            }
        })
        .unwrap();
        let engine = OpenAiEngine::detect(OpenAiConfig::new(server.base_url()));
        assert_eq!(engine.engine_id(), engine_id);
    }
}

#[test]
fn llama_timings_reach_the_result_and_the_last_chunk() {
    let body = transcript("llama_cpp_chat_stream.sse");
    let server = FakeServer::start(move |req| {
        if req.json()["stream"] == true {
            Reply::sse(&body, 9, Duration::ZERO)
        } else {
            Reply::json(
                200,
                r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],
                   "usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10},
                   "timings":{"cache_n":2,"prompt_n":7,"prompt_ms":12.5,"predicted_n":1,"predicted_ms":3.25}}"#,
            )
        }
    })
    .unwrap();
    let engine = OpenAiEngine::new(config(&server));
    let out = engine.generate(&[Message::user("hi")], &params()).unwrap();
    assert_eq!(
        out.timings.server_prefill,
        Some(Duration::from_micros(12_500))
    );
    assert_eq!(
        out.timings.server_decode,
        Some(Duration::from_micros(3_250))
    );
    assert_eq!(
        out.usage.cached_tokens, 2,
        "timings.cache_n stands in for cached_tokens"
    );
    let last = engine
        .stream(&[Message::user("hi")], &params())
        .unwrap()
        .last()
        .unwrap()
        .unwrap();
    let timings = last.timings.expect("timings on the last chunk");
    assert!(timings.server_prefill.is_some() && timings.server_decode.is_some());
    assert!(last.usage.is_some() && last.text.is_empty());
}

#[test]
fn llama_timings_reach_the_record() {
    let body = transcript("llama_cpp_chat_stream.sse");
    let server = FakeServer::start(move |req| {
        if req.json()["stream"] == true {
            Reply::sse(&body, 7, Duration::ZERO)
        } else {
            Reply::json(
                200,
                r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],
                   "usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10},
                   "timings":{"prompt_n":9,"prompt_ms":12.5,"predicted_n":1,"predicted_ms":3.25}}"#,
            )
        }
    })
    .unwrap();
    let (bus, records) = recording_bus();
    let engine = InstrumentedEngine::new(OpenAiEngine::new(config(&server)), bus);
    engine.generate(&[Message::user("hi")], &params()).unwrap();
    for chunk in engine.stream(&[Message::user("hi")], &params()).unwrap() {
        chunk.unwrap();
    }
    let records = records.lock().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].server_prefill_ms, Some(12.5));
    assert_eq!(records[0].server_decode_ms, Some(3.25));
    let streamed = &records[1];
    assert!(streamed.is_streaming);
    // The transcript's last chunk says prompt_ms 194.232 and predicted_ms 41.99.
    let close = |got: Option<f64>, want: f64| got.is_some_and(|g| (g - want).abs() < 1e-6);
    assert!(close(streamed.server_prefill_ms, 194.232), "{streamed:?}");
    assert!(close(streamed.server_decode_ms, 41.99), "{streamed:?}");
    assert_eq!(streamed.validate(), Ok(()));
}
