//! [`SamplerConfig`] and [`SamplerStats`].

use std::time::Duration;

use crate::GpuError;

/// How a [`GpuSampler`](crate::GpuSampler) samples.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    /// Time between samples of every device (default 100 ms, the H100's refresh period).
    pub interval: Duration,
    /// How much history the timeline keeps (default 10 minutes); older readings are dropped and
    /// windows older than the timeline are estimated from the oldest reading's power.
    pub history: Duration,
    /// Which devices to sample (`None`: all).
    pub devices: Option<Vec<u32>>,
    /// No background thread: samples are taken only by
    /// [`GpuSampler::sample_now`](crate::GpuSampler::sample_now) and
    /// [`GpuSampler::flush`](crate::GpuSampler::flush), so tests driving a
    /// [`MockClock`](crate::MockClock) are exact. (The background thread ticks on real time; with a
    /// mock clock that does not move, its samples would all be ignored as not newer.)
    pub manual: bool,
    /// A window is completed when every device's counter has refreshed past its end, or at the
    /// latest once the clock is this far past its end (default 1 s), with the best data then.
    pub completion_timeout: Duration,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            interval: Duration::from_millis(100),
            history: Duration::from_secs(600),
            devices: None,
            manual: false,
            completion_timeout: Duration::from_secs(1),
        }
    }
}

/// Counters describing the sampler's work so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SamplerStats {
    /// Sampling rounds (every device read once per round).
    pub ticks: u64,
    /// Successful device reads.
    pub readings: u64,
    /// Failed device reads (the sampler keeps going).
    pub failed_reads: u64,
    /// The most recent read error.
    pub last_error: Option<GpuError>,
    /// Windows begun and not yet ended.
    pub active_windows: usize,
    /// Windows ended and waiting for the timeline to cover them.
    pub pending_windows: usize,
    /// Windows completed (callback run or abandoned).
    pub completed_windows: u64,
    /// Callbacks that panicked (contained; the sampler keeps going).
    pub callback_panics: u64,
}
