//! # telemetry-otel
//!
//! OpenTelemetry export of inference telemetry: every [`TelemetryRecord`] published on an
//! [`EventBus`](telemetry_core::EventBus) becomes a span and feeds the GenAI client metrics,
//! sent over OTLP/HTTP with protobuf encoding (`http/protobuf`) to any collector (the
//! OpenTelemetry Collector, rotel, Tempo, Jaeger, Datadog's agent, ...).
//!
//! - [`OtlpExporter`]: the live path. The bus subscriber only enqueues into a bounded queue
//!   (full → the newest record is dropped and counted); batching, aggregation and export run on
//!   their own thread. A collector that is down or slow costs the caller nothing and memory
//!   stays bounded; [`OtlpExporter::shutdown`] flushes within a deadline.
//!   [`OtlpExporter::device_reading`] takes [`DeviceReading`]s of GPUs the same way, for the
//!   device-level `hw.*` series.
//! - [`Backfill`]: the batch path, sending stored records with their original times.
//! - [`OtlpConfig`]: endpoint, headers, resource and limits from the standard `OTEL_*` variables
//!   ([`OtlpConfig::from_env`]) or a builder.
//! - [`semconv`]: every attribute and metric name this crate emits.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use telemetry_core::{Event, EventBus, TelemetryRecord};
//! use telemetry_otel::{OtlpConfig, OtlpExporter};
//!
//! let exporter = OtlpExporter::start(OtlpConfig::from_env()?.with_service_name("chat"))?;
//! let bus = Arc::new(EventBus::new());
//! exporter.subscribe_to_bus(&bus);
//! bus.publish(Event::from(
//!     TelemetryRecord::builder("qwen2.5-7b", 1_764_300_000.0)
//!         .engine("vllm")
//!         .tokens(200, 64)
//!         .latency_seconds(1.9)
//!         .build(),
//! ));
//! exporter.shutdown(Duration::from_secs(5))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## What is sent
//!
//! **A span per call**, each the root of its own trace: kind `CLIENT`, named
//! `{gen_ai.operation.name} {gen_ai.request.model}`, starting at the record's `timestamp` and
//! lasting its `latency_seconds`, with
//! - `gen_ai.operation.name`: the record's `operation` (`chat`, `text_completion`,
//!   `embeddings`, `generate_content`; the proxy names it from the endpoint); for a record
//!   without one, `text_completion` when its metadata says so, else `chat`;
//! - `gen_ai.provider.name` (the engine), `gen_ai.request.model` and `gen_ai.response.model` (both
//!   the record's model: it keeps one), `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`,
//!   `gen_ai.usage.cache_read.input_tokens` when some were cached;
//! - `server.address` / `server.port` when the metadata has them (string / integer; the CLI's
//!   `run` and the proxy put the server's there, the proxy the upstream that served the call);
//! - for a failed call (`outcome` error): `error.type` = the record's `error_kind` (else `_OTHER`)
//!   and status `ERROR` with the error message. A cancelled call is not an error: status unset,
//!   `telemetry.outcome` = `cancelled`;
//! - the project namespace `telemetry.*` for the rest (absent when not measured):
//!   `telemetry.agent`, `.outcome`, `.streaming`, `.ttft_s`, `.itl.{mean,median,p90,p95,p99,std}_ms`,
//!   `.throughput_tok_per_s`, `.prefill_s`, `.decode_s`, `.server.{prefill,decode}_ms`,
//!   `.energy_j`, `.energy.{prefill,decode}_j`, `.energy.method`, `.energy.vendor`,
//!   `.gpu.{power_w,utilization_pct,memory_used_gb,temperature_c}`, `.cost_usd`, `.cost_unknown`,
//!   `.tokens_counted`, `.batch_id`, `.warmup`, `.metadata` (the metadata object as JSON).
//!
//! **Metrics**, cumulative temporality (every export carries the totals since the start, and
//! after a refused or failed export the next one, the last at shutdown included, sends the
//! current totals again until the collector acknowledges one), per attribute set (`gen_ai.operation.name`,
//! `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.response.model`, `server.*`):
//!
//! | metric | type, unit | recorded |
//! |---|---|---|
//! | `gen_ai.client.operation.duration` | histogram, `s`, buckets 0.01 … 81.92 (doubling) | every call; `error.type` on failures |
//! | `gen_ai.client.token.usage` | histogram, `{token}`, buckets 1 … 67108864 (×4) | input and output (`gen_ai.token.type`) of calls that did not fail |
//! | `gen_ai.client.operation.time_to_first_chunk` | histogram, `s`, buckets 0.01 … 2.5 | streams with a TTFT |
//! | `gen_ai.client.operation.time_per_output_chunk` | histogram, `s`, same buckets | streams: the call's mean gap between output chunks once per output chunk after the first (`output_chunks` − 1 observations: chunks, not tokens, as a chunk may carry several; count and sum exact, buckets approximate: records keep the gaps' statistics, not each gap) |
//! | `telemetry.client.operation.energy` | histogram, `J`, buckets 0.1 … 10000 (1-2-5) | calls with measured GPU energy |
//! | `telemetry.client.energy` | monotonic sum, `J` | the same energy, summed |
//! | `telemetry.client.cost` | monotonic sum, `{USD}` | calls with a cost |
//!
//! Each instrument keeps at most [`OtlpConfig::cardinality_limit`] attribute sets (2000 by
//! default, the OpenTelemetry SDK's): clients choose model names, and cumulative series are
//! never evicted. Measurements of further attribute sets go to one overflow point per
//! instrument whose only attribute is `otel.metric.overflow = true`;
//! [`ExporterStats::calls_folded`] counts the calls concerned.
//!
//! **Device-level series**, from OpenTelemetry's hardware conventions, when the caller feeds
//! readings of its GPUs ([`OtlpExporter::device_reading`], a [`DeviceReading`] per device about
//! once per metric interval; the CLI does it from its GPU sampler): each device's newest
//! reading, with `hw.id` (the device's identifier, e.g. its UUID), `hw.type` = `gpu` and
//! `hw.name` (its product name):
//!
//! | metric | type, unit | value |
//! |---|---|---|
//! | `hw.energy` | monotonic sum (counter), `J` | the device's own cumulative energy counter (NVML: since the driver loaded); the series starts at the first reading, and again after the counter goes back |
//! | `hw.power` | gauge, `W` | power drawn |
//! | `hw.gpu.utilization` | gauge, `1` (fraction), `hw.gpu.task` = `general` | fraction of time busy |
//! | `hw.gpu.memory.usage` | up-down sum, `By` | memory in use |
//! | `hw.gpu.memory.limit` | up-down sum, `By` | memory size |
//!
//! A device's energy (idle included) is not the sum of the calls' `telemetry.client.energy`:
//! a record holds the share of the device's energy attributed to one call.
//!
//! The resource carries `service.name` (from `OTEL_SERVICE_NAME`, else `OTEL_RESOURCE_ATTRIBUTES`,
//! else `unknown_service:<executable>`) and every attribute of `OTEL_RESOURCE_ATTRIBUTES`; the
//! instrumentation scope is `telemetry-otel` with the crate's version.
//!
//! ## Protocols
//!
//! [`Protocol::HttpProtobuf`] (the default) posts over plain HTTP/1.1 (`ureq`, no TLS stack).
//! With the `grpc` feature, [`Protocol::Grpc`] ([`OtlpConfig::grpc`] or
//! `OTEL_EXPORTER_OTLP_PROTOCOL=grpc`, default endpoint [`DEFAULT_GRPC_ENDPOINT`]) makes unary
//! calls of the OTLP trace and metrics services over plain-text HTTP/2 (hyper on a
//! single-threaded tokio runtime inside the export thread, one connection kept open). An
//! `https://` endpoint, `http/json`, or `grpc` without the feature is a configuration error: run
//! a collector next to the process to reach TLS backends.
//!
//! ## Feature flags
//!
//! - `grpc`: OTLP/gRPC as above (adds tokio, hyper's HTTP/2 client and h2; still no TLS).
//! - `testing`: [`testing::OtlpReceiver`], an in-process OTLP/HTTP receiver decoding what it is
//!   sent (the crate's own tests and benches use it).
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backfill;
mod config;
mod device;
mod error;
mod exporter;
#[cfg(feature = "grpc")]
mod grpc;
mod metrics;
pub mod semconv;
mod sender;
mod span;
#[cfg(feature = "testing")]
pub mod testing;
mod transport;

pub use backfill::{Backfill, BackfillSummary};
pub use config::{
    DEFAULT_CARDINALITY_LIMIT, DEFAULT_ENDPOINT, DEFAULT_GRPC_ENDPOINT, LONGEST_WAIT, OtlpConfig,
    Protocol,
};
pub use device::DeviceReading;
pub use error::{ConfigError, ExportError, FlushError, StartError};
pub use exporter::{ExporterStats, OtlpExporter};
pub use span::{SCOPE_NAME, error_type, operation_name, server, span};

#[doc(no_inline)]
pub use telemetry_core::TelemetryRecord;
