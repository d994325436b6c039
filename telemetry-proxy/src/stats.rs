//! [`ProxyStats`]: what the proxy has done since it started.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one proxy since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProxyStats {
    /// Requests received (the health endpoint included).
    pub requests: u64,
    /// Client connections open now.
    pub connections: u64,
    /// Requests answered with a 502 because the upstream could not be reached.
    pub upstream_unreachable: u64,
    /// Completion calls whose record was handed to the telemetry bus (every outcome).
    pub calls_recorded: u64,
    /// Of those, calls the client abandoned before the response ended.
    pub calls_cancelled: u64,
    /// Of those, calls that failed (HTTP error status, unreachable upstream, broken body).
    pub calls_failed: u64,
    /// Completion calls whose request body was larger than the read-ahead limit, or not JSON:
    /// forwarded, recorded without a model from the request.
    pub requests_unparsed: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub connections: AtomicU64,
    pub upstream_unreachable: AtomicU64,
    pub calls_recorded: AtomicU64,
    pub calls_cancelled: AtomicU64,
    pub calls_failed: AtomicU64,
    pub requests_unparsed: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> ProxyStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProxyStats {
            requests: load(&self.requests),
            connections: load(&self.connections),
            upstream_unreachable: load(&self.upstream_unreachable),
            calls_recorded: load(&self.calls_recorded),
            calls_cancelled: load(&self.calls_cancelled),
            calls_failed: load(&self.calls_failed),
            requests_unparsed: load(&self.requests_unparsed),
        }
    }
}
