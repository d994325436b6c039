//! [`GpuSampler`]: the background thread that owns the backend, keeps the timeline, and completes
//! windows (calls) with their energy once the timeline covers them.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::energy_reading::{WindowSpec, compute_reading};
use crate::worker::{Shared, run};
use crate::{
    Clock, DeviceInfo, EnergyReading, GpuBackend, GpuError, LONGEST_CONFIG_DURATION, SamplerConfig,
    SamplerStats, SystemClock, Timeline, Timestamp, Window, attribute,
};

/// A window that has begun: pass it to [`GpuSampler::end`]. Dropping it without ending it ends the
/// window at the moment of the drop, with no callback (its energy still counts when splitting).
#[must_use = "a window handle must be passed to GpuSampler::end"]
pub struct WindowHandle {
    id: Option<usize>,
    start: Timestamp,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WindowHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowHandle")
            .field("id", &self.id)
            .field("start", &self.start)
            .finish()
    }
}

impl WindowHandle {
    /// When the window began.
    pub fn start(&self) -> Timestamp {
        self.start
    }
}

impl Drop for WindowHandle {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let now = self.shared.clock.now();
            self.shared.end(id, now, None, None);
        }
    }
}

/// Samples GPUs on a background thread and turns the timeline into per-call energy.
///
/// The call path only records instants: [`begin`](Self::begin) and [`end`](Self::end) take one
/// short, uncontended lock and never touch the GPU. A window's [`EnergyReading`] is delivered to its
/// callback on the sampler thread once every device's counter has refreshed past the window's end
/// (at most [`SamplerConfig::completion_timeout`] later), in order of window end;
/// [`flush`](Self::flush) and drop complete what is pending with the best data available.
/// Overlapping windows split each slice of energy (equally, or by the weights given to
/// [`begin_weighted`](Self::begin_weighted)), so their energies sum to the device energy over their
/// union.
///
/// Callbacks run on the sampler thread (or on the thread calling [`sample_now`](Self::sample_now) /
/// [`flush`](Self::flush)), one at a time. A callback may call `sample_now` or `flush` (say, a bus
/// subscriber that flushes the instrumented engine): the sample is taken, but completion is left
/// to the pass already running the callback (and to the next ones), so nothing deadlocks. A
/// callback may also drop the last handle to the sampler (say, a bus subscriber owning the
/// engine): the thread then stops once the callback returns and completes what is pending
/// itself. A panicking callback is contained and counted.
pub struct GpuSampler {
    shared: Arc<Shared>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for GpuSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuSampler")
            .field("vendor", &self.shared.vendor)
            .field("devices", &self.shared.devices)
            .field("config", &self.shared.config)
            .finish()
    }
}

impl GpuSampler {
    /// Samples every device of `backend` every 100 ms on a background thread, on a
    /// [`SystemClock`] whose origin is now.
    ///
    /// # Errors
    /// See [`with_config`](Self::with_config).
    pub fn new(backend: impl GpuBackend + 'static) -> Result<Self, GpuError> {
        GpuSampler::with_config(
            backend,
            Arc::new(SystemClock::new()),
            SamplerConfig::default(),
        )
    }

    /// A sampler with its own clock and configuration. Takes a first sample before returning.
    ///
    /// # Errors
    /// [`GpuError::InvalidConfig`] for a zero interval or history, or a duration longer than
    /// [`LONGEST_CONFIG_DURATION`], [`GpuError::NoSuchDevice`] for
    /// a selected device the backend lacks, [`GpuError::NoDevices`] when nothing is left to sample,
    /// the backend's error if it cannot list its devices, [`GpuError::ThreadSpawn`] if the thread
    /// cannot start.
    pub fn with_config(
        backend: impl GpuBackend + 'static,
        clock: Arc<dyn Clock>,
        config: SamplerConfig,
    ) -> Result<Self, GpuError> {
        if config.interval.is_zero() {
            return Err(GpuError::InvalidConfig {
                field: "interval",
                reason: "must be greater than 0".into(),
            });
        }
        // Deadlines are a time plus one of these: a length near `Duration::MAX` would overflow.
        for (field, length) in [
            ("interval", config.interval),
            ("history", config.history),
            ("completion_timeout", config.completion_timeout),
            ("counter_interval", config.counter_interval),
        ] {
            if length > LONGEST_CONFIG_DURATION {
                return Err(GpuError::InvalidConfig {
                    field,
                    reason: format!("{length:?} is longer than a year"),
                });
            }
        }
        if config.history < config.interval {
            return Err(GpuError::InvalidConfig {
                field: "history",
                reason: format!(
                    "{:?} is shorter than the interval {:?}",
                    config.history, config.interval
                ),
            });
        }
        let all = backend.devices()?;
        let devices = select_devices(&all, config.devices.as_deref())?;
        let capacity = usize::try_from(config.history.as_nanos() / config.interval.as_nanos())
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let shared = Arc::new(Shared::new(
            Box::new(backend),
            clock,
            config,
            devices,
            capacity,
        ));
        shared.sample(false);
        let (stop, thread) = if shared.config.manual {
            (None, None)
        } else {
            let (tx, rx) = mpsc::channel();
            let worker = Arc::clone(&shared);
            let thread = std::thread::Builder::new()
                .name("gpu-sampler".into())
                .spawn(move || run(&worker, &rx))
                .map_err(|e| GpuError::ThreadSpawn {
                    reason: e.to_string(),
                })?;
            (Some(tx), Some(thread))
        };
        Ok(GpuSampler {
            shared,
            stop,
            thread,
        })
    }

    /// The sampler's clock, now.
    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// Converts an [`Instant`] taken by a caller to the sampler's clock.
    pub fn timestamp_of(&self, instant: Instant) -> Timestamp {
        self.shared.clock.timestamp_of(instant)
    }

    /// The sampled devices.
    pub fn devices(&self) -> &[DeviceInfo] {
        &self.shared.devices
    }

    /// `"nvidia"`, `"mock"`: what readings put in `energy_vendor`.
    pub fn vendor(&self) -> &'static str {
        self.shared.vendor
    }

    /// The configuration in use.
    pub fn config(&self) -> &SamplerConfig {
        &self.shared.config
    }

    /// A window (call) starts at `t0`; from now on it shares the energy of every slice it is active
    /// in. O(1): one short lock, no allocation once warm, no GPU access.
    pub fn begin(&self, t0: Timestamp) -> WindowHandle {
        self.begin_inner(t0, 1.0)
    }

    /// Like [`begin`](Self::begin), with a weight for splitting shared slices (e.g. the call's
    /// token count); windows begun with [`begin`](Self::begin) weigh 1.
    ///
    /// # Errors
    /// [`GpuError::InvalidWeight`] unless `weight` is finite and greater than 0.
    pub fn begin_weighted(&self, t0: Timestamp, weight: f64) -> Result<WindowHandle, GpuError> {
        if !(weight.is_finite() && weight > 0.0) {
            return Err(GpuError::InvalidWeight { index: 0, weight });
        }
        Ok(self.begin_inner(t0, weight))
    }

    fn begin_inner(&self, t0: Timestamp, weight: f64) -> WindowHandle {
        let id = self.shared.begin(t0, weight);
        WindowHandle {
            id: Some(id),
            start: t0,
            shared: Arc::clone(&self.shared),
        }
    }

    /// The window ends at `t1` (a `t1` before the start is taken as the start); `first_token`, if
    /// given, splits its energy into prefill and decode. `on_reading` gets the reading later, on
    /// the sampler thread. Returns at once: one short lock, no GPU access. After the sampler has
    /// stopped, the reading is computed from the final timeline before this returns.
    pub fn end(
        &self,
        mut handle: WindowHandle,
        t1: Timestamp,
        first_token: Option<Timestamp>,
        on_reading: impl FnOnce(EnergyReading) + Send + 'static,
    ) {
        let Some(id) = handle.id.take() else {
            return;
        };
        self.shared
            .end(id, t1, first_token, Some(Box::new(on_reading)));
    }

    /// Like [`end`](Self::end), delivering the reading on a channel instead of a callback.
    pub fn end_to_channel(
        &self,
        handle: WindowHandle,
        t1: Timestamp,
        first_token: Option<Timestamp>,
    ) -> Receiver<EnergyReading> {
        let (tx, rx) = mpsc::channel();
        self.end(handle, t1, first_token, move |reading| {
            // The receiver may be gone; the reading is then simply not wanted.
            let _ = tx.send(reading);
        });
        rx
    }

    /// Reads every device once on this thread, then completes the windows now covered (their
    /// callbacks run on this thread). With [`SamplerConfig::manual`] this is the only way samples
    /// are taken besides [`flush`](Self::flush).
    pub fn sample_now(&self) {
        self.shared.sample(false);
        self.shared.complete(false);
    }

    /// Takes one more sample (reading the energy counter whether due or not), then completes
    /// every ended window with the best data available (power extrapolation past the last counter
    /// refresh), on this thread. Called from inside a completion callback it only samples: the
    /// completion already running finishes its batch, and windows it did not take complete on the
    /// next pass.
    pub fn flush(&self) {
        self.shared.sample(true);
        self.shared.complete(true);
    }

    /// The device energy over `[t0, t1]` from the current timeline, not split with any window.
    ///
    /// # Errors
    /// [`GpuError::InvalidWindow`] when `t1 < t0`, [`GpuError::NoData`] before any reading.
    pub fn energy_between(&self, t0: Timestamp, t1: Timestamp) -> Result<EnergyReading, GpuError> {
        if t1 < t0 {
            return Err(GpuError::InvalidWindow {
                index: 0,
                start: t0,
                end: t1,
            });
        }
        let spec = WindowSpec {
            window: Window::new(t0, t1),
            first_token: None,
            weight: 1.0,
        };
        let stale = self.shared.stale_after();
        self.shared.with_timeline(|timeline| {
            if timeline.is_empty() {
                return Err(GpuError::NoData);
            }
            let curves = timeline.curves(t0, t1);
            Ok(compute_reading(
                timeline,
                &curves,
                self.shared.vendor,
                &spec,
                &[],
                stale,
            ))
        })
    }

    /// Splits the current timeline's energy (all devices) among `windows`; see [`attribute`].
    ///
    /// Coverage is judged as for a completed window: a device gives a window its share only if
    /// its readings cover the window ([`DeviceTimeline::covers`](crate::DeviceTimeline::covers):
    /// not older than the kept history, no gap longer than the gap limit, not held past the
    /// newest reading). A window that no device covers is `None`, unmeasured, never a guess.
    /// Every window still counts in the splits, so a window's share is what its completion
    /// reading would be with the others as its overlaps.
    ///
    /// # Errors
    /// As [`attribute`]; [`GpuError::NoData`] before any reading.
    pub fn attribute(
        &self,
        windows: &[Window],
        weights: Option<&[f64]>,
    ) -> Result<Vec<Option<f64>>, GpuError> {
        crate::attribution::validate(windows, weights)?;
        let lo = windows.iter().map(|w| w.start).min().unwrap_or_default();
        let hi = windows.iter().map(|w| w.end).max().unwrap_or_default();
        let max_gap = self.shared.stale_after();
        let (curves, covered) = self.shared.with_timeline(|timeline| {
            if timeline.is_empty() {
                return Err(GpuError::NoData);
            }
            let covered: Vec<Vec<bool>> = timeline
                .devices()
                .iter()
                .map(|d| {
                    windows
                        .iter()
                        .map(|w| d.covers(w.start, w.end, max_gap))
                        .collect()
                })
                .collect();
            Ok((timeline.curves(lo, hi.max(lo)), covered))
        })?;
        let mut joules: Vec<Option<f64>> = vec![None; windows.len()];
        for (curve, covered) in curves.iter().zip(&covered) {
            if curve.is_empty() || !covered.contains(&true) {
                continue;
            }
            let shares = attribute(curve, windows, weights)?;
            for ((j, share), &covers) in joules.iter_mut().zip(shares).zip(covered) {
                if covers {
                    *j.get_or_insert(0.0) += share;
                }
            }
        }
        Ok(joules)
    }

    /// A copy of the timeline.
    pub fn timeline(&self) -> Timeline {
        self.shared.with_timeline(Timeline::clone)
    }

    /// The newest reading of each device that has one, in the order of
    /// [`devices`](Self::devices): what the device is doing now (power, utilization, memory) and
    /// its energy counter. One short lock, no copy of the history (unlike
    /// [`timeline`](Self::timeline)), no GPU access; for exporting device-level series.
    pub fn latest_readings(&self) -> Vec<crate::GpuReading> {
        self.shared.with_timeline(|timeline| {
            timeline
                .devices()
                .iter()
                .filter_map(|d| d.samples().next_back().copied())
                .collect()
        })
    }

    /// The newest reading of each device that carries the energy counter, in the order of
    /// [`devices`](Self::devices), with the time the counter was read. The counter is read only
    /// every [`counter_interval`](SamplerConfig::counter_interval) (1 s by default, against a
    /// sample every 100 ms), so the newest reading ([`latest_readings`](Self::latest_readings))
    /// usually has no `energy_mj`: this is where a device's cumulative energy is found. Devices
    /// with no counter reading in the kept history are left out. One short lock, no GPU access.
    pub fn latest_counter_readings(&self) -> Vec<crate::GpuReading> {
        self.shared.with_timeline(|timeline| {
            timeline
                .devices()
                .iter()
                .filter_map(|d| d.samples().rev().find(|r| r.energy_mj.is_some()).copied())
                .collect()
        })
    }

    /// Counters describing the work so far.
    pub fn stats(&self) -> SamplerStats {
        self.shared.stats()
    }

    /// Stops the thread and completes every pending window (as drop does), returning the final
    /// counters.
    pub fn shutdown(mut self) -> SamplerStats {
        self.stop_and_flush();
        self.shared.stats()
    }

    fn stop_and_flush(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The thread may have exited already; dropping the sender stops it too.
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() == std::thread::current().id() {
                // Dropped by one of its own callbacks (which held the last handle): joining
                // would wait for this very thread. It completes what is pending itself when
                // its loop sees the stop, after this callback returns.
                return;
            }
            if thread.join().is_err() {
                tracing::error!("the GPU sampler thread panicked");
            }
        }
        self.shared.finish();
    }
}

impl Drop for GpuSampler {
    fn drop(&mut self) {
        self.stop_and_flush();
    }
}

fn select_devices(all: &[DeviceInfo], wanted: Option<&[u32]>) -> Result<Vec<DeviceInfo>, GpuError> {
    let devices = match wanted {
        None => all.to_vec(),
        Some(wanted) => {
            let count = u32::try_from(all.len()).unwrap_or(u32::MAX);
            wanted
                .iter()
                .map(|&index| {
                    all.iter()
                        .find(|d| d.index == index)
                        .cloned()
                        .ok_or(GpuError::NoSuchDevice { index, count })
                })
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    if devices.is_empty() {
        return Err(GpuError::NoDevices);
    }
    Ok(devices)
}
