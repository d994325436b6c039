//! `cargo xtask otel`: `telemetry demo --otlp` checked by a real OpenTelemetry collector.
//!
//! Installs the rotel collector (PyPI `rotel`, a Rust collector whose wheel carries the
//! `rotel-agent` binary) into a virtual environment under `target/otel/venv` when missing,
//! starts it on free loopback ports with the blackhole exporter and detailed debug logging of
//! traces and metrics, runs a streaming demo with `--otlp` into it, and reads rotel's output
//! (ANSI colours stripped): one `SPAN_KIND_CLIENT` span per call named `chat <model>` with the
//! GenAI attributes, and the GenAI histograms with the conventions' bucket boundaries, the
//! duration histogram counting every call, and the mock GPU's `hw.power` (W) and `hw.energy` (J)
//! with `hw.type` = `gpu`. An excerpt is kept in `target/otel/run/`.
//!
//! With `CI=true` a collector that cannot be installed fails the step; elsewhere one line says
//! what was skipped. The collector is killed when the step ends, whichever way it ends.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{build_telemetry, free_port, log_tail, on_ci, target_dir, workspace_root};

/// The collector release, pinned.
const ROTEL: &str = "rotel==0.0.1a15";
/// Calls in the demo.
const CALLS: u64 = 200;
/// How long rotel may take to start listening, and to print what it received.
const WAIT: Duration = Duration::from_secs(30);
/// Attributes every span must carry.
const SPAN_ATTRIBUTES: [&str; 6] = [
    "gen_ai.operation.name: Str(chat)",
    "gen_ai.provider.name: Str(sim)",
    "gen_ai.request.model: Str(sim-",
    "gen_ai.response.model: Str(sim-",
    "gen_ai.usage.input_tokens: Int(",
    "gen_ai.usage.output_tokens: Int(",
];
/// Metrics the demo must produce (streaming, mock GPU).
const METRICS: [&str; 7] = [
    "gen_ai.client.operation.duration",
    "gen_ai.client.token.usage",
    "gen_ai.client.operation.time_to_first_chunk",
    "gen_ai.client.operation.time_per_output_chunk",
    "telemetry.client.operation.energy",
    "hw.energy",
    "hw.power",
];

/// Runs the check; `Ok` also when rotel cannot be installed outside CI (after saying so).
pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(a) = args.first() {
        return Err(format!("otel takes no arguments, got {a:?}"));
    }
    let started = Instant::now();
    let target = target_dir(&workspace_root()?);
    let dir = target.join("otel");
    let Some(agent) = find_or_install(&dir, on_ci())? else {
        return Ok(());
    };
    let run_dir = dir.join("run");
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| format!("creating {}: {e}", run_dir.display()))?;
    let telemetry = build_telemetry(&target)?;

    let http_port = free_port().map_err(|e| format!("no free port: {e}"))?;
    let grpc_port = free_port().map_err(|e| format!("no free port: {e}"))?;
    let out = run_dir.join("rotel.out");
    let out_file =
        std::fs::File::create(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let out_err = out_file
        .try_clone()
        .map_err(|e| format!("{}: {e}", out.display()))?;
    let mut rotel = Guard(
        Command::new(&agent)
            .args(["start", "--exporter", "blackhole"])
            .args(["--debug-log", "traces", "--debug-log", "metrics"])
            .args(["--debug-log-verbosity", "detailed"])
            .arg("--otlp-http-endpoint")
            .arg(format!("127.0.0.1:{http_port}"))
            .arg("--otlp-grpc-endpoint")
            .arg(format!("127.0.0.1:{grpc_port}"))
            .arg("--pid-file")
            .arg(run_dir.join("rotel.pid"))
            .arg("--log-file")
            .arg(run_dir.join("rotel.log"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out_file)
            .stderr(out_err)
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", agent.display()))?,
    );
    wait_listening(
        &mut rotel,
        SocketAddr::from(([127, 0, 0, 1], http_port)),
        &out,
    )?;

    let endpoint = format!("http://127.0.0.1:{http_port}");
    demo(
        &telemetry,
        &run_dir.join("demo.db"),
        &endpoint,
        false,
        &format!("{endpoint}/v1/traces"),
    )?;

    let deadline = Instant::now() + WAIT;
    let report = loop {
        let text = strip_ansi(&std::fs::read_to_string(&out).unwrap_or_default());
        match check(&text) {
            Ok(report) => break report,
            Err(e) if Instant::now() >= deadline => {
                return Err(format!(
                    "rotel's output {} does not show the demo's {CALLS} calls: {e}\n{}",
                    out.display(),
                    log_tail(&out)
                ));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    };

    // The same demo over OTLP/gRPC (telemetry-otel's `grpc` feature, on in the CLI by default):
    // rotel must accept every call and print the spans next to the first demo's.
    let grpc_endpoint = format!("http://127.0.0.1:{grpc_port}");
    demo(
        &telemetry,
        &run_dir.join("demo-grpc.db"),
        &grpc_endpoint,
        true,
        &format!("{grpc_endpoint}/opentelemetry.proto.collector.trace.v1.TraceService/Export"),
    )?;
    let deadline = Instant::now() + WAIT;
    loop {
        let text = strip_ansi(&std::fs::read_to_string(&out).unwrap_or_default());
        let spans = span_blocks(&text).len() as u64;
        if spans == 2 * CALLS {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "rotel printed {spans} spans after the gRPC demo, expected {}:\n{}",
                2 * CALLS,
                log_tail(&out)
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(rotel);
    let text = strip_ansi(&std::fs::read_to_string(&out).unwrap_or_default());
    let excerpt_path = run_dir.join("rotel-excerpt.txt");
    std::fs::write(&excerpt_path, excerpt(&text))
        .map_err(|e| format!("writing {}: {e}", excerpt_path.display()))?;
    eprintln!(
        "otel: rotel ({ROTEL}) printed {report}; then {CALLS} more over OTLP/gRPC; excerpt in {}; step {:.1?}",
        excerpt_path.display(),
        started.elapsed()
    );
    Ok(())
}

/// The `rotel-agent` binary, installing rotel into `dir/venv` when missing. `Ok(None)` (after
/// one line) when it cannot be had outside CI.
fn find_or_install(dir: &Path, ci: bool) -> Result<Option<PathBuf>, String> {
    let venv = dir.join("venv");
    if let Some(agent) = find_agent(&venv) {
        return Ok(Some(agent));
    }
    let mut why = String::from("python3 -m venv failed");
    let _ = std::fs::create_dir_all(dir);
    let venv_ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    if venv_ok {
        why = format!("pip install {ROTEL} failed");
        for attempt in 1..=3u64 {
            let ok = Command::new(venv.join("bin").join("pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", ROTEL])
                .status()
                .is_ok_and(|s| s.success());
            if ok && let Some(agent) = find_agent(&venv) {
                return Ok(Some(agent));
            }
            eprintln!("xtask otel: installing {ROTEL} failed, attempt {attempt} of 3");
            std::thread::sleep(Duration::from_secs(2 * attempt));
        }
    }
    if ci {
        return Err(format!("the rotel collector is missing: {why}"));
    }
    eprintln!(
        "xtask otel: skipped the OTLP check with a real collector ({why}; needs python3 with venv and access to PyPI)"
    );
    Ok(None)
}

/// `venv/lib/python3.*/site-packages/rotel/rotel-agent`, if installed and runnable.
fn find_agent(venv: &Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    let agent = lib
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages/rotel/rotel-agent"))
        .find(|p| p.is_file())?;
    let runs = Command::new(&agent)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    runs.then_some(agent)
}

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(rotel: &mut Guard, addr: SocketAddr, out: &Path) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < WAIT {
        if let Ok(Some(status)) = rotel.0.try_wait() {
            return Err(format!(
                "rotel-agent exited ({status}); output {}:\n{}",
                out.display(),
                log_tail(out)
            ));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "rotel-agent did not listen on {addr} within {WAIT:?}:\n{}",
        log_tail(out)
    ))
}

/// Removes ANSI escape sequences (`ESC [ ... letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Checks rotel's debug output against the demo; says what it found.
fn check(text: &str) -> Result<String, String> {
    let spans: Vec<&str> = span_blocks(text);
    if spans.len() as u64 != CALLS {
        return Err(format!("{} spans, expected {CALLS}", spans.len()));
    }
    for block in &spans {
        if !block.contains("Kind           : SPAN_KIND_CLIENT")
            && !block.contains("SPAN_KIND_CLIENT")
        {
            return Err(format!("a span is not CLIENT:\n{block}"));
        }
        if !block.contains("Name           : chat sim-") {
            return Err(format!("a span is not named `chat <model>`:\n{block}"));
        }
        if let Some(missing) = SPAN_ATTRIBUTES.iter().find(|a| !block.contains(*a)) {
            return Err(format!("a span lacks {missing}:\n{block}"));
        }
    }
    for name in METRICS {
        if !text.contains(&format!("-> Name: {name}\n")) {
            return Err(format!("no metric {name}"));
        }
    }
    let duration = last_metric_block(text, "gen_ai.client.operation.duration")
        .ok_or("no duration histogram")?;
    if !duration.contains("-> Unit: s\n") || !duration.contains("ExplicitBounds #13: 81.92") {
        return Err(format!(
            "the duration histogram lacks its unit or buckets:\n{duration}"
        ));
    }
    let counted: u64 = duration
        .lines()
        .filter_map(|l| l.strip_prefix("Count: "))
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .sum();
    if counted != CALLS {
        return Err(format!(
            "the duration histogram counts {counted} calls, expected {CALLS}"
        ));
    }
    // The mock GPU's device series, as the hardware conventions name them.
    for (name, unit) in [("hw.power", "W"), ("hw.energy", "J")] {
        let block = last_metric_block(text, name).ok_or(format!("no {name}"))?;
        for want in [
            format!("-> Unit: {unit}\n"),
            "hw.type: Str(gpu)".to_owned(),
            "hw.id: Str(GPU-mock-0000)".to_owned(),
        ] {
            if !block.contains(&want) {
                return Err(format!("{name} lacks {want:?}:\n{block}"));
            }
        }
    }
    let errors = spans
        .iter()
        .filter(|b| b.contains("STATUS_CODE_ERROR"))
        .count();
    Ok(format!(
        "{} CLIENT spans with the GenAI attributes ({errors} with status ERROR), the GenAI histograms, the mock GPU's hw.power and hw.energy, gen_ai.client.operation.duration counting {counted} calls = the demo's {CALLS}",
        spans.len()
    ))
}

/// Each span's lines, from `Span #n` to the next span or resource.
fn span_blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("\nSpan #") {
        let body = &rest[at + 1..];
        let end = [
            "\nSpan #",
            "\nResourceSpans #",
            "\nResourceMetrics #",
            "\nScopeSpans #",
        ]
        .iter()
        .filter_map(|m| body[1..].find(m).map(|i| i + 1))
        .min()
        .unwrap_or(body.len());
        blocks.push(&body[..end]);
        rest = &body[end..];
    }
    blocks
}

/// The last block of metric `name`, up to the next metric or resource.
fn last_metric_block<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let at = text.rfind(&format!("-> Name: {name}\n"))?;
    let body = &text[at..];
    let end = ["\nMetric #", "\nResourceMetrics #", "\nResourceSpans #"]
        .iter()
        .filter_map(|m| body.find(m))
        .min()
        .unwrap_or(body.len());
    Some(&body[..end])
}

/// The resource, the first span and the first failed one, and the first data point of the
/// duration histogram.
fn excerpt(text: &str) -> String {
    let mut out = String::new();
    if let Some(at) = text.find("ResourceSpans #0") {
        let spans = span_blocks(text);
        let head_end = text[at..].find("Span #0").map_or(at, |i| at + i);
        out.push_str(&text[at..head_end]);
        if let Some(first) = spans.first() {
            out.push_str(first);
            out.push_str("\n...\n");
        }
        if let Some(failed) = spans.iter().find(|b| b.contains("STATUS_CODE_ERROR")) {
            out.push_str(failed);
            out.push_str("\n...\n");
        }
    }
    if let Some(block) = last_metric_block(text, "gen_ai.client.operation.duration") {
        let point_end = block[1..]
            .find("HistogramDataPoints #1")
            .map_or(block.len(), |i| i + 1);
        out.push_str("Metric #0\nDescriptor:\n     ");
        out.push_str(&block[..point_end]);
        out.push_str("...\n");
    }
    out
}

/// Runs `telemetry demo --stream --gpu mock --calls CALLS --otlp endpoint` into `db` (over gRPC,
/// `OTEL_EXPORTER_OTLP_PROTOCOL=grpc`, with `grpc`) and checks it says all its spans went to
/// `traces_url` with none dropped or failed.
fn demo(
    telemetry: &Path,
    db: &Path,
    endpoint: &str,
    grpc: bool,
    traces_url: &str,
) -> Result<(), String> {
    let mut command = Command::new(telemetry);
    command
        .arg("--db")
        .arg(db)
        .args(["demo", "--stream", "--gpu", "mock", "--calls"])
        .arg(CALLS.to_string())
        .args(["--otlp", endpoint])
        .stdin(Stdio::null());
    if grpc {
        command.env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
    }
    let demo = command
        .output()
        .map_err(|e| format!("could not start telemetry demo: {e}"))?;
    let said = String::from_utf8_lossy(&demo.stdout);
    let sent = format!("otlp: {CALLS} spans sent to {traces_url} (0 dropped, 0 failed)");
    if !demo.status.success() || !said.contains(&sent) {
        let over = if grpc { " over gRPC" } else { "" };
        return Err(format!(
            "telemetry demo --otlp{over} ({}) did not say {sent:?}:\n{said}{}",
            demo.status,
            String::from_utf8_lossy(&demo.stderr)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_colours_are_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[32mINFO\u{1b}[0m Span #0\u{1b}[2m"),
            "INFO Span #0"
        );
    }

    #[test]
    fn span_blocks_split_at_each_span_and_resource() {
        let text = "x\nResourceSpans #0\nSpan #0\na\nSpan #1\nb\nResourceMetrics #0\nMetric #0\n";
        assert_eq!(span_blocks(text), vec!["Span #0\na", "Span #1\nb"]);
    }

    #[test]
    fn the_last_metric_block_ends_at_the_next_metric() {
        let text = "Metric #0\n-> Name: d\nCount: 1\nMetric #1\n-> Name: t\nCount: 9\nMetric #0\n-> Name: d\nCount: 2\nBuckets #0, Count: 2\nMetric #1\n";
        let block = last_metric_block(text, "d").unwrap();
        assert_eq!(block, "-> Name: d\nCount: 2\nBuckets #0, Count: 2");
    }
}
