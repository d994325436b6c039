//! # telemetry-proxy
//!
//! A recording reverse proxy for OpenAI-compatible inference servers (llama.cpp, vLLM, SGLang,
//! Ollama, LM Studio, ...). Point an application's base URL at the proxy instead of the server:
//! every request is forwarded unchanged and every response comes back unchanged — streams byte
//! for byte, each chunk as soon as the upstream sends it — while each completion call is
//! recorded on the side.
//!
//! - Forwarding: method, path, query, headers and body as received, except the hop-by-hop
//!   headers (`Connection` and the headers it names, `Keep-Alive`, `TE`, `Trailer`,
//!   `Transfer-Encoding`, `Upgrade`, `Proxy-*`, `Expect`), `Host` (set from the upstream URL)
//!   and [`AGENT_HEADER`] (read as the call's agent). Plain HTTP/1.1 on both sides; no TLS.
//! - An upstream that cannot be reached gives the client a `502` with an OpenAI-style JSON
//!   error body (`{"error": {"message", "type": "upstream_unreachable", "code": 502}}`).
//! - Recorded: `POST /v1/chat/completions` and `POST /v1/completions`. Their request body is
//!   read before forwarding (up to [`ProxyConfig::capture_limit`]) to learn the model — which
//!   also picks the upstream with [`Routes`]. Other paths are forwarded as they stream and not
//!   recorded.
//! - Each recorded call becomes one [`TelemetryRecord`](telemetry_core::TelemetryRecord)
//!   published on the bus of its [`ProxyTelemetry`] (where a store subscribes). The response is
//!   read on the side with telemetry-openai's protocol module: an SSE stream event by event as
//!   each frame passes (parsed in place, by reference; TTFT to the first chunk with non-empty
//!   content, ITL between content chunks, on the proxy's clock), a whole body kept up to the
//!   capture limit and read at its end. The record has the response's model (else the
//!   request's), the engine and agent of [`ProxyTelemetry`] (the agent of a request carrying
//!   [`AGENT_HEADER`] is that header's value), the server's usage (else content chunks counted,
//!   `tokens_counted`), the server's own prefill/decode times, and the cost from the price
//!   table. Its metadata names the upstream that served the call (the one its route picked,
//!   also when it could not be reached): `{"server.address": HOST, "server.port": PORT}`, the
//!   host as the upstream URL spells it (an IPv6 address without brackets) and the URL's port,
//!   80 when it names none — the names OpenTelemetry gives a server, so that an OTLP exporter
//!   on the bus (telemetry-otel) sets them on the call's span and metrics. Outcomes: an
//!   upstream 4xx/5xx is an error with the server's message (`http_400`, `http_429`, ...), an
//!   error inside a stream or a stream without `[DONE]` too (`stream_error`,
//!   `stream_incomplete`); an unreachable upstream is `connect` (the client gets the 502); a
//!   client that leaves first is `cancelled` (the upstream request is dropped, which aborts
//!   it). A body that is not the protocol is forwarded all the same and recorded with
//!   `tokens_counted` and no tokens.
//! - `GET /telemetry/health` ([`HEALTH_PATH`]) is answered by the proxy: JSON with each
//!   upstream's reachability, the telemetry store's health and the proxy's counters; `200` when
//!   all is well, else `503`. The store's `health` is an object: `{"state": "healthy"}`,
//!   `{"state": "failing", "consecutive_failures", "last_error"}`, `{"state": "stopped",
//!   "reason"}` (its database file was deleted or replaced) or `{"state": "closed"}`.
//! - `GET /metrics` ([`METRICS_PATH`]) is answered by the proxy when its configuration has a
//!   [`MetricsSource`] ([`ProxyConfig::metrics`]; the CLI's is the Prometheus or OpenMetrics
//!   exposition of the database the proxy records into, as the scraper's `Accept` prefers),
//!   else forwarded. At most [`MAX_CONCURRENT_RENDERS`] renders run at once.
//! - `CONNECT` is answered `501` (`connect_not_supported`), never tunnelled: this is a reverse
//!   proxy for HTTP APIs.
//! - There is no authentication: whoever reaches the proxy's port can send requests through it
//!   to the upstreams and read the health endpoint, which lists them. Listen on loopback, or put
//!   a firewall or an authenticating front before it (the CLI warns about any other address).
//! - [`Proxy::run`] serves until its shutdown future completes, then lets in-flight responses
//!   finish for a bounded grace period.
//!
//! ```
//! use std::net::SocketAddr;
//! use telemetry_proxy::{Proxy, ProxyConfig, Routes, Upstream};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), telemetry_proxy::ProxyError> {
//! let routes = Routes::new(Upstream::parse("http://127.0.0.1:8080")?)
//!     .route_spec("qwen3-32b=http://127.0.0.1:8081")?;
//! let listen: SocketAddr = "127.0.0.1:0".parse().expect("a socket address");
//! let proxy = Proxy::bind(listen, ProxyConfig::new(routes)).await?;
//! println!("listening on {}", proxy.local_addr());
//! // Serve until Ctrl-C (here: stop at once).
//! let report = proxy.run(async {}).await;
//! assert_eq!(report.connections_cut, 0);
//! # Ok(())
//! # }
//! ```
//!
//! ## Feature flags
//!
//! - `gpu`: GPU energy per call through telemetry-gpu's `GpuSampler`
//!   (`ProxyTelemetry::gpu_sampler`).
//! - `testing`: [`testing::FakeUpstream`], a fake upstream server on loopback that answers with
//!   whole bodies or delayed chunks, keeps what it received and counts abandoned streams; and
//!   canned llama.cpp-style chat completions and streams. For tests and benches.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod budget;
mod config;
mod decode;
mod error;
mod forward;
mod health;
mod hop;
mod intake;
mod metrics;
mod record;
mod reply;
mod request;
mod scan;
mod server;
mod shared;
mod stats;
mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
mod tls;
mod upstream;
mod watch;

pub use config::{
    DEFAULT_BODY_TIMEOUT, DEFAULT_BUFFER_BUDGET, DEFAULT_CAPTURE_LIMIT, DEFAULT_CHUNK_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_FIRST_BYTE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_POOL_IDLE_TIMEOUT, DEFAULT_SHUTDOWN_GRACE, ProxyConfig,
};
pub use error::ProxyError;
pub use health::HEALTH_PATH;
pub use hop::AGENT_HEADER;
pub use metrics::{Exposition, MAX_CONCURRENT_RENDERS, METRICS_PATH, MetricsSource};
pub use server::{Proxy, ShutdownReport, StatsHandle};
pub use stats::ProxyStats;
pub use telemetry::{DEFAULT_ENGINE_NAME, ProxyTelemetry};
pub use upstream::{Routes, Upstream};
