//! # telemetry-prometheus
//!
//! The Prometheus exposition of an inference-telemetry database: [`render`] reads the stored
//! rollups through a read-only [`TelemetryAggregator`](telemetry_agg::TelemetryAggregator) and
//! writes the Prometheus text format (version 0.0.4, [`CONTENT_TYPE`]) or, for a scraper that asks
//! for it ([`Format::negotiate`]), OpenMetrics 1.0.0, with the `prometheus-client` encoder, which escapes label values
//! (a model name with quotes, backslashes or newlines stays one valid series). Nothing is kept
//! between scrapes: each one merges the per-day summaries (a few thousand rows even at ten
//! million records), so `telemetry serve` and the proxy expose the same numbers as `telemetry
//! stats`.
//!
//! ## Metrics
//!
//! Names follow Prometheus conventions (base units, `_total`, `_seconds`, `_joules`); every
//! series has the labels `model`, `engine` and `agent` (empty when not set). With the default
//! namespace `inference`:
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `inference_calls_total{outcome}` | counter | calls; `outcome` is `error` or `ok` (every call that did not fail, cancelled ones included: the rollups keep the error count only) |
//! | `inference_input_tokens_total` | counter | prompt tokens |
//! | `inference_output_tokens_total` | counter | completion tokens |
//! | `inference_cost_usd_total` | counter | cost, US dollars |
//! | `inference_energy_joules_total` | counter | GPU energy of the calls that measured it |
//! | `inference_latency_seconds` | histogram | wall time per call, [`buckets::LATENCY_SECONDS`] |
//! | `inference_time_to_first_token_seconds` | histogram | TTFT of the calls that have one, same buckets |
//! | `inference_time_per_output_token_seconds` | histogram | per-call mean inter-token latency, [`buckets::TIME_PER_OUTPUT_TOKEN_SECONDS`] |
//! | `inference_folded_series` | gauge | label sets beyond the series limit, merged into the overflow series (0 when none) |
//!
//! Model names come from clients, so the label sets exposed are bounded: at most
//! [`DEFAULT_SERIES_LIMIT`] (2000, the OpenTelemetry SDK's cardinality limit;
//! [`RenderOptions::with_series_limit`]) per metric. The first met keep their series (those of
//! the earliest day, then by name, so a series does not come and go between scrapes); the calls
//! of all the others are merged into one series per metric labelled only
//! `otel_metric_overflow="true"` (plus `outcome` for the call counter), as OpenTelemetry's
//! overflow series. A scrape's size and memory are then bounded whatever the database holds.
//!
//! Histogram buckets are fixed; their counts are re-binned at each scrape from the stored
//! quantile sketches (0.5 % relative accuracy), so a value within 0.5 % of a bound may be counted
//! on either side of it (see [`buckets`]). `_count` is exact; `_sum` is exact for latency and
//! TTFT and estimated from the sketch (within 0.5 %) for time per output token. Counters are
//! totals over the stored records: pruning old records lowers them, which Prometheus reads as a
//! counter reset.
//!
//! ```
//! use telemetry_agg::TelemetryAggregator;
//! use telemetry_core::TelemetryRecord;
//! use telemetry_prometheus::{RenderOptions, render};
//! use telemetry_store::TelemetryStore;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("telemetry.db");
//! let store = TelemetryStore::open(&path)?;
//! let record = TelemetryRecord::builder("qwen \"2.5\"", 1_764_300_000.0)
//!     .engine("vllm")
//!     .tokens(100, 20)
//!     .latency_seconds(0.5)
//!     .build();
//! store.record(&record)?;
//! store.close()?;
//!
//! let text = render(&TelemetryAggregator::open(&path)?, &RenderOptions::default())?;
//! assert!(text.contains(
//!     r#"inference_calls_total{model="qwen \"2.5\"",engine="vllm",agent="",outcome="ok"} 1"#
//! ));
//! assert!(text.contains(
//!     r#"inference_latency_seconds_bucket{model="qwen \"2.5\"",engine="vllm",agent="",le="0.64"} 1"#
//! ));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Feature flags
//!
//! None: the crate always needs the query layer and the encoder.
#![deny(missing_docs)]

pub mod buckets;
mod error;
mod format;
mod render;

pub use error::RenderError;
pub use format::{CONTENT_TYPE, Format, OPENMETRICS_CONTENT_TYPE};
pub use render::{
    DEFAULT_NAMESPACE, DEFAULT_SERIES_LIMIT, OVERFLOW_LABEL, RenderOptions, render, render_groups,
};
