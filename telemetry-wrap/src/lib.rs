//! # telemetry-wrap
//!
//! Instrument any inference engine and publish one [`TelemetryRecord`](telemetry_core::TelemetryRecord)
//! per call on the [`EventBus`](telemetry_core::EventBus), where the store (or anything else)
//! subscribes.
//!
//! - [`InferenceEngine`] (blocking) and, with feature `async`, `AsyncInferenceEngine`: the engine
//!   abstraction, a few lines to implement: [`Message`]s and [`GenerateParams`] in,
//!   [`GenerateResult`] or a stream of [`StreamChunk`]s out.
//! - [`InstrumentedEngine`]: a decorator implementing the same traits, publishing
//!   `InferenceStart`, `InferenceEnd` and `TelemetryRecord`. Errors pass through unchanged and
//!   are recorded; streams dropped early are recorded as cancelled; wrapping twice records once.
//! - [`instrumented_generate`]: the same for one call, without a wrapper.
//! - [`CallContext`] and [`Call`]: one call's lifecycle (start, chunks, usage, end, GPU
//!   completion, delivery) for code that drives calls itself, such as an HTTP proxy; every
//!   path above is built on them.
//! - [`PriceTable`]: per-token or per-second prices, from JSON or (feature `toml`) TOML.
//! - `SimulatedEngine` (feature `sim`): a deterministic engine with realistic timings.
//!
//! What a record gets: the wall-clock start, latency on a monotonic clock, tokens from the
//! engine's usage (for streams the final usage chunk, else counted text chunks, with
//! `tokens_counted` set), TTFT and inter-token statistics for streams, `prefill = TTFT`,
//! `decode = latency − TTFT`, `throughput = completion tokens / decode time` (so it measures the
//! decode speed, not the whole call), cost from the engine or the price table (unknown model:
//! 0 and `cost_unknown`), agent and metadata from the caller. Every published record passes
//! `validate()`.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use telemetry_core::{EventBus, EventType, Outcome};
//! use telemetry_wrap::{
//!     GenerateParams, GenerateResult, InferenceEngine, InstrumentedEngine, Message, StreamChunk,
//!     Usage,
//! };
//!
//! /// An engine that streams the words of the last message back.
//! struct Echo;
//!
//! impl InferenceEngine for Echo {
//!     type Error = std::io::Error;
//!     type Stream = std::vec::IntoIter<Result<StreamChunk, std::io::Error>>;
//!
//!     fn engine_id(&self) -> &str {
//!         "echo"
//!     }
//!
//!     fn generate(&self, m: &[Message], _: &GenerateParams) -> Result<GenerateResult, Self::Error> {
//!         let text = m.last().map(|m| m.content.clone()).unwrap_or_default();
//!         Ok(GenerateResult::new(text, Usage::new(5, 3)))
//!     }
//!
//!     fn stream(&self, m: &[Message], _: &GenerateParams) -> Result<Self::Stream, Self::Error> {
//!         let text = m.last().map(|m| m.content.clone()).unwrap_or_default();
//!         let chunks: Vec<_> = text.split(' ').map(|w| Ok(StreamChunk::text(w))).collect();
//!         Ok(chunks.into_iter())
//!     }
//! }
//!
//! let bus = Arc::new(EventBus::new());
//! let records = Arc::new(Mutex::new(Vec::new()));
//! let sink = Arc::clone(&records);
//! bus.subscribe(EventType::TelemetryRecord, move |e| {
//!     sink.lock().unwrap().extend(e.as_record().cloned());
//! });
//!
//! let engine = InstrumentedEngine::new(Echo, Arc::clone(&bus)).with_agent("readme");
//! let messages = [Message::user("one two three")];
//! let params = GenerateParams::new("echo-1");
//! engine.generate(&messages, &params).unwrap();
//! let words: Vec<_> = engine.stream(&messages, &params).unwrap().map(|c| c.unwrap().text).collect();
//! assert_eq!(words, ["one", "two", "three"]);
//!
//! let records = records.lock().unwrap();
//! assert_eq!(records.len(), 2);
//! assert_eq!(records[0].total_tokens, 8);
//! assert!(records[1].is_streaming && records[1].tokens_counted);
//! assert_eq!(records[1].completion_tokens, 3);
//! assert!(records[1].ttft.is_some() && records[1].mean_itl_ms.is_some());
//! assert!(records.iter().all(|r| r.outcome == Outcome::Ok && r.validate().is_ok()));
//! ```
//!
//! ## Feature flags
//!
//! - `async`: `AsyncInferenceEngine` with runtime-agnostic futures and `futures_core::Stream`s
//!   (no executor or tokio requirement); `InstrumentedEngine` implements it too.
//! - `gpu`: GPU energy, power, utilization, memory and temperature per call through
//!   `telemetry-gpu`'s `GpuSampler` (`InstrumentedEngine::with_gpu_sampler`). The record is
//!   published once the sampler knows the call's energy; the call itself never waits.
//! - `nvml`: `gpu` plus telemetry-gpu's NVIDIA backend, re-exported as `NvmlBackend`
//!   (libnvidia-ml is loaded at run time; without a driver creating it is an error value).
//! - `sim`: the public `SimulatedEngine`, deterministic and seeded, for demos, tests and benches.
//! - `toml`: price tables from TOML (`PriceTable::from_toml_str`, `.toml` files in
//!   [`PriceTable::from_path`]); without it the crate does not compile a TOML parser.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "async")]
mod async_engine;
mod call;
mod context;
mod engine;
mod error;
mod generate;
mod gpu;
mod instrumented;
mod itl;
mod options;
mod price;
mod record;
mod request;
mod response;
#[cfg(feature = "sim")]
mod sim;
mod stream;

#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub use async_engine::{AsyncInferenceEngine, InstrumentedAsyncStream};
pub use call::{Call, CallBuilder};
pub use context::CallContext;
pub use engine::{InferenceEngine, SingleChunk, default_error_kind};
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub use error::SimulatedError;
pub use error::{ConfigError, PriceTableError};
pub use generate::{instrumented_generate, instrumented_generate_with};
pub use instrumented::InstrumentedEngine;
pub use options::CallOptions;
pub use price::{Price, PriceTable};
pub use request::{GenerateParams, Message, Role};
pub use response::{EngineTimings, FinishReason, GenerateResult, StreamChunk, Usage};
#[cfg(all(feature = "sim", feature = "async"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "sim", feature = "async"))))]
pub use sim::SimAsyncStream;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub use sim::{SimModel, SimStream, SimTiming, SimulatedEngine};
pub use stream::InstrumentedStream;
#[cfg(feature = "gpu")]
#[cfg_attr(docsrs, doc(cfg(feature = "gpu")))]
pub use telemetry_gpu::GpuSampler;
#[cfg(feature = "nvml")]
#[cfg_attr(docsrs, doc(cfg(feature = "nvml")))]
pub use telemetry_gpu::NvmlBackend;
