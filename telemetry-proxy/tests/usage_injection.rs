//! Exact tokens for every Chat Completions stream: the proxy asks the upstream for the usage a
//! client did not ask for, and the client receives, byte for byte, what the same upstream sends
//! for the request as the client wrote it (llama.cpp's habits and the OpenAI API's, the stream
//! cut at odd points); an upstream that refuses the option is asked once, remembered, and the
//! client's call succeeds; `usage_injection(false)` forwards such streams untouched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{client, eventually, post, proxy_with, records, send, to};
use telemetry_core::Outcome;
use telemetry_openai::fake::{FakeRequest, FakeServer, Reply, StreamFlavour, chat_stream_as};
use telemetry_proxy::ProxyTelemetry;
use telemetry_wrap::{Price, PriceTable};

const WORDS: usize = 6;
const PROMPT: u64 = 11;
const REQUEST: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#;

/// The stream `flavour` sends for `request`, cut every `step` bytes.
fn answer(flavour: StreamFlavour, request: &FakeRequest, step: usize) -> Reply {
    let whole = chat_stream_as(flavour, WORDS, PROMPT, request.asks_for_usage());
    Reply::sse(&whole, step, Duration::ZERO)
}

/// A price per token for the models of both flavours.
fn priced(telemetry: ProxyTelemetry) -> ProxyTelemetry {
    let price = Price::PerToken {
        input: 1.0,
        cached_input: 1.0,
        output: 2.0,
    };
    telemetry.price_table(
        PriceTable::new()
            .with("smollm2", price)
            .with("gpt-4o-mini-2024-07-18", price),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_gets_the_stream_it_asked_for_and_the_record_the_servers_usage() {
    for flavour in [StreamFlavour::LlamaCpp, StreamFlavour::OpenAi] {
        let plain = chat_stream_as(flavour, WORDS, PROMPT, false);
        let injected = chat_stream_as(flavour, WORDS, PROMPT, true);
        assert_ne!(plain, injected);
        for step in [1, 3, 7, 64, 1000] {
            let upstream = FakeServer::start(move |r| answer(flavour, r, step)).unwrap();
            let (proxy, bus) = proxy_with(|c| c, to(&upstream.url())).await;
            let got = send(&client(), post(&proxy.url("/v1/chat/completions"), REQUEST)).await;
            assert_eq!(got.status, 200);
            assert_eq!(
                String::from_utf8_lossy(&got.body()),
                String::from_utf8_lossy(&plain),
                "{flavour:?}, cut every {step} bytes"
            );
            assert!(!got.headers.contains_key("content-length"));
            // What the upstream was sent: the client's request, asking for usage.
            let sent = &upstream.requests()[0];
            assert!(sent.asks_for_usage());
            let json: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
            assert_eq!(json["messages"][0]["content"], "hi");
            assert_eq!(json["stream"], true);
            assert_eq!(
                sent.headers["content-length"],
                sent.body.len().to_string().as_str()
            );
            assert_eq!(sent.headers["accept-encoding"], "identity");
            eventually("the record", || records(&bus).len() == 1).await;
            let r = records(&bus).remove(0);
            assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
            assert_eq!(
                (r.prompt_tokens, r.completion_tokens, r.tokens_counted),
                (PROMPT, WORDS as u64, false),
                "{flavour:?} / {step}"
            );
            assert_eq!(r.output_chunks, WORDS as u64);
            assert!(r.ttft.is_some());
            let stats = proxy.stats.get();
            assert_eq!((stats.usage_asked, stats.usage_refused), (1, 0));
            proxy.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_asks_for_usage_itself_gets_it_as_sent() {
    let upstream = FakeServer::start(|r| answer(StreamFlavour::OpenAi, r, 5)).unwrap();
    let (proxy, bus) = proxy_with(|c| c, to(&upstream.url())).await;
    let request =
        r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#;
    let got = send(&client(), post(&proxy.url("/v1/chat/completions"), request)).await;
    assert_eq!(
        got.body(),
        (chat_stream_as(StreamFlavour::OpenAi, WORDS, PROMPT, true))
    );
    assert_eq!(upstream.requests()[0].body, request.as_bytes());
    eventually("the record", || records(&bus).len() == 1).await;
    assert_eq!(records(&bus)[0].completion_tokens, WORDS as u64);
    assert_eq!(proxy.stats.get().usage_asked, 0);
    proxy.shutdown().await;
}

/// An upstream that refuses `stream_options` the way the OpenAI API refuses an unknown argument;
/// it streams without usage otherwise.
fn refusing(request: &FakeRequest) -> Reply {
    let body = String::from_utf8_lossy(&request.body);
    if body.contains("stream_options") {
        return Reply::json(
            400,
            r#"{"error":{"message":"Unrecognized request argument supplied: stream_options","type":"invalid_request_error","param":null,"code":null}}"#,
        );
    }
    Reply::sse_events(
        &chat_stream_as(StreamFlavour::OpenAi, WORDS, PROMPT, false),
        Duration::ZERO,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_refuses_the_option_is_asked_once_and_calls_succeed() {
    let upstream = FakeServer::start(refusing).unwrap();
    let (proxy, bus) = proxy_with(|c| c, to(&upstream.url())).await;
    let plain = chat_stream_as(StreamFlavour::OpenAi, WORDS, PROMPT, false);
    for call in 1..=3u64 {
        let got = send(&client(), post(&proxy.url("/v1/chat/completions"), REQUEST)).await;
        assert_eq!(got.status, 200, "call {call}");
        assert_eq!(got.body(), plain, "call {call}");
        // The first call: the injected request and the client's own; then the client's only.
        assert_eq!(upstream.request_count(), call + 1, "call {call}");
    }
    let sent = upstream.requests();
    assert!(sent[0].body.windows(14).any(|w| w == b"stream_options"));
    for retry in &sent[1..] {
        assert_eq!(retry.body, REQUEST.as_bytes());
        assert_eq!(
            retry.headers["content-length"],
            REQUEST.len().to_string().as_str()
        );
        assert!(!retry.headers.contains_key("accept-encoding"));
    }
    eventually("the records", || records(&bus).len() == 3).await;
    for r in records(&bus) {
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        // No usage from this server: counted, and said so.
        assert!(
            r.tokens_counted && r.completion_tokens == WORDS as u64,
            "{r:?}"
        );
    }
    let stats = proxy.stats.get();
    assert_eq!((stats.usage_asked, stats.usage_refused), (1, 1));
    // Completions on the same upstream are still asked (remembered per API).
    let _ = send(
        &client(),
        post(
            &proxy.url("/v1/completions"),
            r#"{"model":"m","prompt":"x","stream":true}"#,
        ),
    )
    .await;
    assert_eq!(proxy.stats.get().usage_asked, 2);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_request_stays_the_clients_and_is_not_retried() {
    const ERROR: &str = r#"{"error":{"code":400,"message":"'messages' must be a list","type":"invalid_request_error"}}"#;
    let upstream = FakeServer::start(|_| Reply::json(400, ERROR)).unwrap();
    let (proxy, bus) = proxy_with(|c| c, to(&upstream.url())).await;
    for call in 1..=2u64 {
        let got = send(&client(), post(&proxy.url("/v1/chat/completions"), REQUEST)).await;
        assert_eq!(
            (got.status.as_u16(), got.body()),
            (400, ERROR.as_bytes().to_vec())
        );
        assert_eq!(upstream.request_count(), call, "not retried");
        assert!(upstream.requests()[call as usize - 1].asks_for_usage());
    }
    eventually("the records", || records(&bus).len() == 2).await;
    assert!(records(&bus).iter().all(|r| r.error_kind == "http_400"));
    // An error that quotes the request (and so names the option) is retried once, but an
    // answer that fails the same way does not mark the upstream.
    let quoting = FakeServer::start(|r| {
        let quoted = serde_json::json!({"detail": [{"msg": "bad", "input": String::from_utf8_lossy(&r.body)}]});
        Reply::json(422, quoted.to_string())
    }).unwrap();
    let (proxy2, _bus2) = proxy_with(|c| c, to(&quoting.url())).await;
    for _ in 0..2 {
        let got = send(
            &client(),
            post(&proxy2.url("/v1/chat/completions"), REQUEST),
        )
        .await;
        assert_eq!(got.status, 422);
        // The last answer is the client's own request's.
        assert!(!String::from_utf8_lossy(&got.body()).contains("include_usage"));
    }
    assert_eq!(
        quoting.request_count(),
        4,
        "asked again: not remembered as refusing"
    );
    proxy.shutdown().await;
    proxy2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_injection_off_streams_go_untouched_and_are_recorded_with_what_they_carry() {
    for flavour in [StreamFlavour::LlamaCpp, StreamFlavour::OpenAi] {
        let upstream = FakeServer::start(move |r| answer(flavour, r, 9)).unwrap();
        let bus = Arc::new(telemetry_core::EventBus::new());
        let kept = common::Records::on(&bus);
        let (proxy, _) = proxy_with(
            |c| {
                c.usage_injection(false)
                    .telemetry(priced(ProxyTelemetry::new(Arc::clone(&bus))))
            },
            to(&upstream.url()),
        )
        .await;
        let got = send(&client(), post(&proxy.url("/v1/chat/completions"), REQUEST)).await;
        assert_eq!(got.body(), (chat_stream_as(flavour, WORDS, PROMPT, false)));
        assert_eq!(upstream.requests()[0].body, REQUEST.as_bytes());
        eventually("the record", || records(&kept).len() == 1).await;
        let r = records(&kept).remove(0);
        assert_eq!(r.outcome, Outcome::Ok);
        match flavour {
            // llama.cpp's finish chunk has its own counts (timings): exact, priced.
            StreamFlavour::LlamaCpp => {
                assert_eq!(
                    (r.prompt_tokens, r.completion_tokens),
                    (PROMPT, WORDS as u64)
                );
                assert!(!r.tokens_counted && !r.cost_unknown, "{r:?}");
                assert_eq!(r.cost_usd, PROMPT as f64 + 2.0 * WORDS as f64);
            }
            // Nothing from the server: output chunks counted, the prompt unknown, the cost too.
            StreamFlavour::OpenAi => {
                assert_eq!((r.prompt_tokens, r.completion_tokens), (0, WORDS as u64));
                assert!(r.tokens_counted && r.cost_unknown, "{r:?}");
            }
        }
        assert_eq!(proxy.stats.get().usage_asked, 0);
        proxy.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embeddings_answer_over_the_capture_limit_is_recorded_unparsed_not_dropped() {
    let vector = vec!["0.125"; 40_000].join(",");
    let answer = format!(
        r#"{{"object":"list","data":[{{"object":"embedding","index":0,"embedding":[{vector}]}}],"model":"emb","usage":{{"prompt_tokens":3,"total_tokens":3}}}}"#
    );
    let len = answer.len();
    let upstream = FakeServer::start(move |_| Reply::json(200, answer.clone())).unwrap();
    let (proxy, bus) = proxy_with(|c| c.capture_limit(64 * 1024), to(&upstream.url())).await;
    let got = send(
        &client(),
        post(
            &proxy.url("/v1/embeddings"),
            r#"{"model":"emb","input":"abc"}"#,
        ),
    )
    .await;
    assert_eq!((got.status.as_u16(), got.body().len()), (200, len));
    eventually("the record", || records(&bus).len() == 1).await;
    let r = records(&bus).remove(0);
    assert_eq!(r.validate(), Ok(()));
    assert_eq!(r.outcome, Outcome::Ok);
    assert_eq!(
        (r.api.as_str(), r.model_id.as_str()),
        ("openai_embeddings", "emb")
    );
    // Its tokens were not read: none, and marked as counted (not the server's).
    assert!(r.tokens_counted && r.total_tokens == 0, "{r:?}");
    proxy.shutdown().await;
}
