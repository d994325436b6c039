//! When something goes wrong the client still gets an answer it can act on, and the proxy
//! keeps count: unreachable upstream → 502, client gone mid-stream → upstream request aborted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{RunningProxy, client, eventually, post, send};
use http_body_util::{BodyExt, Full};
use telemetry_openai::fake::{FakeServer, Reply, chat_stream};

const STREAM_REQUEST: &str = r#"{"model":"smollm2","messages":[],"stream":true}"#;

/// A loopback URL where nothing listens.
async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_upstream_is_a_502_with_a_json_error() {
    let dead = dead_url().await;
    let proxy = RunningProxy::to(&dead).await;
    let got = send(
        &client(),
        post(&proxy.url("/v1/chat/completions"), STREAM_REQUEST),
    )
    .await;
    assert_eq!(got.status, 502);
    assert_eq!(got.headers["content-type"], "application/json");
    let error = &got.json()["error"];
    assert_eq!(error["type"], "upstream_unreachable");
    assert_eq!(error["code"], 502);
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(&dead), "{message}");
    let stats = proxy.stats.get();
    assert_eq!(
        (
            stats.upstream_unreachable,
            stats.calls_recorded,
            stats.calls_failed
        ),
        (1, 1, 1)
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_gone_mid_stream_cancels_and_aborts_upstream() {
    // A long stream: the client reads the first event and hangs up.
    let events = chat_stream("smollm2", 200, None, Duration::from_millis(20));
    let upstream = FakeServer::start(move |_| Reply::events(events.clone())).unwrap();
    let proxy = RunningProxy::to(&upstream.url()).await;

    let c = client();
    let response = c
        .request(post(&proxy.url("/v1/chat/completions"), STREAM_REQUEST))
        .await
        .unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(first.starts_with(b"data: "));
    drop(body);
    drop(c);

    eventually("the upstream stream to be aborted", || {
        upstream.streams_aborted() == 1
    })
    .await;
    eventually("the call to be recorded as cancelled", || {
        proxy.stats.get().calls_cancelled == 1
    })
    .await;
    assert_eq!(upstream.streams_completed(), 0);
    assert_eq!(proxy.stats.get().calls_recorded, 1);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_gone_before_any_chunk_is_recorded_once() {
    // The upstream takes long to answer; the client gives up first.
    let upstream = FakeServer::start(|_| {
        Reply::events(vec![(
            Duration::from_secs(30),
            Bytes::from_static(b"data: [DONE]\n\n"),
        )])
    })
    .unwrap();
    let proxy = RunningProxy::to(&upstream.url()).await;
    let c = client();
    let request = c.request(post(&proxy.url("/v1/chat/completions"), STREAM_REQUEST));
    // Headers come at once (chunked reply), the body never: time out while reading it.
    let response = request.await.unwrap();
    let _ = tokio::time::timeout(Duration::from_millis(100), response.into_body().collect()).await;
    drop(c);
    eventually("the call to be recorded as cancelled", || {
        proxy.stats.get().calls_cancelled == 1
    })
    .await;
    assert_eq!(proxy.stats.get().calls_recorded, 1);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_upstreams_and_is_not_forwarded() {
    let upstream = FakeServer::start(|_| Reply::json(200, "{}")).unwrap();
    let proxy = RunningProxy::to(&upstream.url()).await;
    let c = client();
    let get = |url: String| {
        http::Request::get(url)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    let got = send(&c, get(proxy.url("/telemetry/health"))).await;
    assert_eq!(got.status, 200);
    let health = got.json();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["upstreams"][0]["url"], upstream.url());
    assert_eq!(health["upstreams"][0]["reachable"], true);
    assert!(health["proxy"]["requests"].as_u64().unwrap() >= 1);
    assert_eq!(upstream.request_count(), 0, "health must not be forwarded");

    let dead = dead_url().await;
    let down = RunningProxy::to(&dead).await;
    let got = send(&c, get(down.url("/telemetry/health"))).await;
    assert_eq!(got.status, 503);
    let health = got.json();
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["upstreams"][0]["reachable"], false);
    assert!(
        health["upstreams"][0]["error"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{health}"
    );
    proxy.shutdown().await;
    down.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_stream_in_flight_finish() {
    let events = chat_stream("smollm2", 20, Some((5, 20)), Duration::from_millis(15));
    let expected: Vec<u8> = events.iter().flat_map(|(_, b)| b.to_vec()).collect();
    let upstream = FakeServer::start(move |_| Reply::events(events.clone())).unwrap();
    let proxy = RunningProxy::to(&upstream.url()).await;
    let url = proxy.url("/v1/chat/completions");
    // The client asks for the usage chunk the upstream sends (so the stream is not filtered).
    let request = r#"{"model":"smollm2","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#;
    let reader = tokio::spawn(async move { send(&client(), post(&url, request)).await });
    eventually("the stream to start", || upstream.request_count() == 1).await;

    let report = proxy.shutdown().await;
    let got = reader.await.unwrap();
    assert_eq!(got.body(), expected, "the stream was cut by the shutdown");
    assert_eq!(report.connections_cut, 0);
    assert_eq!(
        (report.stats.calls_recorded, report.stats.calls_cancelled),
        (1, 0)
    );
}
