//! `telemetry export --format otlp`: the stored records of a range sent to an OpenTelemetry
//! collector.

use std::io::Write;

use crate::cli::ExportArgs;
use crate::dbpath::DbPath;
use crate::error::CliError;

#[cfg(feature = "otlp")]
use {
    crate::emit::emit,
    crate::output::{self, count},
    crate::progress,
    crate::read::{open_aggregator, time_range},
    crate::recording::otlp::config,
    std::time::Instant,
    telemetry_otel::Backfill,
};

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
        let fail = CliError::Otlp;
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
                match (summary.metrics_sent, summary.calls_folded) {
                    (false, _) => String::new(),
                    (true, 0) => ", then their metrics".to_owned(),
                    (true, n) => format!(
                        ", then their metrics ({} calls folded into the otel.metric.overflow series)",
                        count(n)
                    ),
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
