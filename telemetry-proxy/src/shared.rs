//! [`Shared`]: what every connection task of a running proxy's worker holds, built by the
//! server and read by the request handlers.

use std::sync::Arc;

use crate::config::ProxyConfig;
use crate::inject::Refusals;
use crate::pool::Pools;
use crate::record::Recorder;
use crate::stats::{CounterSet, Counters};
use crate::tls::Connector;

/// What every connection task of one worker shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: ProxyConfig,
    /// This worker's connections to each upstream.
    pub pools: Pools<Connector>,
    /// This worker's counters (the budget in them is every worker's).
    pub counters: Arc<Counters>,
    /// Every worker's counters, for the totals `/telemetry/health` shows.
    pub totals: CounterSet,
    pub recorder: Recorder,
    /// The upstreams known to refuse `stream_options` (learnt by any worker, for all).
    pub refusals: Arc<Refusals>,
}
