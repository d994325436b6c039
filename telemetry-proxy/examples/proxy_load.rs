//! Load generator for the proxy (issue 14's performance targets): a fake upstream on loopback
//! answering a fixed chat completion (and a 256-chunk stream), 64 concurrent keep-alive
//! connections, direct and through the proxy in the same run. The proxy records every call into
//! a SQLite store through the bus, as `telemetry proxy` does.
//!
//! ```text
//! cargo run --release -p telemetry-proxy --features testing --example proxy_load -- [SECONDS] [RSS_REQUESTS]
//! ```
//!
//! Each phase runs SECONDS (default 5): blocking direct, blocking through the proxy, stream
//! direct, stream through the proxy. Printed per phase: requests/s, latency p50/p99 and, for
//! streams, time to the first body frame p50/p99; then the proxy/direct ratios and the added
//! latency. With RSS_REQUESTS (e.g. 1000000) a last phase sends that many blocking requests
//! through the proxy and prints the process's RSS every tenth of the way (upstream, proxy and
//! generator share the process, so flat RSS means none of them grows).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use telemetry_core::EventBus;
use telemetry_proxy::testing::{FakeReply, FakeUpstream, chat_completion, chat_stream};
use telemetry_proxy::{Proxy, ProxyConfig, ProxyTelemetry, Routes, Upstream};
use telemetry_store::TelemetryStore;

const CONNECTIONS: usize = 64;
const CHAT: &str =
    r#"{"model":"bench","messages":[{"role":"user","content":"hi"}],"max_tokens":16}"#;
const STREAM: &str = r#"{"model":"bench","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: u64 = args.first().map_or(5, |s| s.parse().expect("SECONDS"));
    let rss_requests: u64 = args.get(1).map_or(0, |s| s.parse().expect("RSS_REQUESTS"));

    // The upstream, on a thread and runtime of its own.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let blocking = chat_completion("bench", 9, 16);
            let stream = chat_stream("bench", 256, Some((9, 256)), Duration::ZERO);
            let upstream = FakeUpstream::start(move |req| {
                if req.body.len() == STREAM.len() {
                    FakeReply::sse(stream.clone())
                } else {
                    FakeReply::json(200, blocking.clone())
                }
            })
            .await;
            tx.send(upstream.addr()).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let upstream: SocketAddr = rx.recv().unwrap();

    // The proxy, recording into a store, on a thread and single-threaded runtime of its own
    // (as `telemetry proxy` runs by default).
    let dir = tempfile::tempdir().unwrap();
    let store = TelemetryStore::open(dir.path().join("proxy.db")).unwrap();
    let bus = Arc::new(EventBus::new());
    store.subscribe_to_bus(&bus);
    let config = ProxyConfig::new(Routes::new(
        Upstream::parse(&format!("http://{upstream}")).unwrap(),
    ))
    .telemetry(
        ProxyTelemetry::new(bus)
            .engine_name("bench")
            .store(store.clone()),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let proxy = Proxy::bind("127.0.0.1:0".parse().unwrap(), config)
                .await
                .unwrap();
            tx.send(proxy.local_addr()).unwrap();
            proxy.run(std::future::pending()).await;
        });
    });
    let proxy: SocketAddr = rx.recv().unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "proxy_load: {CONNECTIONS} connections, {seconds} s per phase; load average {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let run = |addr, body: &'static str, stream| {
        rt.block_on(phase(
            addr,
            body,
            stream,
            Duration::from_secs(seconds),
            u64::MAX,
        ))
    };
    let bd = run(upstream, CHAT, false);
    bd.print("blocking direct");
    let bp = run(proxy, CHAT, false);
    bp.print("blocking proxy ");
    let sd = run(upstream, STREAM, true);
    sd.print("stream   direct");
    let sp = run(proxy, STREAM, true);
    sp.print("stream   proxy ");
    println!(
        "blocking: throughput proxy/direct {:.2}x, added latency p50 {:+.0} us, p99 {:+.0} us",
        bp.rate() / bd.rate(),
        bp.pct(&bp.latency, 0.50) - bd.pct(&bd.latency, 0.50),
        bp.pct(&bp.latency, 0.99) - bd.pct(&bd.latency, 0.99),
    );
    println!(
        "stream:   throughput proxy/direct {:.2}x, added latency p50 {:+.0} us, p99 {:+.0} us, added first-frame p50 {:+.0} us, p99 {:+.0} us",
        sp.rate() / sd.rate(),
        sp.pct(&sp.latency, 0.50) - sd.pct(&sd.latency, 0.50),
        sp.pct(&sp.latency, 0.99) - sd.pct(&sd.latency, 0.99),
        sp.pct(&sp.first, 0.50) - sd.pct(&sd.first, 0.50),
        sp.pct(&sp.first, 0.99) - sd.pct(&sd.first, 0.99),
    );
    store.flush().unwrap();
    let s = store.stats();
    println!(
        "store: {} records written, {} dropped",
        s.written, s.dropped
    );

    if rss_requests > 0 {
        let step = (rss_requests / 10).max(1);
        let mut done = 0;
        println!("RSS over {rss_requests} blocking requests through the proxy:");
        println!("  {:>9} requests  RSS {:>7} kB", 0, rss_kb());
        while done < rss_requests {
            let r = rt.block_on(phase(proxy, CHAT, false, Duration::from_secs(3600), step));
            done += r.latency.len() as u64;
            println!(
                "  {done:>9} requests  RSS {:>7} kB  ({:.0} req/s)",
                rss_kb(),
                r.rate()
            );
        }
        store.flush().unwrap();
        println!(
            "store: {} records written, {} dropped",
            store.stats().written,
            store.stats().dropped
        );
    }
}

/// What one phase measured: microseconds per request.
struct Phase {
    latency: Vec<u32>,
    first: Vec<u32>,
    elapsed: Duration,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.latency.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn pct(&self, v: &[u32], q: f64) -> f64 {
        let mut v = v.to_vec();
        v.sort_unstable();
        v.get(((v.len() as f64 - 1.0) * q).round() as usize)
            .map_or(f64::NAN, |x| f64::from(*x))
    }

    fn print(&self, name: &str) {
        print!(
            "{name}: {:>8.0} req/s  latency p50 {:>6.0} us  p99 {:>6.0} us",
            self.rate(),
            self.pct(&self.latency, 0.5),
            self.pct(&self.latency, 0.99)
        );
        if !self.first.is_empty() {
            print!(
                "  first frame p50 {:>6.0} us  p99 {:>6.0} us",
                self.pct(&self.first, 0.5),
                self.pct(&self.first, 0.99)
            );
        }
        println!();
    }
}

/// `CONNECTIONS` keep-alive connections sending `body` in a loop until `duration` has passed or
/// `requests` were sent in all.
async fn phase(
    addr: SocketAddr,
    body: &'static str,
    stream: bool,
    duration: Duration,
    requests: u64,
) -> Phase {
    let started = Instant::now();
    let deadline = started + duration;
    let left = Arc::new(AtomicU64::new(requests));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let left = Arc::clone(&left);
        tasks.spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let (mut latency, mut first) = (Vec::new(), Vec::new());
            while Instant::now() < deadline
                && left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
            {
                sender.ready().await.unwrap();
                let request = Request::post("/v1/chat/completions")
                    .header("host", "bench")
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(body.as_bytes())))
                    .unwrap();
                let t0 = Instant::now();
                let response = sender.send_request(request).await.unwrap();
                let mut body = response.into_body();
                let mut first_at = None;
                while let Some(frame) = body.frame().await {
                    if frame.unwrap().is_data() && first_at.is_none() {
                        first_at = Some(t0.elapsed());
                    }
                }
                latency.push(micros(t0.elapsed()));
                if stream {
                    first.push(first_at.map_or(u32::MAX, micros));
                }
            }
            (latency, first)
        });
    }
    let mut phase = Phase {
        latency: Vec::new(),
        first: Vec::new(),
        elapsed: Duration::ZERO,
    };
    while let Some(r) = tasks.join_next().await {
        let (l, f) = r.unwrap();
        phase.latency.extend(l);
        phase.first.extend(f);
    }
    phase.elapsed = started.elapsed();
    phase
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// The process's resident set size, kB (Linux).
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
