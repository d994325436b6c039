//! Every API real clients speak is recorded with the server's own counts: OpenAI Chat
//! Completions (text and tool calls), Responses, Anthropic Messages and embeddings, blocking and
//! streamed, the streams cut at odd byte boundaries; the probes of issue 21 (endpoint spellings,
//! a non-boolean `stream`, a client leaving after the terminal event).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{client, eventually, post, recording_proxy, records, send};
use telemetry_core::{Outcome, TelemetryRecord};
use telemetry_openai::fake::{FakeServer, Reply};

/// `body` cut every `step` bytes, as an upstream's reads might arrive.
fn cut(body: &str, step: usize) -> Vec<(Duration, Bytes)> {
    body.as_bytes()
        .chunks(step)
        .map(|c| (Duration::from_millis(1), Bytes::copy_from_slice(c)))
        .collect()
}

/// One call through a recording proxy to an upstream answering `reply`; the record.
async fn record_of(
    path: &str,
    request: &'static str,
    reply: impl Fn() -> Reply + Send + Sync + 'static,
) -> (TelemetryRecord, Vec<u8>) {
    let upstream = FakeServer::start(move |_| reply()).unwrap();
    let (proxy, bus) = recording_proxy(&upstream.url(), |t| t).await;
    let got = send(&client(), post(&proxy.url(path), request)).await;
    eventually("the record", || records(&bus).len() == 1).await;
    let r = records(&bus).remove(0);
    proxy.shutdown().await;
    assert_eq!(r.validate(), Ok(()), "{r:?}");
    (r, got.body())
}

const RESPONSES_STREAM: &str = concat!(
    "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r\",\"model\":\"m-resp\",\"status\":\"in_progress\"}}\n\n",
    "event: response.reasoning_text.delta\ndata: {\"type\":\"response.reasoning_text.delta\",\"delta\":\"think\"}\n\n",
    "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n",
    "event: response.function_call_arguments.delta\ndata: {\"type\":\"response.function_call_arguments.delta\",\"delta\":\"{}\"}\n\n",
    "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"model\":\"m-resp\",\"usage\":{\"input_tokens\":21,\"output_tokens\":9,\"input_tokens_details\":{\"cached_tokens\":5},\"output_tokens_details\":{\"reasoning_tokens\":4}}}}\n\n",
);

const MESSAGES_STREAM: &str = concat!(
    "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-x\",\"usage\":{\"input_tokens\":7,\"cache_read_input_tokens\":30,\"cache_creation_input_tokens\":3,\"output_tokens\":1}}}\r\n\r\n",
    "event: ping\r\ndata: {\"type\":\"ping\"}\r\n\r\n",
    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hm\"}}\r\n\r\n",
    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}\r\n\r\n",
    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"1}\"}}\r\n\r\n",
    "event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":11}}\r\n\r\n",
    "event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n",
);

const TOOL_STREAM: &str = concat!(
    "\u{feff}data: {\"model\":\"m-tool\",\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":null}}]}\n\n",
    "data: {\"model\":\"m-tool\",\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}}]}\n\n",
    "data: {\"model\":\"m-tool\",\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]}}]}\n\n",
    "data: {\"model\":\"m-tool\",\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]}}]}\n\n",
    "data: {\"model\":\"m-tool\",\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: {\"model\":\"m-tool\",\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":12,\"total_tokens\":52}}\n\n",
    "data: [DONE]\n\n",
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responses_stream_has_its_usage_reasoning_and_output_chunks() {
    for step in [1, 7, 64, RESPONSES_STREAM.len()] {
        let (r, body) = record_of(
            "/v1/responses",
            r#"{"model":"asked","input":"hi","stream":true}"#,
            move || Reply::events(cut(RESPONSES_STREAM, step)),
        )
        .await;
        assert_eq!(body, RESPONSES_STREAM.as_bytes(), "forwarded unchanged");
        assert_eq!(
            (r.api.as_str(), r.operation.as_str()),
            ("openai_responses", "chat")
        );
        assert_eq!(r.model_id, "m-resp");
        assert_eq!(r.outcome, Outcome::Ok, "step {step}");
        assert!(r.is_streaming && !r.tokens_counted && r.ttft.is_some());
        assert_eq!((r.prompt_tokens, r.completion_tokens), (21, 9));
        assert_eq!((r.prompt_tokens_cached, r.reasoning_tokens), (5, 4));
        assert_eq!(r.output_chunks, 3, "reasoning, text and arguments");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_messages_stream_of_thinking_and_tool_input_is_recorded() {
    for step in [1, 5, 33, MESSAGES_STREAM.len()] {
        let (r, _) = record_of(
            "/v1/messages",
            r#"{"model":"asked","max_tokens":64,"messages":[],"stream":true}"#,
            move || Reply::events(cut(MESSAGES_STREAM, step)),
        )
        .await;
        assert_eq!(r.api, "anthropic_messages");
        assert_eq!(r.model_id, "claude-x");
        assert_eq!(r.outcome, Outcome::Ok, "step {step}");
        assert_eq!((r.prompt_tokens, r.completion_tokens), (40, 11));
        assert_eq!(
            (r.prompt_tokens_cached, r.prompt_tokens_cache_write),
            (30, 3)
        );
        assert_eq!(r.output_chunks, 3);
        assert!(r.ttft.is_some() && r.mean_itl_ms.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_stream_has_ttft_and_the_servers_tokens_even_after_a_bom() {
    for step in [1, 3, 50, TOOL_STREAM.len()] {
        let (r, _) = record_of(
            "/v1/chat/completions",
            r#"{"model":"asked","messages":[],"stream":true}"#,
            move || Reply::events(cut(TOOL_STREAM, step)),
        )
        .await;
        assert_eq!(
            r.model_id, "m-tool",
            "the first event, after the BOM, is read"
        );
        assert_eq!(r.outcome, Outcome::Ok);
        assert_eq!((r.prompt_tokens, r.completion_tokens), (40, 12));
        assert!(r.ttft.is_some(), "tool-call arguments are output");
        assert_eq!(r.output_chunks, 3, "the name and two argument deltas");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_messages_responses_and_embeddings_have_their_usage() {
    let (r, _) = record_of(
        "/v1/messages",
        r#"{"model":"asked","max_tokens":8,"messages":[]}"#,
        || {
            Reply::json(
                200,
                r#"{"type":"message","model":"claude-x","content":[],"usage":{"input_tokens":4,"cache_read_input_tokens":6,"output_tokens":2}}"#,
            )
        },
    )
    .await;
    assert_eq!(
        (r.prompt_tokens, r.prompt_tokens_cached, r.completion_tokens),
        (10, 6, 2)
    );
    assert!(!r.is_streaming && r.output_chunks == 0 && r.ttft.is_none());
    let (r, _) = record_of("/v1/responses", r#"{"model":"asked","input":"x"}"#, || {
        Reply::json(
            200,
            r#"{"object":"response","model":"m","usage":{"input_tokens":3,"output_tokens":5,"output_tokens_details":{"reasoning_tokens":2}}}"#,
        )
    })
    .await;
    assert_eq!(
        (r.prompt_tokens, r.completion_tokens, r.reasoning_tokens),
        (3, 5, 2)
    );
    let (r, _) = record_of("/v1/embeddings", r#"{"model":"e","input":["a","b"]}"#, || {
        Reply::json(
            200,
            r#"{"object":"list","data":[{"embedding":[0.1]}],"model":"e","usage":{"prompt_tokens":8,"total_tokens":8}}"#,
        )
    })
    .await;
    assert_eq!(
        (r.api.as_str(), r.operation.as_str()),
        ("openai_embeddings", "embeddings")
    );
    assert_eq!((r.prompt_tokens, r.completion_tokens), (8, 0));
    assert!(r.ttft.is_none() && !r.tokens_counted);
}

const CHAT_STREAM: &str = concat!(
    "data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\r",
    "\n\r\n",
    "data: {\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\r\n\r\n",
    "data: [DONE]\r\n\r\n",
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spellings_the_upstream_may_route_as_chat_are_recorded() {
    for path in [
        "/V1/Chat/Completions",
        "//v1/chat/completions",
        "/v1/chat/%63ompletions",
        "/chat/completions",
    ] {
        let (r, _) = record_of(path, r#"{"model":"m","stream":true}"#, || {
            Reply::events(vec![
                (
                    Duration::ZERO,
                    Bytes::from_static(&CHAT_STREAM.as_bytes()[..51]),
                ),
                (
                    Duration::from_millis(2),
                    Bytes::from_static(&CHAT_STREAM.as_bytes()[51..]),
                ),
            ])
        })
        .await;
        assert_eq!(
            (r.api.as_str(), r.prompt_tokens),
            ("openai_chat", 3),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_answer_is_a_stream_whatever_the_request_said() {
    let (r, _) = record_of(
        "/v1/chat/completions",
        r#"{"model":"asked","stream":"yes"}"#,
        || Reply::events(cut(CHAT_STREAM, 9)),
    )
    .await;
    assert!(r.is_streaming, "the response is text/event-stream");
    assert_eq!(r.model_id, "m");
    assert_eq!(r.output_chunks, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_after_done_made_an_ok_call() {
    use http_body_util::BodyExt;
    // The upstream sends [DONE], then waits before ending its body.
    let upstream = FakeServer::start(|_| {
        Reply::events(vec![
            (Duration::ZERO, Bytes::from_static(CHAT_STREAM.as_bytes())),
            (Duration::from_secs(3), Bytes::from_static(b": bye\n\n")),
        ])
    })
    .unwrap();
    let (proxy, bus) = recording_proxy(&upstream.url(), |t| t).await;
    let response = client()
        .request(post(
            &proxy.url("/v1/chat/completions"),
            r#"{"model":"m","stream":true}"#,
        ))
        .await
        .unwrap();
    let mut body = response.into_body();
    let mut seen = Vec::new();
    while !seen.ends_with(b"[DONE]\r\n\r\n") {
        let frame = body.frame().await.unwrap().unwrap();
        seen.extend_from_slice(frame.data_ref().unwrap());
    }
    drop(body);
    eventually("the record", || records(&bus).len() == 1).await;
    let r = records(&bus).remove(0);
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(r.completion_tokens, 1);
    proxy.shutdown().await;
}
