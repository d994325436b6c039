//! The sampler's shared state and its thread: sampling every device, and completing covered
//! windows in order.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::reading::{WindowSpec, compute_reading};
use crate::registry::Registry;
use crate::{
    Clock, DeviceInfo, EnergyReading, GpuBackend, GpuError, SamplerConfig, SamplerStats, Timeline,
    Timestamp,
};

pub(crate) struct Shared {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: SamplerConfig,
    pub(crate) vendor: &'static str,
    pub(crate) devices: Vec<DeviceInfo>,
    pub(crate) backend: Mutex<Box<dyn GpuBackend>>,
    pub(crate) timeline: Mutex<Timeline>,
    pub(crate) registry: Mutex<Registry>,
    /// Serializes completion so callbacks run in order.
    pub(crate) completion: Mutex<()>,
    pub(crate) stopped: AtomicBool,
    pub(crate) ticks: AtomicU64,
    pub(crate) readings: AtomicU64,
    pub(crate) failed_reads: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) callback_panics: AtomicU64,
    pub(crate) last_error: Mutex<Option<GpuError>>,
}

pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves the data consistent enough to keep going
    // (callbacks run outside them), so poisoning is ignored.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn sample(&self) {
        let mut results = Vec::with_capacity(self.devices.len());
        {
            let mut backend = lock(&self.backend);
            for d in &self.devices {
                results.push(backend.read(d.index, self.clock.as_ref()));
            }
        }
        self.ticks.fetch_add(1, Ordering::Relaxed);
        let mut timeline = lock(&self.timeline);
        for result in results {
            match result {
                Ok(reading) => {
                    timeline.push(reading);
                    self.readings.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    let first = self.failed_reads.fetch_add(1, Ordering::Relaxed) == 0;
                    if first {
                        tracing::warn!(%error, "GPU read failed; the sampler keeps going");
                    } else {
                        tracing::debug!(%error, "GPU read failed");
                    }
                    *lock(&self.last_error) = Some(error);
                }
            }
        }
    }

    /// Completes the pending windows the timeline covers (all of them when `force`), in order of
    /// their end, and runs their callbacks on this thread.
    pub(crate) fn complete(&self, force: bool) {
        let _serial = lock(&self.completion);
        let now = self.clock.now();
        let covered = lock(&self.timeline).covered_until_live(self.stale_after());
        let timeout = self.config.completion_timeout;
        let ready =
            |end: Timestamp| force || covered.is_some_and(|c| c >= end) || now >= end + timeout;
        let batch = lock(&self.registry).take_ready(ready, now);
        if batch.ready.is_empty() {
            return;
        }
        // Overlaps are found outside both locks; abandoned windows (no callback) need no reading.
        let others: Vec<Option<Vec<_>>> = batch
            .ready
            .iter()
            .map(|job| job.callback.as_ref().map(|_| batch.overlapping(job)))
            .collect();
        let readings: Vec<Option<EnergyReading>> = {
            let timeline = lock(&self.timeline);
            // One curve per device for the whole batch.
            let lo = batch
                .ready
                .iter()
                .map(|j| j.window.start)
                .min()
                .unwrap_or(now);
            let hi = batch
                .ready
                .iter()
                .map(|j| j.window.end)
                .max()
                .unwrap_or(now);
            let curves = timeline.curves(lo, hi);
            batch
                .ready
                .iter()
                .zip(&others)
                .map(|(job, others)| {
                    others.as_ref().map(|others| {
                        let spec = WindowSpec {
                            window: job.window,
                            first_token: job.first_token,
                            weight: job.weight,
                        };
                        let stale = self.stale_after();
                        compute_reading(&timeline, &curves, self.vendor, &spec, others, stale)
                    })
                })
                .collect()
        };
        for (job, reading) in batch.ready.into_iter().zip(readings) {
            self.completed.fetch_add(1, Ordering::Relaxed);
            if let (Some(cb), Some(reading)) = (job.callback, reading)
                && catch_unwind(AssertUnwindSafe(move || cb(reading))).is_err()
            {
                self.callback_panics.fetch_add(1, Ordering::Relaxed);
                tracing::error!("a GPU energy callback panicked; the sampler keeps going");
            }
        }
    }

    /// A device whose newest reading is this much older than the others' is treated as gone.
    pub(crate) fn stale_after(&self) -> Duration {
        self.config.interval.saturating_mul(5)
    }

    pub(crate) fn stats(&self) -> SamplerStats {
        let reg = lock(&self.registry);
        SamplerStats {
            ticks: self.ticks.load(Ordering::Relaxed),
            readings: self.readings.load(Ordering::Relaxed),
            failed_reads: self.failed_reads.load(Ordering::Relaxed),
            last_error: lock(&self.last_error).clone(),
            active_windows: reg.active_count(),
            pending_windows: reg.pending_count(),
            completed_windows: self.completed.load(Ordering::Relaxed),
            callback_panics: self.callback_panics.load(Ordering::Relaxed),
        }
    }
}

pub(crate) fn run(shared: &Shared, stop: &Receiver<()>) {
    let interval = shared.config.interval;
    let mut next = Instant::now() + interval;
    loop {
        match stop.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        shared.sample();
        shared.complete(false);
        next += interval;
        let now = Instant::now();
        if now > next {
            // Fell behind (a slow read): skip the missed ticks rather than burst.
            next = now + interval;
        }
    }
}
