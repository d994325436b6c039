//! `telemetry proxy`: the recording reverse proxy (telemetry-proxy) in front of one or more
//! OpenAI-compatible servers, recording into the database, with `/metrics` (the same exposition
//! as `telemetry serve`, rendered from the database at each scrape) and `/telemetry/health` on
//! its own port. SIGINT/SIGTERM: stop accepting, let responses in flight finish (bounded), then
//! publish records still waiting for GPU energy and flush the store.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use telemetry_agg::TelemetryAggregator;
use telemetry_core::EventBus;
use telemetry_prometheus::{CONTENT_TYPE, RenderOptions, render};
use telemetry_proxy::{MetricsSource, Proxy, ProxyConfig, ProxyTelemetry, Routes, Upstream};
use telemetry_store::{OverflowPolicy, TelemetryStore};
use telemetry_wrap::PriceTable;

use crate::cli::GpuChoice;
use crate::commands::demo::gpu;
use crate::commands::emit;
use crate::commands::otlp::LiveExport;
use crate::commands::serve::{parse_listen, shutdown_signal};
use crate::dbpath::DbPath;
use crate::error::CliError;
use crate::output::{count, escape_controls};

/// Examples shown by `telemetry proxy --help`.
pub const EXAMPLES: &str = "\
Every request is forwarded unchanged (streams byte for byte, as they arrive). POST
/v1/chat/completions and /v1/completions are recorded: model, tokens (the server's usage, else
counted chunks), TTFT, inter-token latency, server timings, errors, cost, GPU energy. A request
header X-Telemetry-Agent: NAME sets the call's agent (and is not forwarded). The proxy answers
GET /telemetry/health (JSON) and GET /metrics (Prometheus, from the database) itself.

Examples:
  telemetry proxy --upstream http://127.0.0.1:8080
      then: OPENAI_BASE_URL=http://127.0.0.1:8000/v1 python app.py
  telemetry proxy --listen 0.0.0.0:8000 --upstream http://gpu1:8080 \\
      --route qwen3-32b=http://gpu2:8080 --engine-name llama.cpp --prices prices.toml
  telemetry --db /srv/telemetry.db proxy --upstream http://127.0.0.1:8000 --gpu nvml";

/// `telemetry proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address to listen on, IP:PORT or HOST:PORT (port 0 picks a free port; the address is
    /// printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8000", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// The server requests go to (plain http://host:port, optionally with a path prefix).
    #[arg(long, value_name = "URL")]
    pub upstream: String,
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
    /// Seconds responses in flight may take to finish after SIGINT/SIGTERM.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub shutdown_grace: u64,
    /// Worker threads (1: a single-threaded runtime, the fastest on a small machine).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: u64,
    /// Also export each call live to an OpenTelemetry collector over OTLP/HTTP [URL default:
    /// $OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4318].
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    pub otlp: Option<String>,
}

/// `/metrics` of the proxy: the database's exposition, read at each scrape.
struct DbMetrics(PathBuf);

impl MetricsSource for DbMetrics {
    fn content_type(&self) -> &'static str {
        CONTENT_TYPE
    }

    fn render(&self) -> Result<String, String> {
        let agg = TelemetryAggregator::open(&self.0).map_err(|e| e.to_string())?;
        render(&agg, &RenderOptions::default()).map_err(|e| e.to_string())
    }
}

/// Runs `proxy` until SIGINT or SIGTERM.
pub fn run(db: &DbPath, args: &ProxyArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let usage = |e: telemetry_proxy::ProxyError| CliError::Usage(e.to_string());
    let mut routes = Routes::new(Upstream::parse(&args.upstream).map_err(usage)?);
    for spec in &args.route {
        routes = routes.route_spec(spec).map_err(usage)?;
    }
    let prices = match &args.prices {
        Some(path) => Some(
            PriceTable::from_path(path)
                .map_err(|e| CliError::Usage(format!("--prices {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let (sampler, gpu_description) = choose_gpu(args.gpu)?;

    // A store that cannot keep up drops (and counts) records instead of making requests wait:
    // the bus hands each record to the store on the proxy's own thread.
    let store = TelemetryStore::builder(&db.path)
        .overflow(OverflowPolicy::DropNewest)
        .open()?;
    let bus = Arc::new(EventBus::new());
    store.subscribe_to_bus(&bus);
    let otlp = LiveExport::start(args.otlp.as_deref(), &bus)?.map(|o| o.with_gpu(sampler.as_ref()));
    let mut telemetry = ProxyTelemetry::new(Arc::clone(&bus))
        .engine_name(&args.engine_name)
        .agent(&args.agent)
        .store(store.clone());
    if let Some(p) = prices {
        telemetry = telemetry.price_table(p);
    }
    if let Some(s) = sampler {
        telemetry = telemetry.gpu_sampler(s);
    }
    let config = ProxyConfig::new(routes.clone())
        .telemetry(telemetry.clone())
        .shutdown_grace(Duration::from_secs(args.shutdown_grace))
        .metrics(Arc::new(DbMetrics(db.path.clone())));

    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::try_from(args.threads).unwrap_or(1))
            .enable_all()
            .build()
    }
    .map_err(|e| CliError::Proxy(format!("starting the runtime failed: {e}")))?;
    let report = runtime.block_on(async {
        // Handlers first: a signal that arrives once the address is printed must stop cleanly.
        let stop = shutdown_signal().map_err(|e| CliError::Proxy(e.to_string()))?;
        let proxy = Proxy::bind(args.listen, config)
            .await
            .map_err(|e| CliError::Proxy(e.to_string()))?;
        let addr = proxy.local_addr();
        let mut banner = format!(
            "proxy listening on http://{addr} (OpenAI base URL http://{addr}/v1), forwarding to {}\n",
            escape_controls(&args.upstream)
        );
        for (model, upstream) in routes.all().into_iter().skip(1) {
            banner.push_str(&format!(
                "  model {} -> {}\n",
                escape_controls(model.unwrap_or_default()),
                escape_controls(upstream.url())
            ));
        }
        banner.push_str(&format!(
            "recording into {}; GPU energy: {gpu_description}\nhealth: http://{addr}/telemetry/health  metrics: http://{addr}/metrics  (Ctrl-C to stop)\n",
            escape_controls(&db.path.display().to_string()),
        ));
        emit(out, &banner)?;
        Ok::<_, CliError>(proxy.run(stop).await)
    })?;
    drop(runtime);

    // Records waiting for their GPU energy are published, then the store commits everything.
    telemetry.flush();
    let flushed = store.flush();
    let otlp_line = otlp.map(LiveExport::finish);
    let stats = store.stats();
    let closed = store.close();
    let s = report.stats;
    emit(
        out,
        &format!(
            "proxy stopped: {} requests, {} calls recorded ({} failed, {} cancelled); {} records written, {} dropped{}\n",
            count(s.requests),
            count(s.calls_recorded),
            count(s.calls_failed),
            count(s.calls_cancelled),
            count(stats.written),
            count(stats.dropped + stats.rejected),
            if report.connections_cut > 0 {
                format!(
                    "; {} connections cut after the grace period",
                    report.connections_cut
                )
            } else {
                String::new()
            },
        ),
    )?;
    if let Some(line) = otlp_line {
        emit(out, &line)?;
    }
    flushed?;
    closed?;
    Ok(())
}

/// The GPU sampler for `choice`, and one line saying where energy comes from.
fn choose_gpu(
    choice: GpuChoice,
) -> Result<(Option<Arc<telemetry_gpu::GpuSampler>>, String), CliError> {
    match choice {
        GpuChoice::Off => Ok((None, "off".to_owned())),
        GpuChoice::Mock => {
            let source = gpu::mock(true, None)?;
            Ok((source.sampler, source.description))
        }
        GpuChoice::Nvml => {
            let source = gpu::nvml().map_err(CliError::Proxy)?;
            Ok((source.sampler, source.description))
        }
        GpuChoice::Auto => match gpu::nvml() {
            Ok(source) => Ok((source.sampler, source.description)),
            Err(why) => Ok((
                None,
                format!("off (no usable NVIDIA GPU: {})", escape_controls(&why)),
            )),
        },
    }
}
