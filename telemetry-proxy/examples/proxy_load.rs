//! Load generator for the proxy (issue 14's performance targets): a fake upstream on loopback
//! answering a fixed chat completion (and a 256-chunk stream), 64 concurrent keep-alive
//! connections, direct and through the proxy in the same run. The proxy records every call into
//! a SQLite store through the bus, as `telemetry proxy` does.
//!
//! ```text
//! cargo run --release -p telemetry-proxy --example proxy_load -- [ROUNDS] [RSS_REQUESTS]
//! ```
//!
//! - **Throughput at saturation**: ROUNDS (default 5) rounds of one second direct then one second
//!   through the proxy, blocking then streams; the ratio is the median of the rounds' ratios, so
//!   a change in the machine's load hits both paths alike. Each path also prints the CPU time per
//!   request of each thread (generator, upstream, proxy, other = the store's writer), from
//!   `/proc/self/task`: that figure does not depend on what else the machine runs.
//! - **Latency at a fixed load** (2 000 blocking requests/s, 64 streams/s, spread over the 64
//!   connections, well below both paths' capacity): what the proxy adds to a request's latency and
//!   a stream's first frame, p50 and p99 (at saturation a request's latency is mostly its wait in
//!   the queue, 64 / throughput, which says nothing the throughput does not).
//! - With RSS_REQUESTS (e.g. 1000000) a last phase sends that many blocking requests through the
//!   proxy and prints the process's RSS every tenth of the way (upstream, proxy and generator
//!   share the process, so flat RSS means none of them grows).
//!
//! Environment: `PROXY_LOAD_THREADS=N` runs the proxy on a multi-threaded runtime of N workers
//! (default: one thread, as `telemetry proxy` runs by default); `PROXY_LOAD_BARE=1` runs it
//! without telemetry (forwarding only); `PROXY_LOAD_PROFILE=1` runs only blocking requests
//! through the proxy for ROUNDS seconds (to attach a profiler); `PROXY_LOAD_LATENCY_ONLY=1` skips
//! the saturated part; `PROXY_LOAD_BLOCKING_RATE` and `PROXY_LOAD_STREAM_RATE` change the fixed
//! loads; `PROXY_LOAD_STREAM_WORDS` (default 256) sets the stream's content chunks and
//! `PROXY_LOAD_STREAM_GAP_US` (default 0) a pause before each event after the first, as a model's
//! token rate would (the first event always goes at once).
//!
//! At a fixed load each path also prints its threads' run-queue wait per request (time runnable
//! but without a CPU, from `/proc/self/task/*/schedstat`). On a 2-core machine with the
//! generator, the upstream and the proxy in one process, a zero-gap stream keeps the fake
//! upstream and the proxy busy for the whole burst, and the client's thread waits for a CPU:
//! most of what the proxy "adds" to a stream's first frame there is that wait, and it grows with
//! the burst's length (`PROXY_LOAD_STREAM_WORDS`), not in the proxy's code path.
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
use telemetry_openai::fake::{FakeServer, Reply, chat_completion, chat_stream};
use telemetry_proxy::{Proxy, ProxyConfig, ProxyTelemetry, Routes, Upstream};
use telemetry_store::TelemetryStore;

const CONNECTIONS: usize = 64;
/// Offered load of the latency measurement, blocking requests per second (all connections).
const BLOCKING_RATE: f64 = 2000.0;
/// Offered load of the latency measurement, streams per second.
const STREAM_RATE: f64 = 64.0;
const CHAT: &str =
    r#"{"model":"bench","messages":[{"role":"user","content":"hi"}],"max_tokens":16}"#;
const STREAM: &str = r#"{"model":"bench","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds: usize = args.first().map_or(5, |s| s.parse().expect("ROUNDS"));
    let rss_requests: u64 = args.get(1).map_or(0, |s| s.parse().expect("RSS_REQUESTS"));

    // The upstream, on a thread (`fake-server`) and runtime of its own.
    let blocking = chat_completion("bench", 9, 16);
    let words = env_f64("PROXY_LOAD_STREAM_WORDS", 256.0) as usize;
    let gap = Duration::from_micros(env_f64("PROXY_LOAD_STREAM_GAP_US", 0.0) as u64);
    let mut stream = chat_stream("bench", words, Some((9, words as u64)), gap);
    // The first event goes at once: the first frame then times the path, not the gap.
    stream[0].0 = Duration::ZERO;
    let fake = FakeServer::start(move |req| {
        if req.body.len() == STREAM.len() {
            Reply::events(stream.clone())
        } else {
            Reply::json(200, blocking.clone())
        }
    })
    .unwrap();
    let upstream: SocketAddr = fake.addr();

    // The proxy, recording into a store, on a thread and single-threaded runtime of its own
    // (as `telemetry proxy` runs by default).
    let dir = tempfile::tempdir().unwrap();
    let store = TelemetryStore::open(dir.path().join("proxy.db")).unwrap();
    let bus = Arc::new(EventBus::new());
    store.subscribe_to_bus(&bus);
    let mut config = ProxyConfig::new(Routes::new(
        Upstream::parse(&format!("http://{upstream}")).unwrap(),
    ));
    if std::env::var_os("PROXY_LOAD_BARE").is_none() {
        config = config.telemetry(
            ProxyTelemetry::new(bus)
                .engine_name("bench")
                .store(store.clone()),
        );
    }
    let threads: usize = std::env::var("PROXY_LOAD_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("proxy".into())
        .spawn(move || {
            let rt = if threads == 0 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .thread_name("proxy-worker")
                    .enable_all()
                    .build()
                    .unwrap()
            };
            rt.block_on(async move {
                let proxy = Proxy::bind("127.0.0.1:0".parse().unwrap(), config)
                    .await
                    .unwrap();
                tx.send(proxy.local_addr()).unwrap();
                proxy.run(std::future::pending()).await;
            });
        })
        .unwrap();
    let proxy: SocketAddr = rx.recv().unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "proxy_load: {CONNECTIONS} connections, {rounds} rounds of 1 s per path; proxy runtime {}; load average {}",
        if threads == 0 {
            "current-thread".to_owned()
        } else {
            format!("{threads} worker threads")
        },
        load_average()
    );
    let second = Duration::from_secs(1);
    // For profiling: only blocking requests through the proxy, for ROUNDS seconds.
    if std::env::var_os("PROXY_LOAD_PROFILE").is_some() {
        let before = Cpu::now();
        let p = rt.block_on(phase(
            proxy,
            CHAT,
            false,
            second * u32::try_from(rounds).unwrap(),
            u64::MAX,
            None,
        ));
        p.print("blocking proxy,  saturated");
        Cpu::now().minus(&before).print(p.latency.len());
        return;
    }
    // Throughput at saturation: direct and proxy alternate, one second each, so a change in
    // the machine's load hits both alike; the ratio is the median of the rounds' ratios.
    let saturated = std::env::var_os("PROXY_LOAD_LATENCY_ONLY").is_none();
    for (name, body, stream) in [("blocking", CHAT, false), ("stream  ", STREAM, true)] {
        if !saturated {
            break;
        }
        let (mut direct, mut proxied, mut ratios) =
            (Phase::default(), Phase::default(), Vec::new());
        let (mut cpu_direct, mut cpu_proxy) = (Cpu::default(), Cpu::default());
        for _ in 0..rounds {
            let before = Cpu::now();
            let d = rt.block_on(phase(upstream, body, stream, second, u64::MAX, None));
            let middle = Cpu::now();
            let p = rt.block_on(phase(proxy, body, stream, second, u64::MAX, None));
            cpu_direct.add(&middle.minus(&before));
            cpu_proxy.add(&Cpu::now().minus(&middle));
            ratios.push(p.rate() / d.rate());
            direct.merge(d);
            proxied.merge(p);
        }
        direct.print(&format!("{name} direct, saturated"));
        cpu_direct.print(direct.latency.len());
        proxied.print(&format!("{name} proxy,  saturated"));
        cpu_proxy.print(proxied.latency.len());
        ratios.sort_by(f64::total_cmp);
        println!(
            "{name}: throughput proxy/direct median {:.2}x (rounds {})",
            ratios[ratios.len() / 2],
            ratios
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    // Latency at a fixed offered load well below both capacities (at saturation a request's
    // latency is its wait in the queue, CONNECTIONS / throughput, and says nothing more than
    // the throughput does): what the proxy adds to each request.
    for (name, body, stream, rate) in [
        (
            "blocking",
            CHAT,
            false,
            env_f64("PROXY_LOAD_BLOCKING_RATE", BLOCKING_RATE),
        ),
        (
            "stream  ",
            STREAM,
            true,
            env_f64("PROXY_LOAD_STREAM_RATE", STREAM_RATE),
        ),
    ] {
        let (mut direct, mut proxied) = (Phase::default(), Phase::default());
        let (mut wait_direct, mut wait_proxy) = (Cpu::default(), Cpu::default());
        for _ in 0..rounds {
            let before = Cpu::waits();
            direct.merge(rt.block_on(phase(upstream, body, stream, second, u64::MAX, Some(rate))));
            let middle = Cpu::waits();
            proxied.merge(rt.block_on(phase(proxy, body, stream, second, u64::MAX, Some(rate))));
            wait_direct.add(&middle.minus(&before));
            wait_proxy.add(&Cpu::waits().minus(&middle));
        }
        direct.print(&format!("{name} direct, {rate:.0}/s"));
        wait_direct.print_waits(direct.latency.len());
        proxied.print(&format!("{name} proxy,  {rate:.0}/s"));
        wait_proxy.print_waits(proxied.latency.len());
        print!(
            "{name}: at {rate:.0}/s added latency p50 {:+.0} us, p99 {:+.0} us",
            proxied.pct(&proxied.latency, 0.50) - direct.pct(&direct.latency, 0.50),
            proxied.pct(&proxied.latency, 0.99) - direct.pct(&direct.latency, 0.99),
        );
        if stream {
            print!(
                ", added first-frame p50 {:+.0} us, p99 {:+.0} us",
                proxied.pct(&proxied.first, 0.50) - direct.pct(&direct.first, 0.50),
                proxied.pct(&proxied.first, 0.99) - direct.pct(&direct.first, 0.99),
            );
        }
        println!();
    }
    println!("load average at the end {}", load_average());
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
            let r = rt.block_on(phase(
                proxy,
                CHAT,
                false,
                Duration::from_secs(3600),
                step,
                None,
            ));
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
#[derive(Default)]
struct Phase {
    latency: Vec<u32>,
    first: Vec<u32>,
    elapsed: Duration,
}

impl Phase {
    /// Adds `other`'s requests and time to this one's.
    fn merge(&mut self, other: Phase) {
        self.latency.extend(other.latency);
        self.first.extend(other.first);
        self.elapsed += other.elapsed;
    }

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
/// `requests` were sent in all: back to back, or, with `rate`, each connection at its share of
/// `rate` requests per second (staggered; a request that is due while the previous one is still
/// running goes when it ends).
async fn phase(
    addr: SocketAddr,
    body: &'static str,
    stream: bool,
    duration: Duration,
    requests: u64,
    rate: Option<f64>,
) -> Phase {
    let started = Instant::now();
    let deadline = started + duration;
    let left = Arc::new(AtomicU64::new(requests));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CONNECTIONS {
        let left = Arc::clone(&left);
        let interval = rate.map(|r| Duration::from_secs_f64(CONNECTIONS as f64 / r));
        tasks.spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let (mut latency, mut first) = (Vec::new(), Vec::new());
            if interval.is_some() {
                // At a fixed load each connection sends about one request a second: warm it
                // (and, through the proxy, its upstream connection) with one untimed request,
                // so both paths are measured on kept-alive connections.
                sender.ready().await.unwrap();
                let mut warm = sender
                    .send_request(request(body))
                    .await
                    .unwrap()
                    .into_body();
                while let Some(frame) = warm.frame().await {
                    frame.unwrap();
                }
            }
            let mut due = interval.map(|every| {
                tokio::time::Instant::from_std(
                    started + every.mul_f64(i as f64 / CONNECTIONS as f64),
                )
            });
            while Instant::now() < deadline
                && left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
            {
                if let (Some(at), Some(every)) = (due.as_mut(), interval) {
                    if at.into_std() >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(*at).await;
                    *at += every;
                }
                sender.ready().await.unwrap();
                let request = request(body);
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

/// A completion request with `body`.
fn request(body: &'static str) -> Request<Full<Bytes>> {
    Request::post("/v1/chat/completions")
        .header("host", "bench")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// A figure by thread, from `/proc/self/task`: the generator (the main thread), the upstream,
/// the proxy (its runtime's threads) and everything else (the store's writer). Either CPU time
/// (user + system) in clock ticks ([`Cpu::now`]) or time spent runnable but waiting for a CPU,
/// in nanoseconds ([`Cpu::waits`]).
#[derive(Default, Clone, Copy)]
struct Cpu {
    generator: u64,
    upstream: u64,
    proxy: u64,
    other: u64,
}

impl Cpu {
    /// CPU time by thread, clock ticks.
    fn now() -> Cpu {
        Cpu::by_thread(|_, fields| {
            // utime and stime are the 14th and 15th fields.
            fields
                .get(11)
                .and_then(|u| u.parse::<u64>().ok())
                .unwrap_or(0)
                + fields
                    .get(12)
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0)
        })
    }

    /// Run-queue wait by thread (schedstat's second field), ns: on a machine with fewer cores
    /// than busy threads this is where a request's time goes when no code path is slow.
    fn waits() -> Cpu {
        Cpu::by_thread(|task, _| {
            std::fs::read_to_string(task.join("schedstat"))
                .unwrap_or_default()
                .split_whitespace()
                .nth(1)
                .and_then(|w| w.parse().ok())
                .unwrap_or(0)
        })
    }

    fn by_thread(value: impl Fn(&std::path::Path, &[&str]) -> u64) -> Cpu {
        let mut cpu = Cpu::default();
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return cpu;
        };
        let main = std::process::id().to_string();
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            // Fields after the parenthesised name: state is 3rd, utime 14th, stime 15th.
            let Some((head, rest)) = stat.rsplit_once(") ") else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks = value(&task.path(), &fields);
            let name = head.split_once(" (").map_or("", |(_, n)| n);
            let slot = if task.file_name().to_string_lossy() == main {
                &mut cpu.generator
            } else if name == "fake-server" {
                &mut cpu.upstream
            } else if name.starts_with("proxy") {
                &mut cpu.proxy
            } else {
                &mut cpu.other
            };
            *slot += ticks;
        }
        cpu
    }

    fn minus(&self, earlier: &Cpu) -> Cpu {
        Cpu {
            generator: self.generator - earlier.generator,
            upstream: self.upstream - earlier.upstream,
            proxy: self.proxy - earlier.proxy,
            other: self.other - earlier.other,
        }
    }

    fn add(&mut self, other: &Cpu) {
        self.generator += other.generator;
        self.upstream += other.upstream;
        self.proxy += other.proxy;
        self.other += other.other;
    }

    /// Run-queue wait per request, by thread, in microseconds.
    fn print_waits(&self, requests: usize) {
        let us = |ns: u64| ns as f64 / 1000.0 / requests.max(1) as f64;
        println!(
            "    run-queue wait per request: generator {:.0} us, upstream {:.0} us, proxy {:.0} us, other {:.0} us",
            us(self.generator),
            us(self.upstream),
            us(self.proxy),
            us(self.other)
        );
    }

    /// CPU microseconds per request, by thread.
    fn print(&self, requests: usize) {
        // Clock ticks are 1/100 s on Linux.
        let us = |ticks: u64| ticks as f64 * 10_000.0 / requests.max(1) as f64;
        println!(
            "    CPU per request: generator {:.1} us, upstream {:.1} us, proxy {:.1} us, other {:.1} us, total {:.1} us",
            us(self.generator),
            us(self.upstream),
            us(self.proxy),
            us(self.other),
            us(self.generator + self.upstream + self.proxy + self.other)
        );
    }
}

/// A number from the environment, else `default`.
fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `/proc/loadavg`'s first three fields.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
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
