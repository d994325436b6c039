//! # telemetry-openai
//!
//! Record every call to an OpenAI-compatible inference server (llama.cpp's `llama-server`,
//! vLLM, SGLang, Ollama, LM Studio, OpenAI) exactly: the server's own token counts, TTFT to the
//! first generated text, inter-token latency, the server's prefill and decode times, and typed
//! errors with stable kinds.
//!
//! - [`protocol`]: the protocol with no I/O — typed requests and responses, an incremental SSE
//!   parser, usage and timing extraction per server, errors with stable `error_kind`s. Engines
//!   and proxies share it.
//! - `OpenAiEngine` (feature `blocking`, on by default): an
//!   [`InferenceEngine`](telemetry_wrap::InferenceEngine) over HTTP, configured by
//!   [`OpenAiConfig`] (base URL, API key, headers, [`Timeouts`], model aliases, engine id set
//!   or detected). Wrap it in `InstrumentedEngine` and every call is recorded.
//! - `AsyncOpenAiEngine` (feature `async`, on by default): the same for tokio programs, an
//!   `AsyncInferenceEngine` on `reqwest` (no TLS stack, no aws-lc).
//! - `fake::FakeServer` (feature `fake`): a loopback server replaying scripted answers, for
//!   tests of anything that talks to an OpenAI-compatible server.
//!
//! ```
//! use telemetry_openai::protocol::{Observed, SseParser, StreamObserver};
//!
//! // A llama.cpp stream, arriving in reads split at awkward places.
//! let reads: [&[u8]; 4] = [
//!     b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":null}}]}\n\nda",
//!     b"ta: {\"choices\":[{\"delta\":{\"content\":\"Hello\"}}]}\r",
//!     b"\n\r\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":1,\"total_tokens\":8},",
//!     b"\"timings\":{\"prompt_n\":7,\"prompt_ms\":12.5,\"predicted_n\":1,\"predicted_ms\":0.1}}\n\ndata: [DONE]\n\n",
//! ];
//! let mut parser = SseParser::new();
//! let mut observer = StreamObserver::new();
//! let mut text = String::new();
//! for read in reads {
//!     parser.feed(read, |event| match observer.observe(event) {
//!         Ok(Observed::Chunk(chunk)) => text.push_str(&chunk.content),
//!         Ok(Observed::Done) => {}
//!         Err(e) => panic!("{e} ({})", e.error_kind()),
//!     }).unwrap();
//! }
//! observer.end().unwrap();
//! assert_eq!(text, "Hello");
//! assert_eq!(observer.content_chunks(), 1);
//! assert_eq!(observer.report().usage.unwrap().prompt_tokens, 7);
//! assert_eq!(observer.report().prefill_ms(), Some(12.5));
//! ```
//!
//! ## Feature flags
//!
//! - `blocking` (default): `OpenAiEngine` and its stream, on `ureq` (plain HTTP).
//! - `async` (default): `AsyncOpenAiEngine` and its stream, on `reqwest` and tokio (plain HTTP).
//! - `tls`: HTTPS for the blocking engine (`ureq` with rustls and ring; no aws-lc).
//! - `fake`: the public `fake::FakeServer`, for tests (hyper on a tokio runtime of its own thread).
//!
//! With `default-features = false` the crate is the [`protocol`] module, its configuration
//! types and nothing that does HTTP.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "async")]
mod async_engine;
#[cfg(feature = "blocking")]
mod blocking;
mod config;
#[cfg(any(feature = "blocking", feature = "async"))]
mod deadline;
#[cfg(feature = "fake")]
pub mod fake;
pub mod protocol;
#[cfg(any(feature = "blocking", feature = "async"))]
mod result;

#[cfg(feature = "async")]
pub use async_engine::{AsyncOpenAiEngine, AsyncOpenAiStream};
#[cfg(feature = "blocking")]
pub use blocking::{OpenAiEngine, OpenAiStream};
pub use config::{Endpoint, OpenAiConfig, Timeouts};
