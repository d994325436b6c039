//! [`StoreBuilder`] and its options: batching, queueing, overflow and durability.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The clock retention measures its window against: unix seconds.
pub(crate) type Clock = Arc<dyn Fn() -> f64 + Send + Sync>;

/// The wall clock.
pub(crate) fn system_clock() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub use telemetry_core::LONGEST_WAIT;

/// The longest [`StoreBuilder::busy_timeout`]: `i32::MAX` milliseconds, what SQLite can take.
pub const LONGEST_BUSY_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

/// Default records per transaction.
pub const DEFAULT_BATCH_SIZE: usize = 10_000;
/// Default longest time a record waits in the queue before its batch is committed.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// Default queue capacity, records.
pub const DEFAULT_QUEUE_CAPACITY: usize = 100_000;
/// Default SQLite busy timeout: how long one statement waits for another process's lock.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Default write retry budget: how long commits may keep failing before `record` refuses.
pub const DEFAULT_WRITE_RETRY_BUDGET: Duration = Duration::from_secs(3);
/// Default calls an hour must reach before the store keeps minute summaries for it (see
/// [`StoreBuilder::minute_rollup_threshold`]).
///
/// A query reads the records of a sparse hour at its range's edges from their raw rows, so
/// this bounds that work to under 1 024 rows per edge hour, while live traffic (thousands of
/// calls an hour and more) keeps its minute summaries, and a backfill of old, spread-out records
/// (a few per minute at most) costs no minute row per record.
pub const DEFAULT_MINUTE_ROLLUP_THRESHOLD: u64 = 1_024;

/// Default time between two passes of a [`Retention`] window.
pub const DEFAULT_RETENTION_CHECK: Duration = Duration::from_secs(60);

/// A retention window: the store deletes the records older than `window` in the background,
/// with their summaries, and hands the space back to the file system.
///
/// A pass runs when the store opens and then every [`check_every`](Self::check_every); it
/// deletes the records before the start of the minute `window` ago, in steps of a few thousand
/// rows that the writer runs between its batches (so recording never waits for more than one
/// step; [`StoreStats::longest_prune_step`](crate::StoreStats::longest_prune_step) shows the
/// longest), then hands the freed pages back in steps of 1 MiB.
///
/// The summaries (`telemetry_rollup`) follow the same window as the rows: they are an index of
/// the rows (queries mix them with raw rows at a range's edges, and `telemetry check` compares
/// them), so a summary outliving its rows would make `stats` disagree with `export`.
///
/// ```
/// use std::time::Duration;
/// use telemetry_store::{Retention, TelemetryStore};
///
/// let dir = std::env::temp_dir().join(format!("telemetry-store-retention-{}", std::process::id()));
/// let store = TelemetryStore::builder(dir.join("telemetry.db"))
///     .retention(Retention::new(Duration::from_secs(30 * 86_400)))
///     .open()?;
/// assert_eq!(store.stats().retention.map(|r| r.window), Some(Duration::from_secs(30 * 86_400)));
/// store.close()?;
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), telemetry_store::StoreError>(())
/// ```
#[derive(Clone)]
pub struct Retention {
    pub(crate) window: Duration,
    pub(crate) check_every: Duration,
    pub(crate) clock: Clock,
}

impl std::fmt::Debug for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retention")
            .field("window", &self.window)
            .field("check_every", &self.check_every)
            .finish_non_exhaustive()
    }
}

impl Retention {
    /// Keeps the records of the last `window` (measured against the wall clock).
    pub fn new(window: Duration) -> Self {
        Retention {
            window,
            check_every: DEFAULT_RETENTION_CHECK,
            clock: Arc::new(system_clock),
        }
    }

    /// Time between two passes (default [`DEFAULT_RETENTION_CHECK`]; at least 1 ms, at most
    /// [`LONGEST_WAIT`]).
    pub fn check_every(mut self, interval: Duration) -> Self {
        self.check_every = interval.clamp(Duration::from_millis(1), LONGEST_WAIT);
        self
    }

    /// The clock the window is measured against, in unix seconds (default: the system's wall
    /// clock): for simulations and tests that replay months in minutes.
    pub fn clock(mut self, now: impl Fn() -> f64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(now);
        self
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }
}

/// What [`record`](crate::TelemetryStore::record) does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// Wait until the writer makes room: nothing is lost, the caller slows to the disk's pace.
    #[default]
    Block,
    /// Drop the new record, count it in [`StoreStats::dropped`](crate::StoreStats::dropped) and
    /// return [`StoreError::QueueFull`](crate::StoreError::QueueFull): the caller never waits.
    DropNewest,
}

/// When [`record`](crate::TelemetryStore::record) returns, relative to the commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `record` returns once the record is queued; the writer commits batches (group commit)
    /// at least every flush interval; SQLite `synchronous=NORMAL` (a power cut may lose the last
    /// commits, a process crash loses nothing committed). Call
    /// [`flush`](crate::TelemetryStore::flush) for a durability point.
    #[default]
    Buffered,
    /// `record` returns only after its record is committed; concurrent callers share commits;
    /// SQLite `synchronous=FULL`.
    Sync,
}

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    File(PathBuf),
    Memory,
}

/// Options of a [`TelemetryStore`](crate::TelemetryStore); made by [`TelemetryStore::builder`](crate::TelemetryStore::builder).
///
/// ```
/// use std::time::Duration;
/// use telemetry_store::{Durability, OverflowPolicy, TelemetryStore};
///
/// let dir = std::env::temp_dir().join(format!("telemetry-store-doc-{}", std::process::id()));
/// let store = TelemetryStore::builder(dir.join("telemetry.db"))
///     .batch_size(5_000)
///     .flush_interval(Duration::from_millis(20))
///     .queue_capacity(50_000)
///     .overflow(OverflowPolicy::DropNewest)
///     .durability(Durability::Buffered)
///     .open()?;
/// store.close()?;
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), telemetry_store::StoreError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct StoreBuilder {
    pub(crate) location: Location,
    pub(crate) batch_size: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) queue_capacity: usize,
    pub(crate) overflow: OverflowPolicy,
    pub(crate) durability: Durability,
    pub(crate) busy_timeout: Duration,
    pub(crate) write_retry_budget: Duration,
    pub(crate) minute_rollup_threshold: u64,
    pub(crate) retention: Option<Retention>,
}

impl StoreBuilder {
    pub(crate) fn new(location: Location) -> Self {
        StoreBuilder {
            location,
            batch_size: DEFAULT_BATCH_SIZE,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            overflow: OverflowPolicy::Block,
            durability: Durability::Buffered,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            write_retry_budget: DEFAULT_WRITE_RETRY_BUDGET,
            minute_rollup_threshold: DEFAULT_MINUTE_ROLLUP_THRESHOLD,
            retention: None,
        }
    }

    /// Records per transaction, at most (default [`DEFAULT_BATCH_SIZE`]; at least 1).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Longest time a queued record waits before its batch is committed (default
    /// [`DEFAULT_FLUSH_INTERVAL`]; a longer one than [`LONGEST_WAIT`] is taken as that).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval.min(LONGEST_WAIT);
        self
    }

    /// Records the queue holds before the overflow policy applies (default
    /// [`DEFAULT_QUEUE_CAPACITY`]; at least 1). Memory use is bounded by about
    /// `queue_capacity + 2 × batch_size` records (queued, being committed, waiting to be freed).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// What happens when the queue is full (default [`OverflowPolicy::Block`]).
    pub fn overflow(mut self, policy: OverflowPolicy) -> Self {
        self.overflow = policy;
        self
    }

    /// When `record` returns (default [`Durability::Buffered`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How long one SQLite statement waits for another process's lock before the writer's own
    /// retry with backoff takes over (default [`DEFAULT_BUSY_TIMEOUT`]; SQLite counts it in
    /// milliseconds in an `int`, so at most [`LONGEST_BUSY_TIMEOUT`], about 24 days).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout.min(LONGEST_BUSY_TIMEOUT);
        self
    }

    /// How long commits may keep failing for I/O reasons (disk full, file gone, locked by another
    /// process) before the store stops accepting records (default
    /// [`DEFAULT_WRITE_RETRY_BUDGET`]). Past it, `record` returns [`StoreError::WriteFailed`](crate::StoreError::WriteFailed) at
    /// once instead of queueing (under [`OverflowPolicy::Block`], producers waiting for room are
    /// woken with that error), so a dead disk never blocks callers for ever. The writer keeps
    /// retrying what it holds, and accepts records again after its next successful commit.
    pub fn write_retry_budget(mut self, budget: Duration) -> Self {
        self.write_retry_budget = budget;
        self
    }

    /// Calls an hour must reach (over all models, engines and agents) before the store keeps
    /// minute summaries for it (default [`DEFAULT_MINUTE_ROLLUP_THRESHOLD`]; 0 or 1 keeps them
    /// for every hour, as before this option existed).
    ///
    /// Day and hour summaries are written for every record. Minute summaries cost a row per
    /// record when records are far apart (a backfill of old data); so an hour gets them only
    /// once its calls reach the threshold, built then from the hour's rows, and kept up to date
    /// from there on. An hour has minute rows for all of its records or none; queries read a
    /// sparse hour's records from the raw rows where they need minute precision. The setting can
    /// change between runs on one file: every state it leaves is valid.
    pub fn minute_rollup_threshold(mut self, calls: u64) -> Self {
        self.minute_rollup_threshold = calls;
        self
    }

    /// Deletes records older than a window in the background (default: none, everything is
    /// kept); see [`Retention`].
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = Some(retention);
        self
    }
}
