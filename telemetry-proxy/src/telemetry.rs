//! [`ProxyTelemetry`]: where the proxy's records go, and what they say about every call's
//! context (engine, default agent, prices).

use std::sync::Arc;

use telemetry_core::EventBus;
use telemetry_store::TelemetryStore;
use telemetry_wrap::{CallContext, PriceTable};

/// The engine name of records when none is set.
pub const DEFAULT_ENGINE_NAME: &str = "openai-compatible";

/// Where records go: each completion call becomes one
/// [`TelemetryRecord`](telemetry_core::TelemetryRecord) published on the bus (where a
/// [`TelemetryStore`] or any other subscriber takes it). Publishing never waits on the store: a
/// store that is slow or failing drops records and counts them (see
/// [`StoreStats`](telemetry_store::StoreStats)), and `/telemetry/health` reports it.
#[derive(Debug, Clone)]
pub struct ProxyTelemetry {
    pub(crate) bus: Arc<EventBus>,
    pub(crate) engine: Arc<str>,
    pub(crate) agent: Arc<str>,
    pub(crate) prices: Option<Arc<PriceTable>>,
    pub(crate) store: Option<TelemetryStore>,
    #[cfg(feature = "gpu")]
    pub(crate) gpu: Option<Arc<telemetry_wrap::GpuSampler>>,
}

impl ProxyTelemetry {
    /// Records published on `bus`, engine [`DEFAULT_ENGINE_NAME`], no default agent, no prices.
    pub fn new(bus: Arc<EventBus>) -> ProxyTelemetry {
        ProxyTelemetry {
            bus,
            engine: Arc::from(DEFAULT_ENGINE_NAME),
            agent: Arc::from(""),
            prices: None,
            store: None,
            #[cfg(feature = "gpu")]
            gpu: None,
        }
    }

    /// The records' engine (`--engine-name`).
    #[must_use]
    pub fn engine_name(mut self, name: &str) -> Self {
        self.engine = Arc::from(name);
        self
    }

    /// The agent of calls whose request has no `X-Telemetry-Agent` header (`--agent`).
    #[must_use]
    pub fn agent(mut self, agent: &str) -> Self {
        self.agent = Arc::from(agent);
        self
    }

    /// Prices for the records' cost (`--prices`); a model without a price is recorded with cost
    /// 0 and `cost_unknown`.
    #[must_use]
    pub fn price_table(mut self, prices: impl Into<Arc<PriceTable>>) -> Self {
        self.prices = Some(prices.into());
        self
    }

    /// The store the bus feeds, so that `/telemetry/health` reports its health and dropped
    /// records. (Subscribing it to the bus is the caller's part.)
    #[must_use]
    pub fn store(mut self, store: TelemetryStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Measures each call's GPU energy, power, utilization, memory and temperature with
    /// `sampler` (feature `gpu`): a call's window runs from its request to the end of its
    /// response, overlapping calls share the energy as the sampler's attribution rule says, and
    /// the record is published from the sampler's thread once its energy is known (the response
    /// never waits for it). [`flush`](Self::flush) completes pending records.
    #[cfg(feature = "gpu")]
    #[must_use]
    pub fn gpu_sampler(mut self, sampler: impl Into<Arc<telemetry_wrap::GpuSampler>>) -> Self {
        self.gpu = Some(sampler.into());
        self
    }

    /// Publishes every record still waiting for its GPU energy (at shutdown). Without a sampler
    /// there is nothing to wait for.
    pub fn flush(&self) {
        #[cfg(feature = "gpu")]
        if let Some(sampler) = &self.gpu {
            sampler.flush();
        }
    }

    /// The call context every call of the proxy starts from (telemetry-wrap's lifecycle).
    pub(crate) fn context(&self) -> CallContext {
        let mut ctx =
            CallContext::new(Arc::clone(&self.bus), &*self.engine).with_agent(&*self.agent);
        if let Some(prices) = &self.prices {
            ctx = ctx.with_price_table(Arc::clone(prices));
        }
        #[cfg(feature = "gpu")]
        if let Some(sampler) = &self.gpu {
            ctx = ctx.with_gpu_sampler(Arc::clone(sampler));
        }
        ctx
    }

    /// The bus records are published on.
    pub fn bus(&self) -> &Arc<EventBus> {
        &self.bus
    }
}

impl Default for ProxyTelemetry {
    /// A bus of its own with no subscriber: records are built and go nowhere.
    fn default() -> Self {
        ProxyTelemetry::new(Arc::new(EventBus::new()))
    }
}
