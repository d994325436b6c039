//! Shared by the proxy's integration tests: a proxy in front of a fake upstream, and a client
//! that notes when each body frame arrives.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use telemetry_proxy::{Proxy, ProxyConfig, Routes, ShutdownReport, StatsHandle, Upstream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running proxy.
pub struct RunningProxy {
    pub addr: SocketAddr,
    pub stats: StatsHandle,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<ShutdownReport>>,
}

impl RunningProxy {
    pub async fn start(config: ProxyConfig) -> RunningProxy {
        let proxy = Proxy::bind("127.0.0.1:0".parse().unwrap(), config)
            .await
            .unwrap();
        let addr = proxy.local_addr();
        let stats = proxy.stats();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy.run(async move {
            let _ = stopped.await;
        }));
        RunningProxy {
            addr,
            stats,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn to(upstream: &str) -> RunningProxy {
        RunningProxy::start(ProxyConfig::new(Routes::new(
            Upstream::parse(upstream).unwrap(),
        )))
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn shutdown(mut self) -> ShutdownReport {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap()
    }
}

/// A response, with when the headers and each body frame arrived.
#[derive(Debug)]
pub struct Received {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub frames: Vec<(Instant, Bytes)>,
    pub sent: Instant,
    pub head_at: Instant,
}

impl Received {
    pub fn body(&self) -> Vec<u8> {
        self.frames
            .iter()
            .flat_map(|(_, b)| b.iter().copied())
            .collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body()).unwrap()
    }
}

pub fn client<B>() -> Client<HttpConnector, B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends `request` and reads the whole response, frame by frame.
pub async fn send<B>(client: &Client<HttpConnector, B>, request: Request<B>) -> Received
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let sent = Instant::now();
    let response = client.request(request).await.unwrap();
    let head_at = Instant::now();
    let (parts, mut body) = response.into_parts();
    let mut frames = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            frames.push((Instant::now(), data));
        }
    }
    Received {
        status: parts.status,
        headers: parts.headers,
        frames,
        sent,
        head_at,
    }
}

/// A POST of `body` to `url`.
pub fn post(url: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .unwrap()
}

/// Waits until `f` holds (up to 10 s).
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The records published on a bus, kept by a subscriber.
#[derive(Clone, Default)]
pub struct Records(std::sync::Arc<std::sync::Mutex<Vec<telemetry_core::TelemetryRecord>>>);

impl Records {
    /// Subscribes to `bus`'s records.
    pub fn on(bus: &telemetry_core::EventBus) -> Records {
        let records = Records::default();
        let sink = records.clone();
        bus.subscribe(telemetry_core::EventType::TelemetryRecord, move |e| {
            if let Some(r) = e.as_record() {
                sink.0
                    .lock()
                    .unwrap()
                    .push(telemetry_core::TelemetryRecord::clone(r));
            }
        });
        records
    }
}

/// A proxy to `upstream` whose records are kept in the returned [`Records`].
pub async fn recording_proxy(
    upstream: &str,
    telemetry: impl FnOnce(telemetry_proxy::ProxyTelemetry) -> telemetry_proxy::ProxyTelemetry,
) -> (RunningProxy, Records) {
    let bus = std::sync::Arc::new(telemetry_core::EventBus::new());
    let records = Records::on(&bus);
    let config = ProxyConfig::new(Routes::new(Upstream::parse(upstream).unwrap()))
        .telemetry(telemetry(telemetry_proxy::ProxyTelemetry::new(bus)));
    (RunningProxy::start(config).await, records)
}

/// The records so far, in order.
pub fn records(records: &Records) -> Vec<telemetry_core::TelemetryRecord> {
    records.0.lock().unwrap().clone()
}

/// A proxy built by `configure` from a config whose records are kept in the returned
/// [`Records`].
pub async fn proxy_with(
    configure: impl FnOnce(ProxyConfig) -> ProxyConfig,
    routes: Routes,
) -> (RunningProxy, Records) {
    let bus = std::sync::Arc::new(telemetry_core::EventBus::new());
    let records = Records::on(&bus);
    let config =
        configure(ProxyConfig::new(routes).telemetry(telemetry_proxy::ProxyTelemetry::new(bus)));
    (RunningProxy::start(config).await, records)
}

/// Routes with every request to `url`.
pub fn to(url: &str) -> Routes {
    Routes::new(Upstream::parse(url).unwrap())
}

/// This process's resident memory, KiB (from /proc).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A loopback server that accepts connections, reads what they send and never answers.
pub async fn silent_upstream() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            held.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
                // Held open until the peer closes.
                std::future::pending::<()>().await;
            }));
        }
    });
    (url, task)
}

/// A raw HTTP/1.1 request head for a POST of `len` body bytes to `path`.
pub fn post_head(path: &str, len: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    )
}

/// Reads what the peer sends until it closes or `timeout` passes; the text read.
pub async fn read_reply(stream: &mut tokio::net::TcpStream, timeout: Duration) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(timeout, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    // One response is enough.
                    let text = String::from_utf8_lossy(&got);
                    if let Some((head, body)) = text.split_once("\r\n\r\n")
                        && let Some(len) = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().to_owned())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                        && body.len() >= len
                    {
                        break;
                    }
                }
            }
        }
    })
    .await;
    String::from_utf8_lossy(&got).into_owned()
}
