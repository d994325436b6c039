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

/// Publishes a record that needs no GPU completion (already in the `Arc` its event shares).
fn publish_now(record: Arc<TelemetryRecord>, bus: &EventBus) {
    bus.publish(Event::TelemetryRecord(record));
}

#[cfg(feature = "gpu")]
mod with_gpu {
    use std::time::Duration;

    use telemetry_core::EnergyMethod;
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
            record: Arc<TelemetryRecord>,
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
                let mut record = record;
                // The call's `Arc` is not shared yet: no copy is made.
                let r = Arc::make_mut(&mut record);
                let before = GpuFields::of(r);
                reading.apply_to(r);
                // A reading the store would refuse (it should not happen) must not lose the call.
                if r.validate().is_err() {
                    before.restore(r);
                }
                publish_now(record, &bus);
            });
        }

        pub fn flush(&self) {
            if let Some(sampler) = &self.0 {
                sampler.flush();
            }
        }
    }

    /// The fields of a record that a GPU reading sets, as they were before it: what a record
    /// goes back to when the reading would make it invalid (kept rather than a copy of the
    /// whole record, labels and metadata included, for every call).
    struct GpuFields {
        energy_joules: Option<f64>,
        power_watts: Option<f64>,
        gpu_utilization_pct: Option<f64>,
        gpu_memory_used_gb: Option<f64>,
        gpu_temperature_c: Option<f64>,
        prefill_energy_joules: Option<f64>,
        decode_energy_joules: Option<f64>,
        energy_method: EnergyMethod,
        energy_vendor: String,
    }

    impl GpuFields {
        fn of(r: &TelemetryRecord) -> Self {
            GpuFields {
                energy_joules: r.energy_joules,
                power_watts: r.power_watts,
                gpu_utilization_pct: r.gpu_utilization_pct,
                gpu_memory_used_gb: r.gpu_memory_used_gb,
                gpu_temperature_c: r.gpu_temperature_c,
                prefill_energy_joules: r.prefill_energy_joules,
                decode_energy_joules: r.decode_energy_joules,
                energy_method: r.energy_method,
                // Empty as the call built it: no allocation.
                energy_vendor: r.energy_vendor.clone(),
            }
        }

        fn restore(self, r: &mut TelemetryRecord) {
            r.energy_joules = self.energy_joules;
            r.power_watts = self.power_watts;
            r.gpu_utilization_pct = self.gpu_utilization_pct;
            r.gpu_memory_used_gb = self.gpu_memory_used_gb;
            r.gpu_temperature_c = self.gpu_temperature_c;
            r.prefill_energy_joules = self.prefill_energy_joules;
            r.decode_energy_joules = self.decode_energy_joules;
            r.energy_method = self.energy_method;
            r.energy_vendor = self.energy_vendor;
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_refused_reading_leaves_the_record_as_the_call_built_it() {
            let built = TelemetryRecord::builder("m", 1.7e9)
                .latency_seconds(1.0)
                .build();
            let mut r = built.clone();
            let before = GpuFields::of(&r);
            r.energy_joules = Some(-1.0);
            r.power_watts = Some(1.0);
            r.gpu_utilization_pct = Some(1.0);
            r.gpu_memory_used_gb = Some(1.0);
            r.gpu_temperature_c = Some(1.0);
            r.prefill_energy_joules = Some(1.0);
            r.decode_energy_joules = Some(1.0);
            r.energy_method = EnergyMethod::Counter;
            r.energy_vendor = "nvidia".into();
            assert!(r.validate().is_err());
            before.restore(&mut r);
            assert_eq!(r, built);
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
            record: Arc<TelemetryRecord>,
            bus: &Arc<EventBus>,
        ) {
            publish_now(record, bus);
        }

        pub fn flush(&self) {}
    }
}
