//! Every completion call through the proxy becomes one record that says what the upstream said:
//! its tokens, model, timings and errors, with the agent from the request header.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{RunningProxy, client, eventually, post, recording_proxy, records, send};
use http_body_util::BodyExt;
use telemetry_core::{EventBus, Outcome};
use telemetry_openai::fake::{FakeServer, Reply, chat_completion, chat_stream};
use telemetry_proxy::{AGENT_HEADER, ProxyConfig, ProxyTelemetry, Routes, Upstream};
use telemetry_wrap::{Price, PriceTable};

const CHAT: &str = r#"{"model":"requested","messages":[{"role":"user","content":"hi"}]}"#;
const STREAM: &str = r#"{"model":"requested","messages":[],"stream":true}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_call_is_recorded_with_the_servers_usage_model_and_agent() {
    let upstream =
        FakeServer::start(|_| Reply::json(200, chat_completion("served-model", 17, 9))).unwrap();
    let prices = PriceTable::new().with(
        "served-model",
        Price::PerToken {
            input: 0.5,
            cached_input: 0.5,
            output: 1.0,
        },
    );
    let (proxy, bus) = recording_proxy(&upstream.url(), |t| {
        t.engine_name("llama.cpp")
            .agent("fallback")
            .price_table(prices)
    })
    .await;
    let mut request = post(&proxy.url("/v1/chat/completions"), CHAT);
    request
        .headers_mut()
        .insert(AGENT_HEADER, "notebook".parse().unwrap());
    let got = send(&client(), request).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body(), chat_completion("served-model", 17, 9).to_vec());
    let received = upstream.requests();
    assert!(
        !received[0].headers.contains_key(AGENT_HEADER),
        "the agent header is stripped before forwarding"
    );

    eventually("the record", || records(&bus).len() == 1).await;
    let r = &records(&bus)[0];
    assert_eq!(r.validate(), Ok(()));
    assert_eq!(r.model_id, "served-model", "the response's model wins");
    assert_eq!(
        (r.engine.as_str(), r.agent.as_str()),
        ("llama.cpp", "notebook")
    );
    assert_eq!(
        (r.prompt_tokens, r.completion_tokens, r.total_tokens),
        (17, 9, 26)
    );
    assert!(!r.tokens_counted && !r.is_streaming);
    assert_eq!(r.outcome, Outcome::Ok);
    assert_eq!(r.cost_usd, 17.0 * 0.5 + 9.0);
    assert_eq!(
        (r.server_prefill_ms, r.server_decode_ms),
        (Some(12.5), Some(40.0))
    );
    assert!(r.latency_seconds > 0.0 && r.latency_seconds < 5.0);

    // Without the header: the default agent.
    send(&client(), post(&proxy.url("/v1/chat/completions"), CHAT)).await;
    eventually("the second record", || records(&bus).len() == 2).await;
    assert_eq!(records(&bus)[1].agent, "fallback");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_recorded_with_ttft_to_the_first_content_and_itl() {
    // Role-only chunk, 8 words, finish, usage, [DONE]; 30 ms apart: the first content arrives
    // ~60 ms after the request.
    let events = chat_stream("served", 8, Some((5, 8)), Duration::from_millis(30));
    let upstream = FakeServer::start(move |_| Reply::events(events.clone())).unwrap();
    let (proxy, bus) = recording_proxy(&upstream.url(), |t| t).await;
    let got = send(&client(), post(&proxy.url("/v1/chat/completions"), STREAM)).await;
    assert_eq!(got.status, 200);

    eventually("the record", || records(&bus).len() == 1).await;
    let r = &records(&bus)[0];
    assert_eq!(r.validate(), Ok(()));
    assert!(r.is_streaming && !r.tokens_counted);
    assert_eq!(
        (r.model_id.as_str(), r.prompt_tokens, r.completion_tokens),
        ("served", 5, 8)
    );
    let ttft = r.ttft.unwrap();
    assert!(
        (0.055..0.5).contains(&ttft),
        "ttft {ttft}: the role-only chunk is not a token"
    );
    let itl = r.median_itl_ms.unwrap();
    assert!((20.0..200.0).contains(&itl), "median itl {itl} ms");
    assert!(r.latency_seconds >= ttft + 7.0 * 0.025);
    assert_eq!(r.server_decode_ms, Some(40.0));
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_usage_has_its_content_chunks_counted() {
    let events = chat_stream("served", 12, None, Duration::ZERO);
    let upstream = FakeServer::start(move |_| Reply::events(events.clone())).unwrap();
    let (proxy, bus) = recording_proxy(&upstream.url(), |t| t).await;
    send(&client(), post(&proxy.url("/v1/chat/completions"), STREAM)).await;
    eventually("the record", || records(&bus).len() == 1).await;
    let r = &records(&bus)[0];
    assert!(r.tokens_counted);
    assert_eq!((r.prompt_tokens, r.completion_tokens), (0, 12));
    assert_eq!(r.outcome, Outcome::Ok);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_are_recorded_with_the_servers_message() {
    let upstream = FakeServer::start(|_| {
        Reply::json(
            400,
            r#"{"error":{"code":400,"message":"'messages' is required","type":"invalid_request_error"}}"#,
        )
    }).unwrap();
    let (proxy, bus) = recording_proxy(&upstream.url(), |t| t).await;
    let got = send(&client(), post(&proxy.url("/v1/chat/completions"), STREAM)).await;
    assert_eq!(got.status, 400);
    eventually("the record", || records(&bus).len() == 1).await;
    let r = &records(&bus)[0];
    assert_eq!(r.outcome, Outcome::Error);
    assert_eq!(r.error_kind, "http_400");
    assert!(
        r.error_message.contains("'messages' is required"),
        "{}",
        r.error_message
    );
    assert_eq!(r.model_id, "requested");
    assert!(r.is_streaming, "the request asked for a stream");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unparseable_answer_is_forwarded_and_recorded_without_tokens() {
    let upstream = FakeServer::start(|_| Reply::json(200, "<html>surprise</html>")).unwrap();
    let (proxy, bus) = recording_proxy(&upstream.url(), |t| t).await;
    let got = send(
        &client(),
        post(&proxy.url("/v1/completions"), "not json either"),
    )
    .await;
    assert_eq!(got.body(), b"<html>surprise</html>");
    eventually("the record", || records(&bus).len() == 1).await;
    let r = &records(&bus)[0];
    assert_eq!(r.outcome, Outcome::Ok);
    assert!(r.tokens_counted);
    assert_eq!(r.total_tokens, 0);
    assert_eq!(r.model_id, "unknown");
    assert_eq!(proxy.stats.get().requests_unparsed, 1);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_upstream_is_a_recorded_failure() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (proxy, bus) = recording_proxy(&dead, |t| t).await;
    let got = send(&client(), post(&proxy.url("/v1/chat/completions"), CHAT)).await;
    assert_eq!(got.status, 502);
    eventually("the record", || records(&bus).len() == 1).await;
    let r = &records(&bus)[0];
    assert_eq!(
        (r.outcome, r.error_kind.as_str()),
        (Outcome::Error, "connect")
    );
    assert!(r.error_message.contains(&dead), "{}", r.error_message);
    assert_eq!(r.model_id, "requested");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_gone_mid_stream_is_recorded_cancelled_with_the_chunks_so_far() {
    let events = chat_stream("served", 200, None, Duration::from_millis(20));
    let upstream = FakeServer::start(move |_| Reply::events(events.clone())).unwrap();
    let (proxy, bus) = recording_proxy(&upstream.url(), |t| t).await;
    let c = client();
    let response = c
        .request(post(&proxy.url("/v1/chat/completions"), STREAM))
        .await
        .unwrap();
    let mut body = response.into_body();
    for _ in 0..4 {
        body.frame().await.unwrap().unwrap();
    }
    drop(body);
    drop(c);
    eventually("the upstream stream to be aborted", || {
        upstream.streams_aborted() == 1
    })
    .await;
    eventually("the record", || records(&bus).len() == 1).await;
    let r = &records(&bus)[0];
    assert_eq!(r.outcome, Outcome::Cancelled);
    assert!(r.tokens_counted);
    assert!(
        (3..=10).contains(&r.completion_tokens),
        "{}",
        r.completion_tokens
    );
    assert!(r.ttft.is_some());
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_send_each_model_to_its_upstream_and_records_say_which_model() {
    let a = FakeServer::start(|_| Reply::json(200, chat_completion("a", 1, 1))).unwrap();
    let b = FakeServer::start(|_| Reply::json(200, chat_completion("b", 2, 2))).unwrap();
    let bus = Arc::new(EventBus::new());
    let kept = common::Records::on(&bus);
    let routes = Routes::new(Upstream::parse(&a.url()).unwrap())
        .route_spec(&format!("big={}", b.url()))
        .unwrap();
    let proxy = RunningProxy::start(
        ProxyConfig::new(routes).telemetry(ProxyTelemetry::new(Arc::clone(&bus))),
    )
    .await;
    let c = client();
    send(
        &c,
        post(&proxy.url("/v1/chat/completions"), r#"{"model":"big"}"#),
    )
    .await;
    send(
        &c,
        post(&proxy.url("/v1/chat/completions"), r#"{"model":"small"}"#),
    )
    .await;
    eventually("two records", || records(&kept).len() == 2).await;
    assert_eq!((a.request_count(), b.request_count()), (1, 1));
    let models: Vec<_> = records(&kept).into_iter().map(|r| r.model_id).collect();
    assert_eq!(models, ["b", "a"]);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_record_names_the_upstream_that_served_it() {
    let a = FakeServer::start(|_| Reply::json(200, chat_completion("a", 1, 1))).unwrap();
    let b = FakeServer::start(|_| Reply::json(200, chat_completion("b", 2, 2))).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = listener.local_addr().unwrap();
    drop(listener);
    let bus = Arc::new(EventBus::new());
    let kept = common::Records::on(&bus);
    let routes = Routes::new(Upstream::parse(&a.url()).unwrap())
        .route_spec(&format!("big={}", b.url()))
        .unwrap()
        .route_spec(&format!("gone=http://localhost:{}", dead.port()))
        .unwrap();
    let proxy = RunningProxy::start(
        ProxyConfig::new(routes).telemetry(ProxyTelemetry::new(Arc::clone(&bus))),
    )
    .await;
    let c = client();
    for model in ["big", "small", "gone"] {
        let body = format!(r#"{{"model":"{model}"}}"#);
        send(&c, post(&proxy.url("/v1/chat/completions"), body)).await;
    }
    eventually("three records", || records(&kept).len() == 3).await;
    let served: Vec<_> = records(&kept)
        .into_iter()
        .map(|r| (r.model_id, r.outcome, r.metadata.value().clone()))
        .collect();
    let server =
        |host: &str, port: u16| serde_json::json!({"server.address": host, "server.port": port});
    assert_eq!(
        served,
        [
            (
                "b".to_owned(),
                Outcome::Ok,
                server("127.0.0.1", b.addr().port())
            ),
            (
                "a".to_owned(),
                Outcome::Ok,
                server("127.0.0.1", a.addr().port())
            ),
            // A failed call names the server it could not reach, as the URL spells its host.
            (
                "gone".to_owned(),
                Outcome::Error,
                server("localhost", dead.port())
            ),
        ]
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_streams_are_recorded_exactly_once_each() {
    const N: usize = 1000;
    let events = chat_stream("served", 16, Some((3, 16)), Duration::from_millis(2));
    let upstream = FakeServer::start(move |_| Reply::events(events.clone())).unwrap();
    let (proxy, bus) = recording_proxy(&upstream.url(), |t| t).await;
    let url = proxy.url("/v1/chat/completions");
    let c = client::<http_body_util::Full<Bytes>>();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..N {
        let c = c.clone();
        let url = url.clone();
        tasks.spawn(async move {
            let mut request = post(&url, STREAM);
            request
                .headers_mut()
                .insert(AGENT_HEADER, format!("caller-{i}").parse().unwrap());
            let response = c.request(request).await.unwrap();
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .len()
        });
    }
    while let Some(len) = tasks.join_next().await {
        assert!(len.unwrap() > 0);
    }
    eventually("every record", || records(&bus).len() >= N).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let all = records(&bus);
    assert_eq!(all.len(), N, "one record per call, no more");
    let agents: HashSet<_> = all.iter().map(|r| r.agent.clone()).collect();
    assert_eq!(agents.len(), N, "each call recorded once");
    assert!(
        all.iter()
            .all(|r| r.outcome == Outcome::Ok && (r.prompt_tokens, r.completion_tokens) == (3, 16))
    );
    assert_eq!(proxy.stats.get().calls_recorded, N as u64);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_reach_the_sqlite_store_through_the_bus() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.db");
    let store = telemetry_store::TelemetryStore::open(&path).unwrap();
    let bus = Arc::new(EventBus::new());
    store.subscribe_to_bus(&bus);
    let upstream =
        FakeServer::start(|_| Reply::json(200, chat_completion("stored", 4, 6))).unwrap();
    let proxy = RunningProxy::start(
        ProxyConfig::new(Routes::new(Upstream::parse(&upstream.url()).unwrap()))
            .telemetry(ProxyTelemetry::new(Arc::clone(&bus)).store(store.clone())),
    )
    .await;
    let c = client();
    for _ in 0..3 {
        send(&c, post(&proxy.url("/v1/chat/completions"), CHAT)).await;
    }
    let health = send(
        &c,
        http::Request::get(proxy.url("/telemetry/health"))
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
    .json();
    assert_eq!(health["telemetry"]["store"]["healthy"], true, "{health}");
    proxy.shutdown().await;
    store.flush().unwrap();
    assert_eq!(store.stats().written, 3);
    store.close().unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (n, model, tokens): (i64, String, i64) = conn
        .query_row(
            "SELECT COUNT(*), MIN(model_id), SUM(total_tokens) FROM telemetry_records",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((n, model.as_str(), tokens), (3, "stored", 30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_keep_up_drops_and_counts_records_and_requests_still_flow() {
    let dir = tempfile::tempdir().unwrap();
    // A queue of one record, dropping when full: most records of a burst cannot be queued.
    let store = telemetry_store::TelemetryStore::builder(dir.path().join("slow.db"))
        .queue_capacity(1)
        .overflow(telemetry_store::OverflowPolicy::DropNewest)
        .open()
        .unwrap();
    let bus = Arc::new(EventBus::new());
    store.subscribe_to_bus(&bus);
    let upstream = FakeServer::start(|_| Reply::json(200, chat_completion("m", 1, 1))).unwrap();
    let proxy = RunningProxy::start(
        ProxyConfig::new(Routes::new(Upstream::parse(&upstream.url()).unwrap()))
            .telemetry(ProxyTelemetry::new(Arc::clone(&bus)).store(store.clone())),
    )
    .await;
    let url = proxy.url("/v1/chat/completions");
    let c = client::<http_body_util::Full<Bytes>>();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (c, url) = (c.clone(), url.clone());
        tasks.spawn(async move { c.request(post(&url, CHAT)).await.unwrap().status() });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 200, "every request is answered");
    }
    proxy.shutdown().await;
    store.flush().unwrap();
    let s = store.stats();
    assert_eq!(s.written + s.dropped, 200, "{s:?}");
    assert!(s.dropped > 0, "the burst overflowed the queue: {s:?}");
}
