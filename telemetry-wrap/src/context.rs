//! What every call of one [`InstrumentedEngine`](crate::InstrumentedEngine) shares: the bus, the
//! engine id, the caller's options and (feature `gpu`) the sampler; and how a finished call's
//! record is delivered.

use std::sync::{Arc, PoisonError, RwLock};

use telemetry_core::{Event, EventBus, TelemetryRecord};

use crate::call::{CallStart, publish_end};
use crate::options::CallOptions;

#[derive(Debug, Clone)]
pub(crate) struct EngineContext {
    pub bus: Arc<EventBus>,
    pub engine_id: Arc<str>,
    pub options: CallOptions,
    #[cfg(feature = "gpu")]
    pub gpu: Option<crate::gpu::GpuAttachment>,
}

/// A call in flight: its start instants and (feature `gpu`) its sampler registration.
#[derive(Debug)]
pub(crate) struct Call {
    pub start: CallStart,
    #[cfg(feature = "gpu")]
    pub gpu: Option<crate::gpu::GpuCall>,
}

impl EngineContext {
    /// Starts a call: clocks, `InferenceStart`, and the sampler's registration.
    pub fn begin(&self, models: &ModelCache, model: &str, is_streaming: bool) -> Call {
        let start = CallStart::begin(&self.bus, is_streaming, || {
            (
                models.get(model),
                Arc::clone(&self.engine_id),
                Arc::clone(&self.options.agent),
            )
        });
        Call {
            #[cfg(feature = "gpu")]
            gpu: self.gpu.as_ref().map(|g| g.begin()),
            start,
        }
    }

    /// Publishes `InferenceEnd`, then the record: now, or (feature `gpu`) once the sampler knows
    /// the call's energy.
    pub fn deliver(&self, call: Call, record: TelemetryRecord) {
        publish_end(&self.bus, call.start.call_id, &record);
        #[cfg(feature = "gpu")]
        if let (Some(gpu), Some(gpu_call)) = (&self.gpu, call.gpu) {
            gpu.complete(gpu_call, record, Arc::clone(&self.bus));
            return;
        }
        self.bus.publish(Event::from(record));
    }
}

/// The last model id seen, as a shared string, so that `InferenceStart` payloads do not
/// allocate when a caller keeps using the same model.
#[derive(Debug, Default)]
pub(crate) struct ModelCache(RwLock<Option<Arc<str>>>);

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
}
