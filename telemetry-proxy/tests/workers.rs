//! Several workers (`ProxyConfig::workers`): one port, a listener and a runtime per worker, and
//! still every call recorded once, the counters and health totals of all workers, one
//! connection limit, and a shutdown that reaches every worker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{RunningProxy, eventually, post, send};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use telemetry_core::{EventBus, EventType};
use telemetry_openai::fake::{FakeServer, Reply, chat_completion, chat_stream};
use telemetry_proxy::{
    AGENT_HEADER, Proxy, ProxyConfig, ProxyError, ProxyTelemetry, Routes, Upstream,
};
use tokio::task::JoinSet;

const CHAT: &str = r#"{"model":"requested","messages":[{"role":"user","content":"hi"}]}"#;
const STREAM: &str =
    r#"{"model":"requested","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#;

/// A client that opens a connection per request, so the kernel spreads them over the workers.
fn fresh_connections() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http()
}

/// Each record's agent, with the name of the thread that published it (the worker's).
#[derive(Clone, Default)]
struct Published(Arc<Mutex<Vec<(String, String)>>>);

impl Published {
    fn on(bus: &EventBus) -> Published {
        let published = Published::default();
        let sink = published.clone();
        bus.subscribe(EventType::TelemetryRecord, move |e| {
            if let Some(r) = e.as_record() {
                let thread = std::thread::current().name().unwrap_or("").to_owned();
                sink.0.lock().unwrap().push((r.agent.clone(), thread));
            }
        });
        published
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// The agents recorded, and whether the worker on a thread of its own published some of
    /// them and another worker the rest.
    fn agents_and_both_workers(&self) -> (HashSet<String>, bool) {
        let all = self.0.lock().unwrap();
        let agents = all.iter().map(|(a, _)| a.clone()).collect();
        let second = all.iter().filter(|(_, t)| t == "proxy-worker-1").count();
        (agents, second > 0 && second < all.len())
    }
}

/// A proxy of `workers` workers to `upstream`, recording on a bus of its own.
async fn proxy(
    upstream: &str,
    workers: usize,
    configure: impl FnOnce(ProxyConfig) -> ProxyConfig,
) -> (RunningProxy, Arc<EventBus>) {
    let bus = Arc::new(EventBus::new());
    let config = ProxyConfig::new(Routes::new(Upstream::parse(upstream).unwrap()))
        .telemetry(ProxyTelemetry::new(Arc::clone(&bus)))
        .workers(workers);
    (RunningProxy::start(configure(config)).await, bus)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_serve_many_connections_and_record_each_call_once_in_the_store() {
    const BLOCKING: usize = 300;
    const STREAMS: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let store = telemetry_store::TelemetryStore::open(dir.path().join("workers.db")).unwrap();
    let events = chat_stream("served", 8, Some((3, 8)), Duration::ZERO);
    let upstream = FakeServer::start(move |request| {
        if request.body.windows(6).any(|w| w == b"stream") {
            Reply::events(events.clone())
        } else {
            Reply::json(200, chat_completion("served", 4, 6))
        }
    })
    .unwrap();
    let (proxy, bus) = proxy(&upstream.url(), 2, |c| c).await;
    store.subscribe_to_bus(&bus);
    let published = Published::on(&bus);
    let url = proxy.url("/v1/chat/completions");
    let c = fresh_connections();
    let mut calls = JoinSet::new();
    for i in 0..BLOCKING + STREAMS {
        let (c, url) = (c.clone(), url.clone());
        calls.spawn(async move {
            let mut request = post(&url, if i < BLOCKING { CHAT } else { STREAM });
            request
                .headers_mut()
                .insert(AGENT_HEADER, format!("caller-{i}").parse().unwrap());
            let response = c.request(request).await.unwrap();
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, body.len())
        });
    }
    while let Some(call) = calls.join_next().await {
        let (status, len) = call.unwrap();
        assert_eq!(status, 200);
        assert!(len > 0);
    }
    let n = BLOCKING + STREAMS;
    eventually("every record", || published.len() >= n).await;
    let report = proxy.shutdown().await;
    let (agents, both) = published.agents_and_both_workers();
    assert_eq!(published.len(), n, "one record per call, no more");
    assert_eq!(agents.len(), n, "each call recorded once");
    assert!(both, "the kernel gave both workers connections");
    let s = report.stats;
    assert_eq!(
        (s.calls_recorded, s.calls_failed, s.calls_cancelled),
        (n as u64, 0, 0)
    );
    assert_eq!(s.requests, n as u64);
    assert_eq!((s.connections, report.connections_cut), (0, 0));
    store.flush().unwrap();
    assert_eq!(store.stats().written, n as u64, "the store has every call");
    assert_eq!(upstream.request_count(), n as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_shows_the_totals_of_every_worker() {
    const CALLS: usize = 40;
    let upstream =
        FakeServer::start(|_| Reply::json(200, chat_completion("served", 4, 6))).unwrap();
    let (proxy, bus) = proxy(&upstream.url(), 2, |c| c).await;
    let published = Published::on(&bus);
    let c = fresh_connections();
    for _ in 0..CALLS {
        assert_eq!(
            send(&c, post(&proxy.url("/v1/chat/completions"), CHAT))
                .await
                .status,
            200
        );
    }
    eventually("every record", || published.len() >= CALLS).await;
    assert!(published.agents_and_both_workers().1, "both workers served");
    // Health asked on fresh connections, so both workers answer some: each says the totals.
    for i in 0..16 {
        let health = send(
            &c,
            http::Request::get(proxy.url("/telemetry/health"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .json();
        assert_eq!(health["proxy"]["calls_recorded"], CALLS as u64, "{health}");
        assert_eq!(
            health["proxy"]["requests"],
            (CALLS + i + 1) as u64,
            "{health}"
        );
    }
    assert_eq!(proxy.stats.get().calls_recorded, CALLS as u64);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_reaches_every_worker_and_lets_their_streams_finish() {
    const STREAMS: usize = 24;
    let events = chat_stream("smollm2", 20, Some((5, 20)), Duration::from_millis(10));
    let expected: Vec<u8> = events.iter().flat_map(|(_, b)| b.to_vec()).collect();
    let upstream = FakeServer::start(move |_| Reply::events(events.clone())).unwrap();
    let (proxy, bus) = proxy(&upstream.url(), 2, |c| c).await;
    let published = Published::on(&bus);
    let url = proxy.url("/v1/chat/completions");
    let c = fresh_connections();
    let mut readers = JoinSet::new();
    for _ in 0..STREAMS {
        let (c, url) = (c.clone(), url.clone());
        readers.spawn(async move { send(&c, post(&url, STREAM)).await });
    }
    eventually("every stream to start", || {
        upstream.request_count() == STREAMS as u64
    })
    .await;
    let report = proxy.shutdown().await;
    while let Some(got) = readers.join_next().await {
        assert_eq!(
            got.unwrap().body(),
            expected,
            "a stream was cut by the shutdown"
        );
    }
    assert_eq!(report.connections_cut, 0);
    let s = report.stats;
    assert_eq!((s.calls_recorded, s.calls_cancelled), (STREAMS as u64, 0));
    assert_eq!(published.len(), STREAMS);
    assert!(
        published.agents_and_both_workers().1,
        "both workers had streams"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_grace_every_workers_connections_are_cut_and_counted() {
    // The kernel hashes each connection to a worker's listener: with 12 streams all of them
    // land on one worker (and the last assertion fails) about once in 2 048 runs, the likeliest
    // cause of this test's one failure in a workspace run (not reproduced in 240 runs under
    // load); with 32, about once in 2 billion.
    const STREAMS: usize = 32;
    // A stream that pauses longer than any test runs.
    let events = chat_stream("smollm2", 2, None, Duration::from_secs(3600));
    let upstream = FakeServer::start(move |_| Reply::events(events.clone())).unwrap();
    let (proxy, bus) = proxy(&upstream.url(), 2, |c| {
        c.shutdown_grace(Duration::from_millis(100))
    })
    .await;
    let published = Published::on(&bus);
    let url = proxy.url("/v1/chat/completions");
    let c = fresh_connections();
    let mut heads = JoinSet::new();
    for _ in 0..STREAMS {
        let (c, url) = (c.clone(), url.clone());
        heads.spawn(async move {
            let response = c.request(post(&url, STREAM)).await.unwrap();
            let mut body = response.into_body();
            // Read to the end (cut by the shutdown) or an error.
            while let Some(Ok(_)) = body.frame().await {}
        });
    }
    eventually("every stream to start", || {
        upstream.request_count() == STREAMS as u64
    })
    .await;
    eventually("every connection to be open", || {
        proxy.stats.get().connections == STREAMS as u64
    })
    .await;
    let report = proxy.shutdown().await;
    assert_eq!(
        report.connections_cut, STREAMS as u64,
        "summed over the workers"
    );
    assert_eq!(report.stats.connections, 0);
    assert_eq!(report.stats.calls_cancelled, STREAMS as u64);
    while heads.join_next().await.is_some() {}
    eventually("every record", || published.len() >= STREAMS).await;
    assert!(
        published.agents_and_both_workers().1,
        "both workers had streams"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_is_one_total_for_every_worker() {
    const LIMIT: usize = 4;
    const CLIENTS: usize = 8;
    let events = chat_stream("smollm2", 2, None, Duration::from_secs(3600));
    let upstream = FakeServer::start(move |_| Reply::events(events.clone())).unwrap();
    let (proxy, _bus) = proxy(&upstream.url(), 2, |c| {
        c.max_connections(LIMIT)
            .shutdown_grace(Duration::from_millis(50))
    })
    .await;
    let url = proxy.url("/v1/chat/completions");
    let c = fresh_connections();
    let mut statuses = Vec::new();
    let mut open = Vec::new();
    for _ in 0..CLIENTS {
        // One at a time, so each connection is accepted (or turned away) before the next.
        let response = c.request(post(&url, STREAM)).await.unwrap();
        statuses.push(response.status());
        open.push(response);
    }
    let served = statuses.iter().filter(|s| **s == 200).count();
    let busy = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!(served + busy, CLIENTS, "{statuses:?}");
    // A worker waiting for its next connection holds a slot: up to workers - 1 of them.
    assert!(
        (LIMIT - 1..=LIMIT).contains(&served),
        "{served} served of a limit of {LIMIT}: {statuses:?}"
    );
    assert_eq!(
        proxy.stats.get().connections_over_limit,
        busy as u64,
        "the others were over the limit"
    );
    drop(open);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_0_is_one_port_for_every_worker_and_a_port_in_use_is_refused() {
    let upstream =
        FakeServer::start(|_| Reply::json(200, chat_completion("served", 1, 1))).unwrap();
    let routes = Routes::new(Upstream::parse(&upstream.url()).unwrap());
    let proxy = Proxy::bind(
        "127.0.0.1:0".parse().unwrap(),
        ProxyConfig::new(routes.clone()).workers(3),
    )
    .await
    .unwrap();
    let addr = proxy.local_addr();
    assert_ne!(addr.port(), 0);
    for workers in [1, 2] {
        match Proxy::bind(addr, ProxyConfig::new(routes.clone()).workers(workers)).await {
            Err(ProxyError::Bind { addr: a, source }) => {
                assert_eq!(a, addr);
                assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
            }
            other => panic!("{workers} workers on a port in use: {other:?}"),
        }
    }
    // Dropped unrun, its workers end and give the port back.
    drop(proxy);
    eventually("the port to be free", || {
        std::net::TcpListener::bind(addr).is_ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_call_on_any_worker_is_counted_in_the_totals() {
    const CALLS: usize = 24;
    let upstream =
        FakeServer::start(|_| Reply::json(500, r#"{"error":{"message":"down"}}"#)).unwrap();
    let (proxy, bus) = proxy(&upstream.url(), 2, |c| c).await;
    let published = Published::on(&bus);
    let c = fresh_connections();
    for _ in 0..CALLS {
        let got = send(&c, post(&proxy.url("/v1/chat/completions"), CHAT)).await;
        assert_eq!(got.status, 500);
    }
    eventually("every record", || published.len() >= CALLS).await;
    let s = proxy.shutdown().await.stats;
    assert_eq!(
        (s.calls_recorded, s.calls_failed),
        (CALLS as u64, CALLS as u64)
    );
    assert!(published.agents_and_both_workers().1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_future_dropped_midway_stops_every_worker() {
    let upstream =
        FakeServer::start(|_| Reply::json(200, chat_completion("served", 1, 1))).unwrap();
    let routes = Routes::new(Upstream::parse(&upstream.url()).unwrap());
    let proxy = Proxy::bind(
        "127.0.0.1:0".parse().unwrap(),
        ProxyConfig::new(routes).workers(3),
    )
    .await
    .unwrap();
    let addr = proxy.local_addr();
    let stats = proxy.stats();
    let run = tokio::spawn(proxy.run(std::future::pending()));
    let c = fresh_connections();
    for _ in 0..12 {
        let got = send(
            &c,
            post(&format!("http://{addr}/v1/chat/completions"), CHAT),
        )
        .await;
        assert_eq!(got.status, 200);
    }
    eventually("every call recorded", || stats.get().calls_recorded == 12).await;
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    // Every worker's listener closes: the port can be bound again.
    eventually("the port to be free", || {
        std::net::TcpListener::bind(addr).is_ok()
    })
    .await;
}
