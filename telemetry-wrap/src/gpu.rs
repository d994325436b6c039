//! GPU energy per call through `telemetry-gpu`'s [`GpuSampler`] (feature `gpu`).
//!
//! The call path only registers instants with the sampler (one short lock, no GPU access); the
//! sampler's thread later computes the call's share of the device energy and this module's
//! callback fills the record and publishes it. Overlapping calls split each slice of energy as
//! the sampler's attribution rule says, so their energies sum to the device energy.

use std::sync::Arc;
use std::time::Duration;

use telemetry_core::{Event, EventBus, TelemetryRecord};
use telemetry_gpu::{GpuSampler, Timestamp, WindowHandle};

use crate::instrumented::InstrumentedEngine;

/// The sampler an engine reports energy with.
#[derive(Debug, Clone)]
pub(crate) struct GpuAttachment {
    sampler: Arc<GpuSampler>,
}

/// A call's window in the sampler.
#[derive(Debug)]
pub(crate) struct GpuCall {
    handle: WindowHandle,
    t0: Timestamp,
}

impl GpuAttachment {
    pub fn begin(&self) -> GpuCall {
        // The sampler's own clock (a mock one in tests), read right after the call's start.
        let t0 = self.sampler.now();
        GpuCall {
            handle: self.sampler.begin(t0),
            t0,
        }
    }

    /// Ends the window now and publishes `record` with its energy once the sampler knows it.
    pub fn complete(&self, call: GpuCall, record: TelemetryRecord, bus: Arc<EventBus>) {
        let t1 = self.sampler.now();
        // Engine-reported (synthetic) TTFT can exceed the real window; the split then stays
        // inside it.
        let first_token = record
            .ttft
            .map(|s| (call.t0 + Duration::from_secs_f64(s)).min(t1));
        self.sampler
            .end(call.handle, t1, first_token, move |reading| {
                let mut with_energy = record.clone();
                reading.apply_to(&mut with_energy);
                // A reading the store would refuse (it should not happen) must not lose the call.
                let record = if with_energy.validate().is_ok() {
                    with_energy
                } else {
                    record
                };
                bus.publish(Event::from(record));
            });
    }

    pub fn flush(&self) {
        self.sampler.flush();
    }
}

impl<E> InstrumentedEngine<E> {
    /// Measures GPU energy, power, utilization, memory and temperature of every call with
    /// `sampler`. The `TelemetryRecord` event is then published from the sampler's thread once
    /// the call's energy is known (the call itself returns at once); `InferenceStart` and
    /// `InferenceEnd` are still published on the caller's thread. [`flush`](Self::flush)
    /// completes pending records.
    #[must_use]
    pub fn with_gpu_sampler(mut self, sampler: impl Into<Arc<GpuSampler>>) -> Self {
        self.ctx_mut().gpu = Some(GpuAttachment {
            sampler: sampler.into(),
        });
        self
    }

    /// The GPU sampler, when one is attached.
    pub fn gpu_sampler(&self) -> Option<&Arc<GpuSampler>> {
        self.ctx().gpu.as_ref().map(|g| &g.sampler)
    }
}
