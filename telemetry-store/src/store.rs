//! [`TelemetryStore`]: the handle callers record through.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use telemetry_core::{
    EventBus, EventType, MAX_TIMESTAMP, MIN_TIMESTAMP, SubscriptionId, TelemetryRecord,
    ValidationError,
};

use crate::builder::{Durability, Location, Retention, StoreBuilder};
use crate::error::{RecordError, StoreError};
use crate::identity::FileWatch;
use crate::import::{ImportProgress, ImportReport, read_openjarvis};
use crate::maintenance::{FileSpace, RetentionPolicy};
use crate::open::open_connection;
use crate::queue::{ControlKind, Queue, Reply};
use crate::stats::{Counters, Health, StoreStats};
use crate::strings::Interner;
use crate::writer::Writer;

/// Prepared statements the writer's connection keeps (rusqlite keeps 16 by default).
const WRITER_STATEMENTS: usize = 64;

/// An append-only SQLite telemetry store with a background writer.
///
/// Cloning is cheap (an `Arc`); all clones share one writer. The store is `Send + Sync`.
/// Dropping the last clone flushes and stops the writer, as [`close`](Self::close) does
/// (a bus subscription made by [`subscribe_to_bus`](Self::subscribe_to_bus) holds a clone).
///
/// The only deletions are [`prune_before`](Self::prune_before) and [`clear`](Self::clear);
/// there is no update or delete of single rows.
#[derive(Clone)]
pub struct TelemetryStore {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Arc<Queue>,
    counters: Arc<Counters>,
    path: Option<PathBuf>,
    /// Whether the file at `path` is still the one opened, for [`TelemetryStore::health`].
    watch: Option<FileWatch>,
    durability: Durability,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for TelemetryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryStore")
            .field("path", &self.inner.path)
            .field("durability", &self.inner.durability)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl TelemetryStore {
    /// Opens (creating if needed) the database at `path` with default options.
    ///
    /// Creates the parent directory and the file (mode 0600 on unix), applies the schema
    /// migrations, and starts the writer. A file that is not SQLite, is corrupt, or carries a
    /// newer schema is refused with a typed error and left untouched.
    pub fn open(path: impl AsRef<Path>) -> Result<TelemetryStore, StoreError> {
        Self::builder(path).open()
    }

    /// Options for the database at `path`; finish with [`StoreBuilder::open`].
    pub fn builder(path: impl AsRef<Path>) -> StoreBuilder {
        StoreBuilder::new(Location::File(path.as_ref().to_path_buf()))
    }

    /// A store in memory, for tests (default options; gone when closed).
    pub fn in_memory() -> Result<TelemetryStore, StoreError> {
        Self::in_memory_builder().open()
    }

    /// Options for a store in memory; finish with [`StoreBuilder::open`].
    pub fn in_memory_builder() -> StoreBuilder {
        StoreBuilder::new(Location::Memory)
    }

    pub(crate) fn start(options: StoreBuilder) -> Result<TelemetryStore, StoreError> {
        let conn = open_connection(&options.location, options.durability, options.busy_timeout)?;
        // The writer's own statements (about 20) and an insert per shape of record it meets (see
        // `rows::InsertSql`): room for all of them, so that none is prepared again per batch.
        conn.set_prepared_statement_cache_capacity(WRITER_STATEMENTS);
        let shown_path = match &options.location {
            Location::File(p) => p.clone(),
            Location::Memory => PathBuf::from(":memory:"),
        };
        let queue = Arc::new(Queue::new(
            options.queue_capacity,
            options.batch_size,
            options.overflow,
            shown_path.clone(),
        ));
        let watch = match &options.location {
            Location::File(p) => Some(FileWatch::new(p)),
            Location::Memory => None,
        };
        let counters = Arc::new(Counters::new(
            options.retention.as_ref().map(Retention::window),
        ));
        counters.writer_running.store(true, Ordering::Release);
        let writer = Writer {
            conn: Some(conn),
            watch: watch.clone(),
            gone: None,
            queue: Arc::clone(&queue),
            counters: Arc::clone(&counters),
            flush_interval: options.flush_interval,
            carry: Vec::new(),
            path: shown_path.clone(),
            retry_budget: options.write_retry_budget,
            failing_since: None,
            minute_threshold: options.minute_rollup_threshold,
            prunes: std::collections::VecDeque::new(),
            next_step: Instant::now(),
            interner: Interner::default(),
            known_rollups: crate::rollups::KnownRollups::default(),
            inserts: crate::rows::Inserts::default(),
            retention: options.retention.map(|policy| RetentionPolicy {
                policy,
                next_pass: Instant::now(),
            }),
        };
        let handle = std::thread::Builder::new()
            .name("telemetry-store-writer".to_owned())
            .spawn(move || writer.run())
            .map_err(|source| StoreError::Io {
                action: "starting the writer thread for",
                path: shown_path,
                source,
            })?;
        Ok(TelemetryStore {
            inner: Arc::new(Inner {
                queue,
                counters,
                path: match options.location {
                    Location::File(p) => Some(p),
                    Location::Memory => None,
                },
                watch,
                durability: options.durability,
                writer: Mutex::new(Some(handle)),
            }),
        })
    }

    /// Validates `record` and queues a copy for the writer.
    ///
    /// With [`Durability::Buffered`] (the default) this returns once the record is queued: no I/O,
    /// no lock held across I/O. With [`Durability::Sync`] it returns after the record's batch is
    /// committed. An invalid record is refused with [`RecordError::Invalid`] naming the field, and
    /// counted in [`StoreStats::rejected`]. Once commits have failed for longer than the
    /// [write retry budget](StoreBuilder::write_retry_budget) (e.g. a full disk), the record is
    /// refused with [`RecordError::WriteFailed`] (and counted in [`StoreStats::dropped`]) rather
    /// than queued, even under [`OverflowPolicy::Block`](crate::OverflowPolicy::Block).
    /// [`RecordError`] converts into [`StoreError`], so `?` works in a function returning either.
    pub fn record(&self, record: &TelemetryRecord) -> Result<(), RecordError> {
        self.check(record)?;
        self.enqueue(Arc::new(record.clone()))
    }

    /// As [`record`](Self::record), without copying the record (e.g. the `Arc` of a bus event).
    pub fn record_arc(&self, record: Arc<TelemetryRecord>) -> Result<(), RecordError> {
        self.check(&record)?;
        self.enqueue(record)
    }

    fn check(&self, record: &TelemetryRecord) -> Result<(), RecordError> {
        record.validate().map_err(|e| {
            self.inner.counters.rejected.fetch_add(1, Ordering::Relaxed);
            RecordError::Invalid(e)
        })
    }

    fn enqueue(&self, record: Arc<TelemetryRecord>) -> Result<(), RecordError> {
        let sync = self.inner.durability == Durability::Sync;
        match self.inner.queue.push_record(record, sync) {
            Ok(None) => Ok(()),
            Ok(Some(ack)) => wait(&ack).map(drop).map_err(|e| {
                let path = self.inner.path.as_deref().unwrap_or(Path::new(":memory:"));
                RecordError::from_reply(e, path)
            }),
            Err(
                e @ (RecordError::QueueFull { .. }
                | RecordError::WriteFailed { .. }
                | RecordError::FileGone { .. }),
            ) => {
                self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Records every [`TelemetryRecord`](telemetry_core::Event::TelemetryRecord) event published
    /// on `bus` (through [`record_arc`](Self::record_arc), so the event's record is not copied).
    ///
    /// Errors (invalid record, full queue, closed store) never panic inside the bus: they are
    /// counted in [`StoreStats::bus_errors`] and reported through `tracing` (the first and then
    /// every power of two). The subscription holds a clone of the store; remove it with
    /// [`EventBus::unsubscribe`].
    pub fn subscribe_to_bus(&self, bus: &EventBus) -> SubscriptionId {
        let store = self.clone();
        bus.subscribe(EventType::TelemetryRecord, move |event| {
            if let Some(record) = event.as_record()
                && let Err(e) = store.record_arc(Arc::clone(record))
            {
                let n = store.inner.counters.bus_errors.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(error = %e, bus_errors = n, "telemetry store could not record a bus event");
                }
            }
        })
    }

    /// Returns once every record accepted before this call is committed.
    ///
    /// If the writer cannot commit (disk full, permissions, locked), it retries a few times
    /// with backoff and this returns [`StoreError::WriteFailed`] naming the file and the last
    /// error; the records stay queued and are retried in the background. Once the database file
    /// was deleted or replaced it returns [`StoreError::FileGone`] (nothing is retried). A
    /// record that cannot be committed for a reason of its own is refused alone (see
    /// [`StoreStats::rejected`]) and does not make `flush` fail.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.control(ControlKind::Flush).map(drop)
    }

    /// Flushes, then stops the writer. Idempotent: later calls return `Ok(())`; `record` and the
    /// other operations then return [`StoreError::Closed`]. Dropping the last handle does the
    /// same.
    ///
    /// If the writer still cannot commit after its retries, the records it holds are counted as
    /// [lost](StoreStats::lost) (and dropped) and the error is returned; a store whose file was
    /// deleted or replaced returns [`StoreError::FileGone`]. Read [`stats`](Self::stats) after
    /// `close` for the final counts: nothing is pending then.
    pub fn close(&self) -> Result<(), StoreError> {
        let mut writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(handle) = writer.take() else {
            return Ok(());
        };
        let result = match self.inner.queue.push_control(ControlKind::Stop) {
            Ok(reply) => wait(&reply).map(drop),
            Err(_) => Ok(()),
        };
        if handle.join().is_err() {
            tracing::error!("telemetry store writer thread panicked");
        }
        self.inner
            .counters
            .writer_running
            .store(false, Ordering::Release);
        result
    }

    /// Deletes the rows with `timestamp < timestamp`, after everything queued before this call is
    /// committed; returns how many rows went. One of the two deletions (with [`clear`](Self::clear)).
    ///
    /// The writer deletes in steps (the oldest whole minutes, a few thousand rows per
    /// transaction) between its batches, so records keep being committed meanwhile, then hands
    /// the freed pages back to the file system in steps of 1 MiB (on files created by this
    /// crate; an older file keeps them for reuse until [`compact`](Self::compact)ed), and
    /// returns when all is done. Rows recorded meanwhile with a timestamp before `timestamp`
    /// go too.
    ///
    /// `telemetry_rollup` stays exactly the rollup of the remaining rows after every step:
    /// summary rows of buckets wholly before the step's cut are deleted, and those of the
    /// buckets containing it are recomputed, at every level, in the step's transaction. A
    /// timestamp beyond the range records can have (2000–2100) prunes everything or nothing.
    pub fn prune_before(&self, timestamp: f64) -> Result<u64, StoreError> {
        if !timestamp.is_finite() {
            return Err(StoreError::Invalid(ValidationError::NotFinite {
                field: "timestamp",
                value: timestamp,
            }));
        }
        // Rows lie within MIN_TIMESTAMP..=MAX_TIMESTAMP (validation), so clamping changes
        // nothing about which rows go, and keeps every bucket computed from it in range.
        let timestamp = timestamp.clamp(MIN_TIMESTAMP, MAX_TIMESTAMP + 1.0);
        self.control(ControlKind::Prune(timestamp))
    }

    /// Deletes every row and every summary row, after everything queued before this call is
    /// committed (in one transaction), then hands the freed pages back as
    /// [`prune_before`](Self::prune_before) does; returns how many rows went. One of the two
    /// deletions (with [`prune_before`](Self::prune_before)).
    pub fn clear(&self) -> Result<u64, StoreError> {
        self.control(ControlKind::Clear)
    }

    /// Rewrites the whole file (SQLite `VACUUM`) so that later prunes hand the space they free
    /// back to the file system: needed once for a file created before this crate made every
    /// new file so (`auto_vacuum = INCREMENTAL`); on a converted file it only packs the pages.
    /// Returns the file's size afterwards, in bytes.
    ///
    /// It holds the write lock for the whole rewrite: records of this store wait in its queue,
    /// and writers in other processes wait and then drop or fail (run it while nothing else
    /// records). It needs free disk of about twice [`FileSpace::used_bytes`]: once for SQLite's
    /// temporary copy (in `SQLITE_TMPDIR`, `TMPDIR` or `/var/tmp`), once for the write-ahead log
    /// beside the file; see [`file_space`](Self::file_space). Every row and summary row is kept.
    ///
    /// Before the rewrite, the rows' repeated texts are stored once (one transaction), as the
    /// writer stores those of new rows since schema V5: a text of 4 bytes or more that two
    /// cells of a column hold, or that is stored once already, goes to `telemetry_strings` and
    /// its cells take its id. Rows written before V5 (which hold every text) shrink to what a
    /// V5 writer writes, and so does the first row of each text since (which the writer keeps
    /// with its text); every row reads back exactly as before.
    pub fn compact(&self) -> Result<u64, StoreError> {
        self.control(ControlKind::Compact)
    }

    /// How the database file at `path` uses its pages (read-only; nothing is created).
    pub fn file_space(path: impl AsRef<Path>) -> Result<FileSpace, StoreError> {
        crate::open::read_file_space(path.as_ref())
    }

    /// Recomputes every `telemetry_rollup` row, at every level, from the rows of `telemetry`, in
    /// one transaction, after everything queued before this call is committed; returns how many
    /// rows were read. For a database whose rows were changed behind the store's back (an
    /// external `DELETE` or `INSERT`), which `telemetry check` reports as rollup drift: the
    /// summaries then agree with the rows again. Readers see either the old or the new summaries,
    /// never a mix.
    pub fn rebuild_rollups(&self) -> Result<u64, StoreError> {
        self.control(ControlKind::RebuildRollups)
    }

    /// Appends the rows of an OpenJarvis `telemetry.db` (table `telemetry` as its `store.py`
    /// creates it; older files lack some columns, which then take the record defaults).
    ///
    /// Mapping: the peer stores `0.0` for "unknown" in `ttft`, the energy, power and GPU fields,
    /// throughput and the prefill/decode latencies; those become `None`. `total_tokens` is set to
    /// `prompt_tokens + completion_tokens` when it disagrees. Nothing else is changed: rows that
    /// still fail validation are listed in [`ImportReport::rejected`] with the reason, not
    /// imported. Idempotent: each row's `import_key` is
    /// `openjarvis:{id}:{timestamp bits}:{model_id}`, so importing the same file (or a copy)
    /// again appends nothing ([`ImportReport::skipped_duplicates`]). Rows go through the writer
    /// in transactions of 5 000, after everything queued before, with their summaries.
    ///
    /// [`import_openjarvis_with_progress`](Self::import_openjarvis_with_progress) does the same
    /// and reports how far it has got.
    pub fn import_openjarvis(&self, path: impl AsRef<Path>) -> Result<ImportReport, StoreError> {
        self.import_openjarvis_with_progress(path, |_| {})
    }

    /// [`import_openjarvis`](Self::import_openjarvis), calling `progress` in the caller's thread
    /// after every 5 000 rows read (once they are committed) and once at the end, for a
    /// progress bar.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), telemetry_store::StoreError> {
    /// let store = telemetry_store::TelemetryStore::open("telemetry.db")?;
    /// let report = store.import_openjarvis_with_progress("openjarvis.db", |p| {
    ///     eprint!("\r{} / {} rows", p.read, p.total);
    /// })?;
    /// eprintln!("\nimported {}", report.imported);
    /// # Ok(()) }
    /// ```
    pub fn import_openjarvis_with_progress(
        &self,
        path: impl AsRef<Path>,
        mut progress: impl FnMut(ImportProgress),
    ) -> Result<ImportReport, StoreError> {
        let path = path.as_ref();
        let mut report = ImportReport::default();
        let mut imported = 0;
        let mut offered = 0;
        read_openjarvis(path, &mut report, |rows, read, total| {
            if !rows.is_empty() {
                offered += rows.len() as u64;
                imported += self.control(ControlKind::Import(rows))?;
            }
            progress(ImportProgress {
                read,
                total,
                imported,
            });
            Ok(())
        })?;
        report.imported = imported;
        report.skipped_duplicates = offered - imported;
        Ok(report)
    }

    /// Counters so far (this process only).
    pub fn stats(&self) -> StoreStats {
        self.inner.counters.snapshot(self.inner.queue.len())
    }

    /// Whether the writer is committing, failing (with the last error), stopped for good (its
    /// database file was deleted or replaced), or closed.
    ///
    /// The file is compared with the one opened here too (one `stat`), so a file deleted while
    /// nothing is being recorded shows as [`Health::Stopped`] at once; the writer stops at its
    /// next write. A store that stopped stays `Stopped` after it is closed.
    pub fn health(&self) -> Health {
        if let Some(reason) = self.inner.counters.stopped() {
            return Health::Stopped { reason };
        }
        if self.inner.queue.is_closed() {
            return Health::Closed;
        }
        if let Some((path, change)) = self
            .inner
            .watch
            .as_ref()
            .zip(self.inner.path.as_ref())
            .and_then(|(w, p)| Some((p, w.changed()?)))
        {
            let reason = StoreError::FileGone {
                path: path.clone(),
                what: change.describe(),
            };
            return Health::Stopped {
                reason: reason.to_string(),
            };
        }
        self.inner.counters.health()
    }

    /// The database file; `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    fn control(&self, kind: ControlKind) -> Result<u64, StoreError> {
        let reply = self.inner.queue.push_control(kind)?;
        wait(&reply)
    }
}

// Here rather than next to the builder's options, so that the builder does not depend on the
// store it opens (the store depends on the builder).
impl StoreBuilder {
    /// Opens (creating if needed) the database, applies migrations and starts the writer.
    pub fn open(self) -> Result<TelemetryStore, StoreError> {
        TelemetryStore::start(self)
    }
}

/// Waits for the writer's reply; a vanished writer means the store is closed.
fn wait(reply: &Receiver<Reply>) -> Reply {
    reply.recv().unwrap_or(Err(StoreError::Closed))
}

impl Drop for Inner {
    fn drop(&mut self) {
        let handle = self
            .writer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            if let Ok(reply) = self.queue.push_control(ControlKind::Stop)
                && let Err(e) = wait(&reply)
            {
                tracing::error!(error = %e, "telemetry store dropped with records it could not write");
            }
            let _ = handle.join();
        }
    }
}
