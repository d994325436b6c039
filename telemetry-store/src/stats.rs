//! [`StoreStats`] and [`Health`]: what the store has done and whether its writer is well.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

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
