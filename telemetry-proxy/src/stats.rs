//! [`ProxyStats`]: what the proxy has done since it started.
//!
//! Each worker of a proxy counts in [`Counters`] of its own (no cache line written by two cores
//! per request); a [`CounterSet`] holds every worker's and sums them when read, so the totals
//! are exact whatever worker served what.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::budget::ByteBudget;

/// Counters of one proxy since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProxyStats {
    /// Requests received (the health endpoint included).
    pub requests: u64,
    /// Client connections open now.
    pub connections: u64,
    /// Requests answered with a 502 because the upstream could not be reached.
    pub upstream_unreachable: u64,
    /// Upstreams that did not begin their response, or paused mid-response, past their
    /// timeout (the client got a 504, or its response ended early).
    pub upstream_timeouts: u64,
    /// Requests the proxy answered itself with a 4xx/503 instead of forwarding them: a body
    /// that did not arrive in time, a model not found within the limits, the buffer budget
    /// spent.
    pub requests_refused: u64,
    /// Connections turned away while every connection slot was taken (answered only
    /// `/telemetry/health`, else a 503).
    pub connections_over_limit: u64,
    /// Bytes of bodies the proxy holds now, all connections together.
    pub buffered_bytes: u64,
    /// The most bytes of bodies held at once since the proxy started.
    pub buffered_peak_bytes: u64,
    /// Completion calls whose record was handed to the telemetry bus (every outcome).
    pub calls_recorded: u64,
    /// Of those, calls the client abandoned before the response ended.
    pub calls_cancelled: u64,
    /// Of those, calls that failed (HTTP error status, unreachable upstream, broken body).
    pub calls_failed: u64,
    /// Completion calls whose request body was larger than the read-ahead limit, or not JSON:
    /// forwarded, recorded without a model from the request.
    pub requests_unparsed: u64,
    /// Streams whose request the proxy asked for usage (`stream_options.include_usage`) on the
    /// client's behalf.
    pub usage_asked: u64,
    /// Of those, requests an upstream refused because of the option: sent again as the client
    /// sent them.
    pub usage_refused: u64,
}

/// One worker's counters. Aligned to two cache lines so that no two workers' counters (or an
/// `Arc`'s counts beside them) share a line.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub connections: AtomicU64,
    pub upstream_unreachable: AtomicU64,
    pub upstream_timeouts: AtomicU64,
    pub requests_refused: AtomicU64,
    pub connections_over_limit: AtomicU64,
    /// The one budget of buffered bytes.
    pub budget: ByteBudget,
    pub calls_recorded: AtomicU64,
    pub calls_cancelled: AtomicU64,
    pub calls_failed: AtomicU64,
    pub requests_unparsed: AtomicU64,
    pub usage_asked: AtomicU64,
    pub usage_refused: AtomicU64,
}

impl Counters {
    /// Zero counters, with `budget` for the bodies held.
    pub fn new(budget: ByteBudget) -> Counters {
        Counters {
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            upstream_unreachable: AtomicU64::new(0),
            upstream_timeouts: AtomicU64::new(0),
            requests_refused: AtomicU64::new(0),
            connections_over_limit: AtomicU64::new(0),
            budget,
            calls_recorded: AtomicU64::new(0),
            calls_cancelled: AtomicU64::new(0),
            calls_failed: AtomicU64::new(0),
            requests_unparsed: AtomicU64::new(0),
            usage_asked: AtomicU64::new(0),
            usage_refused: AtomicU64::new(0),
        }
    }

    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// This worker's counts (with the budget, which every worker shares).
    pub fn snapshot(&self) -> ProxyStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProxyStats {
            requests: load(&self.requests),
            connections: load(&self.connections),
            upstream_unreachable: load(&self.upstream_unreachable),
            upstream_timeouts: load(&self.upstream_timeouts),
            requests_refused: load(&self.requests_refused),
            connections_over_limit: load(&self.connections_over_limit),
            buffered_bytes: self.budget.used() as u64,
            buffered_peak_bytes: self.budget.peak() as u64,
            calls_recorded: load(&self.calls_recorded),
            calls_cancelled: load(&self.calls_cancelled),
            calls_failed: load(&self.calls_failed),
            requests_unparsed: load(&self.requests_unparsed),
            usage_asked: load(&self.usage_asked),
            usage_refused: load(&self.usage_refused),
        }
    }
}

/// The counters of every worker of one proxy, summed when read.
#[derive(Debug, Clone)]
pub(crate) struct CounterSet(Arc<[Arc<Counters>]>);

impl CounterSet {
    /// The set of `shards`, one per worker; they share one budget.
    pub fn new(shards: Vec<Arc<Counters>>) -> CounterSet {
        CounterSet(shards.into())
    }

    /// The totals of every worker now. The budget is one for all, so its bytes are taken once.
    pub fn snapshot(&self) -> ProxyStats {
        let mut shards = self.0.iter().map(|c| c.snapshot());
        let Some(mut total) = shards.next() else {
            return ProxyStats::default();
        };
        for s in shards {
            // Every field named: a new counter is a compile error here until it is summed.
            let ProxyStats {
                requests,
                connections,
                upstream_unreachable,
                upstream_timeouts,
                requests_refused,
                connections_over_limit,
                buffered_bytes: _,
                buffered_peak_bytes: _,
                calls_recorded,
                calls_cancelled,
                calls_failed,
                requests_unparsed,
                usage_asked,
                usage_refused,
            } = s;
            total.requests += requests;
            total.connections += connections;
            total.upstream_unreachable += upstream_unreachable;
            total.upstream_timeouts += upstream_timeouts;
            total.requests_refused += requests_refused;
            total.connections_over_limit += connections_over_limit;
            total.calls_recorded += calls_recorded;
            total.calls_cancelled += calls_cancelled;
            total.calls_failed += calls_failed;
            total.requests_unparsed += requests_unparsed;
            total.usage_asked += usage_asked;
            total.usage_refused += usage_refused;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_sums_its_shards_and_counts_the_shared_budget_once() {
        let budget = ByteBudget::new(1000);
        let shards: Vec<_> = (0..3)
            .map(|_| Arc::new(Counters::new(budget.clone())))
            .collect();
        let set = CounterSet::new(shards.clone());
        for (i, shard) in shards.iter().enumerate() {
            for _ in 0..=i {
                Counters::bump(&shard.requests);
                Counters::bump(&shard.calls_recorded);
            }
            Counters::bump(&shard.usage_refused);
        }
        Counters::bump(&shards[2].connections);
        let mut held = budget.charge();
        assert!(held.take(300));
        let total = set.snapshot();
        assert_eq!((total.requests, total.calls_recorded), (6, 6));
        assert_eq!((total.usage_refused, total.connections), (3, 1));
        assert_eq!(
            (total.buffered_bytes, total.buffered_peak_bytes),
            (300, 300)
        );
        assert_eq!(
            CounterSet::new(Vec::new()).snapshot(),
            ProxyStats::default()
        );
    }
}
