//! Everything the client sends reaches the upstream, and everything the upstream answers
//! reaches the client, byte for byte — blocking, streaming, error bodies, chunked uploads, a
//! client at HTTP/1.1's edges (`100 Continue`, pipelining, HTTP/1.0) —
//! minus only the hop-by-hop headers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{RunningProxy, client, post, send};
use http::{Request, Response};
use http_body_util::channel::Sender;
use http_body_util::{BodyExt, Channel, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use telemetry_openai::fake::{FakeServer, Reply, chat_completion, chat_stream};
use tokio::sync::mpsc;

const REQUEST: &str = r#"{"model":"smollm2","messages":[{"role":"user","content":"Hi \u00e9"}],"temperature":0.7,"custom":{"a":[1,2]}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_completion_is_forwarded_byte_for_byte() {
    let reply = chat_completion("smollm2", 9, 4);
    let expected = reply.clone();
    let upstream =
        FakeServer::start(move |_| Reply::json(200, reply.clone()).header("x-upstream", "kept"))
            .unwrap();
    let proxy = RunningProxy::to(&upstream.url()).await;

    let request = Request::post(proxy.url("/v1/chat/completions?trace=1"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-test")
        .header("x-telemetry-agent", "my-agent")
        .header("connection", "x-hop")
        .header("x-hop", "dropped")
        .header("x-custom", "a")
        .body(Full::new(Bytes::from(REQUEST)))
        .unwrap();
    let got = send(&client(), request).await;

    assert_eq!(got.status, 200);
    assert_eq!(got.body(), expected.to_vec());
    assert_eq!(got.headers["x-upstream"], "kept");
    assert_eq!(got.headers["content-type"], "application/json");
    let seen = &upstream.requests()[0];
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.uri, "/v1/chat/completions?trace=1");
    assert_eq!(seen.body, REQUEST.as_bytes());
    assert_eq!(seen.headers["authorization"], "Bearer sk-test");
    assert_eq!(seen.headers["x-custom"], "a");
    assert_eq!(seen.headers["host"], upstream.addr().to_string());
    for gone in ["x-telemetry-agent", "x-hop"] {
        assert!(!seen.headers.contains_key(gone), "{gone} was forwarded");
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_is_forwarded_byte_for_byte() {
    let events = chat_stream("smollm2", 40, Some((9, 40)), Duration::from_millis(1));
    let expected: Vec<u8> = events.iter().flat_map(|(_, b)| b.to_vec()).collect();
    let upstream = FakeServer::start(move |_| Reply::events(events.clone())).unwrap();
    let proxy = RunningProxy::to(&upstream.url()).await;

    // The client asks for the usage chunk the upstream sends: the proxy asks nothing more.
    let body = r#"{"model":"smollm2","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#;
    let got = send(&client(), post(&proxy.url("/v1/chat/completions"), body)).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.headers["content-type"], "text/event-stream");
    assert_eq!(upstream.requests()[0].body, body.as_bytes());
    assert_eq!(got.body(), expected);
    // Passed on as they came, not gathered into one body.
    assert!(got.frames.len() > 10, "{} frames", got.frames.len());
    assert_eq!(upstream.streams_completed(), 1);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bodies_come_back_unchanged() {
    let upstream = FakeServer::start(|req| {
        if req.uri.path() == "/v1/chat/completions" {
            Reply::json(
                400,
                r#"{"error":{"code":400,"message":"the request exceeds the available context size","type":"exceed_context_size_error"}}"#,
            )
        } else {
            Reply {
                headers: vec![("content-type".into(), "text/plain".into()), ("retry-after".into(), "3".into())],
                ..Reply::json(503, Bytes::from_static(b"Loading model\n"))
            }
        }
    }).unwrap();
    let proxy = RunningProxy::to(&upstream.url()).await;
    let c = client();

    let got = send(&c, post(&proxy.url("/v1/chat/completions"), REQUEST)).await;
    assert_eq!(got.status, 400);
    assert_eq!(got.json()["error"]["type"], "exceed_context_size_error");
    let got = send(
        &c,
        Request::get(proxy.url("/health"))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, 503);
    assert_eq!(got.body(), b"Loading model\n");
    assert_eq!(got.headers["retry-after"], "3");
    assert_eq!(proxy.stats.get().calls_failed, 1);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_uploads_arrive_whole() {
    let upstream = FakeServer::start(|req| Reply::json(200, req.body.clone())).unwrap();
    let proxy = RunningProxy::to(&upstream.url()).await;
    let c = client::<Channel<Bytes, Infallible>>();
    let pieces = [&REQUEST[..10], &REQUEST[10..47], &REQUEST[47..]];

    // A recorded path (read ahead before forwarding) and one that streams through.
    for path in ["/v1/chat/completions", "/v1/audio/transcriptions"] {
        let (mut tx, body) = Channel::<Bytes, Infallible>::new(1);
        let request = Request::post(proxy.url(path)).body(body).unwrap();
        let sender = tokio::spawn(async move {
            for piece in pieces {
                tx.send_data(Bytes::from(piece)).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let got = send(&c, request).await;
        sender.await.unwrap();
        assert_eq!(got.status, 200, "{path}");
        assert_eq!(got.body(), REQUEST.as_bytes(), "{path}");
    }
    let seen = upstream.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|r| r.body == REQUEST.as_bytes()));
    proxy.shutdown().await;
}

/// An upstream whose streamed answers the test writes itself: for each request it hands over
/// the sender of the answer's body (an SSE stream), so that a test can send the next chunk
/// once the client has the previous one.
async fn hand_fed_upstream() -> (String, mpsc::Receiver<Sender<Bytes, Infallible>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (streams, handed) = mpsc::channel(1);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let streams = streams.clone();
            let service = service_fn(move |_| {
                let streams = streams.clone();
                async move {
                    let (tx, body) = Channel::<Bytes, Infallible>::new(1);
                    let _ = streams.send(tx).await;
                    Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(body)
                }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (url, handed)
}

/// The next data frame of `body` and when it arrived (`None` at the end); fails after 10 s.
async fn next_frame(body: &mut Incoming) -> Option<(Instant, Bytes)> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("a frame within 10 s")?
            .unwrap();
        if let Ok(data) = frame.into_data() {
            return Some((Instant::now(), data));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_chunk_arrives_when_sent_not_batched() {
    // Each chunk is sent upstream only once the client has the one before (else the wait for
    // it fails): a proxy holding a chunk back until more comes cannot pass, and the times
    // measured are the proxy's own, not those of a busy machine's scheduling before the send.
    let (url, mut streams) = hand_fed_upstream().await;
    let proxy = RunningProxy::to(&url).await;
    let c = client();
    let response = c
        .request(post(&proxy.url("/v1/chat/completions"), REQUEST))
        .await
        .unwrap();
    let mut body = response.into_body();
    let mut upstream = streams.recv().await.unwrap();

    let sent = Instant::now();
    upstream
        .send_data(Bytes::from_static(b"data: {\"a\":1}\n\n"))
        .await
        .unwrap();
    let mut frames = vec![next_frame(&mut body).await.expect("the first event")];
    tokio::time::sleep(Duration::from_millis(200)).await;
    for event in [&b"data: {\"b\":2}\n\n"[..], b"data: [DONE]\n\n"] {
        upstream.send_data(Bytes::from_static(event)).await.unwrap();
    }
    drop(upstream);
    while let Some(frame) = next_frame(&mut body).await {
        frames.push(frame);
    }

    let got: Vec<u8> = frames.iter().flat_map(|(_, b)| b.to_vec()).collect();
    assert_eq!(
        got,
        b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n"
    );
    let first = frames[0].0;
    let second = frames
        .iter()
        .find(|(_, b)| b.starts_with(b"data: {\"b\""))
        .expect("the second event in a frame of its own")
        .0;
    assert_eq!(
        &frames[0].1[..],
        b"data: {\"a\":1}\n\n",
        "first event alone"
    );
    let gap = second - first;
    assert!(
        gap >= Duration::from_millis(180) && gap < Duration::from_millis(400),
        "second chunk {gap:?} after the first"
    );
    assert!(
        first - sent < Duration::from_millis(150),
        "first chunk held back: {:?}",
        first - sent
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_paths_are_forwarded_too() {
    let upstream = FakeServer::start(|req| {
        Reply::json(
            200,
            format!(r#"{{"method":"{}","path":"{}"}}"#, req.method, req.uri),
        )
    })
    .unwrap();
    let proxy = RunningProxy::to(&format!("{}/prefix", upstream.url())).await;
    let c = client();
    for (method, path) in [
        ("GET", "/v1/models"),
        ("DELETE", "/v1/files/f-1?x=y"),
        ("GET", "/v1/chat/completions"),
        // Without a MetricsSource the proxy does not answer /metrics itself.
        ("GET", "/metrics"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(proxy.url(path))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let got = send(&c, request).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.json()["method"], method);
        assert_eq!(got.json()["path"], format!("/prefix{path}"));
    }
    assert_eq!(
        proxy.stats.get().calls_recorded,
        0,
        "only completion POSTs are calls"
    );
    proxy.shutdown().await;
}

/// Reads from `s` until `done` holds for what came (or 5 s pass, or the connection closes).
async fn read_until(s: &mut tokio::net::TcpStream, done: impl Fn(&str) -> bool) -> (String, bool) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            if done(&String::from_utf8_lossy(&got)) {
                return false;
            }
        }
    })
    .await
    .unwrap_or(false);
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

/// A client at HTTP/1.1's edges: a body sent only after the proxy's `100 Continue`, two
/// requests pipelined in one write, an HTTP/1.0 request. Each is answered, in order, on its
/// connection, and each completion is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_pipelined_and_http10_requests_are_answered_and_recorded() {
    use tokio::io::AsyncWriteExt;
    let upstream =
        FakeServer::start(|_| Reply::json(200, chat_completion("smollm2", 9, 4))).unwrap();
    let (proxy, records) = common::recording_proxy(&upstream.url(), |t| t).await;
    let head = |version: &str, extra: &str| {
        format!(
            "POST /v1/chat/completions {version}\r\nHost: t\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n",
            REQUEST.len()
        )
    };
    let answers = |t: &str| t.matches("\"object\":\"chat.completion\"").count();

    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(head("HTTP/1.1", "Expect: 100-continue\r\n").as_bytes())
        .await
        .unwrap();
    let (got, _) = read_until(&mut s, |t| t.ends_with("\r\n\r\n")).await;
    assert_eq!(got, "HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(REQUEST.as_bytes()).await.unwrap();
    let (got, closed) = read_until(&mut s, |t| answers(t) == 1).await;
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n") && !closed, "{got}");

    let two = [head("HTTP/1.1", ""), REQUEST.to_owned()]
        .concat()
        .repeat(2);
    s.write_all(two.as_bytes()).await.unwrap();
    let (got, closed) = read_until(&mut s, |t| answers(t) == 2).await;
    assert_eq!(got.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{got}");
    assert!(!closed);

    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(
        [head("HTTP/1.0", ""), REQUEST.to_owned()]
            .concat()
            .as_bytes(),
    )
    .await
    .unwrap();
    let (got, closed) = read_until(&mut s, |_| false).await;
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.contains("connection: close\r\n") && answers(&got) == 1 && closed);

    common::eventually("four records", || common::records(&records).len() == 4).await;
    assert_eq!(upstream.request_count(), 4);
    proxy.shutdown().await;
}
