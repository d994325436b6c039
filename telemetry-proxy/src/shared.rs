//! [`Shared`]: what every connection task of a running proxy holds, built by the server and
//! read by the request handlers.

use std::sync::Arc;

use crate::config::ProxyConfig;
use crate::inject::Refusals;
use crate::pool::Pools;
use crate::record::Recorder;
use crate::stats::Counters;
use crate::tls::Connector;

/// What every connection task shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: ProxyConfig,
    /// The connections to each upstream.
    pub pools: Pools<Connector>,
    pub counters: Arc<Counters>,
    pub recorder: Recorder,
    /// The upstreams known to refuse `stream_options`.
    pub refusals: Refusals,
}
