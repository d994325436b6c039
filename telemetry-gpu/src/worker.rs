//! The sampler's shared state, grouped by the side that owns it, and the sampler thread.
//!
//! # Who owns what
//!
//! | part | written by | read by | guarded by |
//! |---|---|---|---|
//! | `clock`, `config`, `vendor`, `devices` | construction | everyone | nothing (immutable) |
//! | [`Sampling`]: the backend, when the counter was last read | the sampling side: the sampler thread, `sample_now`, `flush` | the sampling side | `sampling`, held across backend reads (milliseconds on NVML) |
//! | [`Readings`]: the timeline, the last read error | the sampling side (one push per device and tick) | completion, `energy_between`, `attribute`, `timeline`, `stats` | `readings`, held briefly |
//! | [`Registry`]: active windows, windows ended since the last completion | callers: `begin`, `end`, dropping a `WindowHandle` | completion (one swap), `stats` | `registry`: **the only lock on the call path** |
//! | [`Completer`]: pending and recently completed windows | the completing side: the sampler thread, `sample_now`, `flush`, `end` after stop | the completing side | `completion`, held while callbacks run (that is what runs them one at a time, in order) |
//! | [`Counters`], `stopped` | everyone | `stats`, `end` | nothing (atomics) |
//!
//! # Lock order
//!
//! `completion` first; `sampling`, `readings` and `registry` are leaves. `completion` is the only
//! lock ever held while another is taken, and it is never taken while any other lock is held.
//! Sampling reads the devices into a local buffer under `sampling`, releases it, then pushes under
//! `readings`; `stats` takes `registry` and then `readings`, one after the other. A completion
//! callback runs under `completion` and may take any leaf (begin, end, `energy_between`, a
//! sample); a `flush` or `sample_now` from inside a callback samples but skips completion (the
//! `IN_CALLBACK` guard), since `completion` is already held by its own thread.
//! `tests/lock_order.rs` drives every entry point from many threads at once, callbacks flushing
//! and sampling, under a watchdog.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::energy_reading::{WindowSpec, compute_reading};
use crate::registry::{Callback, Completer, Registry};
use crate::{
    BackendError, Clock, DeviceInfo, EnergyReading, GpuBackend, SamplerConfig, SamplerStats,
    Timeline, Timestamp,
};

/// The sampling side's state: only whoever takes a sample touches it.
struct Sampling {
    backend: Box<dyn GpuBackend>,
    /// When the counter was last read (`None`: not yet).
    last_counter: Option<Timestamp>,
}

/// What sampling produced, read by completion and the sampler's queries.
struct Readings {
    timeline: Timeline,
    last_error: Option<BackendError>,
}

/// Work counters for [`SamplerStats`]; relaxed atomics, no lock.
#[derive(Default)]
struct Counters {
    ticks: AtomicU64,
    readings: AtomicU64,
    counter_ticks: AtomicU64,
    failed_reads: AtomicU64,
    completed: AtomicU64,
    callback_panics: AtomicU64,
    /// Windows the completer holds pending (so `stats` need not take `completion`).
    pending: AtomicUsize,
}

/// Everything the [`GpuSampler`](crate::GpuSampler), its handles and its thread share. See the
/// module docs for who owns which part and the lock order.
pub(crate) struct Shared {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: SamplerConfig,
    pub(crate) vendor: &'static str,
    pub(crate) devices: Vec<DeviceInfo>,
    /// Leaf lock; held across backend reads.
    sampling: Mutex<Sampling>,
    /// Leaf lock; short holds.
    readings: Mutex<Readings>,
    /// Leaf lock; the call path's only lock.
    registry: Mutex<Registry>,
    /// Taken before any other lock; held while callbacks run.
    completion: Mutex<Completer>,
    counters: Counters,
    /// Set once the sampler has stopped: `end` then completes at once.
    stopped: AtomicBool,
}

thread_local! {
    /// Set while this thread runs a completion callback: a `flush` or `sample_now` from inside
    /// one must not try to complete again (the completion lock is held by this very thread).
    static IN_CALLBACK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves the data consistent enough to keep going
    // (callbacks are run under `catch_unwind`), so poisoning is ignored.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// The shared state of a sampler over `devices` of `backend`, its timeline holding
    /// `capacity` readings per device.
    pub(crate) fn new(
        backend: Box<dyn GpuBackend>,
        clock: Arc<dyn Clock>,
        config: SamplerConfig,
        devices: Vec<DeviceInfo>,
        capacity: usize,
    ) -> Self {
        let indices: Vec<u32> = devices.iter().map(|d| d.index).collect();
        Shared {
            clock,
            config,
            vendor: backend.vendor(),
            devices,
            sampling: Mutex::new(Sampling {
                backend,
                last_counter: None,
            }),
            readings: Mutex::new(Readings {
                timeline: Timeline::new(&indices, capacity),
                last_error: None,
            }),
            registry: Mutex::new(Registry::default()),
            completion: Mutex::new(Completer::default()),
            counters: Counters::default(),
            stopped: AtomicBool::new(false),
        }
    }

    /// Registers a window starting at `start` (the call path).
    pub(crate) fn begin(&self, start: Timestamp, weight: f64) -> usize {
        lock(&self.registry).begin(start, weight)
    }

    /// Ends window `id` (the call path). A window with a callback ended after the sampler has
    /// stopped is completed at once, on this thread: no other thread will.
    pub(crate) fn end(
        &self,
        id: usize,
        end: Timestamp,
        first_token: Option<Timestamp>,
        callback: Option<Callback>,
    ) {
        let wanted = callback.is_some();
        lock(&self.registry).end(id, end, first_token, callback);
        if wanted && self.stopped.load(Ordering::Acquire) {
            self.complete(true);
        }
    }

    /// Runs `f` on the timeline under the `readings` lock (a leaf: `f` must not take another).
    pub(crate) fn with_timeline<R>(&self, f: impl FnOnce(&Timeline) -> R) -> R {
        f(&lock(&self.readings).timeline)
    }

    /// Marks the sampler stopped and, the first time, takes a last sample (counter included) and
    /// completes every pending window, on this thread.
    pub(crate) fn finish(&self) {
        if !self.stopped.swap(true, Ordering::AcqRel) {
            self.sample(true);
            self.complete(true);
        }
    }

    /// Whether a tick starting at `now` reads the energy counter: the first tick, then once
    /// `counter_interval` has passed since the last counter read (less half an interval, so that
    /// a slightly early tick does not push it a whole interval back).
    fn counter_due(&self, last: &mut Option<Timestamp>, now: Timestamp) -> bool {
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
            let mut sampling = lock(&self.sampling);
            let Sampling {
                backend,
                last_counter,
            } = &mut *sampling;
            let counter = self.counter_due(last_counter, self.clock.now()) || force_counter;
            if counter {
                self.counters.counter_ticks.fetch_add(1, Ordering::Relaxed);
            }
            let clock = self.clock.as_ref();
            for d in &self.devices {
                results.push(if counter {
                    backend.read(d.index, clock)
                } else {
                    backend.read_without_counter(d.index, clock)
                });
            }
        }
        self.counters.ticks.fetch_add(1, Ordering::Relaxed);
        let mut readings = lock(&self.readings);
        for result in results {
            match result {
                Ok(reading) => {
                    readings.timeline.push(reading);
                    self.counters.readings.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    let first = self.counters.failed_reads.fetch_add(1, Ordering::Relaxed) == 0;
                    if first {
                        tracing::warn!(%error, "GPU read failed; the sampler keeps going");
                    } else {
                        tracing::debug!(%error, "GPU read failed");
                    }
                    readings.last_error = Some(error);
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
        let stale = self.stale_after();
        let covered = lock(&self.readings).timeline.covered_until_live(now, stale);
        let timeout = self.config.completion_timeout;
        let ready =
            |end: Timestamp| force || covered.is_some_and(|c| c >= end) || now >= end + timeout;
        // The only work under the registry lock: swap the ended windows out, copy the active ones.
        let spare = std::mem::take(&mut completer.spare);
        let mut active = std::mem::take(&mut completer.active);
        let ended = lock(&self.registry).take(spare, &mut active);
        completer.receive(ended);
        let batch = completer.take_ready(ready, active, now);
        self.counters
            .pending
            .store(completer.pending_count(), Ordering::Relaxed);
        if batch.ready.is_empty() {
            completer.active = batch.into_parts().1;
            return;
        }
        // Overlaps are found outside the leaf locks; abandoned windows (no callback) need no
        // reading.
        let others: Vec<Option<Vec<_>>> = batch
            .ready
            .iter()
            .map(|job| job.callback.as_ref().map(|_| batch.overlapping(job)))
            .collect();
        let readings: Vec<Option<EnergyReading>> = {
            let guard = lock(&self.readings);
            let timeline = &guard.timeline;
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
                        compute_reading(timeline, &curves, self.vendor, &spec, others, stale)
                    })
                })
                .collect()
        };
        let (ready, active) = batch.into_parts();
        completer.active = active;
        // Callbacks run under `completion` only (see the lock order).
        for (job, reading) in ready.into_iter().zip(readings) {
            self.counters.completed.fetch_add(1, Ordering::Relaxed);
            if let (Some(cb), Some(reading)) = (job.callback, reading) {
                IN_CALLBACK.set(true);
                let outcome = catch_unwind(AssertUnwindSafe(move || cb(reading)));
                IN_CALLBACK.set(false);
                if outcome.is_err() {
                    self.counters
                        .callback_panics
                        .fetch_add(1, Ordering::Relaxed);
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
        let last_error = lock(&self.readings).last_error.clone();
        let c = &self.counters;
        SamplerStats {
            ticks: c.ticks.load(Ordering::Relaxed),
            readings: c.readings.load(Ordering::Relaxed),
            counter_ticks: c.counter_ticks.load(Ordering::Relaxed),
            failed_reads: c.failed_reads.load(Ordering::Relaxed),
            last_error,
            active_windows,
            pending_windows: ended + c.pending.load(Ordering::Relaxed),
            completed_windows: c.completed.load(Ordering::Relaxed),
            callback_panics: c.callback_panics.load(Ordering::Relaxed),
        }
    }
}

pub(crate) fn run(shared: &Shared, stop: &Receiver<()>) {
    let interval = shared.config.interval;
    let mut next = Instant::now() + interval;
    loop {
        match stop.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                // The last sample and completion, before the dropping thread's join returns (or
                // instead of it, when one of this thread's callbacks dropped the sampler).
                shared.finish();
                return;
            }
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
