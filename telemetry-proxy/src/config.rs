//! [`ProxyConfig`]: where to forward, and the proxy's limits.

use std::time::Duration;

use std::sync::Arc;

use crate::metrics::{MetricsEndpoint, MetricsSource};
use crate::telemetry::ProxyTelemetry;
use crate::upstream::Routes;

/// Default time allowed to connect to an upstream before the client gets a 502.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time in-flight responses get to finish at shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Default most client connections open at once (more wait to be accepted).
pub const DEFAULT_MAX_CONNECTIONS: usize = 8_192;
/// Default most bytes of a completion request read ahead (to learn its model) and of a
/// blocking completion response kept for parsing.
pub const DEFAULT_CAPTURE_LIMIT: usize = 8 << 20;

/// How the proxy forwards, with its limits.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub(crate) routes: Routes,
    pub(crate) connect_timeout: Duration,
    pub(crate) shutdown_grace: Duration,
    pub(crate) max_connections: usize,
    pub(crate) capture_limit: usize,
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
            capture_limit: DEFAULT_CAPTURE_LIMIT,
            telemetry: ProxyTelemetry::default(),
            metrics: None,
        }
    }

    /// Time allowed to connect to an upstream; then the client gets a 502.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// At shutdown, how long in-flight responses may take to finish before their connections
    /// are closed.
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Most client connections open at once (at least 1); more wait in the listen backlog, so
    /// the proxy's memory stays bounded under any load.
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Most bytes of a completion request read before forwarding (to learn its model and
    /// whether it streams) and of a blocking completion response kept for parsing. Larger
    /// bodies are still forwarded whole; their call is recorded without what could not be read.
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
