//! What many clients can make the proxy hold is bounded: connections trickling their bodies are
//! cut at the body timeout and never keep `/telemetry/health` from answering; unfinished large
//! uploads hold no more than the one buffer budget (resident memory read from /proc); a client
//! that aborts its upload is recorded `cancelled`, not as an upstream failure. (Scaled down from
//! the defaults through `ProxyConfig`: tens of connections instead of thousands, timeouts of a
//! second instead of a minute.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{
    client, eventually, post, post_head, proxy_with, read_reply, records, rss_kib, send, to,
};
use http_body_util::Full;
use telemetry_core::Outcome;
use telemetry_openai::fake::{FakeServer, Reply, chat_completion};
use telemetry_proxy::{Routes, Upstream};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;

fn health_get(url: String) -> http::Request<Full<bytes::Bytes>> {
    http::Request::get(url)
        .body(Full::new(bytes::Bytes::new()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_bodies_are_cut_and_health_answers_while_every_slot_is_taken() {
    const SLOTS: usize = 16;
    const TRICKLERS: usize = 40;
    let upstream = FakeServer::start(|_| Reply::json(200, chat_completion("m", 3, 2))).unwrap();
    let (proxy, _bus) = proxy_with(
        |c| {
            c.max_connections(SLOTS)
                .body_timeout(Duration::from_millis(1500))
        },
        to(&upstream.url()),
    )
    .await;
    let rss_before = rss_kib();
    // More connections than slots, each sending one byte of its body every 200 ms.
    let started = Instant::now();
    let mut tricklers = Vec::new();
    for _ in 0..TRICKLERS {
        let addr = proxy.addr;
        tricklers.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(post_head("/v1/chat/completions", 1000).as_bytes())
                .await
                .unwrap();
            for _ in 0..1000 {
                if s.write_all(b" ").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                if started.elapsed() > Duration::from_secs(10) {
                    break;
                }
            }
            read_reply(&mut s, Duration::from_millis(100)).await
        }));
    }
    eventually("every slot to be taken", || {
        proxy.stats.get().connections >= SLOTS as u64
    })
    .await;

    // While the slots are full: health answers at once, a real request gets a quick 503.
    let c = client();
    let asked = Instant::now();
    let health = send(&c, health_get(proxy.url("/telemetry/health"))).await;
    assert!(
        health.status == 200 || health.status == 503,
        "{}",
        health.status
    );
    assert!(health.json()["proxy"]["connections"].as_u64().unwrap() >= SLOTS as u64);
    let busy = send(&client(), post(&proxy.url("/v1/chat/completions"), CHAT)).await;
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    if busy.status == 503 {
        assert_eq!(busy.json()["error"]["type"], "proxy_busy");
    }

    // The tricklers are cut at the body timeout; then real requests go through again.
    eventually("the tricklers to be cut", || {
        proxy.stats.get().connections < SLOTS as u64
    })
    .await;
    let got = send(&client(), post(&proxy.url("/v1/chat/completions"), CHAT)).await;
    assert_eq!(got.status, 200);
    let mut timed_out = 0;
    for t in tricklers {
        let reply = t.await.unwrap();
        timed_out += usize::from(reply.starts_with("HTTP/1.1 408"));
    }
    assert!(timed_out >= SLOTS, "{timed_out} of {TRICKLERS} got a 408");
    let stats = proxy.stats.get();
    assert!(stats.connections_over_limit > 0 && stats.requests_refused >= SLOTS as u64);
    let grown = rss_kib().saturating_sub(rss_before);
    eprintln!("slow-body flood: {TRICKLERS} connections on {SLOTS} slots, RSS grew {grown} KiB");
    assert!(grown < 64 * 1024, "RSS grew {grown} KiB");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_uploads_hold_no_more_than_the_buffer_budget() {
    const UPLOADS: usize = 48;
    const SENT: usize = 4 << 20;
    const BUDGET: usize = 16 << 20;
    let upstream = FakeServer::start(|_| Reply::json(200, chat_completion("m", 3, 2))).unwrap();
    // With a model route every body is read until its model is found: the worst case.
    let routes = Routes::new(Upstream::parse(&upstream.url()).unwrap())
        .route_spec(&format!("big={}", upstream.url()))
        .unwrap();
    let (proxy, bus) = proxy_with(
        |c| {
            c.buffer_budget(BUDGET)
                .capture_limit(8 << 20)
                .body_timeout(Duration::from_secs(3))
        },
        routes,
    )
    .await;
    let rss_before = rss_kib();
    // Each client announces 8 MiB of `messages` before its model, sends half, and stops.
    let chunk: &'static [u8] =
        Box::leak(format!(r#"{{"messages":[{{"content":"{}"#, "A".repeat(SENT)).into_boxed_str())
            .as_bytes();
    let mut held = Vec::new();
    for _ in 0..UPLOADS {
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(post_head("/v1/chat/completions", 8 << 20).as_bytes())
            .await
            .unwrap();
        held.push(tokio::spawn(async move {
            let _ = s.write_all(chunk).await;
            let reply = read_reply(&mut s, Duration::from_secs(6)).await;
            (s, reply)
        }));
    }
    eventually("the budget to be reached", || {
        proxy.stats.get().buffered_peak_bytes > (BUDGET - (1 << 20)) as u64
    })
    .await;
    // Let every upload arrive as far as the proxy lets it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = proxy.stats.get();
    let grown = rss_kib().saturating_sub(rss_before);
    eprintln!(
        "partial-upload flood: {UPLOADS} x {} MiB sent, budget {} MiB: buffered peak {} bytes, RSS grew {grown} KiB",
        SENT >> 20,
        BUDGET >> 20,
        stats.buffered_peak_bytes
    );
    assert!(stats.buffered_peak_bytes <= BUDGET as u64);
    // The client side's own memory (one shared 4 MiB chunk) and the runtime's are in this
    // figure too; without the budget the proxy alone would hold 192 MiB.
    assert!(grown < 96 * 1024, "RSS grew {grown} KiB");
    // Those over the budget were told so at once and recorded with the reason.
    let mut busy = 0;
    for h in held.drain(..) {
        let (s, reply) = h.await.unwrap();
        busy += usize::from(reply.starts_with("HTTP/1.1 503") && reply.contains("proxy_busy"));
        drop(s);
    }
    // Each upload held up to 4 MiB when the budget ran out: a handful fit, the rest are refused.
    assert!(busy >= UPLOADS - 2 * BUDGET / SENT, "{busy} refused");
    eventually("the records", || records(&bus).len() == UPLOADS).await;
    let refused = records(&bus)
        .iter()
        .filter(|r| r.error_kind == "proxy_busy")
        .count();
    assert_eq!(refused, busy);
    eventually("every byte to be given back", || {
        proxy.stats.get().buffered_bytes == 0
    })
    .await;
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_aborts_its_upload_is_cancelled_not_an_upstream_failure() {
    let upstream = FakeServer::start(|_| Reply::json(200, chat_completion("m", 3, 2))).unwrap();
    // Small capture limit: the second upload is past it, so forwarding has begun when it breaks.
    let (proxy, bus) = proxy_with(|c| c.capture_limit(64 * 1024), to(&upstream.url())).await;
    for sent in [10 * 1024, 200 * 1024] {
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(post_head("/v1/chat/completions", 1 << 20).as_bytes())
            .await
            .unwrap();
        let mut body = br#"{"model":"m","messages":[{"content":""#.to_vec();
        body.resize(sent, b'a');
        s.write_all(&body).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(s);
    }
    eventually("two records", || records(&bus).len() == 2).await;
    for r in records(&bus) {
        assert_eq!(r.outcome, Outcome::Cancelled, "{r:?}");
    }
    let stats = proxy.stats.get();
    assert_eq!(
        (
            stats.upstream_unreachable,
            stats.calls_cancelled,
            stats.calls_failed
        ),
        (0, 2, 0)
    );
    proxy.shutdown().await;
}
