//! Every wait has an end: an upstream that never answers gives the client a 504, one that stalls
//! mid-stream has its stream ended, a client that does not send its body gets a 408, and a
//! pooled connection is never reused after the upstream's keep-alive has closed it. Each is
//! recorded as what it was. (The timeouts are scaled down from their defaults through
//! `ProxyConfig`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    client, eventually, post, post_head, proxy_with, read_reply, records, send, silent_upstream, to,
};
use http_body_util::BodyExt;
use telemetry_core::Outcome;
use telemetry_openai::fake::{FakeServer, Reply, chat_completion, chat_stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
const STREAM: &str = r#"{"model":"m","messages":[],"stream":true}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_answers_is_a_504_and_an_upstream_timeout() {
    let (url, _silent) = silent_upstream().await;
    let (proxy, bus) = proxy_with(
        |c| c.first_byte_timeout(Duration::from_millis(300)),
        to(&url),
    )
    .await;
    let started = Instant::now();
    let got = send(&client(), post(&proxy.url("/v1/chat/completions"), CHAT)).await;
    let waited = started.elapsed();
    assert_eq!(got.status, 504);
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    assert_eq!(got.json()["error"]["type"], "upstream_timeout");
    eventually("the record", || records(&bus).len() == 1).await;
    let r = &records(&bus)[0];
    assert_eq!(
        (r.outcome, r.error_kind.as_str()),
        (Outcome::Error, "upstream_timeout")
    );
    assert!(r.error_message.contains("300ms"), "{}", r.error_message);
    let stats = proxy.stats.get();
    assert_eq!((stats.upstream_timeouts, stats.calls_cancelled), (1, 0));
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_of_any_length_are_taken_and_the_longest_are_capped() {
    let upstream = FakeServer::start(|_| Reply::json(200, chat_completion("m", 1, 1))).unwrap();
    // A deadline is now plus the limit: `Duration::MAX` would overflow it (it did, and every
    // request's task panicked).
    let (proxy, bus) = proxy_with(
        |c| {
            c.connect_timeout(Duration::MAX)
                .first_byte_timeout(Duration::MAX)
                .chunk_timeout(Duration::MAX)
                .body_timeout(Duration::MAX)
                .pool_idle_timeout(Duration::MAX)
                .shutdown_grace(Duration::MAX)
        },
        to(&upstream.url()),
    )
    .await;
    let got = send(&client(), post(&proxy.url("/v1/chat/completions"), CHAT)).await;
    assert_eq!(got.status, 200);
    eventually("the record", || records(&bus).len() == 1).await;
    assert_eq!(records(&bus)[0].outcome, Outcome::Ok);
    proxy.shutdown().await;
}

/// An upstream that accepts connections and reads nothing from them (held open).
async fn deaf_upstream() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_stops_reading_the_request_is_a_504_and_an_upstream_timeout() {
    let (url, _deaf) = deaf_upstream().await;
    let (proxy, bus) = proxy_with(
        |c| c.first_byte_timeout(Duration::from_millis(300)),
        to(&url),
    )
    .await;
    // 16 MiB: more than the upstream's socket and the proxy's together hold.
    let body = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "a".repeat(16 << 20)
    );
    let started = Instant::now();
    let got = send(&client(), post(&proxy.url("/v1/chat/completions"), body)).await;
    let waited = started.elapsed();
    assert_eq!(got.status, 504);
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    assert_eq!(got.json()["error"]["type"], "upstream_timeout");
    assert!(
        got.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stopped reading the request"),
        "{}",
        got.json()
    );
    eventually("the record", || records(&bus).len() == 1).await;
    let r = &records(&bus)[0];
    assert_eq!(
        (r.outcome, r.error_kind.as_str(), r.model_id.as_str()),
        (Outcome::Error, "upstream_timeout", "m")
    );
    assert!(r.error_message.contains("300ms"), "{}", r.error_message);
    assert_eq!(proxy.stats.get().upstream_timeouts, 1);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_stalls_is_ended_and_recorded_as_an_upstream_timeout() {
    // The head, the role chunk and two words at once; then nothing for an hour.
    let mut events = chat_stream("m", 2, None, Duration::ZERO);
    events.truncate(3);
    events.push((
        Duration::from_secs(3600),
        Bytes::from_static(b"data: [DONE]\n\n"),
    ));
    let upstream = FakeServer::start(move |_| Reply::events(events.clone())).unwrap();
    let (proxy, bus) = proxy_with(
        |c| c.chunk_timeout(Duration::from_millis(300)),
        to(&upstream.url()),
    )
    .await;
    let started = Instant::now();
    let response = client()
        .request(post(&proxy.url("/v1/chat/completions"), STREAM))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut got = Vec::new();
    let mut ended_with_error = false;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => got.extend_from_slice(&f.into_data().unwrap_or_default()),
            Err(_) => {
                ended_with_error = true;
                break;
            }
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(ended_with_error, "the client must see the stream cut short");
    assert!(String::from_utf8_lossy(&got).contains("w1"));
    eventually("the record", || records(&bus).len() == 1).await;
    let r = &records(&bus)[0];
    assert_eq!(
        (r.outcome, r.error_kind.as_str()),
        (Outcome::Error, "upstream_timeout")
    );
    assert_eq!(r.completion_tokens, 2, "the chunks before the stall count");
    assert_eq!(proxy.stats.get().upstream_timeouts, 1);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_in_time_is_a_408_and_frees_the_connection() {
    let upstream = FakeServer::start(|_| Reply::json(200, "{}")).unwrap();
    let (proxy, bus) = proxy_with(
        |c| c.body_timeout(Duration::from_millis(400)),
        to(&upstream.url()),
    )
    .await;
    // Half a body, then silence.
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let head = post_head("/v1/chat/completions", CHAT.len());
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&CHAT.as_bytes()[..10]).await.unwrap();
    let started = Instant::now();
    let reply = read_reply(&mut stream, Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("request_timeout"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(3));
    eventually("the record", || records(&bus).len() == 1).await;
    assert_eq!(records(&bus)[0].error_kind, "request_timeout");
    assert_eq!(upstream.request_count(), 0);
    eventually("the connection to be closed", || {
        proxy.stats.get().connections == 0
    })
    .await;

    // A path that is not recorded streams its body: the same limit holds.
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(post_head("/v1/embeddings", 100).as_bytes())
        .await
        .unwrap();
    stream.write_all(b"{\"input\":").await.unwrap();
    let reply = read_reply(&mut stream, Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    proxy.shutdown().await;
}

/// An upstream like uvicorn: keep-alive, and a connection idle for `idle_close` is closed —
/// here so that a request arriving on it after that is dropped unanswered, the race a proxy
/// loses when it reuses a connection the upstream is closing.
async fn closing_upstream(idle_close: Duration) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut last = Instant::now();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 || last.elapsed() >= idle_close {
                        return; // closed without an answer
                    }
                    let body = br#"{"model":"m","usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(body).await;
                    last = Instant::now();
                }
            });
        }
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_is_not_reused_past_the_upstreams_keep_alive() {
    let (url, _upstream) = closing_upstream(Duration::from_millis(500)).await;
    let (proxy, bus) = proxy_with(
        |c| c.pool_idle_timeout(Duration::from_millis(250)),
        to(&url),
    )
    .await;
    let c = client();
    for i in 0..3 {
        let got = send(&c, post(&proxy.url("/v1/chat/completions"), CHAT)).await;
        assert_eq!(got.status, 200, "request {i}: {:?}", got.body());
        // Idle past the upstream's keep-alive before the next request.
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    eventually("the records", || records(&bus).len() == 3).await;
    assert!(records(&bus).iter().all(|r| r.outcome == Outcome::Ok));
    assert_eq!(proxy.stats.get().upstream_unreachable, 0);
    proxy.shutdown().await;
}
