//! What the proxy answers itself rather than forwards: `CONNECT` (refused with a 501, never
//! tunnelled), `/metrics` from a `MetricsSource` (the scraper's `Accept` reaches the source, at
//! most `MAX_CONCURRENT_RENDERS` renders at once) and `/telemetry/health` (the store's health as
//! a JSON value).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{RunningProxy, client, send};
use http::Request;
use http_body_util::Full;
use telemetry_openai::fake::{FakeServer, Reply, chat_completion};
use telemetry_proxy::{
    Exposition, MAX_CONCURRENT_RENDERS, MetricsSource, ProxyConfig, ProxyTelemetry, Routes,
    Upstream,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn upstream() -> FakeServer {
    FakeServer::start(|_| Reply::json(200, chat_completion("m", 1, 1))).unwrap()
}

fn config(upstream: &FakeServer) -> ProxyConfig {
    ProxyConfig::new(Routes::new(Upstream::parse(&upstream.url()).unwrap()))
}

/// `CONNECT host:port` asks the proxy to be a tunnel: it answers 501 with an OpenAI-style
/// error, and nothing reaches the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_is_refused_not_forwarded() {
    let upstream = upstream().await;
    let proxy = RunningProxy::start(config(&upstream)).await;
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        .await
        .unwrap();
    let mut reply = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut reply))
        .await
        .expect("no answer to CONNECT within 10 s")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply[..n]).into_owned();
    assert!(reply.starts_with("HTTP/1.1 501"), "{reply}");
    assert!(reply.contains("connect_not_supported"), "{reply}");
    assert!(reply.contains("not a forward proxy"), "{reply}");
    // An answer of the proxy's own is dated (RFC 9110 §6.6.1).
    let date = reply
        .lines()
        .find_map(|l| l.strip_prefix("date: "))
        .unwrap_or_else(|| panic!("no date in {reply}"));
    let when = httpdate::parse_http_date(date).unwrap();
    let apart = std::time::SystemTime::now()
        .duration_since(when)
        .unwrap_or_else(|e| e.duration());
    assert!(apart < Duration::from_secs(60), "{date}");
    assert_eq!(upstream.request_count(), 0);
    proxy.shutdown().await;
}

/// A source that notes the `Accept` it is given and how many renders run at once.
#[derive(Default)]
struct Probe {
    accepts: Mutex<Vec<Option<String>>>,
    running: AtomicUsize,
    most: AtomicUsize,
}

/// The proxy's handle of a [`Probe`] the test keeps too.
struct ProbeSource(Arc<Probe>);

impl MetricsSource for ProbeSource {
    fn render(&self, accept: Option<&str>) -> Result<Exposition, String> {
        let probe = &self.0;
        probe
            .accepts
            .lock()
            .unwrap()
            .push(accept.map(str::to_owned));
        let now = probe.running.fetch_add(1, Ordering::SeqCst) + 1;
        probe.most.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
        probe.running.fetch_sub(1, Ordering::SeqCst);
        let openmetrics = accept.is_some_and(|a| a.contains("openmetrics"));
        Ok(Exposition {
            content_type: if openmetrics {
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            } else {
                "text/plain; version=0.0.4; charset=utf-8"
            },
            text: "up 1\n".to_owned(),
        })
    }
}

fn scrape(proxy: &RunningProxy, accept: Option<&str>) -> Request<Full<Bytes>> {
    let mut request = Request::get(proxy.url("/metrics"));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    request.body(Full::new(Bytes::new())).unwrap()
}

/// The scraper's `Accept` reaches the source, whose content type is answered, with
/// `Vary: accept`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_hand_the_scrapers_accept_to_the_source() {
    let upstream = upstream().await;
    let probe = Arc::new(Probe::default());
    let proxy =
        RunningProxy::start(config(&upstream).metrics(Arc::new(ProbeSource(Arc::clone(&probe)))))
            .await;
    let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let got = send(&client(), scrape(&proxy, Some(accept))).await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.headers["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert_eq!(got.headers["vary"], "accept");
    let got = send(&client(), scrape(&proxy, None)).await;
    assert_eq!(
        got.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(
        *probe.accepts.lock().unwrap(),
        vec![Some(accept.to_owned()), None]
    );
    assert_eq!(upstream.request_count(), 0);
    proxy.shutdown().await;
}

/// Twelve scrapes at once: every one is answered, at most four render at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_four_metrics_renders_run_at_once() {
    let upstream = upstream().await;
    let probe = Arc::new(Probe::default());
    let proxy =
        RunningProxy::start(config(&upstream).metrics(Arc::new(ProbeSource(Arc::clone(&probe)))))
            .await;
    let client = client();
    let scrapes: Vec<_> = (0..12)
        .map(|_| {
            let (client, request) = (client.clone(), scrape(&proxy, None));
            tokio::spawn(async move { send(&client, request).await.status })
        })
        .collect();
    for scrape in scrapes {
        assert_eq!(scrape.await.unwrap(), 200);
    }
    assert_eq!(MAX_CONCURRENT_RENDERS, 4);
    let most = probe.most.load(Ordering::SeqCst);
    assert!(
        (2..=MAX_CONCURRENT_RENDERS).contains(&most),
        "{most} renders ran at once"
    );
    assert_eq!(probe.accepts.lock().unwrap().len(), 12);
    proxy.shutdown().await;
}

/// The store's health in `/telemetry/health` is a JSON object with its state, not a Rust debug
/// string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_gives_the_stores_state_as_json() {
    let upstream = upstream().await;
    let store = telemetry_store::TelemetryStore::in_memory().unwrap();
    let bus = Arc::new(telemetry_core::EventBus::new());
    let telemetry = ProxyTelemetry::new(bus).store(store.clone());
    let proxy = RunningProxy::start(config(&upstream).telemetry(telemetry)).await;
    let health = |proxy: &RunningProxy| {
        let request = Request::get(proxy.url("/telemetry/health"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        async move { send(&client(), request).await.json() }
    };
    let body = health(&proxy).await;
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(
        body["telemetry"]["store"]["health"],
        serde_json::json!({"state": "healthy"}),
        "{body}"
    );
    store.close().unwrap();
    let body = health(&proxy).await;
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(
        body["telemetry"]["store"]["health"],
        serde_json::json!({"state": "closed"}),
        "{body}"
    );
    proxy.shutdown().await;
}
