//! OTLP export from the command line: live while recording (`demo`, `run`, `proxy` with
//! `--otlp [URL]`) and backfill of stored records (`export --format otlp`).
//!
//! The endpoint is the URL given, else the standard `OTEL_EXPORTER_OTLP_*` variables, else
//! `http://localhost:4318`; headers, resource and limits come from the variables (see
//! `telemetry_otel::OtlpConfig::from_env`). `service.name` is `telemetry` unless set there.

use std::io::Write;

use telemetry_core::EventBus;

use crate::cli::ExportArgs;
use crate::dbpath::DbPath;
use crate::error::CliError;

#[cfg(feature = "otlp")]
use {
    crate::commands::{emit, open_aggregator, time_range},
    crate::output::{self, count},
    crate::progress,
    std::time::Instant,
    telemetry_otel::{Backfill, OtlpConfig, OtlpExporter},
};

/// Records the live exporter holds before dropping new ones, unless `OTEL_BSP_MAX_QUEUE_SIZE`
/// says otherwise: a burst of instant demo calls must not be dropped behind one slow request,
/// and 32 Ki records stay bounded (a few tens of MB at most).
#[cfg(feature = "otlp")]
const LIVE_QUEUE: usize = 32 * 1024;

/// How long `finish` waits for the last export.
#[cfg(feature = "otlp")]
const SHUTDOWN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// The configuration for `--otlp [URL]` / `--endpoint URL`: `url` when given and not empty.
#[cfg(feature = "otlp")]
fn config(url: Option<&str>, flag: &str) -> Result<OtlpConfig, CliError> {
    let usage = |e: telemetry_otel::ConfigError| CliError::Usage(format!("{flag}: {e}"));
    let mut config = OtlpConfig::from_env().map_err(usage)?;
    if let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) {
        config = config.with_endpoint(url).map_err(usage)?;
    }
    if config
        .resource()
        .first()
        .is_some_and(|(_, name)| name.starts_with("unknown_service"))
    {
        config = config.with_service_name("telemetry");
    }
    Ok(config)
}

/// A live OTLP export attached to a bus; see [`LiveExport::start`].
#[derive(Debug)]
pub struct LiveExport {
    #[cfg(feature = "otlp")]
    exporter: OtlpExporter,
}

impl LiveExport {
    /// With `--otlp` given (`Some(url)`, `url` empty for the default endpoint), starts exporting
    /// every record published on `bus` as spans and metrics; `None` without `--otlp`.
    ///
    /// A bad URL or variable is a usage error (exit 2). A collector that is down is not an
    /// error: records are dropped and counted, and [`LiveExport::finish`] says so.
    pub fn start(otlp: Option<&str>, bus: &EventBus) -> Result<Option<Self>, CliError> {
        let Some(url) = otlp else {
            return Ok(None);
        };
        #[cfg(feature = "otlp")]
        {
            let mut config = config(Some(url), "--otlp")?;
            if std::env::var_os("OTEL_BSP_MAX_QUEUE_SIZE").is_none() {
                config = config.with_queue_capacity(LIVE_QUEUE);
            }
            let exporter =
                OtlpExporter::start(config).map_err(|e| CliError::Otlp(format!("--otlp: {e}")))?;
            exporter.subscribe_to_bus(bus);
            Ok(Some(LiveExport { exporter }))
        }
        #[cfg(not(feature = "otlp"))]
        {
            let _ = (url, bus);
            Err(CliError::Usage(
                "--otlp: this telemetry was built without the `otlp` feature".to_owned(),
            ))
        }
    }

    /// Sends what is left (within 10 s) and stops; returns one line saying what was sent,
    /// dropped and failed, with the last error if any.
    pub fn finish(self) -> String {
        #[cfg(feature = "otlp")]
        {
            let shutdown = self.exporter.shutdown(SHUTDOWN_DEADLINE);
            let s = self.exporter.stats();
            let mut line = format!(
                "otlp: {} spans sent to {} ({} dropped, {} failed), metrics sent {} time{}",
                count(s.spans_exported),
                self.exporter.config().traces_endpoint(),
                count(s.dropped),
                count(s.spans_failed),
                s.metric_exports,
                if s.metric_exports == 1 { "" } else { "s" },
            );
            if let Err(e) = shutdown {
                line.push_str(&format!("; {e}"));
            }
            if let Some(e) = self.exporter.last_error() {
                line.push_str(&format!("; last error: {e}"));
            }
            line.push('\n');
            line
        }
        #[cfg(not(feature = "otlp"))]
        {
            String::new()
        }
    }
}

/// `telemetry export --format otlp`: sends the stored records in the range to a collector,
/// spans with their original times, then the metrics over them.
pub fn backfill(db: &DbPath, args: &ExportArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if args.output.is_some() || args.raw {
        return Err(CliError::Usage(
            "--format otlp sends to a collector (--endpoint URL): -o/--output and --raw do not apply"
                .to_owned(),
        ));
    }
    #[cfg(feature = "otlp")]
    {
        let config = config(args.endpoint.as_deref(), "--endpoint")?;
        let traces = config.traces_endpoint().to_owned();
        let agg = open_aggregator(db)?;
        let range = time_range(&args.range)?;
        let show = progress::enabled();
        let total = if show { agg.record_count(&range)? } else { 0 };
        let bar = progress::bar(total, "spans", show);
        let started = Instant::now();
        let mut backfill = Backfill::new(config);
        let fail = |e: telemetry_otel::ExportError| CliError::Otlp(e.to_string());
        for record in agg.export_records(&range)? {
            backfill.push(record?).map_err(fail)?;
            bar.inc(1);
        }
        let summary = backfill.finish().map_err(fail)?;
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        emit(
            out,
            &format!(
                "exported {} records as spans to {} in {} requests{} in {:.2} s ({} spans/s)\n",
                count(summary.spans),
                output::escape_controls(&traces),
                count(summary.span_requests),
                if summary.metrics_sent {
                    ", then their metrics"
                } else {
                    ""
                },
                seconds,
                count((summary.spans as f64 / seconds.max(1e-9)) as u64),
            ),
        )
    }
    #[cfg(not(feature = "otlp"))]
    {
        let _ = (db, out);
        Err(CliError::Usage(
            "--format otlp: this telemetry was built without the `otlp` feature".to_owned(),
        ))
    }
}
