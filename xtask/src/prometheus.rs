//! `cargo xtask prometheus`: `telemetry serve` checked by a real Prometheus.
//!
//! Records a demo into `target/prometheus/demo.db`, starts `telemetry serve` on a free loopback
//! port and checks its `/metrics`: `promtool check metrics` must exit 0 with no warning, and the
//! calls counter must sum to the demo's call count. Then it starts `prometheus` scraping the
//! server every second (config, TSDB and log in `target/prometheus/`) and asks its HTTP API:
//! `sum(inference_calls_total)` must reach the call count; a second demo written while
//! Prometheus runs must show up too; and `histogram_quantile` over the latency histogram must
//! give a number. Both answers are printed.
//!
//! Prometheus (Debian's 2.42 package) is installed with apt when missing. With `CI=true` a
//! missing tool fails the step; elsewhere one line says what was skipped. Every child process is
//! killed when the step ends, whichever way it ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{
    build_telemetry, free_port, log_tail, on_ci, on_path, status, target_dir, workspace_root,
};

/// Calls in the first demo, and in the one written while Prometheus scrapes.
const FIRST_CALLS: u64 = 1000;
const SECOND_CALLS: u64 = 500;
/// How long Prometheus may take to answer with the expected count.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// The calls counter, as `telemetry serve` names it.
const CALLS_TOTAL: &str = "inference_calls_total";
/// The median latency of the calls of the last minute, from the scraped histogram.
const MEDIAN_QUERY: &str =
    "histogram_quantile(0.5, sum by (le) (increase(inference_latency_seconds_bucket[1m])))";

/// Runs the check; `Ok` also when Prometheus is missing outside CI (after saying so).
pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(a) = args.first() {
        return Err(format!("prometheus takes no arguments, got {a:?}"));
    }
    let started = Instant::now();
    let ci = on_ci();
    if !find_or_install(ci)? {
        return Ok(());
    }
    let target = target_dir(&workspace_root()?);
    let dir = target.join("prometheus");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;

    // The debug build, as `xtask browser` makes it: CI builds the binary once for both.
    let telemetry = build_telemetry(&target)?;
    let db = dir.join("demo.db");
    demo(&telemetry, &db, FIRST_CALLS, 1)?;

    let mut serve = Guard::spawn(
        Command::new(&telemetry)
            .arg("--db")
            .arg(&db)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped()),
        "telemetry serve",
    )?;
    let addr = serve_address(&mut serve.0)?;
    let (code, metrics) = http_get(addr, "/metrics")?;
    if code != 200 {
        return Err(format!("GET /metrics answered {code}: {metrics}"));
    }
    let scraped = sum_samples(&metrics, CALLS_TOTAL);
    if scraped != FIRST_CALLS as f64 {
        return Err(format!(
            "/metrics counts {scraped} calls, the demo made {FIRST_CALLS}"
        ));
    }
    promtool_check(&metrics)?;

    let prom_port = free_port().map_err(|e| format!("no free port: {e}"))?;
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, scrape_config(addr))
        .map_err(|e| format!("writing {}: {e}", config.display()))?;
    let log = dir.join("prometheus.log");
    let log_file =
        std::fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
    let log_err = log_file
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let prom_started = Instant::now();
    let mut prometheus = Guard::spawn(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .stdout(log_file)
            .stderr(log_err),
        "prometheus",
    )?;
    let prom = SocketAddr::from(([127, 0, 0, 1], prom_port));
    let sum_query = format!("sum({CALLS_TOTAL})");
    let first = wait_for(&mut prometheus, prom, &log, &sum_query, |v| {
        v == FIRST_CALLS as f64
    })?;
    let first_after = prom_started.elapsed();

    // Records written by another process while serve runs reach Prometheus at the next scrape.
    demo(&telemetry, &db, SECOND_CALLS, 2)?;
    let total = FIRST_CALLS + SECOND_CALLS;
    let second = wait_for(&mut prometheus, prom, &log, &sum_query, |v| {
        v == total as f64
    })?;
    let median = wait_for(&mut prometheus, prom, &log, MEDIAN_QUERY, f64::is_finite)?;
    drop(prometheus);
    drop(serve);
    eprintln!(
        "prometheus: promtool check metrics: ok (no warning, {} bytes); {sum_query} = {first} after {first_after:.1?} (demo: {FIRST_CALLS} calls), = {second} after a second demo ({total} calls); {MEDIAN_QUERY} = {median} s; step {:.1?}",
        metrics.len(),
        started.elapsed()
    );
    Ok(())
}

/// Whether `prometheus` and `promtool` are on `PATH`, installing Debian's package when missing.
/// `Ok(false)` (after one line) when they cannot be had outside CI.
fn find_or_install(ci: bool) -> Result<bool, String> {
    let have = || on_path("prometheus") && on_path("promtool");
    if have() {
        return Ok(true);
    }
    if on_path("apt-get") {
        for attempt in 1..=3u64 {
            let ok = Command::new("sh")
                .args([
                    "-c",
                    "apt-get update && apt-get -o APT::Sandbox::User=root install -y --no-install-recommends prometheus",
                ])
                .status()
                .is_ok_and(|s| s.success());
            if ok && have() {
                return Ok(true);
            }
            eprintln!("xtask prometheus: installing prometheus failed, attempt {attempt} of 3");
            std::thread::sleep(Duration::from_secs(2 * attempt));
        }
    }
    if ci {
        return Err(
            "prometheus/promtool are missing and `apt-get install prometheus` failed".into(),
        );
    }
    eprintln!(
        "xtask prometheus: skipped the Prometheus check of `telemetry serve` (prometheus not found and apt-get could not install it)"
    );
    Ok(false)
}

/// A child process killed and reaped when dropped, on every way out of the step.
struct Guard(Child);

impl Guard {
    fn spawn(cmd: &mut Command, what: &str) -> Result<Guard, String> {
        cmd.stdin(Stdio::null())
            .spawn()
            .map(Guard)
            .map_err(|e| format!("could not start {what}: {e}"))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn demo(telemetry: &Path, db: &Path, calls: u64, seed: u64) -> Result<(), String> {
    status(
        Command::new(telemetry)
            .arg("--db")
            .arg(db)
            .args(["demo", "--stream", "--gpu", "off", "--calls"])
            .arg(calls.to_string())
            .args(["--seed", &seed.to_string()])
            .stdout(Stdio::null()),
        "telemetry demo",
    )
}

/// The address in serve's first line, `serving http://ADDR/metrics from ...`.
fn serve_address(child: &mut Child) -> Result<SocketAddr, String> {
    let stdout = child.stdout.take().ok_or("telemetry serve has no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("reading telemetry serve's output: {e}"))?;
    parse_serve_line(&line)
}

fn parse_serve_line(line: &str) -> Result<SocketAddr, String> {
    line.strip_prefix("serving http://")
        .and_then(|rest| rest.split_once("/metrics"))
        .and_then(|(addr, _)| addr.parse().ok())
        .ok_or_else(|| format!("telemetry serve did not say where it listens: {line:?}"))
}

/// `promtool check metrics` on `text`: exit 0 and nothing printed (a lint warning prints).
fn promtool_check(text: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start promtool: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("writing to promtool: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for promtool: {e}"))?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(format!(
            "promtool check metrics ({}): {}",
            out.status,
            said.trim()
        ))
    }
}

fn scrape_config(serve: SocketAddr) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: telemetry\n    static_configs:\n      - targets: ['{serve}']\n"
    )
}

/// Polls `/api/v1/query` until the first sample of `query` satisfies `done`; returns it.
fn wait_for(
    prometheus: &mut Guard,
    addr: SocketAddr,
    log: &Path,
    query: &str,
    done: impl Fn(f64) -> bool,
) -> Result<f64, String> {
    let path = format!("/api/v1/query?query={}", percent_encode(query));
    let started = Instant::now();
    let mut last = String::from("no answer");
    while started.elapsed() < QUERY_TIMEOUT {
        if let Ok(Some(status)) = prometheus.0.try_wait() {
            return Err(format!(
                "prometheus exited ({status}); log {}:\n{}",
                log.display(),
                log_tail(log)
            ));
        }
        if let Ok((200, body)) = http_get(addr, &path) {
            if let Some(v) = first_value(&body).filter(|v| done(*v)) {
                return Ok(v);
            }
            last = body;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(format!(
        "prometheus did not answer {query} as expected within {QUERY_TIMEOUT:?}; last answer: {last}"
    ))
}

/// The value of the first sample of an instant-vector answer:
/// `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[t,"v"]}]}}`.
fn first_value(body: &str) -> Option<f64> {
    if !body.contains("\"status\":\"success\"") {
        return None;
    }
    let rest = &body[body.find("\"value\":[")? + 9..];
    let rest = &rest[rest.find(",\"")? + 2..];
    let end = rest.find('"')?;
    rest[..end].parse().ok()
}

/// The sum of every sample of metric `name` in exposition text.
fn sum_samples(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One HTTP/1.0 GET (so the answer is never chunked); the status code and the body.
fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let failed = |e: std::io::Error| format!("GET http://{addr}{path}: {e}");
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(failed)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(failed)?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .map_err(failed)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(failed)?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET http://{addr}{path}: no HTTP header in the answer"))?;
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("GET http://{addr}{path}: bad status line"))?;
    Ok((code, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_answers_are_read() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1764384000.123,"1500"]}]}}"#;
        assert_eq!(first_value(body), Some(1500.0));
        let nan = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1764384000.123,"NaN"]}]}}"#;
        assert!(first_value(nan).is_some_and(f64::is_nan));
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(first_value(empty), None);
        let error = r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert_eq!(first_value(error), None);
    }

    #[test]
    fn samples_of_one_metric_are_summed() {
        let text = "# TYPE inference_calls counter\ninference_calls_total{model=\"a\",outcome=\"ok\"} 3\ninference_calls_total{model=\"a\",outcome=\"error\"} 2\ninference_calls_total_other 100\n";
        assert_eq!(sum_samples(text, "inference_calls_total"), 5.0);
    }

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            percent_encode("sum(x{a=\"b\"}) [1m]"),
            "sum%28x%7Ba%3D%22b%22%7D%29%20%5B1m%5D"
        );
    }

    #[test]
    fn the_serve_line_gives_the_address() {
        let addr =
            parse_serve_line("serving http://127.0.0.1:4321/metrics from /x.db (Ctrl-C to stop)\n");
        assert_eq!(addr, Ok(SocketAddr::from(([127, 0, 0, 1], 4321))));
        assert!(parse_serve_line("error\n").is_err());
    }
}
