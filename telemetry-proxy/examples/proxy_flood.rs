//! Resident memory of a `telemetry proxy` process under the floods of issue 22, read from
//! `/proc/PID/status`: any build of the binary can be measured, so a figure before a change and
//! one after come from the same harness.
//!
//! ```text
//! cargo run --release -p telemetry-proxy --example proxy_flood -- \
//!     TELEMETRY_BINARY slow|partial CONNECTIONS [SECONDS]
//! ```
//!
//! A fake upstream runs in this process; the binary is started as `TELEMETRY_BINARY --db TMP proxy
//! --listen 127.0.0.1:0 --upstream URL --gpu off` (plus `--route big=URL`, so every body must be
//! read until its model is found).
//!
//! - `slow`: CONNECTIONS connections each announce a 1 MB body and send one byte of it every
//!   second for SECONDS (default 20) seconds — the issue's slow-body probe, faster.
//! - `partial`: CONNECTIONS connections each announce an 8 MiB body whose model comes after its
//!   messages, send 8 MiB minus 1 KiB of it, and stop (held open for SECONDS, default 10).
//!
//! Prints the proxy's RSS before, its peak during the flood (sampled every 100 ms), and after the
//! flood's connections have closed; during the flood, how long `GET /telemetry/health` took (or
//! that it timed out after 2 s) and what a real request got.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use telemetry_openai::fake::{FakeServer, Reply, chat_completion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Sends `request` on a new connection; the status line (or why there was none) and the time.
async fn ask(addr: &str, request: &str) -> (String, Duration) {
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(2), async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(request.as_bytes()).await?;
        let mut buf = vec![0u8; 256];
        let n = s.read(&mut buf).await?;
        Ok::<_, std::io::Error>(
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
        )
    })
    .await;
    let line = match result {
        Ok(Ok(line)) if !line.is_empty() => line,
        Ok(Ok(_)) => "closed".to_owned(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "no answer within 2 s".to_owned(),
    };
    (line, started.elapsed())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [binary, mode, connections, rest @ ..] = args.as_slice() else {
        eprintln!("usage: proxy_flood TELEMETRY_BINARY slow|partial CONNECTIONS [SECONDS]");
        std::process::exit(2);
    };
    let connections: usize = connections.parse().unwrap();
    let slow = match mode.as_str() {
        "slow" => true,
        "partial" => false,
        other => panic!("unknown mode {other}"),
    };
    let seconds: u64 = rest
        .first()
        .map_or(if slow { 20 } else { 10 }, |s| s.parse().unwrap());

    let upstream = FakeServer::start(|_| Reply::json(200, chat_completion("m", 3, 2))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flood.db");
    let mut child = Command::new(binary)
        .arg("--db")
        .arg(&db)
        .args(["proxy", "--listen", "127.0.0.1:0", "--gpu", "off"])
        .args(["--upstream", &upstream.url()])
        .args(["--route", &format!("big={}", upstream.url())])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut banner = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let addr = banner
        .strip_prefix("proxy listening on http://")
        .and_then(|r| r.split_once(' '))
        .map(|(a, _)| a.to_owned())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);

    let peak = Arc::new(AtomicU64::new(before));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (Arc::clone(&peak), Arc::clone(&sampling));
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let announced = if slow { 1_000_000 } else { 8 << 20 };
    let payload: &'static [u8] = if slow {
        b" "
    } else {
        Box::leak(
            format!(
                r#"{{"messages":[{{"content":"{}"#,
                "A".repeat((8 << 20) - 1024)
            )
            .into_boxed_str(),
        )
        .as_bytes()
    };
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: flood\r\nContent-Type: application/json\r\nContent-Length: {announced}\r\n\r\n"
    );
    let started = Instant::now();
    let mut flood = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (addr, head) = (addr.clone(), head.clone());
        flood.push(tokio::spawn(async move {
            let Ok(mut s) = TcpStream::connect(&addr).await else {
                return;
            };
            if s.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let end = Instant::now() + Duration::from_secs(seconds);
            if slow {
                while Instant::now() < end {
                    if s.write_all(payload).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            } else {
                let _ = tokio::time::timeout_at(end.into(), s.write_all(payload)).await;
                tokio::time::sleep_until(end.into()).await;
            }
        }));
    }
    // Mid-flood: is the proxy still answering?
    tokio::time::sleep(Duration::from_secs(seconds / 2)).await;
    let open_fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
    let (health, health_took) = ask(
        &addr,
        "GET /telemetry/health HTTP/1.1\r\nHost: flood\r\nConnection: close\r\n\r\n",
    )
    .await;
    let chat = r#"{"model":"m","messages":[]}"#;
    let (real, real_took) = ask(
        &addr,
        &format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: flood\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{chat}",
            chat.len()
        ),
    )
    .await;
    for f in flood {
        let _ = f.await;
    }
    let flood_took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let after = rss_kib(pid);
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "{mode} flood, {connections} connections, {flood_took:.1?}: proxy RSS before {:.0} MiB, peak {:.0} MiB, after close {:.0} MiB",
        mib(before),
        mib(peak.load(Ordering::Relaxed)),
        mib(after)
    );
    println!(
        "  mid-flood: {open_fds} open file descriptors in the proxy; health {health:?} in {health_took:.2?}; a real request {real:?} in {real_took:.2?}"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
}
