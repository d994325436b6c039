//! The command line, as clap derive types: every command's arguments live here (their `--help`
//! examples in `help.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[cfg(feature = "proxy")]
use crate::help::PROXY_EXAMPLES;
use crate::help::{
    CHECK_EXAMPLES, CLEAR_EXAMPLES, COMPACT_EXAMPLES, DEMO_EXAMPLES, EXAMPLES, EXPORT_EXAMPLES,
    IMPORT_EXAMPLES, PRUNE_EXAMPLES, REPORT_EXAMPLES, RUN_EXAMPLES, SERIES_EXAMPLES,
    SERVE_EXAMPLES, STATS_EXAMPLES,
};
use crate::listen::parse_listen;
use crate::timearg::{parse_duration, parse_time};

/// Record and inspect inference telemetry: calls, latency, tokens, cost and GPU energy.
#[derive(Debug, Parser)]
#[command(name = "telemetry", version, after_help = EXAMPLES, arg_required_else_help = true)]
pub struct Cli {
    /// Telemetry database file [default: $TELEMETRY_DB, else
    /// $XDG_DATA_HOME/telemetry/telemetry.db, else ~/.local/share/telemetry/telemetry.db]
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run simulated, instrumented inference calls into the database, then show their stats.
    #[command(after_help = DEMO_EXAMPLES)]
    Demo(DemoArgs),
    /// Send real calls to an OpenAI-compatible server (llama.cpp, vLLM, Ollama, ...), record
    /// them, then show their stats.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Overview and per-model (or engine, agent) table: calls, tokens, cost, latency, energy.
    #[command(after_help = STATS_EXAMPLES)]
    Stats(StatsArgs),
    /// Calls, tokens, cost, energy and latency per minute, hour or day.
    #[command(after_help = SERIES_EXAMPLES)]
    Series(SeriesArgs),
    /// One self-contained HTML page (tiles, table, charts) to open offline or share.
    #[command(after_help = REPORT_EXAMPLES)]
    Report(ReportArgs),
    /// Write the records (streaming, constant memory) as JSON, NDJSON or CSV.
    #[command(after_help = EXPORT_EXAMPLES)]
    Export(ExportArgs),
    /// Delete records older than a duration.
    #[command(after_help = PRUNE_EXAMPLES)]
    Prune(PruneArgs),
    /// Delete every record.
    #[command(after_help = CLEAR_EXAMPLES)]
    Clear(ClearArgs),
    /// Rewrite the database once so that deleting records gives disk space back (needed once
    /// for a file created by an earlier version; needs free disk for two copies of the data).
    #[command(after_help = COMPACT_EXAMPLES)]
    Compact(CompactArgs),
    /// Import an OpenJarvis `telemetry.db` (idempotent: importing twice adds nothing).
    #[command(name = "import-openjarvis", after_help = IMPORT_EXAMPLES)]
    ImportOpenjarvis(ImportArgs),
    /// Schema version, record count, integrity check, summaries against rows and file size;
    /// exits 1 if unhealthy.
    #[command(after_help = CHECK_EXAMPLES)]
    Check(CheckArgs),
    /// Serve Prometheus metrics (GET /metrics) computed from the database at each scrape.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Recording reverse proxy: point an application's OpenAI base URL at it and every call to
    /// the upstream server is recorded (tokens, TTFT, ITL, errors, cost, GPU energy).
    #[cfg(feature = "proxy")]
    #[command(after_help = PROXY_EXAMPLES)]
    Proxy(ProxyArgs),
}

/// Where GPU energy comes from in `demo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GpuChoice {
    /// NVML with --realtime when a GPU is present, else the mock.
    Auto,
    /// The mock backend: a scripted power trace (on the simulated clock in instant mode).
    Mock,
    /// Real NVIDIA GPU through NVML (fails if unavailable).
    Nvml,
    /// No energy.
    Off,
}

/// `telemetry demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of calls.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub calls: u64,
    /// Number of simulated models to spread the calls over (at most the 5 the simulator has).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub models: u64,
    /// Calls in flight at once (threads).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub concurrency: u64,
    /// Stream the outputs (records TTFT and inter-token latency).
    #[arg(long)]
    pub stream: bool,
    /// GPU energy source.
    #[arg(long, value_enum, default_value_t = GpuChoice::Auto)]
    pub gpu: GpuChoice,
    /// Sleep for the simulated durations instead of using synthetic timings.
    #[arg(long)]
    pub realtime: bool,
    /// Instant mode: the simulated calls' timestamps are spread evenly over this span ending
    /// now (so `series` and the report's charts over time have many buckets); `--span 0` keeps
    /// the real times of the calls (a few seconds). Ignored with --realtime.
    #[arg(long, value_name = "DURATION", default_value = "1d", value_parser = parse_span)]
    pub span: Duration,
    /// Seed of the simulated engine: the same seed gives the same calls when calls take turns
    /// (instant mode with the mock GPU) or with --concurrency 1.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Also export each call live to an OpenTelemetry collector over OTLP/HTTP [URL default:
    /// $OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4318].
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    pub otlp: Option<String>,
}

/// A time filter shared by the read commands.
#[derive(Debug, Clone, Args)]
pub struct RangeArgs {
    /// Only records at or after this time (RFC 3339, unix seconds, or a duration ago: 90s, 15m, 2h, 7d).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<f64>,
    /// Only records at or before this time (same forms as --since).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<f64>,
}

/// Grouping of `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatsGroup {
    /// Per model.
    Model,
    /// Per engine.
    Engine,
    /// Per agent.
    Agent,
}

/// Output format of `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatsFormat {
    /// Aligned text.
    Table,
    /// `AggregatedStats` as JSON.
    Json,
}

/// `telemetry stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub range: RangeArgs,
    /// Group the table by.
    #[arg(long, value_enum, default_value_t = StatsGroup::Model)]
    pub by: StatsGroup,
    /// Show only the N groups with the most calls (N ≥ 1).
    #[arg(long, short = 'n', value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub top: Option<u64>,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = StatsFormat::Table)]
    pub format: StatsFormat,
}

/// Bucket width of `series`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BucketArg {
    /// One second (read from the raw rows: for short runs).
    #[value(name = "1s", alias = "second")]
    Second,
    /// One minute.
    #[value(name = "1m", alias = "minute")]
    Minute,
    /// One hour.
    #[value(name = "1h", alias = "hour")]
    Hour,
    /// One day (UTC).
    #[value(name = "1d", alias = "day")]
    Day,
}

/// Grouping of `series`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeriesGroup {
    /// One line per bucket.
    None,
    /// Per model.
    Model,
    /// Per engine.
    Engine,
    /// Per agent.
    Agent,
}

/// Output format of `series`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeriesFormat {
    /// Aligned text.
    Table,
    /// A JSON array of points.
    Json,
    /// CSV with a header line.
    Csv,
}

/// `telemetry series`.
#[derive(Debug, Args)]
pub struct SeriesArgs {
    /// Bucket width.
    #[arg(long, value_enum)]
    pub bucket: BucketArg,
    /// Group each bucket by.
    #[arg(long, value_enum, default_value_t = SeriesGroup::None)]
    pub by: SeriesGroup,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = SeriesFormat::Table)]
    pub format: SeriesFormat,
    /// CSV: write the group names exactly as stored. By default a cell starting with = + - @,
    /// tab or carriage return gets a leading ' so that a spreadsheet shows it instead of running
    /// it as a formula.
    #[arg(long)]
    pub raw: bool,
}

/// Bucket width of the charts of `report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportBucket {
    /// Seconds up to 10 minutes of data, minutes up to 6 hours, hours up to 15 days, days
    /// beyond.
    Auto,
    /// One second (read from the raw rows).
    #[value(name = "1s", alias = "second")]
    Second,
    /// One minute.
    #[value(name = "1m", alias = "minute")]
    Minute,
    /// One hour.
    #[value(name = "1h", alias = "hour")]
    Hour,
    /// One day (UTC).
    #[value(name = "1d", alias = "day")]
    Day,
}

/// `telemetry report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub range: RangeArgs,
    /// Bucket width of the charts over time.
    #[arg(long, value_enum, default_value_t = ReportBucket::Auto)]
    pub bucket: ReportBucket,
    /// Group the table and the per-group charts by.
    #[arg(long, value_enum, default_value_t = StatsGroup::Model)]
    pub by: StatsGroup,
    /// Write the page to FILE [default: telemetry-report.html in the current directory].
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Output format of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One JSON array.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// CSV with a header line, columns as in the `telemetry` table.
    Csv,
    /// Send to an OpenTelemetry collector over OTLP/HTTP (spans with their original times, then
    /// GenAI metrics); see --endpoint.
    Otlp,
}

/// `telemetry export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = ExportFormat::Json)]
    pub format: ExportFormat,
    /// Write to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub range: RangeArgs,
    /// CSV: write text cells exactly as stored. By default a cell starting with = + - @, tab or
    /// carriage return gets a leading ' so that a spreadsheet shows it instead of running it as a
    /// formula.
    #[arg(long)]
    pub raw: bool,
    /// --format otlp: the collector's OTLP/HTTP base URL [default: $OTEL_EXPORTER_OTLP_ENDPOINT,
    /// else http://localhost:4318]; spans go to URL/v1/traces, metrics to URL/v1/metrics.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
}

/// `--retain DURATION` of the long-running commands (`proxy`, `serve`, `run`).
#[derive(Debug, Args)]
pub struct RetainArgs {
    /// Keep only the records of this window (90s, 15m, 2h, 30d): older ones, and their
    /// summaries, are deleted in the background (at start, then every minute) in small
    /// transactions, and their space is given back to the file system [default:
    /// $TELEMETRY_RETAIN, else keep everything].
    #[arg(long, value_name = "DURATION", env = "TELEMETRY_RETAIN", value_parser = parse_duration)]
    pub retain: Option<Duration>,
}

/// `telemetry compact`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// `telemetry prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Delete records older than this (90s, 15m, 2h, 30d).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub older_than: Duration,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// `telemetry clear`.
#[derive(Debug, Args)]
pub struct ClearArgs {
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// `telemetry import-openjarvis`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The OpenJarvis `telemetry.db` to import.
    pub path: PathBuf,
}

/// Output format of `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    /// Lines of text.
    Text,
    /// A JSON object.
    Json,
}

/// `telemetry check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = CheckFormat::Text)]
    pub format: CheckFormat,
    /// When the summaries disagree with the rows (rows edited outside the store), rebuild every
    /// summary from the rows in one transaction, then check again. Needs write access; a file
    /// with integrity errors is not touched.
    #[arg(long)]
    pub repair: bool,
}

/// `telemetry run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Base URL of the OpenAI-compatible API (e.g. http://127.0.0.1:8080/v1).
    #[arg(long)]
    pub url: String,
    /// Model to ask for (the server's name or alias).
    #[arg(long)]
    pub model: String,
    /// Stream the answers (records TTFT and inter-token latency).
    #[arg(long)]
    pub stream: bool,
    /// Number of calls.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub calls: u64,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub concurrency: u64,
    /// The prompt of every call.
    #[arg(long, conflicts_with = "prompts")]
    pub prompt: Option<String>,
    /// JSON Lines file of prompts, used in turn: each line a string, {"prompt": "..."} or
    /// {"messages": [{"role": "user", "content": "..."}]}.
    #[arg(long, value_name = "FILE.jsonl")]
    pub prompts: Option<PathBuf>,
    /// Completion token limit per call.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: u64,
    /// Sampling temperature (server default when absent).
    #[arg(long)]
    pub temperature: Option<f64>,
    /// The record's engine (default: asked of the server: llama.cpp, vllm, ollama, ...).
    #[arg(long)]
    pub engine: Option<String>,
    /// The record's agent.
    #[arg(long, default_value = "telemetry-run")]
    pub agent: String,
    /// API key [default: $OPENAI_API_KEY].
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Ask the server not to reuse its prompt cache (llama.cpp `cache_prompt: false`), for
    /// repeatable timings.
    #[arg(long)]
    pub no_cache_prompt: bool,
    /// Seconds from sending a request to its first token (a stream's first chunk with content:
    /// keep-alive comments do not count; a blocking call's answer). Recorded as
    /// timeout_first_token.
    #[arg(long, value_name = "SECONDS", default_value = "300", value_parser = parse_seconds)]
    pub timeout: f64,
    /// Seconds a stream may go without a chunk with content once it has one (keep-alive
    /// comments do not count). Recorded as timeout_idle.
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = parse_seconds)]
    pub idle_timeout: f64,
    /// Seconds a whole call may take [default: no limit]. Recorded as timeout_total.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub total_timeout: Option<f64>,
    /// Also export each call live to an OpenTelemetry collector over OTLP/HTTP [URL default:
    /// $OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4318].
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    pub otlp: Option<String>,
    /// Retention window.
    #[command(flatten)]
    pub retention: RetainArgs,
}

/// `telemetry serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, IP:PORT or HOST:PORT (port 0 picks a free port; the address is
    /// printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Label sets (model, engine, agent) exposed per metric at most: the calls of the others
    /// are merged into one series labelled otel_metric_overflow="true", and
    /// inference_folded_series says how many label sets that is (model names come from
    /// clients; this bounds each scrape).
    #[arg(long, value_name = "N", default_value_t = telemetry_prometheus::DEFAULT_SERIES_LIMIT,
          value_parser = parse_series_limit)]
    pub series_limit: usize,
    /// Retention window; `serve` then opens a writer of its own for it (scrapes stay
    /// read-only and never wait for it).
    #[command(flatten)]
    pub retention: RetainArgs,
}

/// A duration such as `1d` or `6h`, or `0` for none.
fn parse_span(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    crate::timearg::parse_duration(text)
}

/// A positive number of seconds (decimals allowed), at most a year.
fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 366.0 * 86_400.0 => Ok(s),
        _ => Err(format!(
            "expected a number of seconds above 0, e.g. 30 or 0.5 (got {text:?})"
        )),
    }
}

/// A series limit of at least 1.
fn parse_series_limit(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "expected a whole number of at least 1 (got {text:?})"
        )),
    }
}

#[cfg(feature = "proxy")]
/// `telemetry proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address to listen on, IP:PORT or HOST:PORT (port 0 picks a free port; the address is
    /// printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8000", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// The server requests go to (http://host:port or https://host, optionally with a path
    /// prefix).
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    /// Also trust the CA certificates in this PEM file for https:// upstreams (a private CA),
    /// besides the system's.
    #[arg(long, value_name = "FILE")]
    pub upstream_ca: Option<PathBuf>,
    /// Requests for MODEL go to URL instead (repeatable).
    #[arg(long, value_name = "MODEL=URL")]
    pub route: Vec<String>,
    /// The records' engine name.
    #[arg(long, value_name = "NAME", default_value = telemetry_proxy::DEFAULT_ENGINE_NAME)]
    pub engine_name: String,
    /// The agent of calls without an X-Telemetry-Agent header.
    #[arg(long, value_name = "NAME", default_value = "")]
    pub agent: String,
    /// GPU energy per call: auto = NVML when an NVIDIA GPU is usable, else none; mock = the
    /// scripted mock GPU (not a measurement).
    #[arg(long, value_enum, default_value_t = GpuChoice::Auto)]
    pub gpu: GpuChoice,
    /// Price table (TOML or JSON) for the records' cost.
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    /// Seconds allowed to connect to an upstream (TCP and TLS handshake); then a 502.
    #[arg(long, value_name = "SECONDS", default_value_t = telemetry_proxy::DEFAULT_CONNECT_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=telemetry_proxy::MAX_TIMEOUT.as_secs()))]
    pub connect_timeout: u64,
    /// Seconds an upstream may take, once the request is sent, to begin its response (a
    /// blocking call's whole generation), and may go without reading any of a request it is
    /// sent; then a 504.
    #[arg(long, value_name = "SECONDS", default_value_t = telemetry_proxy::DEFAULT_FIRST_BYTE_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=telemetry_proxy::MAX_TIMEOUT.as_secs()))]
    pub first_byte_timeout: u64,
    /// Longest pause, in seconds, between two pieces of an upstream's response; then the
    /// response is ended early.
    #[arg(long, value_name = "SECONDS", default_value_t = telemetry_proxy::DEFAULT_CHUNK_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=telemetry_proxy::MAX_TIMEOUT.as_secs()))]
    pub chunk_timeout: u64,
    /// Seconds a client has to send its whole request body; then a 408.
    #[arg(long, value_name = "SECONDS", default_value_t = telemetry_proxy::DEFAULT_BODY_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=telemetry_proxy::MAX_TIMEOUT.as_secs()))]
    pub body_timeout: u64,
    /// MiB of request and response bodies the proxy holds at most, all connections together.
    #[arg(long, value_name = "MIB", default_value_t = (telemetry_proxy::DEFAULT_BUFFER_BUDGET >> 20) as u64, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub buffer_budget: u64,
    /// Most client connections served at once (a few more get /telemetry/health answered and a
    /// 503 otherwise).
    #[arg(long, value_name = "N", default_value_t = telemetry_proxy::DEFAULT_MAX_CONNECTIONS as u64, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub max_connections: u64,
    /// Do not ask upstreams for the usage of Chat Completions / Completions streams whose
    /// request does not (such streams are then recorded with what they carry: llama.cpp's
    /// timings, else counted output chunks) [env: TELEMETRY_NO_USAGE_INJECTION=1].
    #[arg(long, env = "TELEMETRY_NO_USAGE_INJECTION", hide_env = true)]
    pub no_usage_injection: bool,
    /// Seconds responses in flight may take to finish after SIGINT/SIGTERM.
    #[arg(long, value_name = "SECONDS", default_value_t = telemetry_proxy::DEFAULT_SHUTDOWN_GRACE.as_secs(), value_parser = clap::value_parser!(u64).range(..=telemetry_proxy::MAX_TIMEOUT.as_secs()))]
    pub shutdown_grace: u64,
    /// Worker threads, each with its own listener on the port and its own upstream connections
    /// (1: the fastest on a machine whose cores the upstream and clients keep busy).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: u64,
    /// Also export each call live to an OpenTelemetry collector over OTLP/HTTP [URL default:
    /// $OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4318].
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    pub otlp: Option<String>,
    /// Label sets (model, engine, agent) exposed per metric on /metrics at most; the calls of
    /// the others are merged into one series labelled otel_metric_overflow="true".
    #[arg(long, value_name = "N", default_value_t = telemetry_prometheus::DEFAULT_SERIES_LIMIT,
          value_parser = parse_series_limit)]
    pub series_limit: usize,
    /// Retention window (also reported in /telemetry/health).
    #[command(flatten)]
    pub retention: RetainArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_a_full_stats_line() {
        let cli = Cli::try_parse_from([
            "telemetry",
            "stats",
            "--since",
            "100",
            "--until",
            "200",
            "--by",
            "engine",
            "-n",
            "3",
            "--format",
            "json",
            "--db",
            "/x.db",
        ])
        .unwrap();
        assert_eq!(cli.db, Some(PathBuf::from("/x.db")));
        let Command::Stats(a) = cli.command else {
            panic!("not stats")
        };
        assert_eq!((a.range.since, a.range.until), (Some(100.0), Some(200.0)));
        assert_eq!(
            (a.by, a.top, a.format),
            (StatsGroup::Engine, Some(3), StatsFormat::Json)
        );
    }

    #[cfg(feature = "proxy")]
    #[test]
    fn usage_injection_is_on_unless_turned_off() {
        let no_injection = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            let Command::Proxy(a) = cli.command else {
                panic!("not proxy")
            };
            a.no_usage_injection
        };
        assert!(!no_injection(&[
            "telemetry",
            "proxy",
            "--upstream",
            "http://h:1"
        ]));
        assert!(no_injection(&[
            "telemetry",
            "proxy",
            "--upstream",
            "http://h:1",
            "--no-usage-injection"
        ]));
    }

    #[test]
    fn bucket_accepts_short_and_long_names() {
        for (text, want) in [
            ("1m", BucketArg::Minute),
            ("hour", BucketArg::Hour),
            ("1d", BucketArg::Day),
        ] {
            let cli = Cli::try_parse_from(["telemetry", "series", "--bucket", text]).unwrap();
            let Command::Series(a) = cli.command else {
                panic!("not series")
            };
            assert_eq!(a.bucket, want);
        }
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["telemetry", "stats", "--since", "yesterday"][..],
            &["telemetry", "export", "--format", "xml"],
            &["telemetry", "prune", "--older-than", "0s"],
            &["telemetry", "demo", "--calls", "0"],
            &["telemetry", "stats", "--top", "0"],
            &["telemetry", "stats", "--since", "1e300"],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
