//! A compressed answer is forwarded untouched and read decoded on the side: a gzip (or deflate,
//! br, zstd) blocking answer gives its usage, a gzip stream its chunks, TTFT and `[DONE]`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use common::{client, eventually, post, proxy_with, records, send, to};
use telemetry_core::Outcome;
use telemetry_openai::fake::{FakeServer, Reply, chat_completion, chat_stream};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_blocking_answers_are_recorded_with_their_usage() {
    let plain = chat_completion("served", 17, 9);
    let deflate = {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&plain).unwrap();
        e.finish().unwrap()
    };
    let encodings: Vec<(&str, Vec<u8>)> = vec![
        ("gzip", gzip(&plain)),
        ("deflate", deflate),
        ("zstd", zstd::stream::encode_all(&plain[..], 3).unwrap()),
    ];
    for (encoding, body) in encodings {
        let reply = Reply::json(200, body.clone()).header("content-encoding", encoding);
        let upstream = FakeServer::start(move |_| reply.clone()).unwrap();
        let (proxy, bus) = proxy_with(|c| c, to(&upstream.url())).await;
        let mut request = post(
            &proxy.url("/v1/chat/completions"),
            r#"{"model":"m","messages":[]}"#,
        );
        request.headers_mut().insert(
            "accept-encoding",
            "gzip, deflate, br, zstd".parse().unwrap(),
        );
        let got = send(&client(), request).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.headers["content-encoding"], encoding);
        assert_eq!(got.body(), body, "{encoding}: forwarded untouched");
        eventually("the record", || records(&bus).len() == 1).await;
        let r = &records(&bus)[0];
        assert_eq!(r.outcome, Outcome::Ok, "{encoding}");
        assert_eq!(
            (r.prompt_tokens, r.completion_tokens, r.model_id.as_str()),
            (17, 9, "served"),
            "{encoding}"
        );
        assert!(!r.tokens_counted, "{encoding}");
        proxy.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_stream_is_recorded_chunk_by_chunk() {
    // One gzip member over the whole stream, flushed after each event as a server would.
    let events = chat_stream("served", 5, Some((4, 5)), Duration::from_millis(20));
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut chunks = Vec::new();
    for (delay, event) in &events {
        encoder.write_all(event).unwrap();
        encoder.flush().unwrap();
        chunks.push((*delay, Bytes::from(std::mem::take(encoder.get_mut()))));
    }
    let tail = encoder.finish().unwrap();
    chunks.push((Duration::ZERO, Bytes::from(tail)));
    let sent: Vec<u8> = chunks.iter().flat_map(|(_, b)| b.to_vec()).collect();
    let reply = Reply::events(chunks).header("content-encoding", "gzip");
    let upstream = FakeServer::start(move |_| reply.clone()).unwrap();
    let (proxy, bus) = proxy_with(|c| c, to(&upstream.url())).await;
    let got = send(
        &client(),
        post(
            &proxy.url("/v1/chat/completions"),
            r#"{"model":"m","messages":[],"stream":true}"#,
        ),
    )
    .await;
    assert_eq!(got.body(), sent, "forwarded untouched");
    eventually("the record", || records(&bus).len() == 1).await;
    let r = &records(&bus)[0];
    assert_eq!(r.outcome, Outcome::Ok, "{}", r.error_message);
    assert_eq!((r.prompt_tokens, r.completion_tokens), (4, 5));
    assert!(r.is_streaming && r.ttft.is_some() && r.mean_itl_ms.is_some());
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_decode_is_forwarded_and_recorded_without_tokens() {
    let reply = Reply::json(200, &b"this is not gzip"[..]).header("content-encoding", "gzip");
    let upstream = FakeServer::start(move |_| reply.clone()).unwrap();
    let (proxy, bus) = proxy_with(|c| c, to(&upstream.url())).await;
    let got = send(
        &client(),
        post(&proxy.url("/v1/chat/completions"), r#"{"model":"m"}"#),
    )
    .await;
    assert_eq!(got.body(), b"this is not gzip");
    eventually("the record", || records(&bus).len() == 1).await;
    let r = &records(&bus)[0];
    assert_eq!(r.outcome, Outcome::Ok);
    assert!(r.tokens_counted && r.total_tokens == 0);
    proxy.shutdown().await;
}
