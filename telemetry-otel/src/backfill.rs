//! [`Backfill`]: sends stored records to a collector synchronously, spans with their original
//! times, then the metrics over all of them.

use telemetry_core::TelemetryRecord;

use crate::config::OtlpConfig;
use crate::error::ExportError;
use crate::metrics::MetricsState;
use crate::sender::Sender;
use crate::span::span_times;

/// What a finished [`Backfill`] sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackfillSummary {
    /// Spans the collector acknowledged.
    pub spans: u64,
    /// Span requests made.
    pub span_requests: u64,
    /// Whether a metrics request was sent (none for zero records).
    pub metrics_sent: bool,
    /// Calls some of whose metric measurements were folded into an overflow series (see
    /// [`OtlpConfig::with_cardinality_limit`]).
    pub calls_folded: u64,
}

/// Sends records as they are pushed, in batches of the configuration's batch size, blocking on
/// each request (a backfill wants every record delivered, not dropped). The first failed request
/// stops it with the error.
///
/// Metrics are cumulative over the records pushed: one point per series, from the earliest
/// record's start to the latest record's end, sent by [`finish`](Self::finish).
///
/// ```no_run
/// use telemetry_core::TelemetryRecord;
/// use telemetry_otel::{Backfill, OtlpConfig};
///
/// let mut backfill = Backfill::new(OtlpConfig::new("http://127.0.0.1:4318")?);
/// backfill.push(TelemetryRecord::builder("m", 1.7e9).latency_seconds(0.5).build())?;
/// let summary = backfill.finish()?;
/// assert_eq!(summary.spans, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Backfill {
    sender: Sender,
    metrics: MetricsState,
    batch: Vec<TelemetryRecord>,
    max_batch: usize,
    first_start: u64,
    last_end: u64,
    summary: BackfillSummary,
}

impl Backfill {
    /// A backfill to the configured collector.
    pub fn new(config: OtlpConfig) -> Self {
        let max_batch = config.max_batch;
        let limit = config.cardinality_limit;
        Backfill {
            sender: Sender::new(config),
            metrics: MetricsState::new(u64::MAX, limit),
            batch: Vec::with_capacity(max_batch),
            max_batch,
            first_start: u64::MAX,
            last_end: 0,
            summary: BackfillSummary::default(),
        }
    }

    /// Adds a record; sends a request when a batch is full. Returns the spans sent so far.
    pub fn push(&mut self, record: TelemetryRecord) -> Result<u64, ExportError> {
        let (start, end) = span_times(&record);
        self.first_start = self.first_start.min(start);
        self.last_end = self.last_end.max(end);
        self.metrics.observe(&record);
        self.batch.push(record);
        if self.batch.len() >= self.max_batch {
            self.send_batch()?;
        }
        Ok(self.summary.spans)
    }

    fn send_batch(&mut self) -> Result<(), ExportError> {
        let n = self.sender.send_spans(&self.batch, None)?;
        self.batch.clear();
        self.summary.spans += n as u64;
        self.summary.span_requests += 1;
        Ok(())
    }

    /// Sends the last spans and the metrics.
    pub fn finish(mut self) -> Result<BackfillSummary, ExportError> {
        if !self.batch.is_empty() {
            self.send_batch()?;
        }
        self.summary.calls_folded = self.metrics.calls_folded;
        if self.first_start != u64::MAX {
            self.metrics.set_start(self.first_start);
            self.summary.metrics_sent =
                self.sender
                    .send_metrics(&mut self.metrics, self.last_end, None)?;
        }
        Ok(self.summary)
    }
}
