//! # telemetry-agg
//!
//! Read-only queries over the inference-telemetry SQLite store: stats per model, engine and
//! agent, totals with true percentiles, time series for charts, and a streaming export.
//!
//! [`TelemetryAggregator::open`] opens its own read-only connection (`SQLITE_OPEN_READ_ONLY` and
//! `PRAGMA query_only`), so it cannot write even by mistake and never blocks the writer. It refuses
//! a file that is missing, not SQLite, not a telemetry database, or at a schema version it does
//! not know, each with its own [`AggError`].
//!
//! ## How a query is answered
//!
//! The store keeps a [`Rollup`](telemetry_core::Rollup) (sums, counts and
//! [`QuantileSketch`](telemetry_core::QuantileSketch)es) per minute, hour and day bucket and per
//! (model, engine, agent), written in the same transaction as the rows. A query over the inclusive
//! range `[since, until]` merges whole day buckets, then whole hour and minute buckets at the
//! edges, then reads raw rows only for the partial minutes at the very edges (a bucket `[b, b+w)`
//! is whole iff `since <= b` and `b + w <= until`). So a summary of ten million records reads a
//! few thousand summary rows.
//!
//! ## Semantics
//!
//! - Time filters are inclusive: `since <= timestamp <= until`; either side may be open.
//!   An empty database or range gives zeroed stats, not an error.
//! - `total_*` are sums; `avg_*` are means over the calls that have the value (`avg_latency =
//!   total_latency / call_count`, `avg_ttft` over calls with a TTFT), `0.0` when none has.
//! - Ratios are ratios of sums over the calls with an energy measurement:
//!   `energy_per_output_token_joules = Σ energy / Σ completion tokens` and
//!   `output_tokens_per_joule` its inverse; `None` when the denominator is zero.
//! - Percentiles (`latency_p50` .. `itl_p99`) estimate `sorted[floor(q·(n−1))]` within 1 %
//!   relative error; latency and TTFT in seconds, ITL (per-call mean) in milliseconds; `None`
//!   when no call has the value.
//! - Failed calls count in `call_count` and `error_count`.
//! - Grouping is exact on the stored strings; lists are ordered by call count (descending),
//!   then name.
//!
//! ```
//! use telemetry_agg::{Bucket, GroupBy, TelemetryAggregator};
//! use telemetry_core::{TelemetryRecord, TimeRange};
//! use telemetry_store::TelemetryStore;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("telemetry.db");
//! let store = TelemetryStore::open(&path)?;
//! for (i, model) in ["llama-3.1-8b", "qwen2.5-7b", "llama-3.1-8b"].iter().enumerate() {
//!     let record = TelemetryRecord::builder(*model, 1_764_300_000.0 + i as f64)
//!         .engine("vllm")
//!         .tokens(100, 20)
//!         .latency_seconds(0.5 + i as f64)
//!         .build();
//!     store.record(&record)?;
//! }
//! store.flush()?;
//!
//! let agg = TelemetryAggregator::open(&path)?;
//! let all = TimeRange::all();
//! let summary = agg.summary(&all)?;
//! assert_eq!(summary.total_calls, 3);
//! assert_eq!(summary.per_model[0].model_id, "llama-3.1-8b");
//! assert_eq!(summary.per_model[0].call_count, 2);
//! assert!(summary.latency_p50.is_some());
//!
//! let recent = TimeRange::since(1_764_300_001.0)?;
//! assert_eq!(agg.record_count(&recent)?, 2);
//! assert_eq!(agg.series(&all, Bucket::Hour, GroupBy::Engine)?.len(), 1);
//! assert_eq!(agg.export_records(&recent)?.count(), 2);
//! store.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Feature flags
//!
//! - `serde` (default): `Serialize`/`Deserialize` for the stats types, [`SeriesPoint`],
//!   [`Bucket`] and [`GroupBy`].
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod aggregator;
mod collect;
mod error;
mod export;
mod health;
mod histogram;
mod open;
mod plan;
mod row;
mod series;
mod stats;

pub use aggregator::{LimitedGroups, RollupGroup, TelemetryAggregator};
pub use error::{AggError, SqliteError};
pub use export::RecordIter;
pub use health::{RollupCheck, RollupDrift};
pub use histogram::{HistogramBin, LatencyHistogram};
pub use series::{Bucket, GroupBy, SeriesPoint};
pub use stats::{AgentStats, AggregatedStats, EngineStats, ModelStats};
