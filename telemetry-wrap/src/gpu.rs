//! GPU energy per call through `telemetry-gpu`'s `GpuSampler` (feature `gpu`).
//!
//! The call path only registers instants with the sampler (one short lock, no GPU access); the
//! sampler's thread later computes the call's share of the device energy and this module's
//! callback fills the record and publishes it. Overlapping calls split each slice of energy as
//! the sampler's attribution rule says, so their energies sum to the device energy.
//!
//! Without the feature the same two types exist and are empty, so that the call lifecycle has no
//! feature-gated fields: a record is then published as soon as the call ends.

use std::sync::Arc;

use telemetry_core::{Event, EventBus, TelemetryRecord};

#[cfg(feature = "gpu")]
pub(crate) use with_gpu::{GpuAttachment, GpuWindow};
#[cfg(not(feature = "gpu"))]
pub(crate) use without_gpu::{GpuAttachment, GpuWindow};

/// Publishes a record that needs no GPU completion.
fn publish_now(record: TelemetryRecord, bus: &EventBus) {
    bus.publish(Event::from(record));
}

#[cfg(feature = "gpu")]
mod with_gpu {
    use std::time::Duration;

    use telemetry_gpu::{GpuSampler, Timestamp, WindowHandle};

    use super::*;

    /// The sampler a context reports energy with, when one is attached.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct GpuAttachment(Option<Arc<GpuSampler>>);

    /// A call's window in the sampler.
    #[derive(Debug)]
    pub(crate) struct GpuWindow {
        handle: WindowHandle,
        t0: Timestamp,
    }

    impl GpuAttachment {
        pub fn new(sampler: Arc<GpuSampler>) -> Self {
            GpuAttachment(Some(sampler))
        }

        pub fn sampler(&self) -> Option<&Arc<GpuSampler>> {
            self.0.as_ref()
        }

        /// Opens the call's window at the sampler's clock (a mock one in tests), read right
        /// after the call's start.
        pub fn begin(&self) -> Option<GpuWindow> {
            let sampler = self.0.as_ref()?;
            let t0 = sampler.now();
            Some(GpuWindow {
                handle: sampler.begin(t0),
                t0,
            })
        }

        /// Ends the window now and publishes `record` with its energy once the sampler knows
        /// it; without a window, publishes it at once.
        pub fn complete(
            &self,
            window: Option<GpuWindow>,
            record: TelemetryRecord,
            bus: &Arc<EventBus>,
        ) {
            let (Some(sampler), Some(window)) = (&self.0, window) else {
                return publish_now(record, bus);
            };
            let t1 = sampler.now();
            // Engine-reported (synthetic) TTFT can exceed the real window; the split then stays
            // inside it.
            let first_token = record
                .ttft
                .map(|s| (window.t0 + Duration::from_secs_f64(s)).min(t1));
            let bus = Arc::clone(bus);
            sampler.end(window.handle, t1, first_token, move |reading| {
                let mut with_energy = record.clone();
                reading.apply_to(&mut with_energy);
                // A reading the store would refuse (it should not happen) must not lose the call.
                let record = if with_energy.validate().is_ok() {
                    with_energy
                } else {
                    record
                };
                publish_now(record, &bus);
            });
        }

        pub fn flush(&self) {
            if let Some(sampler) = &self.0 {
                sampler.flush();
            }
        }
    }
}

#[cfg(not(feature = "gpu"))]
mod without_gpu {
    use super::*;

    /// No sampler can be attached without the feature. (Braced, not a unit struct: the context
    /// builds it with `Default` under both configurations.)
    #[derive(Debug, Clone, Default)]
    pub(crate) struct GpuAttachment {}

    /// Never constructed without the feature.
    #[derive(Debug)]
    pub(crate) enum GpuWindow {}

    impl GpuAttachment {
        pub fn begin(&self) -> Option<GpuWindow> {
            None
        }

        pub fn complete(
            &self,
            _window: Option<GpuWindow>,
            record: TelemetryRecord,
            bus: &Arc<EventBus>,
        ) {
            publish_now(record, bus);
        }

        pub fn flush(&self) {}
    }
}
