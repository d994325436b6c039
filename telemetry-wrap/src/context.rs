//! [`CallContext`]: what every call of one engine (or one proxy) shares: the bus, the engine
//! name, the caller's options and, with feature `gpu`, the sampler.

use std::sync::{Arc, PoisonError, RwLock};

use telemetry_core::{EventBus, MAX_LABEL_BYTES};

use crate::error::ConfigError;
use crate::gpu::GpuAttachment;
use crate::options::{CallOptions, truncate};
use crate::price::PriceTable;

/// What every call recorded for one engine shares: the [`EventBus`] records go to, the engine
/// name, the default agent, metadata and price table ([`CallOptions`]) and, with feature `gpu`,
/// the GPU sampler. Start a [`Call`](crate::Call) with [`call`](Self::call).
///
/// Create it once and clone it freely: a clone is one reference count, and every clone shares
/// the same settings. [`InstrumentedEngine`](crate::InstrumentedEngine) holds one; code that
/// drives calls itself (an HTTP proxy, an engine without the engine traits) uses it directly.
#[derive(Debug, Clone)]
pub struct CallContext {
    shared: Arc<Shared>,
}

#[derive(Debug, Clone)]
struct Shared {
    bus: Arc<EventBus>,
    engine: Arc<str>,
    options: CallOptions,
    gpu: GpuAttachment,
    models: ModelCache,
}

impl CallContext {
    /// A context publishing on `bus` (an `EventBus` or an `Arc` of one) for the engine named
    /// `engine` (the records' `engine`, cut to 512 bytes), with default options.
    pub fn new(bus: impl Into<Arc<EventBus>>, engine: impl AsRef<str>) -> Self {
        CallContext {
            shared: Arc::new(Shared {
                bus: bus.into(),
                engine: Arc::from(truncate(engine.as_ref(), MAX_LABEL_BYTES)),
                options: CallOptions::new(),
                gpu: GpuAttachment::default(),
                models: ModelCache::default(),
            }),
        }
    }

    fn shared_mut(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.shared)
    }

    /// Sets the agent recorded with calls that name none (cut to 512 bytes).
    #[must_use]
    pub fn with_agent(mut self, agent: impl AsRef<str>) -> Self {
        let options = &mut self.shared_mut().options;
        *options = std::mem::take(options).with_agent(agent);
        self
    }

    /// Sets the metadata recorded with every call; refused unless it is a JSON object that a
    /// record can carry.
    pub fn with_metadata(mut self, metadata: serde_json::Value) -> Result<Self, ConfigError> {
        let options = &mut self.shared_mut().options;
        *options = std::mem::take(options).with_metadata(metadata)?;
        Ok(self)
    }

    /// Sets the price table used when the engine reports no cost.
    #[must_use]
    pub fn with_price_table(mut self, prices: impl Into<Arc<PriceTable>>) -> Self {
        let options = &mut self.shared_mut().options;
        *options = std::mem::take(options).with_price_table(prices);
        self
    }

    /// Replaces agent, metadata and price table at once.
    #[must_use]
    pub fn with_options(mut self, options: CallOptions) -> Self {
        self.shared_mut().options = options;
        self
    }

    /// Measures GPU energy, power, utilization, memory and temperature of every call with
    /// `sampler`. A call's `TelemetryRecord` is then published from the sampler's thread once
    /// its energy is known (the call itself never waits); `InferenceStart` and `InferenceEnd`
    /// are still published on the caller's thread. [`flush`](Self::flush) completes pending
    /// records.
    #[cfg(feature = "gpu")]
    #[cfg_attr(docsrs, doc(cfg(feature = "gpu")))]
    #[must_use]
    pub fn with_gpu_sampler(mut self, sampler: impl Into<Arc<telemetry_gpu::GpuSampler>>) -> Self {
        self.shared_mut().gpu = GpuAttachment::new(sampler.into());
        self
    }

    /// The GPU sampler, when one is attached.
    #[cfg(feature = "gpu")]
    #[cfg_attr(docsrs, doc(cfg(feature = "gpu")))]
    pub fn gpu_sampler(&self) -> Option<&Arc<telemetry_gpu::GpuSampler>> {
        self.shared.gpu.sampler()
    }

    /// The bus records are published on.
    pub fn bus(&self) -> &Arc<EventBus> {
        &self.shared.bus
    }

    /// The engine name recorded with every call.
    pub fn engine(&self) -> &str {
        &self.shared.engine
    }

    /// Default agent, metadata and price table.
    pub fn options(&self) -> &CallOptions {
        &self.shared.options
    }

    /// Completes every record still waiting for GPU energy (feature `gpu`) and publishes it;
    /// without a GPU sampler records are published as calls end, so this returns at once.
    pub fn flush(&self) {
        self.shared.gpu.flush();
    }

    pub(crate) fn gpu(&self) -> &GpuAttachment {
        &self.shared.gpu
    }

    /// The shared model string for `model`, for `InferenceStart` payloads.
    pub(crate) fn model_arc(&self, model: &str) -> Arc<str> {
        self.shared.models.get(model)
    }

    pub(crate) fn engine_arc(&self) -> &Arc<str> {
        &self.shared.engine
    }
}

/// The last model id seen, as a shared string, so that `InferenceStart` payloads do not
/// allocate when a caller keeps using the same model.
#[derive(Debug, Default)]
pub(crate) struct ModelCache(RwLock<Option<Arc<str>>>);

impl Clone for ModelCache {
    /// A cache is only a shortcut: a copy starts empty.
    fn clone(&self) -> Self {
        ModelCache::default()
    }
}

impl ModelCache {
    pub fn get(&self, model: &str) -> Arc<str> {
        if let Some(m) = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|m| m.as_ref() == model)
        {
            return Arc::clone(m);
        }
        let fresh: Arc<str> = Arc::from(model);
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&fresh));
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_cache_reuses_the_same_arc() {
        let cache = ModelCache::default();
        let a = cache.get("m1");
        let b = cache.get("m1");
        assert!(Arc::ptr_eq(&a, &b));
        let c = cache.get("m2");
        assert_eq!(&*c, "m2");
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn settings_are_copied_on_write() {
        let base = CallContext::new(EventBus::new(), "e".repeat(MAX_LABEL_BYTES + 1));
        let with_agent = base.clone().with_agent("a");
        assert_eq!(base.options().agent(), "");
        assert_eq!(with_agent.options().agent(), "a");
        assert_eq!(base.engine().len(), MAX_LABEL_BYTES);
        assert!(Arc::ptr_eq(base.bus(), with_agent.bus()));
    }
}
