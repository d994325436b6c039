//! [`ProxyConfig`]: where to forward, and the proxy's limits.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::{MetricsEndpoint, MetricsSource};
use crate::telemetry::ProxyTelemetry;
use crate::upstream::Routes;

/// Default time allowed to connect to an upstream (TCP, and TLS for `https://`) before the
/// client gets a 502.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time the upstream may take, once the whole request is sent, to begin its response
/// (a blocking completion's whole generation fits in it: it is the OpenAI SDK's default
/// request timeout). Then the client gets a 504.
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(600);
/// Default longest pause between two pieces of an upstream's response body; then the response
/// is ended (the client sees it cut short) and the call is recorded as an upstream timeout.
pub const DEFAULT_CHUNK_TIMEOUT: Duration = Duration::from_secs(300);
/// Default time a client has to send its whole request body, from its request head; then it
/// gets a 408 (or its upload is cut) and the connection's slot is free again.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Default most bytes the proxy holds at once, all connections together: request bodies read
/// ahead to find their model, response bodies kept to be read at their end.
pub const DEFAULT_BUFFER_BUDGET: usize = 256 << 20;
/// Default time an idle pooled upstream connection is kept for reuse: below the 5 s keep-alive
/// of uvicorn (vLLM, SGLang) and llama.cpp's server, so the proxy never sends a request on a
/// connection the upstream is closing.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(3);
/// Default time in-flight responses get to finish at shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// The longest any of the proxy's time limits can be ([`telemetry_core::LONGEST_WAIT`], about
/// 100 years): a longer one given to [`ProxyConfig`] is taken as this.
pub const MAX_TIMEOUT: Duration = telemetry_core::LONGEST_WAIT;
/// Default most client connections open at once (more wait to be accepted).
pub const DEFAULT_MAX_CONNECTIONS: usize = 8_192;
/// Default most bytes of one completion request read ahead (to find its model, wherever it is
/// in the body) and of one blocking completion response kept for parsing.
pub const DEFAULT_CAPTURE_LIMIT: usize = 32 << 20;

/// How the proxy forwards, with its limits.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub(crate) routes: Routes,
    pub(crate) connect_timeout: Duration,
    pub(crate) shutdown_grace: Duration,
    pub(crate) max_connections: usize,
    pub(crate) workers: usize,
    pub(crate) capture_limit: usize,
    pub(crate) first_byte_timeout: Duration,
    pub(crate) chunk_timeout: Duration,
    pub(crate) body_timeout: Duration,
    pub(crate) buffer_budget: usize,
    pub(crate) pool_idle_timeout: Duration,
    pub(crate) upstream_ca: Option<PathBuf>,
    pub(crate) usage_injection: bool,
    pub(crate) telemetry: ProxyTelemetry,
    pub(crate) metrics: Option<Arc<MetricsEndpoint>>,
}

impl std::fmt::Debug for dyn MetricsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsSource")
    }
}

impl ProxyConfig {
    /// Forward by `routes`, with the default limits.
    pub fn new(routes: Routes) -> ProxyConfig {
        ProxyConfig {
            routes,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            workers: 1,
            capture_limit: DEFAULT_CAPTURE_LIMIT,
            first_byte_timeout: DEFAULT_FIRST_BYTE_TIMEOUT,
            chunk_timeout: DEFAULT_CHUNK_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            buffer_budget: DEFAULT_BUFFER_BUDGET,
            pool_idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
            upstream_ca: None,
            usage_injection: true,
            telemetry: ProxyTelemetry::default(),
            metrics: None,
        }
    }

    /// Time allowed to connect to an upstream (TCP, and the TLS handshake of `https://`); then
    /// the client gets a 502.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.min(MAX_TIMEOUT);
        self
    }

    /// Time the upstream may take, once the whole request is sent, to begin its response; then
    /// the client gets a `504` and the call is recorded as `upstream_timeout`. An upstream that
    /// stops reading a request (a large body it takes none of) is given as long, from the last
    /// bytes it took, with the same outcome.
    #[must_use]
    pub fn first_byte_timeout(mut self, timeout: Duration) -> Self {
        self.first_byte_timeout = timeout.min(MAX_TIMEOUT);
        self
    }

    /// Longest pause between two pieces of an upstream's response body; then the response is
    /// ended early (a stream stops) and the call is recorded as `upstream_timeout`.
    #[must_use]
    pub fn chunk_timeout(mut self, timeout: Duration) -> Self {
        self.chunk_timeout = timeout.min(MAX_TIMEOUT);
        self
    }

    /// Time a client has to send its whole request body, counted from its request head; then
    /// it gets a `408` (or, once forwarding has begun, its upload is cut) and the call is
    /// recorded as `request_timeout`.
    #[must_use]
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout.min(MAX_TIMEOUT);
        self
    }

    /// Most bytes the proxy holds at once, all connections together (request bodies read
    /// ahead, response bodies kept for parsing). A request that needs more to be routed gets a
    /// `503`; a response that would need more is forwarded all the same and recorded without
    /// its tokens.
    #[must_use]
    pub fn buffer_budget(mut self, bytes: usize) -> Self {
        self.buffer_budget = bytes;
        self
    }

    /// How long an idle pooled upstream connection is kept for reuse. Keep it below the
    /// upstream's own keep-alive timeout, or a request may be sent on a connection the upstream
    /// is closing.
    #[must_use]
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = timeout.min(MAX_TIMEOUT);
        self
    }

    /// Also trusts the CA certificates of this PEM file for `https://` upstreams (a private
    /// CA), besides the system's roots (else webpki-roots'). Read by [`Proxy::bind`](crate::Proxy::bind).
    #[must_use]
    pub fn upstream_ca(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.upstream_ca = Some(pem_file.into());
        self
    }
    /// Whether the proxy asks the upstream for the usage of Chat Completions and Completions
    /// streams whose request does not (on by default): it adds
    /// `"stream_options": {"include_usage": true}` to the request and takes out of the stream
    /// what that added, so the client gets the stream it asked for and the record the server's
    /// own token counts. An upstream that refuses the option (a `400`/`422` naming it, where the
    /// same request without it succeeds) is remembered and not asked again. Off, such streams are
    /// forwarded untouched and recorded with what they carry (llama.cpp's `timings`, else
    /// counted output chunks, `tokens_counted`).
    #[must_use]
    pub fn usage_injection(mut self, on: bool) -> Self {
        self.usage_injection = on;
        self
    }

    /// At shutdown, how long in-flight responses may take to finish before their connections
    /// are closed.
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace.min(MAX_TIMEOUT);
        self
    }

    /// Most client connections open at once (at least 1); more wait in the listen backlog, so
    /// the proxy's memory stays bounded under any load.
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Workers serving the proxy's port (default 1, at least 1), each a thread with a
    /// current-thread runtime of its own, as nginx's worker processes: the first is the runtime
    /// that runs [`Proxy::run`](crate::Proxy::run), each other a thread that
    /// [`Proxy::bind`](crate::Proxy::bind) starts. On Linux every worker has its own listening
    /// socket on the same address (`SO_REUSEPORT`: the kernel spreads the connections), elsewhere
    /// they share one. A connection stays on the worker that accepted it; each worker has its
    /// own upstream connections, so no request is handed between threads. Shared by all: the
    /// connection slots ([`max_connections`](Self::max_connections) is a total), the buffer
    /// budget, the telemetry bus and store, and the counters' totals
    /// ([`StatsHandle`](crate::StatsHandle), `/telemetry/health`). Worth it only with cores to
    /// spare: on a machine whose cores the upstream and the clients keep busy, one worker costs
    /// the least CPU per request.
    #[must_use]
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Most bytes of a completion request read before forwarding (to find its model, wherever
    /// it is in the body, and whether it streams) and of a blocking completion response kept
    /// for parsing. With model routes, a request whose model is not found within this many
    /// bytes gets a `413` (nothing is guessed); without, larger bodies are forwarded whole and
    /// recorded without what could not be read.
    #[must_use]
    pub fn capture_limit(mut self, bytes: usize) -> Self {
        self.capture_limit = bytes;
        self
    }

    /// Where the records of completion calls go (default: a bus of its own that nobody
    /// listens to).
    #[must_use]
    pub fn telemetry(mut self, telemetry: ProxyTelemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// Answers `GET /metrics` on the proxy's port with `source`'s text instead of forwarding
    /// it (at most [`MAX_CONCURRENT_RENDERS`](crate::MAX_CONCURRENT_RENDERS) renders at once,
    /// the scraper's `Accept` header handed to the source).
    #[must_use]
    pub fn metrics(mut self, source: Arc<dyn MetricsSource>) -> Self {
        self.metrics = Some(Arc::new(MetricsEndpoint::new(source)));
        self
    }

    /// The routes.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }
}
