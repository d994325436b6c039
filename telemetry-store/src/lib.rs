//! # telemetry-store
//!
//! The append-only SQLite store of the inference-telemetry workspace.
//!
//! [`TelemetryStore::record`] validates a [`TelemetryRecord`](telemetry_core::TelemetryRecord)
//! and pushes it into a bounded queue; that is all the caller pays. A background writer thread
//! drains the queue in batches (size- and time-bounded) and commits each batch in one `BEGIN
//! IMMEDIATE` transaction with a cached prepared insert, updating the `telemetry_rollup` summary
//! rows (per hour and day, and per minute for the hours that reach
//! [`StoreBuilder::minute_rollup_threshold`] calls) in the same transaction. [`TelemetryStore::flush`] returns once
//! everything recorded before it is committed.
//!
//! - **Schema**: [`telemetry_core::schema`], applied with refinery migrations; the version is
//!   recorded in `refinery_schema_history`. Rows live in table `telemetry`, one column per record
//!   field named as the field, so plain `sqlite3` can query it. A file that is not SQLite, is
//!   corrupt, or has a newer schema is refused with a typed [`StoreError`] and left untouched.
//! - **Concurrency**: WAL journal, a busy timeout and retries with backoff, so several processes
//!   can write one file; readers (`telemetry-agg`) never block the writer.
//! - **Durability**: [`Durability::Buffered`] (group commit, `synchronous=NORMAL`) or
//!   [`Durability::Sync`] (`record` returns after its commit, `synchronous=FULL`).
//! - **Overflow**: [`OverflowPolicy::Block`] loses nothing; [`OverflowPolicy::DropNewest`]
//!   never waits and counts what it drops. Memory is bounded by the queue capacity plus two batches.
//! - **Failures**: an I/O error in the writer never panics; the batch is kept and retried with
//!   backoff, `flush` reports [`StoreError::WriteFailed`], and [`TelemetryStore::stats`] /
//!   [`TelemetryStore::health`] expose the counts and the last error. Records still pending
//!   when such a store is closed (a full disk at shutdown) are counted in [`StoreStats::lost`]:
//!   after `close` every accepted record is written, rejected or lost.
//! - **The file itself**: before and after each write transaction the writer checks that the
//!   file at the path is still the one it opened (device and inode). Once it was deleted or
//!   another file was moved over it, the writer stops for good rather than write into a file
//!   nobody reads: [`TelemetryStore::health`] says [`Health::Stopped`] with the reason, `flush`,
//!   `close` and `record` return [`StoreError::FileGone`], and what the writer held or is given
//!   later is counted in [`StoreStats::lost`] / [`StoreStats::dropped`], never as written. It
//!   does not create a new file at the path by itself (see "A file that goes" below).
//! - **Deletion** is explicit and only through [`TelemetryStore::prune_before`] and
//!   [`TelemetryStore::clear`]; summaries stay exactly those of the remaining rows.
//! - **Import**: [`TelemetryStore::import_openjarvis`] appends an OpenJarvis `telemetry.db`,
//!   idempotently (the peer's `0.0` for "unknown" becomes `None`; see [`ImportReport`]).
//!
//! ```
//! use telemetry_core::{Event, EventBus, TelemetryRecord};
//! use telemetry_store::TelemetryStore;
//!
//! let dir = std::env::temp_dir().join(format!("telemetry-store-guide-{}", std::process::id()));
//! let store = TelemetryStore::open(dir.join("telemetry.db"))?;
//!
//! let record = TelemetryRecord::builder("qwen2.5-7b", 1_764_300_000.0)
//!     .engine("vllm")
//!     .tokens(200, 64)
//!     .latency_seconds(1.9)
//!     .build();
//! store.record(&record)?;
//!
//! // Or let the store listen to the bus that instrumented engines publish on.
//! let bus = EventBus::new();
//! store.subscribe_to_bus(&bus);
//! bus.publish(Event::from(record));
//!
//! store.flush()?;
//! assert_eq!(store.stats().written, 2);
//! assert_eq!(store.prune_before(2_000_000_000.0)?, 2);
//! store.close()?;
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), telemetry_store::StoreError>(())
//! ```
//!
//! ## A file that goes
//!
//! SQLite writes through its open file descriptor, so a database deleted (`rm`) or replaced
//! (`mv` over it) under a running store goes on taking records that nobody will read, and its
//! `-wal`/`-shm` files, found by the path's name, make readers of a file moved over the path see
//! the old database's pages instead of its own. The store notices at its next write (or at once
//! in `health`), stops, empties its write-ahead log into the old file so that the path reads as
//! what is there now, and reports.
//!
//! It stops rather than create a fresh database at the path and go on: a deletion may be
//! deliberate (disk space, a reset) or a mistake, and a replaced file may be a restored backup
//! or another application's database; writing on silently would hide the loss behind a file
//! that looks complete, and writing into whatever was moved there mixes data the operator did
//! not ask to mix. Stopping keeps the loss visible (health, errors, the counts, a non-zero exit
//! of the CLI) and the fix is one restart, which opens or creates the file then at the path.
//!
//! ## Feature flags
//!
//! The crate always needs SQLite (bundled through `rusqlite`) and refinery.
//!
//! - `testing`: [`testing`], test support: [`testing::Tmpfs`], a small real disk that fills up
//!   (mounting it needs root), for tests of a full disk here and in the programs built on the
//!   store.
#![deny(missing_docs)]

mod builder;
mod error;
mod identity;
mod import;
mod maintenance;
mod open;
mod queue;
mod rollups;
mod rows;
mod stats;
mod store;
mod strings;
mod writer;

#[cfg(feature = "testing")]
pub mod testing;

pub use builder::{
    DEFAULT_BATCH_SIZE, DEFAULT_BUSY_TIMEOUT, DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MINUTE_ROLLUP_THRESHOLD, DEFAULT_QUEUE_CAPACITY, DEFAULT_RETENTION_CHECK,
    DEFAULT_WRITE_RETRY_BUDGET, Durability, LONGEST_BUSY_TIMEOUT, LONGEST_WAIT, OverflowPolicy,
    Retention, StoreBuilder,
};
pub use error::{RecordError, SqliteError, StoreError};
pub use import::{ImportProgress, ImportReport};
pub use maintenance::FileSpace;
pub use stats::{Health, RetentionStats, StoreStats};
pub use store::TelemetryStore;
