//! # telemetry-gpu
//!
//! GPU energy for inference telemetry, without touching the GPU on the call path.
//!
//! NVML's energy counter costs milliseconds of driver CPU to read and refreshes only every
//! ~100 ms, so reading it around each call adds latency and gives 0 J or a whole step for short
//! calls. Instead a [`GpuSampler`] owns a [`GpuBackend`] on a background thread, samples power,
//! utilization, memory and temperature of every device every tick (100 ms) and the energy counter
//! only every [`SamplerConfig::counter_interval`] (1 s) into a bounded [`Timeline`], and completes
//! each call's [`EnergyReading`] once a counter read covers the call — spreading each counter step
//! over time in proportion to the sampled power, integrating power where there is no counter, and
//! splitting energy among overlapping calls.
//!
//! ## API in brief
//!
//! - [`GpuBackend`]: `devices() -> Vec<DeviceInfo>`, `read(index, &dyn Clock) -> GpuReading`,
//!   `read_without_counter(index, &dyn Clock)`, failing only with a [`BackendError`] (the device
//!   or the driver); `NvmlBackend` (feature `nvml`), `MockBackend` (feature `mock`, counts
//!   `reads()` and `counter_reads()`). Setting up and using the sampler fails with a [`GpuError`].
//! - [`Clock`] / [`Timestamp`]: [`SystemClock`] (real), `MockClock` (feature `mock`, advanced by
//!   tests);
//!   `sampler.timestamp_of(Instant)` converts a caller's instant.
//! - [`GpuSampler::new`]`(backend)` / [`GpuSampler::with_config`]`(backend, clock, SamplerConfig)`.
//! - `let h = sampler.begin(t0);` … `sampler.end(h, t1, first_token, |r: EnergyReading| ..)` —
//!   O(1), never blocks on the GPU; or [`GpuSampler::end_to_channel`].
//! - [`GpuSampler::flush`] completes pending windows; [`GpuSampler::sample_now`] for manual mode.
//! - [`GpuSampler::energy_between`]`(t0, t1) -> EnergyReading`, [`GpuSampler::attribute`].
//! - [`EnergyReading::apply_to`]`(&mut TelemetryRecord)` fills the record's energy and GPU fields.
//! - Pure math: [`attribute`]`(source, windows, weights) -> Vec<f64>`, [`EnergyCurve`].
//!
//! ## Rules
//!
//! - **Counter between refreshes**: the counter is read every `counter_interval`; a refresh is
//!   detected where a counter read differs from the previous one (it happened at most ~100 ms
//!   before the read that shows it); the refreshes of a steady run are placed as one chain spaced
//!   by counter step / mean power (its phase learnt from every observation); each counter step is
//!   spread between refreshes in proportion to the integrated sampled power, so a 50 ms call in a
//!   steady 700 W load gets 35 J, not 0 J or a whole step, a load step between two counter reads
//!   shows in the calls' shares, and the shares sum to the counter's delta. An unobservable
//!   refresh lag costs at most `ΔP × 50 ms` at a change of load `ΔP`, spread over that counter
//!   step (see [`EnergyCurve`]). A counter that goes backwards (reset, wrap) is never negative
//!   energy: that slice is integrated from power. Devices without a counter use the trapezoid of
//!   power.
//! - **Overlapping calls**: each slice between window boundaries is split among the windows active
//!   in it, equally or by weight; per-call joules sum to the device energy over their union
//!   (exactly within one completion tick; across ticks up to a phase refinement at a load change).
//! - **Completion**: a window completes once every live device's counter read shows a refresh past
//!   its end — up to about `counter_interval` later (within [`SamplerConfig::completion_timeout`]
//!   in any case) — in order of window end; `flush` (which reads the counter) and drop complete the
//!   rest from what is known (power extrapolated past the last refresh). `begin`/`end` never wait
//!   on completion: it only swaps the ended windows out under their lock and does the rest
//!   (overlaps, energy, callbacks) after releasing it.
//! - **Failures and gaps are unmeasured, never guessed**: a failing read is counted in
//!   [`SamplerStats`] and skipped. A device is stale once its newest reading is older than *now*
//!   (whatever the other devices do) by more than the gap limit: five sampling intervals or one
//!   `counter_interval`, whichever is longer (1 s by default). Stale devices hold no window back.
//!   A device's readings cover a window when one lies at or before its start (the window is not
//!   older than the bounded timeline, 10 minutes by default), no two consecutive ones around and
//!   inside it are further apart than the gap limit, and the newest is at most that much before
//!   its end ([`DeviceTimeline::covers`]); a device that does not cover a window is
//!   left out of it, and a window no device covers is unmeasured (`method` none, no joules in the
//!   record).
//! - **Partial readings**: utilization, memory and temperature are optional in a [`GpuReading`]
//!   (MIG instances and some datacenter parts do not report utilization); a reading without them
//!   still carries its power and counter, and the record's fields are left empty when no reading
//!   in the window had them.
//!
//! ```
//! # #[cfg(feature = "mock")] {
//! use std::sync::{Arc, mpsc};
//! use std::time::Duration;
//! use telemetry_gpu::{
//!     GpuSampler, MockBackend, MockClock, PowerProfile, SamplerConfig, Timestamp,
//! };
//!
//! let clock = MockClock::new();
//! let backend = MockBackend::single(PowerProfile::Constant(700.0));
//! let config = SamplerConfig { manual: true, ..SamplerConfig::default() };
//! let sampler = GpuSampler::with_config(backend, Arc::new(clock.clone()), config)?;
//!
//! // The sampler thread would sample every 100 ms; in manual mode the test does.
//! let sample_at = |ms: u64| {
//!     clock.set(Timestamp::from_millis(ms));
//!     sampler.sample_now();
//! };
//! for ms in [100, 200, 300, 400] {
//!     sample_at(ms);
//! }
//! // A 50 ms call, shorter than the counter's 100 ms refresh period.
//! clock.set(Timestamp::from_millis(420));
//! let handle = sampler.begin(sampler.now());
//! clock.advance(Duration::from_millis(50));
//! let (tx, rx) = mpsc::channel();
//! sampler.end(handle, sampler.now(), None, move |reading| tx.send(reading).unwrap());
//! // The energy counter is read once a second (power every tick): the reading is complete once
//! // the counter read at 1 s shows a refresh past the call's end.
//! for ms in (500..=1000).step_by(100) {
//!     sample_at(ms);
//! }
//! let reading = rx.try_recv().unwrap();
//! assert!((reading.joules_total - 35.0).abs() < 0.01); // 700 W × 50 ms
//! # }
//! # Ok::<(), telemetry_gpu::GpuError>(())
//! ```
//!
//! ## Feature flags
//!
//! - `nvml`: `NvmlBackend`, NVIDIA GPUs through `nvml-wrapper` (`libnvidia-ml` is loaded at run
//!   time; without a driver `NvmlBackend::new` returns [`GpuError::Unavailable`]).
//! - `mock`: `MockBackend`, scripted power profiles, and `MockClock`, a clock that only moves
//!   when told to, for tests and demos.
//!
//! Neither is on by default: the sampler, the timeline and the energy math need no feature.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod attribution;
mod backend;
mod clock;
mod config;
mod energy_curve;
mod energy_reading;
mod error;
mod gpu_reading;
#[cfg(feature = "mock")]
mod mock;
#[cfg(feature = "nvml")]
mod nvml;
mod refresh;
mod registry;
mod sampler;
mod timeline;
mod worker;

pub use attribution::{EnergySource, Window, attribute, union_energy};
pub use backend::{DeviceInfo, GpuBackend};
#[cfg(feature = "mock")]
pub use clock::MockClock;
pub use clock::{Clock, SystemClock, Timestamp};
pub use config::{LONGEST_CONFIG_DURATION, SamplerConfig, SamplerStats};
pub use energy_curve::EnergyCurve;
pub use energy_reading::{DeviceEnergy, EnergyReading};
pub use error::{BackendError, GpuError};
pub use gpu_reading::GpuReading;
#[cfg(feature = "mock")]
pub use mock::{MockBackend, MockDevice, PowerProfile};
#[cfg(feature = "nvml")]
pub use nvml::NvmlBackend;
pub use sampler::{GpuSampler, WindowHandle};
pub use timeline::{DeviceTimeline, Timeline};
