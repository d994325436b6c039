//! [`Sender`]: turns batches of records into OTLP requests and posts them. Shared by the live
//! exporter's thread and the backfill.

use std::time::Duration;

use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use telemetry_core::TelemetryRecord;

use crate::config::OtlpConfig;
use crate::error::ExportError;
use crate::metrics::MetricsState;
use crate::span::{IdGenerator, request, resource, span};
use crate::transport::Transport;

/// Encodes and posts; owns the id generator and the encoding buffer.
#[derive(Debug)]
pub(crate) struct Sender {
    config: OtlpConfig,
    resource: Resource,
    transport: Transport,
    ids: IdGenerator,
    buffer: Vec<u8>,
}

impl Sender {
    pub(crate) fn new(config: OtlpConfig) -> Self {
        Sender {
            resource: resource(&config.resource),
            transport: Transport::new(config.protocol),
            config,
            ids: IdGenerator::new(),
            buffer: Vec::new(),
        }
    }

    pub(crate) fn config(&self) -> &OtlpConfig {
        &self.config
    }

    /// Posts one span per record (each its own trace: a call is a root span). `timeout` caps the
    /// configured one (a shutdown deadline).
    pub(crate) fn send_spans<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a TelemetryRecord>,
        timeout: Option<Duration>,
    ) -> Result<usize, ExportError> {
        let spans: Vec<_> = records
            .into_iter()
            .map(|r| {
                let trace = self.ids.trace_id();
                let id = self.ids.span_id();
                span(r, trace, id)
            })
            .collect();
        let n = spans.len();
        if n == 0 {
            return Ok(0);
        }
        self.buffer.clear();
        // Encoding into a Vec cannot run out of space: the Vec grows.
        let _ = request(&self.resource, spans).encode(&mut self.buffer);
        let timeout = cap(self.config.traces_timeout, timeout);
        self.transport.post(
            &self.config.traces_endpoint,
            &self.config.traces_headers,
            &self.buffer,
            timeout,
        )?;
        Ok(n)
    }

    /// Posts the cumulative metrics as of `time_ns`; `Ok(false)` when there was nothing to send.
    /// Only an acknowledged request clears `metrics.unsent`.
    pub(crate) fn send_metrics(
        &mut self,
        metrics: &mut MetricsState,
        time_ns: u64,
        timeout: Option<Duration>,
    ) -> Result<bool, ExportError> {
        let Some(req) = metrics.request(&self.resource, time_ns) else {
            return Ok(false);
        };
        self.buffer.clear();
        let _ = req.encode(&mut self.buffer);
        let timeout = cap(self.config.metrics_timeout, timeout);
        self.transport.post(
            &self.config.metrics_endpoint,
            &self.config.metrics_headers,
            &self.buffer,
            timeout,
        )?;
        metrics.unsent = false;
        Ok(true)
    }
}

fn cap(configured: Duration, limit: Option<Duration>) -> Duration {
    match limit {
        Some(l) => configured.min(l).max(Duration::from_millis(1)),
        None => configured,
    }
}
