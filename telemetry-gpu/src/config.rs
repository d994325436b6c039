//! [`SamplerConfig`] and [`SamplerStats`].

use std::time::Duration;

use crate::BackendError;

/// The longest duration a [`SamplerConfig`] may hold (a year): the sampler refuses a longer
/// one with [`GpuError::InvalidConfig`](crate::GpuError::InvalidConfig).
pub const LONGEST_CONFIG_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// How a [`GpuSampler`](crate::GpuSampler) samples.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    /// Time between samples of every device (default 100 ms, the H100's refresh period).
    pub interval: Duration,
    /// How much history the timeline keeps (default 10 minutes); older readings are dropped, and
    /// a window that starts before the oldest reading kept is unmeasured.
    pub history: Duration,
    /// Which devices to sample (`None`: all).
    pub devices: Option<Vec<u32>>,
    /// No background thread: samples are taken only by
    /// [`GpuSampler::sample_now`](crate::GpuSampler::sample_now) and
    /// [`GpuSampler::flush`](crate::GpuSampler::flush), so tests driving a
    /// `MockClock` (feature `mock`) are exact. (The background thread ticks on real time; with a
    /// mock clock that does not move, its samples would all be ignored as not newer.)
    pub manual: bool,
    /// A window is completed when every device's counter has refreshed past its end, or at the
    /// latest once the clock is this far past its end (default 2 s, longer than
    /// `counter_interval` plus a refresh period so that windows normally wait for the counter),
    /// with the best data then.
    pub completion_timeout: Duration,
    /// How often the energy counter is read (default 1 s); power, utilization, memory and
    /// temperature are read every tick. The counter is the expensive read (on an H200 3.5 ms of
    /// driver CPU at the median, 21 ms at p99, against microseconds for the rest), so reading it
    /// every 100 ms tick cost 3 % of a core; once a second keeps the sampler well under 1 %. Each
    /// counter step is spread over the time between reads in proportion to the sampled power, so
    /// short windows still get their share and the shares sum to the counter. A tick reads the
    /// counter once this much has passed since the last counter read (less half an interval, for
    /// jitter); `Duration::ZERO` (or anything up to `interval`) reads it every tick. A window
    /// completes only after the next counter read past its end, so readings arrive up to about
    /// this much later.
    pub counter_interval: Duration,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            interval: Duration::from_millis(100),
            history: Duration::from_secs(600),
            devices: None,
            manual: false,
            completion_timeout: Duration::from_secs(2),
            counter_interval: Duration::from_secs(1),
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
    /// Ticks that read the energy counter (every
    /// [`counter_interval`](SamplerConfig::counter_interval), and on flush).
    pub counter_ticks: u64,
    /// Failed device reads (the sampler keeps going).
    pub failed_reads: u64,
    /// The most recent read error.
    pub last_error: Option<BackendError>,
    /// Windows begun and not yet ended.
    pub active_windows: usize,
    /// Windows ended and waiting for the timeline to cover them.
    pub pending_windows: usize,
    /// Windows completed (callback run or abandoned).
    pub completed_windows: u64,
    /// Callbacks that panicked (contained; the sampler keeps going).
    pub callback_panics: u64,
}
