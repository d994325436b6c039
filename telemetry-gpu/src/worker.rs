//! The sampler's shared state and its thread: sampling every device, and completing covered
//! windows in order.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::reading::{WindowSpec, compute_reading};
use crate::registry::{Completer, Registry};
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
    /// The completion side's windows; also serializes completion so callbacks run in order.
    pub(crate) completion: Mutex<Completer>,
    /// Windows the completer holds pending (for stats without its lock).
    pub(crate) pending: AtomicUsize,
    /// When the counter was last read (`None`: not yet).
    pub(crate) last_counter: Mutex<Option<Timestamp>>,
    pub(crate) counter_ticks: AtomicU64,
    pub(crate) stopped: AtomicBool,
    pub(crate) ticks: AtomicU64,
    pub(crate) readings: AtomicU64,
    pub(crate) failed_reads: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) callback_panics: AtomicU64,
    pub(crate) last_error: Mutex<Option<GpuError>>,
}

thread_local! {
    /// Set while this thread runs a completion callback: a `flush` or `sample_now` from inside
    /// one must not try to complete again (the completion lock is held by this very thread).
    static IN_CALLBACK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves the data consistent enough to keep going
    // (callbacks run outside them), so poisoning is ignored.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Whether a tick starting at `now` reads the energy counter: the first tick, then once
    /// `counter_interval` has passed since the last counter read (less half an interval, so that
    /// a slightly early tick does not push it a whole interval back).
    fn counter_due(&self, now: Timestamp) -> bool {
        let mut last = lock(&self.last_counter);
        let slack = self.config.interval / 2;
        let due = last.is_none_or(|l| now + slack >= l + self.config.counter_interval);
        if due {
            *last = Some(now);
        }
        due
    }

    /// Reads every device once: power, utilization, memory and temperature always, the energy
    /// counter when it is due (or `force_counter`).
    pub(crate) fn sample(&self, force_counter: bool) {
        let mut results = Vec::with_capacity(self.devices.len());
        {
            let mut backend = lock(&self.backend);
            let counter = self.counter_due(self.clock.now()) || force_counter;
            if counter {
                self.counter_ticks.fetch_add(1, Ordering::Relaxed);
            }
            for d in &self.devices {
                let clock = self.clock.as_ref();
                results.push(if counter {
                    backend.read(d.index, clock)
                } else {
                    backend.read_without_counter(d.index, clock)
                });
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
    /// their end, and runs their callbacks on this thread. From inside a callback it does nothing:
    /// the completion running the callback goes on, and later windows complete on a later pass.
    pub(crate) fn complete(&self, force: bool) {
        if IN_CALLBACK.get() {
            tracing::debug!("flush or sample_now from a GPU energy callback: completion skipped");
            return;
        }
        let mut completer = lock(&self.completion);
        let now = self.clock.now();
        let covered = lock(&self.timeline).covered_until_live(now, self.stale_after());
        let timeout = self.config.completion_timeout;
        let ready =
            |end: Timestamp| force || covered.is_some_and(|c| c >= end) || now >= end + timeout;
        // The only work under the registry lock: swap the ended windows out, copy the active ones.
        let spare = std::mem::take(&mut completer.spare);
        let mut active = std::mem::take(&mut completer.active);
        let ended = lock(&self.registry).take(spare, &mut active);
        completer.receive(ended);
        let batch = completer.take_ready(ready, active, now);
        self.pending
            .store(completer.pending_count(), Ordering::Relaxed);
        if batch.ready.is_empty() {
            completer.active = batch.into_parts().1;
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
        let (ready, active) = batch.into_parts();
        completer.active = active;
        for (job, reading) in ready.into_iter().zip(readings) {
            self.completed.fetch_add(1, Ordering::Relaxed);
            if let (Some(cb), Some(reading)) = (job.callback, reading) {
                IN_CALLBACK.set(true);
                let outcome = catch_unwind(AssertUnwindSafe(move || cb(reading)));
                IN_CALLBACK.set(false);
                if outcome.is_err() {
                    self.callback_panics.fetch_add(1, Ordering::Relaxed);
                    tracing::error!("a GPU energy callback panicked; the sampler keeps going");
                }
            }
        }
    }

    /// A device whose newest reading is more than this older than now is treated as gone, and a
    /// longer gap between two readings (or after the newest) leaves a window unmeasured: five
    /// sampling intervals, or one counter interval if that is longer (1 s by default), so that a
    /// sampler thread delayed by a loaded machine is not taken for a lost device, while the
    /// counter, read that often, still bounds the energy across the gap.
    pub(crate) fn stale_after(&self) -> Duration {
        self.config
            .interval
            .saturating_mul(5)
            .max(self.config.counter_interval)
    }

    pub(crate) fn stats(&self) -> SamplerStats {
        let (active_windows, ended) = {
            let reg = lock(&self.registry);
            (reg.active_count(), reg.ended_count())
        };
        SamplerStats {
            ticks: self.ticks.load(Ordering::Relaxed),
            readings: self.readings.load(Ordering::Relaxed),
            counter_ticks: self.counter_ticks.load(Ordering::Relaxed),
            failed_reads: self.failed_reads.load(Ordering::Relaxed),
            last_error: lock(&self.last_error).clone(),
            active_windows,
            pending_windows: ended + self.pending.load(Ordering::Relaxed),
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
        shared.sample(false);
        shared.complete(false);
        next += interval;
        let now = Instant::now();
        if now > next {
            // Fell behind (a slow read): skip the missed ticks rather than burst.
            next = now + interval;
        }
    }
}
