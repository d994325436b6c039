//! [`StoreStats`] and [`Health`]: what the store has done and whether its writer is well.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Counters of a store since it was opened (this process only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Rows committed (recorded and imported).
    pub written: u64,
    /// Records dropped: refused by a full queue under
    /// [`OverflowPolicy::DropNewest`](crate::OverflowPolicy::DropNewest), refused by `record`
    /// while the writer had been failing for longer than its
    /// [retry budget](crate::StoreBuilder::write_retry_budget) or after its database file was
    /// deleted or replaced, and the [`lost`](Self::lost) ones.
    pub dropped: u64,
    /// The part of [`dropped`](Self::dropped) that had been accepted (queued) and was then
    /// given up unwritten: records still pending when a store whose writer could not commit
    /// (a full disk) was closed, and those the writer held when it found its database file
    /// deleted or replaced. After [`close`](crate::TelemetryStore::close), every accepted record
    /// is `written`, `rejected` or `lost`; none is left `pending`.
    pub lost: u64,
    /// Records refused: by validation in `record`, or by the writer when a record that passed
    /// validation still could not be committed (a batch failing for a reason other than I/O is
    /// split until the record is isolated; the others are written). Nothing of them is written.
    pub rejected: u64,
    /// Why the writer last refused a record on its own (`rejected` counts those too), if ever.
    pub last_rejection: Option<String>,
    /// Records accepted but not yet committed (queued or in a batch being retried).
    pub pending: u64,
    /// Batch commits that failed (each is retried; a batch failing five times counts five).
    pub failed_batches: u64,
    /// Records from the event bus that could not be recorded (invalid, dropped, store closed).
    pub bus_errors: u64,
    /// The last commit error, if any commit failed since the store was opened.
    pub last_error: Option<String>,
    /// Rows deleted by [`prune_before`](crate::TelemetryStore::prune_before),
    /// [`clear`](crate::TelemetryStore::clear) and the retention window.
    pub pruned: u64,
    /// Bytes the database file handed back to the file system after deletions.
    pub reclaimed_bytes: u64,
    /// The longest single step of a prune (one transaction deleting old rows or handing pages
    /// back): the longest a batch of new records waited for one.
    pub longest_prune_step: Duration,
    /// What the retention window did, when the store has one.
    pub retention: Option<RetentionStats>,
}

/// What the [retention window](crate::StoreBuilder::retention) did since the store was opened.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetentionStats {
    /// The window: records older than this are deleted.
    pub window: Duration,
    /// Passes completed (one is started at open, then one every
    /// [`check_every`](crate::Retention::check_every)).
    pub passes: u64,
    /// The cutoff of the last completed pass (unix seconds): no record before it is left.
    pub last_cutoff: Option<i64>,
    /// Why the last pass failed, if one did (it is tried again at the next).
    pub last_error: Option<String>,
}

/// Whether the writer is committing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// The last commit (if any) succeeded.
    Healthy,
    /// The last `consecutive_failures` commits failed; records are kept and retried.
    Failing {
        /// Failed attempts in a row.
        consecutive_failures: u32,
        /// The last error.
        last_error: String,
    },
    /// The writer stopped for good because its database file was deleted or replaced (see
    /// [`StoreError::FileGone`](crate::StoreError::FileGone)): nothing more is written, records
    /// are dropped and counted. Open the store again to use the file now at the path.
    Stopped {
        /// What happened, naming the file.
        reason: String,
    },
    /// The store is closed; nothing more is written.
    Closed,
}

impl Health {
    /// A short name of the state, for machine-readable reports: `healthy`, `failing`,
    /// `stopped` or `closed`.
    pub fn state(&self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Failing { .. } => "failing",
            Health::Stopped { .. } => "stopped",
            Health::Closed => "closed",
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Health::Healthy => f.write_str("healthy"),
            Health::Failing {
                consecutive_failures,
                last_error,
            } => write!(
                f,
                "failing ({consecutive_failures} commits in a row failed; last error: {last_error})"
            ),
            Health::Stopped { reason } => write!(f, "stopped: {reason}"),
            Health::Closed => f.write_str("closed"),
        }
    }
}

/// The counters, shared by the handles and the writer.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) written: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) lost: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) failed_batches: AtomicU64,
    pub(crate) bus_errors: AtomicU64,
    /// Records taken by the writer and not yet committed.
    pub(crate) in_flight: AtomicU64,
    pub(crate) consecutive_failures: AtomicU32,
    pub(crate) writer_running: AtomicBool,
    pub(crate) last_error: Mutex<Option<String>>,
    pub(crate) last_rejection: Mutex<Option<String>>,
    /// Why the writer stopped for good (its file deleted or replaced), once it has.
    pub(crate) stopped: Mutex<Option<String>>,
    pub(crate) pruned: AtomicU64,
    pub(crate) reclaimed_bytes: AtomicU64,
    pub(crate) longest_step_ns: AtomicU64,
    /// The retention window in nanoseconds, or `u64::MAX` without one.
    pub(crate) retention_window_ns: AtomicU64,
    pub(crate) retention_passes: AtomicU64,
    /// `i64::MIN` until a pass completes.
    pub(crate) retention_cutoff: AtomicI64,
    pub(crate) retention_error: Mutex<Option<String>>,
}

impl Counters {
    pub(crate) fn set_last_error(&self, message: String) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(message);
    }

    pub(crate) fn set_last_rejection(&self, message: String) {
        *self
            .last_rejection
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(message);
    }

    pub(crate) fn set_stopped(&self, reason: String) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
    }

    pub(crate) fn stopped(&self) -> Option<String> {
        self.stopped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A new set of counters, for a store with the retention `window` (if any).
    pub(crate) fn new(window: Option<Duration>) -> Self {
        let window_ns = window.map_or(u64::MAX, |w| {
            u64::try_from(w.as_nanos()).unwrap_or(u64::MAX - 1)
        });
        Counters {
            retention_window_ns: AtomicU64::new(window_ns),
            retention_cutoff: AtomicI64::new(i64::MIN),
            ..Counters::default()
        }
    }

    pub(crate) fn note_step(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.longest_step_ns.fetch_max(ns, Ordering::Relaxed);
    }

    pub(crate) fn note_retention_pass(&self, cutoff: i64) {
        self.retention_cutoff.store(cutoff, Ordering::Relaxed);
        self.retention_passes.fetch_add(1, Ordering::Relaxed);
        *self
            .retention_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    pub(crate) fn set_retention_error(&self, message: String) {
        *self
            .retention_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(message);
    }

    fn retention(&self) -> Option<RetentionStats> {
        let window = self.retention_window_ns.load(Ordering::Relaxed);
        if window == u64::MAX {
            return None;
        }
        let cutoff = self.retention_cutoff.load(Ordering::Relaxed);
        Some(RetentionStats {
            window: Duration::from_nanos(window),
            passes: self.retention_passes.load(Ordering::Relaxed),
            last_cutoff: (cutoff != i64::MIN).then_some(cutoff),
            last_error: self
                .retention_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        })
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn snapshot(&self, queued: usize) -> StoreStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StoreStats {
            written: load(&self.written),
            dropped: load(&self.dropped),
            lost: load(&self.lost),
            rejected: load(&self.rejected),
            pending: queued as u64 + load(&self.in_flight),
            failed_batches: load(&self.failed_batches),
            bus_errors: load(&self.bus_errors),
            last_error: self.last_error(),
            last_rejection: self
                .last_rejection
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            pruned: load(&self.pruned),
            reclaimed_bytes: load(&self.reclaimed_bytes),
            longest_prune_step: Duration::from_nanos(load(&self.longest_step_ns)),
            retention: self.retention(),
        }
    }

    pub(crate) fn health(&self) -> Health {
        if let Some(reason) = self.stopped() {
            return Health::Stopped { reason };
        }
        if !self.writer_running.load(Ordering::Acquire) {
            return Health::Closed;
        }
        match self.consecutive_failures.load(Ordering::Acquire) {
            0 => Health::Healthy,
            n => Health::Failing {
                consecutive_failures: n,
                last_error: self.last_error().unwrap_or_default(),
            },
        }
    }
}
