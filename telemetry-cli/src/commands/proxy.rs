//! `telemetry proxy`: the recording reverse proxy (telemetry-proxy) in front of one or more
//! OpenAI-compatible servers, recording into the database, with `/metrics` (the same exposition
//! as `telemetry serve`, rendered from the database at each scrape) and `/telemetry/health` on
//! its own port. SIGINT/SIGTERM: stop accepting, let responses in flight finish (bounded), then
//! publish records still waiting for GPU energy and flush the store.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use telemetry_agg::TelemetryAggregator;
use telemetry_prometheus::{Format, RenderOptions, render};
use telemetry_proxy::{
    Exposition, MetricsSource, Proxy, ProxyConfig, ProxyTelemetry, Routes, Upstream,
};

use crate::cli::ProxyArgs;
use crate::dbpath::DbPath;
use crate::emit::emit;
use crate::error::{CliError, ServerError};
use crate::listen::{exposure_warning, shutdown_signal};
use crate::output::{count, escape_controls};
use crate::recording::{AutoFallback, CallClock, Recording};

/// `/metrics` of the proxy: the database's exposition, read at each scrape, at most this many
/// label sets per metric.
struct DbMetrics(PathBuf, usize);

impl MetricsSource for DbMetrics {
    /// OpenMetrics to a scraper that prefers it, the Prometheus text format otherwise (as
    /// `serve`).
    fn render(&self, accept: Option<&str>) -> Result<Exposition, String> {
        let format = Format::negotiate(accept);
        let agg = TelemetryAggregator::open(&self.0).map_err(|e| e.to_string())?;
        let options = RenderOptions::new()
            .with_format(format)
            .with_series_limit(self.1);
        let text = render(&agg, &options).map_err(|e| e.to_string())?;
        Ok(Exposition {
            content_type: format.content_type(),
            text,
        })
    }
}

/// Runs `proxy` until SIGINT or SIGTERM.
pub fn run(db: &DbPath, args: &ProxyArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let usage = |e: telemetry_proxy::ProxyError| CliError::Usage(e.to_string());
    let mut routes = Routes::new(Upstream::parse(&args.upstream).map_err(usage)?);
    for spec in &args.route {
        routes = routes.route_spec(spec).map_err(usage)?;
    }
    let recording = Recording::builder(&db.path)
        .prices(args.prices.as_deref())
        .gpu(args.gpu, CallClock::Real, AutoFallback::Off)
        .drop_when_full()
        .otlp(args.otlp.as_deref())
        .retain(args.retention.retain)
        .start()?;
    let mut telemetry = ProxyTelemetry::new(Arc::clone(&recording.bus))
        .engine_name(&args.engine_name)
        .agent(&args.agent)
        .store(recording.store.clone());
    if let Some(p) = recording.prices.clone() {
        telemetry = telemetry.price_table(p);
    }
    if let Some(s) = recording.sampler() {
        telemetry = telemetry.gpu_sampler(Arc::clone(s));
    }
    let mut config = ProxyConfig::new(routes.clone())
        .telemetry(telemetry.clone())
        .shutdown_grace(Duration::from_secs(args.shutdown_grace))
        .connect_timeout(Duration::from_secs(args.connect_timeout))
        .first_byte_timeout(Duration::from_secs(args.first_byte_timeout))
        .chunk_timeout(Duration::from_secs(args.chunk_timeout))
        .body_timeout(Duration::from_secs(args.body_timeout))
        .buffer_budget(usize::try_from(args.buffer_budget << 20).unwrap_or(usize::MAX))
        .max_connections(usize::try_from(args.max_connections).unwrap_or(usize::MAX))
        .usage_injection(!args.no_usage_injection)
        .metrics(Arc::new(DbMetrics(db.path.clone(), args.series_limit)));
    if let Some(ca) = &args.upstream_ca {
        config = config.upstream_ca(ca);
    }

    // The first worker is this thread's runtime; with --threads N the others are threads of
    // their own, each a current-thread runtime with its own listener (nginx's worker model).
    let workers = usize::try_from(args.threads).unwrap_or(1);
    config = config.workers(workers);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Proxy(ServerError::Runtime(e)))?;
    let report = runtime.block_on(async {
        // Handlers first: a signal that arrives once the address is printed must stop cleanly.
        let stop = shutdown_signal().map_err(CliError::Proxy)?;
        let proxy = Proxy::bind(args.listen, config)
            .await
            .map_err(|e| match e {
                // A CA file that cannot be used is the argument's fault.
                telemetry_proxy::ProxyError::UpstreamCa { .. } => {
                    CliError::Usage(format!("--upstream-ca: {e}"))
                }
                e => CliError::Proxy(ServerError::Proxy(e)),
            })?;
        let addr = proxy.local_addr();
        if let Some(warning) = exposure_warning(&addr) {
            eprintln!("telemetry: {warning}");
        }
        let mut banner = format!(
            "proxy listening on http://{addr} (OpenAI base URL http://{addr}/v1{}), forwarding to {}\n",
            if workers > 1 {
                format!("; {workers} worker threads")
            } else {
                String::new()
            },
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
            "recording into {}; GPU energy: {}\nhealth: http://{addr}/telemetry/health  metrics: http://{addr}/metrics  (Ctrl-C to stop)\n",
            escape_controls(&db.path.display().to_string()),
            recording.gpu.description,
        ));
        emit(out, &banner)?;
        Ok::<_, CliError>(proxy.run(stop).await)
    })?;
    drop(runtime);

    // Records waiting for their GPU energy are published, then the store commits everything.
    telemetry.flush();
    let mut finished = recording.finish();
    let s = report.stats;
    emit(
        out,
        &format!(
            "proxy stopped: {} requests, {} calls recorded ({} failed, {} cancelled); {}{}\n",
            count(s.requests),
            count(s.calls_recorded),
            count(s.calls_failed),
            count(s.calls_cancelled),
            finished.written_and_dropped(),
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
    if let Some(line) = &finished.otlp_line {
        emit(out, line)?;
    }
    if let Some(line) = finished.retention_line() {
        emit(out, &line)?;
    }
    finished.store_result()
}
