//! `cargo xtask proxy-bench`: the recording proxy's speed against nginx's, in one run.
//!
//! An nginx upstream (one worker) answers `POST /v1/chat/completions` with a fixed
//! llama.cpp-style chat completion, and with a 20-chunk SSE stream with usage when the query has
//! `stream=1`. In front of it, side by side: nothing (direct), nginx (Debian `nginx-light`, one
//! worker, access log on, keep-alive upstream connections) and `telemetry proxy` (release build,
//! one runtime thread unless `--threads`, recording every call into a SQLite file). The same load
//! generator, `wrk -t1`, drives all three in interleaved rounds (the order rotates each round):
//! 64 connections for throughput, blocking and streams, then 1 connection for latency (wrk's
//! p50 and p99). Over each run it reads the CPU time (utime + stime, `/proc/PID/stat`) of the
//! proxy's process and of nginx's worker, so CPU time per request — the figure the machine's
//! other load does not change — comes with each throughput.
//!
//! It prints the medians, the ratios ours/nginx (throughput: the median of the rounds' ratios;
//! latency: of the medians, nginx's and ours less direct's p50), each round's throughput ratio
//! (sorted) and the median ratio's distribution-free interval (order statistics, at least 95 %
//! coverage from 6 rounds on; fewer allow less), `/proc/loadavg` before and after, and the
//! proxy's own stop line: every call recorded and written, none dropped, or it fails.
//!
//! ```text
//! cargo xtask proxy-bench [--rounds 3] [--seconds 4] [--connections 64] [--threads 1]
//!                         [--telemetry PATH] [--smoke]
//! ```
//! `--smoke`: 1 round of 1 s with the debug build (checks the harness and the recording, not
//! speed). nginx and wrk are installed with apt when missing; on CI (`CI=true`) a missing tool is
//! a failure, elsewhere one line says what was skipped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::nginx::{self, Nginx};
use crate::util::{apt_install, build_telemetry, cargo, free_port, on_ci, on_path, status};
use crate::util::{target_dir, workspace_root};

const CHAT_REQUEST: &str =
    r#"{"model":"bench","messages":[{"role":"user","content":"hi"}],"max_tokens":16}"#;
const STREAM_REQUEST: &str = r#"{"model":"bench","messages":[{"role":"user","content":"hi"}],"max_tokens":20,"stream":true,"stream_options":{"include_usage":true}}"#;
/// Content chunks of the upstream's stream.
const STREAM_WORDS: usize = 20;
/// CPU time ticks per second (`getconf CLK_TCK`; 100 on every Linux port in use).
const TICKS_PER_SECOND: f64 = 100.0;
/// How long the proxy may take to stop (its in-flight responses end with wrk).
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// What a run measures.
#[derive(Debug, Clone)]
struct Options {
    rounds: usize,
    seconds: u64,
    connections: u32,
    threads: u32,
    smoke: bool,
    telemetry: Option<PathBuf>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            rounds: 3,
            seconds: 4,
            connections: 64,
            threads: 1,
            smoke: false,
            telemetry: None,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .ok_or_else(|| format!("{name} needs a value"))
                    .cloned()
            };
            let number = |name: &str, v: String| {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{name} takes a positive number, got {v:?}"))
            };
            match arg.as_str() {
                "--rounds" => o.rounds = number(arg, value(arg)?)? as usize,
                "--seconds" => o.seconds = number(arg, value(arg)?)?,
                "--connections" => o.connections = number(arg, value(arg)?)? as u32,
                "--threads" => o.threads = number(arg, value(arg)?)? as u32,
                "--telemetry" => o.telemetry = Some(PathBuf::from(value(arg)?)),
                "--smoke" => o.smoke = true,
                other => return Err(format!("proxy-bench: unknown argument {other:?}")),
            }
        }
        if o.smoke {
            o.rounds = 1;
            o.seconds = 1;
        }
        Ok(o)
    }
}

/// The three ways to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Direct,
    Nginx,
    Ours,
}

const TARGETS: [Target; 3] = [Target::Direct, Target::Nginx, Target::Ours];

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Nginx => "nginx",
            Target::Ours => "telemetry",
        }
    }
}

/// The two kinds of call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Load {
    Blocking,
    Stream,
}

impl Load {
    fn query(self) -> &'static str {
        match self {
            Load::Blocking => "",
            Load::Stream => "?stream=1",
        }
    }

    fn script(self) -> &'static str {
        match self {
            Load::Blocking => "blocking.lua",
            Load::Stream => "stream.lua",
        }
    }
}

/// Runs the benchmark; `Ok` also when nginx or wrk is missing outside CI (after saying so).
pub fn run(args: &[String]) -> Result<(), String> {
    let options = Options::parse(args)?;
    let ci = on_ci();
    let have_wrk = on_path("wrk") || apt_install(&["wrk"]) && on_path("wrk");
    let have_nginx = nginx::available(ci)?;
    if !(have_wrk && have_nginx) {
        let missing = if have_wrk { "nginx" } else { "wrk" };
        if ci {
            return Err(format!(
                "{missing} is missing and apt-get could not install it"
            ));
        }
        eprintln!(
            "proxy-bench: skipped the proxy benchmark ({missing} not found and apt-get could not install it)"
        );
        return Ok(());
    }
    let root = workspace_root()?;
    let target = target_dir(&root);
    let telemetry = match &options.telemetry {
        Some(path) => path.clone(),
        None if options.smoke => build_telemetry(&target)?,
        None => {
            status(
                Command::new(cargo()).current_dir(&root).args([
                    "build",
                    "--release",
                    "-p",
                    "telemetry-cli",
                    "--bins",
                ]),
                "building telemetry (release)",
            )?;
            target.join("release").join("telemetry")
        }
    };
    let dir = target.join("proxy-bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Bench::start(&dir, &telemetry, options)?.run()
}

/// The running servers and what they measured.
struct Bench {
    options: Options,
    dir: PathBuf,
    upstream: Nginx,
    front: Nginx,
    ours: Ours,
    addrs: BTreeMap<Target, SocketAddr>,
}

impl Bench {
    fn start(dir: &Path, telemetry: &Path, options: Options) -> Result<Bench, String> {
        let port = || free_port().map_err(|e| format!("no free port: {e}"));
        let up = SocketAddr::from(([127, 0, 0, 1], port()?));
        let front_addr = SocketAddr::from(([127, 0, 0, 1], port()?));
        let upstream = Nginx::start(&dir.join("upstream"), 1, &upstream_config(up)?, &[up])?;
        let front = Nginx::start(
            &dir.join("front"),
            1,
            &front_config(front_addr, up, &dir.join("front/access.log")),
            &[front_addr],
        )?;
        let ours = Ours::start(telemetry, &dir.join("bench.db"), up, options.threads)?;
        for (name, body) in [
            ("blocking.lua", CHAT_REQUEST),
            ("stream.lua", STREAM_REQUEST),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, wrk_script(body))
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
        let addrs = BTreeMap::from([
            (Target::Direct, up),
            (Target::Nginx, front_addr),
            (Target::Ours, ours.addr),
        ]);
        Ok(Bench {
            options,
            dir: dir.to_owned(),
            upstream,
            front,
            ours,
            addrs,
        })
    }

    /// The process whose CPU time a target costs: none for direct, nginx's worker, our proxy.
    fn measured_pid(&self, target: Target) -> Result<Option<u32>, String> {
        match target {
            Target::Direct => Ok(None),
            Target::Nginx => match self.front.worker_pids().as_slice() {
                [one] => Ok(Some(*one)),
                other => Err(format!("nginx front has workers {other:?}, expected one")),
            },
            Target::Ours => Ok(Some(self.ours.child.id())),
        }
    }

    fn url(&self, target: Target, load: Load) -> String {
        format!(
            "http://{}/v1/chat/completions{}",
            self.addrs[&target],
            load.query()
        )
    }

    fn run(mut self) -> Result<(), String> {
        let o = self.options.clone();
        // Every way answers every call with the upstream's bytes, unchanged.
        for target in TARGETS {
            for (load, body) in [
                (Load::Blocking, CHAT_REQUEST),
                (Load::Stream, STREAM_REQUEST),
            ] {
                let got = post(
                    self.addrs[&target],
                    &format!("/v1/chat/completions{}", load.query()),
                    body,
                )?;
                let want = match load {
                    Load::Blocking => chat_completion(),
                    Load::Stream => chat_stream(STREAM_WORDS),
                };
                if got != want {
                    return Err(format!(
                        "{} answered a {load:?} call with a different body:\n{got}\nexpected:\n{want}",
                        target.name()
                    ));
                }
            }
        }
        // Warm-up: upstream connections opened, caches and allocators at their working size.
        for target in [Target::Nginx, Target::Ours] {
            wrk(
                &self.url(target, Load::Blocking),
                &self.dir.join(Load::Blocking.script()),
                o.connections,
                1,
                false,
            )?;
        }
        let load_before = loadavg();
        let started = Instant::now();
        let mut throughput: BTreeMap<(Load, Target), Vec<Sample>> = BTreeMap::new();
        let mut latency: BTreeMap<Target, Vec<WrkRun>> = BTreeMap::new();
        let mut threads: BTreeMap<(Load, String), (u64, u64)> = BTreeMap::new();
        for round in 0..o.rounds {
            let order: Vec<Target> = (0..3).map(|i| TARGETS[(round + i) % 3]).collect();
            for load in [Load::Blocking, Load::Stream] {
                for &target in &order {
                    let pid = self.measured_pid(target)?;
                    let before = pid.map(cpu_ticks).transpose()?;
                    let per_thread =
                        (target == Target::Ours).then(|| thread_ticks(self.ours.child.id()));
                    let run = wrk(
                        &self.url(target, load),
                        &self.dir.join(load.script()),
                        o.connections,
                        o.seconds,
                        false,
                    )?;
                    let after = pid.map(cpu_ticks).transpose()?;
                    if let Some(before) = per_thread {
                        for (name, ticks) in thread_ticks(self.ours.child.id()) {
                            let spent =
                                ticks.saturating_sub(before.get(&name).copied().unwrap_or(0));
                            let entry = threads.entry((load, name)).or_default();
                            entry.0 += spent;
                            entry.1 += run.requests;
                        }
                    }
                    let cpu_us = match (before, after) {
                        (Some(b), Some(a)) if run.requests > 0 => {
                            Some((a - b) as f64 / TICKS_PER_SECOND * 1e6 / run.requests as f64)
                        }
                        _ => None,
                    };
                    throughput.entry((load, target)).or_default().push(Sample {
                        rps: run.rps,
                        cpu_us,
                    });
                }
            }
            for &target in &order {
                let run = wrk(
                    &self.url(target, Load::Blocking),
                    &self.dir.join(Load::Blocking.script()),
                    1,
                    o.seconds,
                    true,
                )?;
                latency.entry(target).or_default().push(run);
            }
        }
        let elapsed = started.elapsed();
        let load_after = loadavg();
        let stopped = self.ours.stop()?;
        drop(self.front);
        drop(self.upstream);
        let report = Report {
            throughput,
            latency,
            threads,
        };
        println!(
            "proxy-bench: {} rounds x {} s, interleaved, in {elapsed:.0?}; wrk -t1, {} connections (latency: 1); telemetry proxy --threads {}{}, recording into {}",
            o.rounds,
            o.seconds,
            o.connections,
            o.threads,
            if o.smoke {
                " (debug build: smoke run, not a measurement)"
            } else {
                ""
            },
            self.dir.join("bench.db").display()
        );
        println!("/proc/loadavg before: {load_before}; after: {load_after}");
        print!("{}", report.table());
        println!("telemetry proxy: {}", stopped.trim());
        check_recorded(&stopped)
    }
}

/// One throughput run of one target.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rps: f64,
    /// CPU µs per request of the measured process (none for direct).
    cpu_us: Option<f64>,
}

struct Report {
    throughput: BTreeMap<(Load, Target), Vec<Sample>>,
    latency: BTreeMap<Target, Vec<WrkRun>>,
    /// Our proxy's CPU ticks and requests per thread name.
    threads: BTreeMap<(Load, String), (u64, u64)>,
}

impl Report {
    fn samples(&self, load: Load, target: Target) -> &[Sample] {
        self.throughput
            .get(&(load, target))
            .map_or(&[], Vec::as_slice)
    }

    fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{:<36}{:>11}{:>11}{:>11}{:>12}",
            "", "direct", "nginx", "telemetry", "ours/nginx"
        );
        for (load, label) in [
            (Load::Blocking, "blocking"),
            (Load::Stream, "20-chunk streams"),
        ] {
            let rps = |target| median(self.samples(load, target).iter().map(|s| s.rps).collect());
            let ratios = self.round_ratios(load);
            let _ = writeln!(
                t,
                "{:<36}{:>11.0}{:>11.0}{:>11.0}{:>12.2}",
                format!("{label}, requests/s"),
                rps(Target::Direct),
                rps(Target::Nginx),
                rps(Target::Ours),
                median(ratios)
            );
        }
        for (load, label) in [(Load::Blocking, "blocking"), (Load::Stream, "streams")] {
            let cpu = |target| {
                median(
                    self.samples(load, target)
                        .iter()
                        .filter_map(|s| s.cpu_us)
                        .collect(),
                )
            };
            let (n, o) = (cpu(Target::Nginx), cpu(Target::Ours));
            let _ = writeln!(
                t,
                "{:<36}{:>11}{:>11.1}{:>11.1}{:>12.2}",
                format!("CPU us per request, {label}"),
                "-",
                n,
                o,
                o / n
            );
        }
        let p = |target: Target, f: fn(&WrkRun) -> Option<f64>| {
            median(
                self.latency
                    .get(&target)
                    .map_or(Vec::new(), |runs| runs.iter().filter_map(f).collect()),
            )
        };
        let p50 = |target| p(target, |r| r.p50_us);
        let p99 = |target| p(target, |r| r.p99_us);
        let (d, n, o) = (p50(Target::Direct), p50(Target::Nginx), p50(Target::Ours));
        let _ = writeln!(
            t,
            "{:<36}{d:>11.1}{n:>11.1}{o:>11.1}",
            "1 connection, p50 us"
        );
        let _ = writeln!(
            t,
            "{:<36}{:>11}{:>11.1}{:>11.1}{:>12.2}",
            "1 connection, added p50 us",
            "-",
            n - d,
            o - d,
            (o - d) / (n - d)
        );
        let (d, n, o) = (p99(Target::Direct), p99(Target::Nginx), p99(Target::Ours));
        let _ = writeln!(
            t,
            "{:<36}{d:>11.1}{n:>11.1}{o:>11.1}{:>12.2}",
            "1 connection, p99 us",
            o / n
        );
        let mut by_thread = String::new();
        for ((load, name), (ticks, requests)) in &self.threads {
            if *ticks > 0 && *requests > 0 {
                let us = *ticks as f64 / TICKS_PER_SECOND * 1e6 / *requests as f64;
                let _ = write!(by_thread, " {load:?}/{name} {us:.1}");
            }
        }
        let _ = writeln!(t, "telemetry CPU us per request by thread:{by_thread}");
        let _ = writeln!(
            t,
            "ours/nginx by round, sorted (the spread behind the medians): blocking {}; streams {}",
            sorted_list(self.round_ratios(Load::Blocking)),
            sorted_list(self.round_ratios(Load::Stream))
        );
        let _ = writeln!(
            t,
            "ours/nginx median's distribution-free interval (its coverage): blocking {}; streams {}",
            interval_text(self.round_ratios(Load::Blocking)),
            interval_text(self.round_ratios(Load::Stream))
        );
        t
    }

    /// Our throughput over nginx's in each round of `load`, in round order.
    fn round_ratios(&self, load: Load) -> Vec<f64> {
        self.samples(load, Target::Ours)
            .iter()
            .zip(self.samples(load, Target::Nginx))
            .map(|(o, n)| o.rps / n.rps)
            .collect()
    }
}

/// `values` sorted, two decimals each, space-separated.
fn sorted_list(mut values: Vec<f64>) -> String {
    values.sort_by(f64::total_cmp);
    values
        .iter()
        .map(|v| format!("{v:.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The distribution-free confidence interval of the median of `values` (independent rounds,
/// any distribution): the order statistics `[x(k), x(n+1-k)]` (1-based, sorted) with the largest
/// `k` whose coverage, `1 - 2 P(B < k)` for `B ~ Binomial(n, 1/2)`, is still at least 95 %, or
/// `k = 1` (the whole range) when none is. Returns (low, high, coverage); `None` for no values.
/// With 15 rounds it is `[x(4), x(12)]` at 96.5 %; with 5, the range at 93.8 %.
fn median_interval(mut values: Vec<f64>) -> Option<(f64, f64, f64)> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    values.sort_by(f64::total_cmp);
    // P(B <= i) for i = 0, 1, ...: the binomial's terms in logarithms (no overflow for any n).
    let mut log_term = -(n as f64) * std::f64::consts::LN_2;
    let mut below = 0.0; // P(B < k)
    let mut best = (1, 1.0 - 2.0 * log_term.exp());
    for k in 1..=n / 2 {
        below += log_term.exp();
        let coverage = 1.0 - 2.0 * below;
        if k > 1 && coverage < 0.95 {
            break;
        }
        best = (k, coverage);
        log_term += ((n - (k - 1)) as f64).ln() - (k as f64).ln();
    }
    let (k, coverage) = best;
    Some((values[k - 1], values[n - k], coverage.max(0.0)))
}

/// [`median_interval`] as `median [low, high] (coverage %)`, or `-` for no rounds.
fn interval_text(values: Vec<f64>) -> String {
    let m = median(values.clone());
    match median_interval(values) {
        Some((low, high, coverage)) => {
            format!("{m:.2} [{low:.2}, {high:.2}] ({:.0} %)", coverage * 100.0)
        }
        None => "-".to_owned(),
    }
}

/// The median (NaN for none).
fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// `telemetry proxy` as a child process, recording into a SQLite file.
struct Ours {
    child: Child,
    stdout: BufReader<ChildStdout>,
    addr: SocketAddr,
}

impl Ours {
    fn start(
        telemetry: &Path,
        db: &Path,
        upstream: SocketAddr,
        threads: u32,
    ) -> Result<Ours, String> {
        let mut child = Command::new(telemetry)
            .arg("--db")
            .arg(db)
            .args([
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--gpu",
                "off",
                "--upstream",
            ])
            .arg(format!("http://{upstream}"))
            .args(["--threads", &threads.to_string(), "--shutdown-grace", "5"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", telemetry.display()))?;
        let mut stdout =
            BufReader::new(child.stdout.take().ok_or("telemetry proxy has no stdout")?);
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        // "proxy listening on http://ADDR (OpenAI base URL ...".
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://")?.parse().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("telemetry proxy printed no address: {line:?}"));
        };
        Ok(Ours {
            child,
            stdout,
            addr,
        })
    }

    /// Stops the proxy (SIGTERM, as Ctrl-C would) and returns what it printed at its end.
    fn stop(&mut self) -> Result<String, String> {
        let pid = self.child.id().to_string();
        status(
            Command::new("kill").args(["-TERM", &pid]),
            "kill -TERM telemetry proxy",
        )?;
        let started = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(exit)) if exit.success() => break,
                Ok(Some(exit)) => return Err(format!("telemetry proxy exited with {exit}")),
                _ if started.elapsed() > STOP_TIMEOUT => {
                    return Err(format!(
                        "telemetry proxy did not stop within {STOP_TIMEOUT:?}"
                    ));
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        Ok(rest
            .lines()
            .find(|l| l.starts_with("proxy stopped"))
            .unwrap_or(&rest)
            .to_owned())
    }
}

impl Drop for Ours {
    fn drop(&mut self) {
        // Our own child, by its handle (already reaped when it stopped).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every call the proxy recorded was written: "... 1,300 calls recorded (...); 1,300 records
/// written, 0 dropped".
fn check_recorded(line: &str) -> Result<(), String> {
    // The number just before `phrase`, without its thousands separators.
    let before = |phrase: &str| -> Option<u64> {
        let (head, _) = line.split_once(phrase)?;
        head.split_whitespace()
            .last()?
            .replace(',', "")
            .parse()
            .ok()
    };
    match (
        before(" calls recorded"),
        before(" records written"),
        before(" dropped"),
    ) {
        (Some(calls), Some(written), Some(0)) if calls == written && calls > 0 => Ok(()),
        _ => Err(format!(
            "the proxy did not record every call into the database: {line}"
        )),
    }
}

/// The result of one wrk run.
#[derive(Debug, Clone)]
struct WrkRun {
    requests: u64,
    rps: f64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
}

fn wrk(
    url: &str,
    script: &Path,
    connections: u32,
    seconds: u64,
    latency: bool,
) -> Result<WrkRun, String> {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t1",
        "-c",
        &connections.to_string(),
        "-d",
        &format!("{seconds}s"),
    ])
    .arg("-s")
    .arg(script);
    if latency {
        cmd.arg("--latency");
    }
    let out = cmd
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not start wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk {url} failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse_wrk(&text).map_err(|e| format!("wrk {url}: {e}:\n{text}"))
}

fn parse_wrk(text: &str) -> Result<WrkRun, String> {
    let mut run = WrkRun {
        requests: 0,
        rps: 0.0,
        p50_us: None,
        p99_us: None,
    };
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [n, "requests", "in", ..] => {
                run.requests = n.parse().map_err(|_| "bad request count")?
            }
            ["Requests/sec:", r] => run.rps = r.parse().map_err(|_| "bad requests/s")?,
            ["50%", v] => run.p50_us = Some(micros(v)?),
            ["99%", v] => run.p99_us = Some(micros(v)?),
            ["Non-2xx", "or", "3xx", "responses:", n] => {
                return Err(format!("{n} responses were not 2xx"));
            }
            _ => {}
        }
    }
    if run.requests == 0 {
        return Err("no request completed".to_owned());
    }
    Ok(run)
}

/// A wrk duration (`45.00us`, `1.20ms`, `2.00s`) in microseconds.
fn micros(text: &str) -> Result<f64, String> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| format!("no unit in {text:?}"))?;
    let (n, unit) = text.split_at(split);
    let n: f64 = n.parse().map_err(|_| format!("bad duration {text:?}"))?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        _ => return Err(format!("unknown unit in {text:?}")),
    };
    Ok(n * scale)
}

/// wrk's script: every request the same POST (no Lua runs per request).
fn wrk_script(body: &str) -> String {
    format!(
        "wrk.method = \"POST\"\nwrk.body = [[{body}]]\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
    )
}

/// utime + stime of process `pid`, in ticks.
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("reading /proc/{pid}/stat: {e}"))?;
    stat_ticks(&stat).ok_or_else(|| format!("unreadable /proc/{pid}/stat: {stat}"))
}

/// utime + stime (fields 14 and 15) of a `stat` line.
fn stat_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// utime + stime of each thread of `pid`, summed by thread name.
fn thread_ticks(pid: u32) -> BTreeMap<String, u64> {
    let mut by_name = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.filter_map(Result::ok) {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let name = stat
            .split_once('(')
            .and_then(|(_, rest)| rest.rsplit_once(')'))
            .map_or("?", |(name, _)| name)
            .to_owned();
        *by_name.entry(name).or_default() += stat_ticks(&stat).unwrap_or(0);
    }
    by_name
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// One `POST` with `Connection: close`; the response body (de-chunked).
fn post(addr: SocketAddr, path: &str, body: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connecting to {addr}: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| format!("sending to {addr}: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("reading from {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{addr} answered no HTTP response: {text}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("{addr}{path} answered {head}"));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return dechunk(body).ok_or_else(|| format!("{addr}: bad chunked body {body:?}"));
    }
    Ok(body.to_owned())
}

fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size + 2..)?;
    }
}

fn upstream_config(listen: SocketAddr) -> Result<String, String> {
    Ok(format!(
        "server {{\n\
         listen {listen} backlog=4096;\n\
         keepalive_requests 100000000;\n\
         location = /v1/chat/completions {{\n\
         if ($arg_stream) {{ rewrite ^ /sse last; }}\n\
         default_type application/json;\n\
         {}\n\
         }}\n\
         location = /sse {{\n\
         internal;\n\
         default_type text/event-stream;\n\
         {}\n\
         }}\n\
         }}",
        nginx::return_text(200, &chat_completion())?,
        nginx::return_text(200, &chat_stream(STREAM_WORDS))?
    ))
}

fn front_config(listen: SocketAddr, upstream: SocketAddr, access_log: &Path) -> String {
    format!(
        "upstream bench_upstream {{ server {upstream}; keepalive 64; keepalive_requests 100000000; }}\n\
         server {{\n\
         listen {listen} backlog=4096;\n\
         access_log {};\n\
         keepalive_requests 100000000;\n\
         location / {{\n\
         proxy_pass http://bench_upstream;\n\
         proxy_http_version 1.1;\n\
         proxy_set_header Connection \"\";\n\
         }}\n\
         }}",
        access_log.display()
    )
}

/// A llama.cpp-style chat completion (as `telemetry_openai::fake::chat_completion` gives it).
fn chat_completion() -> String {
    concat!(
        r#"{"id":"chatcmpl-fake","object":"chat.completion","created":1764000000,"model":"bench","#,
        r#""choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"Hello! How can I help you today?"}}],"#,
        r#""usage":{"prompt_tokens":9,"completion_tokens":16,"total_tokens":25},"#,
        r#""timings":{"prompt_n":9,"prompt_ms":12.5,"predicted_n":16,"predicted_ms":40.0,"cache_n":0}}"#
    )
    .to_owned()
}

/// A llama.cpp-style chat stream: a role-only chunk, `words` content chunks, a finish chunk, a
/// usage chunk with timings, `[DONE]`.
fn chat_stream(words: usize) -> String {
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-fake\",\"object\":\"chat.completion.chunk\",\"created\":1764000000,\"model\":\"bench\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
        )
    };
    let mut s = chunk(r#"{"role":"assistant","content":null}"#, "null");
    for i in 0..words {
        s.push_str(&chunk(&format!(r#"{{"content":" w{i}"}}"#), "null"));
    }
    s.push_str(&chunk("{}", "\"stop\""));
    s.push_str(&format!(
        "data: {{\"id\":\"chatcmpl-fake\",\"object\":\"chat.completion.chunk\",\"created\":1764000000,\"model\":\"bench\",\"choices\":[],\"usage\":{{\"prompt_tokens\":9,\"completion_tokens\":{words},\"total_tokens\":{}}},\"timings\":{{\"prompt_n\":9,\"prompt_ms\":12.5,\"predicted_n\":{words},\"predicted_ms\":40.0,\"cache_n\":0}}}}\n\n",
        9 + words
    ));
    s.push_str("data: [DONE]\n\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let text = "Running 1s test @ http://127.0.0.1:1/\n  1 threads and 1 connections\n  Latency Distribution\n     50%   45.00us\n     75%   50.00us\n     90%   60.00us\n     99%    1.20ms\n  12345 requests in 1.00s, 5.00MB read\nRequests/sec:  12345.67\nTransfer/sec:      5.00MB\n";
        let run = parse_wrk(text).unwrap();
        assert_eq!(run.requests, 12345);
        assert_eq!(run.rps, 12345.67);
        assert_eq!(run.p50_us, Some(45.0));
        assert_eq!(run.p99_us, Some(1200.0));
        assert!(parse_wrk("  10 requests in 1.00s\n  Non-2xx or 3xx responses: 10\n").is_err());
    }

    #[test]
    fn the_stop_line_says_whether_every_call_was_written() {
        let ok = "proxy stopped: 120,345 requests, 120,300 calls recorded (0 failed, 12 cancelled); 120,300 records written, 0 dropped";
        assert_eq!(check_recorded(ok), Ok(()));
        let ok = "proxy stopped: 1345 requests, 1300 calls recorded (0 failed, 12 cancelled); 1300 records written, 0 dropped";
        assert_eq!(check_recorded(ok), Ok(()));
        let dropped = "proxy stopped: 1345 requests, 1300 calls recorded (0 failed, 12 cancelled); 1290 records written, 10 dropped";
        assert!(check_recorded(dropped).is_err());
    }

    #[test]
    fn stat_fields_are_read_after_the_command() {
        let stat = "42 (tokio (rt) w) S 1 42 42 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 2 0";
        assert_eq!(stat_ticks(stat), Some(281));
    }

    #[test]
    fn round_ratios_are_listed_sorted() {
        assert_eq!(sorted_list(vec![1.04, 0.956, 1.0]), "0.96 1.00 1.04");
        assert_eq!(sorted_list(Vec::new()), "");
    }

    #[test]
    fn the_median_interval_is_the_order_statistics_of_its_coverage() {
        let fifteen: Vec<f64> = (1..=15).map(f64::from).collect();
        let (low, high, coverage) = median_interval(fifteen).unwrap();
        // P(B <= 3) for B ~ Binomial(15, 1/2) = 576 / 32768.
        assert_eq!((low, high), (4.0, 12.0));
        assert!(
            (coverage - (1.0 - 2.0 * 576.0 / 32768.0)).abs() < 1e-12,
            "{coverage}"
        );
        // Five rounds: no interval reaches 95 %, so the whole range, at 1 - 2/32.
        let (low, high, coverage) = median_interval(vec![1.02, 0.9, 1.1, 0.95, 1.0]).unwrap();
        assert_eq!((low, high), (0.9, 1.1));
        assert!((coverage - 0.9375).abs() < 1e-12, "{coverage}");
        // One round says nothing about where the median lies.
        assert_eq!(median_interval(vec![1.0]), Some((1.0, 1.0, 0.0)));
        assert_eq!(median_interval(Vec::new()), None);
        // Many rounds: no overflow, and the interval narrows towards the middle.
        let many: Vec<f64> = (1..=2000).map(f64::from).collect();
        let (low, high, coverage) = median_interval(many).unwrap();
        assert!(
            low > 900.0 && high < 1100.0 && coverage >= 0.95,
            "{low} {high} {coverage}"
        );
        assert_eq!(
            interval_text(vec![1.02, 0.9, 1.1, 0.95, 1.0]),
            "1.00 [0.90, 1.10] (94 %)"
        );
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }
}
