//! [`OtlpExporter`]: the bounded queue callers enqueue into, and the thread that batches,
//! aggregates and posts.
//!
//! The queue is a `Mutex<VecDeque>` with a condition variable rather than a channel so that a
//! caller wakes the export thread only when the first record arrives in an empty queue or a
//! batch just filled, and only if the thread sleeps (a channel wakes its receiver on every send,
//! a system call per record); otherwise the thread wakes on its own timer. The first record must
//! wake it: with an empty queue the thread sleeps until the next metric export (60 s by
//! default), and only once awake does it set its timer to the schedule delay for that record.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use telemetry_core::{EventBus, EventType, SubscriptionId, TelemetryRecord};

use crate::config::OtlpConfig;
use crate::device::DeviceReading;
use crate::error::{ExportError, FlushError, StartError};
use crate::metrics::MetricsState;
use crate::sender::Sender;
use crate::span::nanos;

/// Device readings held between metric exports before new ones are dropped (the export thread
/// keeps only the newest per device, so a few per device and interval are all that matter).
const DEVICE_QUEUE: usize = 1024;

/// How long dropping an exporter that was not shut down waits for its last export.
const DROP_DEADLINE: Duration = Duration::from_secs(2);

/// Counters of an exporter's life so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExporterStats {
    /// Records accepted into the queue.
    pub accepted: u64,
    /// Records refused because the queue was full or the exporter shut down.
    pub dropped: u64,
    /// Records the collector acknowledged as spans.
    pub spans_exported: u64,
    /// Records whose span request failed (collector down, slow or refusing), or that were still
    /// queued when the shutdown deadline passed.
    pub spans_failed: u64,
    /// Metric requests the collector acknowledged.
    pub metric_exports: u64,
    /// Requests (spans or metrics) that failed.
    pub export_errors: u64,
    /// Records queued or being sent now.
    pub pending: u64,
    /// Device readings accepted ([`OtlpExporter::device_reading`]).
    pub device_readings: u64,
    /// Device readings refused because their queue was full or the exporter shut down.
    pub device_readings_dropped: u64,
    /// Calls at least one of whose metric measurements was folded into an instrument's
    /// overflow series (`otel.metric.overflow = true`) because the instrument already had
    /// [`OtlpConfig::cardinality_limit`] attribute sets. Their spans are sent as usual.
    pub calls_folded: u64,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Arc<TelemetryRecord>>,
    /// Device readings waiting for the next metrics export.
    readings: Vec<DeviceReading>,
    in_flight: u64,
    worker_sleeping: bool,
    flush_requested: u64,
    flush_done: u64,
    closing: bool,
    deadline: Option<Instant>,
    finished: bool,
    stats: ExporterStats,
    last_error: Option<ExportError>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// The export thread waits on it.
    work: Condvar,
    /// Flush and shutdown wait on it.
    done: Condvar,
    capacity: usize,
    batch: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; recover rather than propagate a poison.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The caller's whole cost: one uncontended lock, a push, and a wake-up only when the
    /// record is the first in an empty queue or fills a batch while the thread sleeps (at most
    /// twice per batch).
    fn push(&self, record: Arc<TelemetryRecord>) -> bool {
        let mut s = self.lock();
        if s.closing || s.queue.len() >= self.capacity {
            s.stats.dropped += 1;
            return false;
        }
        s.queue.push_back(record);
        s.stats.accepted += 1;
        let wake = s.worker_sleeping && (s.queue.len() == 1 || s.queue.len() == self.batch);
        drop(s);
        if wake {
            self.work.notify_one();
        }
        true
    }
}

/// Exports [`TelemetryRecord`]s to an OpenTelemetry collector over OTLP/HTTP (protobuf): a span
/// per call and cumulative GenAI metrics (see the [crate] docs for what is sent).
///
/// Callers only enqueue (bounded; when full the newest record is dropped and counted); a
/// dedicated thread batches, aggregates and posts. A collector that is down or slow costs the
/// caller nothing: its requests fail or time out on that thread, and records beyond the queue's
/// capacity are dropped.
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use telemetry_core::EventBus;
/// use telemetry_otel::{OtlpConfig, OtlpExporter};
///
/// let exporter = OtlpExporter::start(OtlpConfig::from_env()?)?;
/// let bus = Arc::new(EventBus::new());
/// exporter.subscribe_to_bus(&bus);
/// // ... instrumented calls publish records on `bus` ...
/// exporter.shutdown(Duration::from_secs(5))?;
/// println!("{:?}", exporter.stats());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct OtlpExporter {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
    config: OtlpConfig,
}

impl OtlpExporter {
    /// Starts the export thread.
    pub fn start(config: OtlpConfig) -> Result<Self, StartError> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                // Allocated once (up to 64 Ki entries, 512 KiB) so that enqueuing never reallocates.
                queue: VecDeque::with_capacity(config.queue_capacity.min(1 << 16)),
                ..State::default()
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            capacity: config.queue_capacity,
            batch: config.max_batch,
        });
        let thread_shared = Arc::clone(&shared);
        let sender = Sender::new(config.clone());
        let worker = std::thread::Builder::new()
            .name("telemetry-otlp".to_owned())
            .spawn(move || run(&thread_shared, sender))
            .map_err(StartError::Spawn)?;
        Ok(OtlpExporter {
            shared,
            worker: Mutex::new(Some(worker)),
            config,
        })
    }

    /// The configuration it exports with.
    pub fn config(&self) -> &OtlpConfig {
        &self.config
    }

    /// Enqueues a record; `false` when it was dropped (queue full or exporter shut down).
    pub fn record(&self, record: Arc<TelemetryRecord>) -> bool {
        self.shared.push(record)
    }

    /// Enqueues a reading of a device (a GPU) for the device-level series `hw.energy`,
    /// `hw.power`, `hw.gpu.utilization` and `hw.gpu.memory.*` (see the [crate] docs). Like
    /// [`record`](Self::record) it only enqueues, into a bounded queue of its own (1024
    /// readings: when full the newest is dropped and counted); the export thread keeps each
    /// device's newest reading and sends it with the next metrics, so reading devices about
    /// once per metric interval is enough. `false` when it was dropped.
    pub fn device_reading(&self, reading: DeviceReading) -> bool {
        let mut s = self.shared.lock();
        if s.closing || s.readings.len() >= DEVICE_QUEUE {
            s.stats.device_readings_dropped += 1;
            return false;
        }
        s.readings.push(reading);
        s.stats.device_readings += 1;
        true
    }

    /// Exports every [`TelemetryRecord`](telemetry_core::Event::TelemetryRecord) event published
    /// on `bus` (the event's record is shared, not copied). Remove it with
    /// [`EventBus::unsubscribe`]; after [`shutdown`](Self::shutdown) it only counts drops.
    pub fn subscribe_to_bus(&self, bus: &EventBus) -> SubscriptionId {
        let shared = Arc::clone(&self.shared);
        bus.subscribe(EventType::TelemetryRecord, move |event| {
            if let Some(record) = event.as_record() {
                shared.push(Arc::clone(record));
            }
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> ExporterStats {
        let s = self.shared.lock();
        ExporterStats {
            pending: s.queue.len() as u64 + s.in_flight,
            ..s.stats
        }
    }

    /// The last export failure, if any.
    pub fn last_error(&self) -> Option<ExportError> {
        self.shared.lock().last_error.clone()
    }

    /// Sends everything queued before this call, spans then metrics, and returns once done or
    /// when `timeout` passes. Done means attempted: failed requests are counted in
    /// [`stats`](Self::stats), not returned.
    pub fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        let deadline = Instant::now() + timeout;
        let mut s = self.shared.lock();
        if s.closing {
            return Err(FlushError::Closed);
        }
        s.flush_requested += 1;
        let target = s.flush_requested;
        self.shared.work.notify_one();
        while s.flush_done < target && !s.finished {
            let now = Instant::now();
            if now >= deadline {
                return Err(FlushError::Timeout {
                    deadline: timeout,
                    pending: s.queue.len() as u64 + s.in_flight,
                });
            }
            s = wait(&self.shared.done, s, deadline - now);
        }
        Ok(())
    }

    /// Refuses new records, sends the queued ones and the final metrics, and stops the thread,
    /// all within `timeout` (requests are cut short to fit; what is left is counted as failed).
    /// Idempotent: later calls return `Ok(())`.
    pub fn shutdown(&self, timeout: Duration) -> Result<(), FlushError> {
        let deadline = Instant::now() + timeout;
        let mut s = self.shared.lock();
        if !s.closing {
            s.closing = true;
            s.deadline = Some(deadline);
            self.shared.work.notify_one();
        }
        while !s.finished {
            let now = Instant::now();
            if now >= deadline {
                return Err(FlushError::Timeout {
                    deadline: timeout,
                    pending: s.queue.len() as u64 + s.in_flight,
                });
            }
            s = wait(&self.shared.done, s, deadline - now);
        }
        drop(s);
        let handle = self
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            // The thread has set `finished` and only returns now; it contains no panic path.
            let _ = handle.join();
        }
        Ok(())
    }
}

impl Drop for OtlpExporter {
    /// Shuts down with a short deadline if [`shutdown`](Self::shutdown) was not called.
    fn drop(&mut self) {
        let _ = self.shutdown(DROP_DEADLINE);
    }
}

fn wait<'a>(cv: &Condvar, guard: MutexGuard<'a, State>, d: Duration) -> MutexGuard<'a, State> {
    cv.wait_timeout(guard, d)
        .unwrap_or_else(PoisonError::into_inner)
        .0
}

fn now_ns() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    nanos(now)
}

/// The export thread.
fn run(shared: &Shared, mut sender: Sender) {
    let delay = sender.config().schedule_delay;
    let interval = sender.config().metric_interval;
    let mut metrics = MetricsState::new(now_ns(), sender.config().cardinality_limit);
    let mut next_spans = Instant::now() + delay;
    let mut next_metrics = Instant::now() + interval;
    let mut batch: Vec<Arc<TelemetryRecord>> = Vec::with_capacity(shared.batch);
    let mut errors_logged = 0u64;
    loop {
        let (flush_target, flushing, closing, deadline) = {
            let mut s = shared.lock();
            loop {
                let now = Instant::now();
                if s.closing
                    || s.flush_requested > s.flush_done
                    || s.queue.len() >= shared.batch
                    || (!s.queue.is_empty() && now >= next_spans)
                    || now >= next_metrics
                {
                    break;
                }
                let until = if s.queue.is_empty() {
                    next_metrics
                } else {
                    next_spans.min(next_metrics)
                };
                s.worker_sleeping = true;
                s = wait(&shared.work, s, until.saturating_duration_since(now));
                s.worker_sleeping = false;
            }
            let flushing = s.flush_requested > s.flush_done;
            (s.flush_requested, flushing, s.closing, s.deadline)
        };
        // Everything queued now goes out, in batches.
        loop {
            batch.clear();
            {
                let mut s = shared.lock();
                let n = s.queue.len().min(shared.batch);
                batch.extend(s.queue.drain(..n));
                s.in_flight = n as u64;
            }
            if batch.is_empty() {
                break;
            }
            for r in &batch {
                metrics.observe(r);
            }
            let folded = metrics.calls_folded;
            let n = batch.len() as u64;
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let result = if remaining == Some(Duration::ZERO) {
                Err(None)
            } else {
                sender
                    .send_spans(batch.iter().map(|r| &**r), remaining)
                    .map_err(Some)
            };
            let mut s = shared.lock();
            s.in_flight = 0;
            if folded > 0 && s.stats.calls_folded == 0 {
                tracing::warn!(
                    limit = sender.config().cardinality_limit,
                    "OTLP metrics: more attribute sets than the cardinality limit; further ones \
                     are folded into the otel.metric.overflow series"
                );
            }
            s.stats.calls_folded = folded;
            match result {
                Ok(_) => s.stats.spans_exported += n,
                Err(e) => {
                    s.stats.spans_failed += n;
                    if let Some(e) = e {
                        note_error(&mut s, e, &mut errors_logged);
                    }
                }
            }
        }
        next_spans = Instant::now() + delay;
        let readings = std::mem::take(&mut shared.lock().readings);
        for reading in readings {
            metrics.observe_device(reading);
        }
        let draining = closing || flushing;
        if metrics.unsent && (draining || Instant::now() >= next_metrics) {
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if remaining != Some(Duration::ZERO) {
                let result = sender.send_metrics(&mut metrics, now_ns(), remaining);
                let mut s = shared.lock();
                match result {
                    Ok(sent) => s.stats.metric_exports += u64::from(sent),
                    Err(e) => note_error(&mut s, e, &mut errors_logged),
                }
            }
        }
        if Instant::now() >= next_metrics {
            next_metrics = Instant::now() + interval;
        }
        let mut s = shared.lock();
        s.flush_done = s.flush_done.max(flush_target);
        if closing {
            s.finished = true;
            shared.done.notify_all();
            return;
        }
        shared.done.notify_all();
    }
}

/// Counts the failure, keeps it, and logs the first and then every power of two.
fn note_error(s: &mut State, e: ExportError, logged: &mut u64) {
    s.stats.export_errors += 1;
    let n = s.stats.export_errors;
    if n.is_power_of_two() && n > *logged {
        *logged = n;
        tracing::warn!(error = %e, export_errors = n, "OTLP export failed; its records are dropped");
    }
    s.last_error = Some(e);
}
