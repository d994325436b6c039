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
//!   and [`AGENT_HEADER`] (read as the call's agent). API keys (`Authorization`, `x-api-key`,
//!   `api-key`) are forwarded and never stored, logged or shown. HTTP/1.1 from clients (the
//!   proxy's own server: keep-alive, pipelined requests answered in order, `Expect:
//!   100-continue`, chunked uploads; a request head due within 30 s and at most 64 KiB, else
//!   `431`; a malformed head answered `400` and closed; HTTP/1.0 clients answered without
//!   chunks); to upstreams HTTP/1.1, over TLS for `https://` ones (rustls with the ring
//!   provider, SNI and certificate checks always on, the system's roots else webpki-roots',
//!   plus a private CA with [`ProxyConfig::upstream_ca`]).
//! - Exact tokens for every stream: a Chat Completions or Completions stream whose request does
//!   not ask for its usage is asked for it on the client's behalf
//!   (`"stream_options": {"include_usage": true}` added to the body, `Content-Length` fixed,
//!   `Accept-Encoding: identity`), and what the option adds to the stream is taken out of what
//!   the client gets (the usage-only chunk, `"usage": null` members, llama.cpp's `timings` moved
//!   back to the finish chunk), so the client receives the events it would have received without
//!   the proxy while the record has the server's counts. An upstream that answers such a request
//!   with a `400`/`422` naming `stream_options` or `include_usage` gets the client's request as
//!   it was, and when that succeeds it is remembered (per upstream and API) and not asked again;
//!   a `400` about anything else is the client's and goes to it as it came. Not asked: bodies
//!   that are compressed, beyond the capture limit or the budget, or whose `stream_options` is
//!   unusual (given twice, not an object, `continuous_usage_stats`). Off with
//!   [`ProxyConfig::usage_injection`]; such streams are then recorded with what they carry
//!   (llama.cpp's `timings`, else counted output chunks, `tokens_counted`, and a per-token cost
//!   `cost_unknown`).
//! - An upstream that cannot be reached gives the client a `502` with an OpenAI-style JSON
//!   error body (`{"error": {"message", "type": "upstream_unreachable", "code": 502}}`).
//! - Recorded: the calls of every API real clients speak, each read by telemetry-openai's
//!   protocol module for it: OpenAI Chat Completions (`POST /v1/chat/completions`, and
//!   llama.cpp's `/chat/completions`), Completions (`/v1/completions`), Responses
//!   (`/v1/responses`, `/responses`), Anthropic Messages (`/v1/messages`) and Embeddings
//!   (`/v1/embeddings`). Their request body is read before forwarding to learn the model — which also picks the upstream with
//!   [`Routes`] — by a streaming scan of the JSON top level that finds `model` wherever it is
//!   (after megabytes of base64 image too) and keeps no copy of what it skips; a compressed
//!   body (`Content-Encoding`) is scanned decoded. Routing never guesses: with model routes, a
//!   body whose model cannot be known within the limits ([`ProxyConfig::capture_limit`], the
//!   buffer budget) is answered with a 4xx (`413`, `400`, `415`; `503` when the budget is
//!   spent) saying why, and recorded as `unroutable_request` (`proxy_busy`). Other paths are
//!   forwarded as they stream and not recorded.
//! - Which paths: a request is a call when it is a `POST` whose path, read the way the upstreams
//!   read it, is one of those. The path is percent-decoded once (llama.cpp's cpp-httplib and
//!   vLLM's uvicorn both decode before routing: `/v1/chat/%63ompletions` is the chat endpoint to
//!   them), repeated slashes count as one (nginx, in front of many servers, merges them by
//!   default), trailing slashes are dropped, and letters compare without case (llama.cpp and
//!   vLLM route case-sensitively, gateways in front of others do not). Recognising a spelling
//!   the upstream then refuses costs a record of a failed call (`http_404`), which is true; not
//!   recognising one it serves would let calls through unrecorded.
//! - Bounded by construction: one byte budget ([`ProxyConfig::buffer_budget`]) for every body
//!   the proxy holds, all connections together; a body timeout (`408`, recorded
//!   `request_timeout`); upstream connect, first-byte and between-chunks timeouts, and the
//!   first-byte timeout again for an upstream that stops reading a request (a `502`, a `504`,
//!   or a stream ended early; recorded `connect` / `upstream_timeout`), with defaults
//!   long enough for a slow prefill; pooled upstream connections idle at most
//!   [`ProxyConfig::pool_idle_timeout`] (below the 5 s keep-alive of uvicorn and llama.cpp);
//!   a fixed number of connection slots ([`ProxyConfig::max_connections`]) plus a few overflow
//!   slots that answer `/telemetry/health` (and a quick `503` to anything else) while the
//!   others are all taken. A client that aborts its upload is `cancelled`, not an upstream
//!   failure.
//! - Compressed answers (`gzip`, `deflate`, `br`, `zstd`) are forwarded untouched and decoded
//!   on the side for recording, piece by piece with a bounded output.
//! - Each recorded call becomes one [`TelemetryRecord`](telemetry_core::TelemetryRecord)
//!   published on the bus of its [`ProxyTelemetry`] (where a store subscribes), naming its API
//!   and operation (`api`: `openai_chat`, `openai_completions`, `openai_responses`,
//!   `anthropic_messages`, `openai_embeddings`; `operation`: `chat`, `text_completion`,
//!   `embeddings`). Whether a call streamed is the response's to say (`text/event-stream` on a
//!   success), not the request's `stream` flag. A stream is read event by event as each frame
//!   passes (parsed in place, by reference); TTFT is the first output of any kind (text,
//!   tool-call arguments, reasoning, on the proxy's clock), ITL runs between output chunks, and
//!   their number is the record's `output_chunks`. A whole body is kept up to the capture limit
//!   (and the budget) and read at its end. The record has the response's model (else the request's), the engine
//!   and agent of [`ProxyTelemetry`] (the agent of a request carrying [`AGENT_HEADER`] is that
//!   header's value), the server's usage with its API's rules (cached, cache-write and reasoning
//!   tokens included; else output chunks counted, `tokens_counted`, and a price per token of them
//!   `cost_unknown`), the server's own prefill/decode times, and the cost from the price table.
//!   Its metadata names the upstream that served the call (the one its route picked, also when
//!   it could not be reached): `{"server.address": HOST, "server.port": PORT}`, the host as the
//!   upstream URL spells it (an IPv6 address without brackets) and the URL's port, 80 (443 for `https://`)
//!   when it names none — the names OpenTelemetry gives a server, so that an OTLP exporter on the bus
//!   (telemetry-otel) sets them on the call's span and metrics. Outcomes: an upstream 4xx/5xx is
//!   an error with the server's message (`http_400`, `http_429`, ...), an error inside a stream
//!   or a stream without its API's terminal event too (`stream_error`, `stream_incomplete`); an
//!   unreachable upstream is `connect` (the client gets the 502); a client that leaves first is
//!   `cancelled` (the upstream request is dropped, which aborts it) — unless the stream's
//!   terminal event (`[DONE]`, `response.completed`, `message_stop`) had come: that call is
//!   `ok` whatever the client or the upstream's connection does after it. A body that is not
//!   the protocol is forwarded all the same and recorded with `tokens_counted` and no tokens.
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
//! - Workers ([`ProxyConfig::workers`], default 1): N threads, each with a current-thread
//!   runtime, its own listening socket on the proxy's address (`SO_REUSEPORT` on Linux, one
//!   shared socket elsewhere) and its own upstream pools — nginx's worker model, nothing handed
//!   between threads per request. The counters are kept per worker and summed when read
//!   ([`StatsHandle`], `/telemetry/health`, [`ShutdownReport`]); the connection limit, the buffer
//!   budget and the telemetry bus are every worker's. The shutdown reaches every worker.
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
//!
//! The tests, examples and benches answer from telemetry-openai's fake server
//! (`telemetry_openai::fake::FakeServer`, its `fake` feature): scripted replies, delays and
//! abrupt ends, the requests it received and the streams a client abandoned.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod budget;
mod config;
mod decode;
mod error;
mod fields;
mod forward;
mod h1;
mod h1_server;
mod health;
mod hop;
mod inject;
mod intake;
mod metrics;
mod pool;
mod record;
mod reply;
mod request;
mod scan;
mod secrets;
mod server;
mod shared;
mod stats;
mod telemetry;
mod tls;
mod upstream;
mod watch;
mod workers;

pub use config::{
    DEFAULT_BODY_TIMEOUT, DEFAULT_BUFFER_BUDGET, DEFAULT_CAPTURE_LIMIT, DEFAULT_CHUNK_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_FIRST_BYTE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_POOL_IDLE_TIMEOUT, DEFAULT_SHUTDOWN_GRACE, MAX_TIMEOUT, ProxyConfig,
};
pub use error::ProxyError;
pub use health::HEALTH_PATH;
pub use hop::AGENT_HEADER;
pub use metrics::{Exposition, MAX_CONCURRENT_RENDERS, METRICS_PATH, MetricsSource};
pub use server::{Proxy, ShutdownReport, StatsHandle};
pub use stats::ProxyStats;
pub use telemetry::{DEFAULT_ENGINE_NAME, ProxyTelemetry};
pub use upstream::{Routes, Upstream};
