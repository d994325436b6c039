//! The writer thread: owns the connection, commits batches (rows and rollups in one
//! transaction), runs control messages in queue order, and survives I/O errors.
//!
//! A batch failing for an I/O reason (disk full, file gone, locked) is kept and retried with
//! backoff (10 ms doubling to 1 s) while new records wait in the queue, so memory stays bounded by
//! the queue capacity plus two batches. A control message (`flush`, `prune_before`, ...) that
//! arrives while commits fail gets a few more attempts and then an error reply, and once the
//! failure has lasted past the retry budget the queue refuses new records with that error, so
//! callers never wait for ever.
//!
//! A batch failing for any other reason (a record the database cannot take although it passed
//! validation) is split in halves until the offending records are isolated: those are refused
//! and counted, every other record is committed, and the writer moves on.
//!
//! Before and after every write transaction the writer checks that the file at the path is still
//! the one it opened ([`FileWatch`]). Once it is not (deleted, or another file moved over it),
//! the writer stops for good: what it holds and what is queued is counted as lost, the queue
//! refuses records from then on, every control gets [`StoreError::FileGone`], and the
//! connection is closed, so that the `-wal`/`-shm` files at the path, which belong to the old
//! file, are checkpointed into it and removed rather than read as part of whatever is at the
//! path now. A batch whose after-check fails is lost, not written: it may have gone to the old
//! file.
//!
//! The writer hands its CPU back every [`YIELD_EVERY_ROWS`] rows of a batch ([`Yielder`]). A
//! batch of a few hundred rows is a millisecond of work; Linux puts a woken thread (the caller
//! this store records for, or the server it talks to) on whichever CPU looks best, possibly
//! behind the writer, and a thread woken there waits for the writer's time slice to end. Yielding
//! every few dozen rows bounds that wait to tens of microseconds: on a 2-core machine it took the
//! proxy's one-connection p99 from about 1.1 ms to about 0.35 ms (nginx's: about 0.25 ms), see
//! `docs/benchmarks.md`. A yield with nothing else to run costs one system call.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::{CachedStatement, Connection, TransactionBehavior};
use telemetry_core::{FIELD_COUNT, FieldValue, TelemetryRecord};

use crate::error::{StoreError, is_io};
use crate::identity::{FileChange, FileWatch};
use crate::import::ImportRow;
use crate::maintenance::{Origin, Pruning, RetentionPolicy, retention_cutoff};
use crate::queue::{Control, ControlKind, Queue};
use crate::rollups::{BatchRollups, KnownRollups, MinuteDetail, hour_of, merge_into, rebuild_all};
use crate::rows::{
    BindState, IMPORT_KEY_PARAM, IMPORT_SQL, Inserts, ROWS_PER_INSERT, Shape, bind_record,
};
use crate::stats::Counters;
use crate::strings::{Interner, store_texts_once};

/// Rows a batch inserts between two yields of the writer's CPU (about 80 µs of work).
pub(crate) const YIELD_EVERY_ROWS: usize = 32;

/// Counts the rows of a batch and yields the writer's CPU every [`YIELD_EVERY_ROWS`] of them, so
/// that a thread woken onto the writer's CPU does not wait for a whole batch (see the module
/// documentation).
#[derive(Debug, Default)]
struct Yielder {
    rows: usize,
}

impl Yielder {
    /// Counts `n` more rows written; whether the writer should yield now.
    fn count(&mut self, n: usize) -> bool {
        self.rows += n;
        if self.rows >= YIELD_EVERY_ROWS {
            self.rows = 0;
            true
        } else {
            false
        }
    }

    /// Counts `n` more rows written, and yields if it is time to.
    fn rows_written(&mut self, n: usize) {
        if self.count(n) {
            thread::yield_now();
        }
    }
}

/// The wait before retry `attempt` of a failed commit (or of opening and migrating, which
/// retry the same way): 10 ms doubling per attempt, at most 1 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(10u64.saturating_mul(1 << attempt.min(7)).min(1_000))
}

/// Attempts given to a commit that a caller is waiting on, before it gets an error.
const CONTROL_ATTEMPTS: u32 = 5;

pub(crate) struct Writer {
    /// `None` once the database file is gone (closed, so that nothing more is written).
    pub(crate) conn: Option<Connection>,
    /// Whether the file at the path is still the one opened (`None` in memory).
    pub(crate) watch: Option<FileWatch>,
    /// What happened to the file, once the writer found it deleted or replaced.
    pub(crate) gone: Option<&'static str>,
    pub(crate) queue: Arc<Queue>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) flush_interval: std::time::Duration,
    pub(crate) carry: Vec<Arc<TelemetryRecord>>,
    /// The database, for errors.
    pub(crate) path: PathBuf,
    /// How long commits may fail before the queue refuses records.
    pub(crate) retry_budget: Duration,
    /// When the current run of failed commits began.
    pub(crate) failing_since: Option<Instant>,
    /// Calls an hour must reach before it gets minute summaries.
    pub(crate) minute_threshold: u64,
    /// Prunes in progress, oldest first: the first advances one step between batches.
    pub(crate) prunes: VecDeque<Pruning>,
    /// The retention window, if any, and when its next pass is due.
    pub(crate) retention: Option<RetentionPolicy>,
    /// When the next step of a prune may start.
    pub(crate) next_step: Instant,
    /// Which texts the rows store once (schema V5).
    pub(crate) interner: Interner,
    /// The summary rows the last batch left, for the next batch to merge into.
    pub(crate) known_rollups: KnownRollups,
    /// The columns' defaults and the inserts' texts.
    pub(crate) inserts: Inserts,
}

impl Writer {
    /// The thread's body; returns after a `Stop` control.
    pub(crate) fn run(mut self) {
        loop {
            if self.carry.is_empty() {
                // With a prune in progress, commit what is queued by its next step (a partial
                // batch); else sleep until the next retention pass.
                let wake_by = if self.prunes.is_empty() {
                    self.retention.as_ref().map(|r| r.next_pass)
                } else {
                    Some(self.next_step)
                };
                let taken = self.queue.take_batch(self.flush_interval, wake_by);
                self.counters
                    .in_flight
                    .store(taken.records.len() as u64, Ordering::Relaxed);
                self.carry = taken.records;
                let attempts = if taken.control.is_some() {
                    self.control_attempts()
                } else {
                    1
                };
                let committed = self.commit_carry(attempts);
                if let Some(control) = taken.control {
                    let stop = if committed && self.check_file().is_ok() {
                        self.run_control(control)
                    } else {
                        self.refuse(vec![control])
                    };
                    if stop {
                        break;
                    }
                }
                if committed {
                    self.maintain();
                }
            } else {
                let failures = self.counters.consecutive_failures.load(Ordering::Relaxed);
                let waiting = self.queue.wait_retry(Instant::now() + backoff(failures));
                let attempts = if waiting { self.control_attempts() } else { 1 };
                if !self.commit_carry(attempts) && waiting {
                    let controls = self.queue.take_controls();
                    if self.refuse(controls) {
                        break;
                    }
                }
            }
        }
        self.counters.writer_running.store(false, Ordering::Release);
    }

    /// Attempts for a commit a caller waits on: a few, or one once the failure has outlasted the
    /// retry budget (the caller then gets its error at once rather than after more backoff).
    fn control_attempts(&self) -> u32 {
        match self.failing_since {
            Some(since) if since.elapsed() >= self.retry_budget => 1,
            _ => CONTROL_ATTEMPTS,
        }
    }

    /// Commits the carried batch, trying `attempts` times; whether it is committed.
    fn commit_carry(&mut self, attempts: u32) -> bool {
        if self.carry.is_empty() {
            return true;
        }
        for attempt in 0..attempts {
            if attempt > 0 {
                let failures = self.counters.consecutive_failures.load(Ordering::Relaxed);
                thread::sleep(backoff(failures));
            }
            // Never write into a file that is no longer the one at the path.
            if self.check_file().is_err() {
                return false;
            }
            let Some(conn) = self.conn.as_mut() else {
                return false;
            };
            let result = match commit_records(
                conn,
                &mut self.interner,
                &mut self.known_rollups,
                &mut self.inserts,
                &self.carry,
                self.minute_threshold,
            ) {
                Err(e) if !is_io(&e) => self.isolate(),
                other => other,
            };
            // A file that went during the commit: the batch is lost, not written (and a failure
            // may be the file going).
            if self.check_file().is_err() {
                return false;
            }
            match result {
                Ok(()) => {
                    let n = self.carry.len() as u64;
                    self.queue.recycle(std::mem::take(&mut self.carry));
                    self.counters.in_flight.store(0, Ordering::Relaxed);
                    self.counters.written.fetch_add(n, Ordering::Relaxed);
                    self.note_success();
                    return true;
                }
                Err(e) => self.note_failure(&e),
            }
        }
        false
    }

    /// The carried batch failed for a reason other than I/O: commits it in halves, down to
    /// single records, and refuses the records that fail alone (counting what it commits). On
    /// success the carry is left empty; on an I/O error it holds the records not yet committed.
    fn isolate(&mut self) -> Result<(), StoreError> {
        let records = std::mem::take(&mut self.carry);
        // Ranges still to try, the next one last; they stay in order, so on an I/O error what
        // is left is `records[lo..]` less nothing (refused records all lie before `lo`).
        let mid = records.len() / 2;
        let mut todo = vec![(mid, records.len()), (0, mid)];
        while let Some((lo, hi)) = todo.pop() {
            if lo == hi {
                continue;
            }
            let committed = match self.check_file() {
                Ok(()) => match self.conn.as_mut() {
                    Some(conn) => commit_records(
                        conn,
                        &mut self.interner,
                        &mut self.known_rollups,
                        &mut self.inserts,
                        &records[lo..hi],
                        self.minute_threshold,
                    ),
                    None => Err(self.gone_error()),
                },
                Err(e) => Err(e),
            };
            // As in `commit_carry`: what went to a file no longer at the path is not written.
            let committed = committed.and_then(|()| self.check_file());
            match committed {
                Ok(()) => {
                    let n = (hi - lo) as u64;
                    self.counters.written.fetch_add(n, Ordering::Relaxed);
                    self.counters.in_flight.fetch_sub(n, Ordering::Relaxed);
                }
                Err(e) if is_io(&e) => {
                    self.carry = records[lo..].to_vec();
                    return Err(e);
                }
                Err(e) if hi - lo == 1 => self.refuse_record(&records[lo], &e),
                Err(_) => {
                    let mid = lo + (hi - lo) / 2;
                    todo.push((mid, hi));
                    todo.push((lo, mid));
                }
            }
        }
        self.queue.recycle(records);
        Ok(())
    }

    /// `Err(FileGone)` once the file at the path is not the one the writer opened; the first
    /// time, stops the writer for good. Either way, records the writer still holds are lost.
    fn check_file(&mut self) -> Result<(), StoreError> {
        if self.gone.is_none()
            && let Some(change) = self.watch.as_ref().and_then(FileWatch::changed)
        {
            self.stop_for_good(change.describe());
        }
        if self.gone.is_some() {
            self.lose_carry();
            return Err(self.gone_error());
        }
        Ok(())
    }

    /// The file is gone: refuse records from now on, count what is queued or held as lost, and
    /// close the connection (see the module's notes).
    fn stop_for_good(&mut self, what: &'static str) {
        self.gone = Some(what);
        // First, so that by the time a caller is refused, readers of the path see its file.
        if let Some(conn) = self.conn.take() {
            release_shared_files(conn);
        }
        let queued = self.queue.refuse_records(what) as u64;
        self.counters.lost.fetch_add(queued, Ordering::Relaxed);
        self.counters.dropped.fetch_add(queued, Ordering::Relaxed);
        let held = self.carry.len() as u64;
        self.lose_carry();
        let reason = self.gone_error().to_string();
        tracing::error!(
            lost = queued + held,
            "{reason}; the writer stopped and counted the records it held as lost"
        );
        self.counters.set_stopped(reason);
        if self.failing_since.take().is_some() {
            self.queue.set_failing(None);
        }
    }

    /// Counts the records the writer holds as lost, and lets them go.
    fn lose_carry(&mut self) {
        let n = self.carry.len() as u64;
        if n > 0 {
            self.carry.clear();
            self.counters.lost.fetch_add(n, Ordering::Relaxed);
            self.counters.dropped.fetch_add(n, Ordering::Relaxed);
            self.counters.in_flight.store(0, Ordering::Relaxed);
        }
    }

    fn gone_error(&self) -> StoreError {
        StoreError::FileGone {
            path: self.path.clone(),
            what: self.gone.unwrap_or(FileChange::Deleted.describe()),
        }
    }

    fn refuse_record(&self, r: &TelemetryRecord, e: &StoreError) {
        let n = self.counters.rejected.fetch_add(1, Ordering::Relaxed) + 1;
        self.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        let reason = format!(
            "record of model {:?} at timestamp {} could not be written: {e}",
            r.model_id, r.timestamp
        );
        if n.is_power_of_two() {
            tracing::warn!(rejected = n, "{reason}; the rest of its batch was written");
        }
        self.counters.set_last_rejection(reason);
    }

    fn note_success(&mut self) {
        self.counters
            .consecutive_failures
            .store(0, Ordering::Release);
        if self.failing_since.take().is_some() {
            self.queue.set_failing(None);
        }
    }

    fn note_failure(&mut self, e: &StoreError) {
        let n = self
            .counters
            .consecutive_failures
            .fetch_add(1, Ordering::AcqRel)
            + 1;
        self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
        self.counters.set_last_error(e.to_string());
        if n.is_power_of_two() {
            tracing::warn!(error = %e, consecutive_failures = n, "telemetry commit failed; retrying");
        }
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.retry_budget {
            self.queue.set_failing(Some((n, e.to_string())));
        }
    }

    fn write_failed(&self) -> StoreError {
        StoreError::WriteFailed {
            path: self.path.clone(),
            attempts: self.counters.consecutive_failures.load(Ordering::Relaxed),
            message: self.counters.last_error().unwrap_or_default(),
        }
    }

    /// Replies with an error to controls whose preceding records could not be committed (or all
    /// controls, once the file is gone). On `Stop`, gives up: what is still queued or held is
    /// counted as lost. Returns whether to exit.
    fn refuse(&mut self, controls: Vec<Control>) -> bool {
        let mut stop = false;
        for control in controls {
            if matches!(control.kind, ControlKind::Stop) {
                stop = true;
                let queued = self.queue.close_and_discard() as u64;
                self.counters.lost.fetch_add(queued, Ordering::Relaxed);
                self.counters.dropped.fetch_add(queued, Ordering::Relaxed);
                let lost = queued + self.carry.len() as u64;
                self.lose_carry();
                if lost > 0 {
                    tracing::error!(
                        lost,
                        "telemetry store closed with records it could not write"
                    );
                }
            }
            let error = if self.gone.is_some() {
                self.gone_error()
            } else {
                self.write_failed()
            };
            let _ = control.reply.send(Err(error));
        }
        stop
    }

    /// Runs a control whose preceding records are committed; returns whether to exit.
    fn run_control(&mut self, control: Control) -> bool {
        if !matches!(control.kind, ControlKind::Flush | ControlKind::Stop) {
            // It writes summaries (or may): the rows known from the last batch may not be right.
            self.known_rollups.forget();
        }
        let (reply, stop) = match control.kind {
            ControlKind::Flush => (Ok(0), false),
            ControlKind::Stop => {
                self.finish_prunes();
                (Ok(0), true)
            }
            ControlKind::Prune(ts) => {
                let origin = Origin::Caller(control.reply);
                self.prunes.push_back(Pruning::before(ts, origin));
                return false;
            }
            ControlKind::Clear => match self.retrying(clear) {
                Ok(n) => {
                    self.counters.pruned.fetch_add(n, Ordering::Relaxed);
                    let origin = Origin::Caller(control.reply);
                    self.prunes.push_back(Pruning::reclaim_only(n, origin));
                    return false;
                }
                Err(e) => (Err(e), false),
            },
            ControlKind::Compact => (self.retrying(compact), false),
            ControlKind::RebuildRollups => {
                let threshold = self.minute_threshold;
                (
                    self.retrying(|conn| rebuild_rollups(conn, threshold)),
                    false,
                )
            }
            ControlKind::Import(rows) => {
                let threshold = self.minute_threshold;
                // Lent to the import (the closure cannot borrow the writer it runs in).
                let mut interner = std::mem::take(&mut self.interner);
                let result = self.retrying(|conn| import(conn, &mut interner, &rows, threshold));
                self.interner = interner;
                if let Ok(n) = result {
                    self.counters.written.fetch_add(n, Ordering::Relaxed);
                }
                (result, false)
            }
        };
        let _ = control.reply.send(reply);
        stop
    }

    /// Advances the oldest prune by one step, or starts a retention pass when one is due.
    fn maintain(&mut self) {
        if self.prunes.is_empty() {
            self.start_retention_pass();
        }
        if self.prunes.is_empty() || Instant::now() < self.next_step {
            return;
        }
        let started = Instant::now();
        // A prune step rewrites the summaries of the buckets it cuts.
        self.known_rollups.forget();
        // As for batches: never write into a file that is no longer the one at the path.
        let result =
            self.check_file()
                .and_then(|()| match (self.conn.as_mut(), self.prunes.front_mut()) {
                    (Some(conn), Some(pruning)) => pruning.step(conn),
                    _ => Err(self.gone_error()),
                });
        let result = result.and_then(|outcome| self.check_file().map(|()| outcome));
        let took = started.elapsed();
        self.counters.note_step(took);
        // Leave the write lock free for as long as the step held it: a writer in another
        // process waits in SQLite's busy handler, which polls (sleeping up to 100 ms), and
        // steps back to back would starve it.
        self.next_step = Instant::now() + took;
        match result {
            Ok(outcome) => {
                self.counters
                    .pruned
                    .fetch_add(outcome.deleted, Ordering::Relaxed);
                self.counters
                    .reclaimed_bytes
                    .fetch_add(outcome.reclaimed, Ordering::Relaxed);
                if outcome.done
                    && let Some(pruning) = self.prunes.pop_front()
                {
                    match pruning.origin {
                        Origin::Caller(reply) => {
                            let _ = reply.send(Ok(pruning.deleted));
                        }
                        Origin::Retention(cutoff) => self.counters.note_retention_pass(cutoff),
                    }
                }
            }
            Err(e) => {
                let Some(pruning) = self.prunes.pop_front() else {
                    return;
                };
                match pruning.origin {
                    Origin::Caller(reply) => {
                        let _ = reply.send(Err(e));
                    }
                    Origin::Retention(_) => {
                        // Tried again at the next pass; recording is not affected.
                        tracing::warn!(error = %e, "telemetry retention pass failed; retrying later");
                        self.counters.set_retention_error(e.to_string());
                    }
                }
            }
        }
    }

    /// Queues a retention pass when one is due.
    fn start_retention_pass(&mut self) {
        let Some(retention) = &mut self.retention else {
            return;
        };
        let now = Instant::now();
        if now < retention.next_pass {
            return;
        }
        retention.next_pass = now + retention.policy.check_every;
        let cutoff = retention_cutoff((retention.policy.clock)(), retention.policy.window);
        self.prunes
            .push_back(Pruning::before(cutoff as f64, Origin::Retention(cutoff)));
    }

    /// At `Stop`: completes the prunes a caller waits for (step by step, as nothing else is
    /// left to commit); a retention pass in progress is left for the next run.
    fn finish_prunes(&mut self) {
        self.prunes.retain(Pruning::has_caller);
        while !self.prunes.is_empty() {
            if let Some(wait) = self.next_step.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            self.maintain();
        }
    }

    fn retrying<T>(
        &mut self,
        mut f: impl FnMut(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        for attempt in 0..CONTROL_ATTEMPTS {
            if attempt > 0 {
                thread::sleep(backoff(attempt));
            }
            self.check_file()?;
            let Some(conn) = self.conn.as_mut() else {
                return Err(self.gone_error());
            };
            match f(conn).and_then(|v| self.check_file().map(|()| v)) {
                Err(e @ StoreError::FileGone { .. }) => return Err(e),
                Ok(v) => {
                    self.note_success();
                    return Ok(v);
                }
                Err(e) => self.note_failure(&e),
            }
        }
        Err(self.write_failed())
    }
}

/// Closes the connection to a file no longer at its path so that its `-wal` and `-shm` files,
/// which SQLite finds by the path's name, stop shadowing whatever is at the path now.
///
/// SQLite does not checkpoint on close a database whose file has moved, and leaves both files
/// behind: a database moved over the path would be read through the old one's log (its own
/// records hidden by the old file's pages), and a checkpoint by anyone would write those pages
/// into it. So the log is first checkpointed into the old file (pages committed before the
/// change, nothing new) and truncated to nothing; the index then says the log is empty.
fn release_shared_files(conn: Connection) {
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(0) => {}
        Ok(_) => tracing::warn!(
            "the write-ahead log of a database no longer at its path could not be emptied (in \
             use by another connection); readers of the path may see its pages until it is"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "emptying the write-ahead log of a database no longer at its path failed")
        }
    }
    drop(conn);
}

fn sql(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::sqlite(context, e)
}

fn begin(conn: &mut Connection) -> Result<rusqlite::Transaction<'_>, StoreError> {
    // IMMEDIATE: take the write lock up front, so that a read-then-write transaction cannot
    // deadlock with another process's (SQLITE_BUSY without waiting).
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql("beginning a write transaction"))
}

/// Hours of a batch and the records of each; most batches touch one or a few hours in a row,
/// so the last hour is remembered.
#[derive(Debug, Default)]
struct HourCounts {
    counts: std::collections::HashMap<i64, u64>,
    last: Option<(i64, u64)>,
}

impl HourCounts {
    fn add(&mut self, timestamp: f64) {
        let hour = hour_of(timestamp);
        match &mut self.last {
            Some((h, n)) if *h == hour => *n += 1,
            last => {
                if let Some((h, n)) = last.replace((hour, 1)) {
                    *self.counts.entry(h).or_default() += n;
                }
            }
        }
    }

    fn into_counts(mut self) -> std::collections::HashMap<i64, u64> {
        if let Some((h, n)) = self.last.take() {
            *self.counts.entry(h).or_default() += n;
        }
        self.counts
    }
}

/// The rollups of `records` (already inserted in `tx`): minute rollups only for the hours that
/// have or now reach minute summaries (see [`MinuteDetail`]).
fn write_rollups<'a>(
    tx: &Connection,
    records: impl Iterator<Item = &'a TelemetryRecord>,
    hours: HourCounts,
    minute_threshold: u64,
) -> Result<(), StoreError> {
    let detail = MinuteDetail::decide(tx, &hours.into_counts(), minute_threshold)?;
    let mut rollups = DetailedRollups::new(&detail);
    for r in records {
        rollups.add(r);
    }
    // An import's summaries are not kept for the next batch (the writer forgets them at any
    // control but a flush).
    merge_into(
        tx,
        rollups.rollups.into_levels(),
        &mut KnownRollups::default(),
    )?;
    detail.backfill(tx)
}

/// A batch's rollups with the minute-or-hour choice of [`MinuteDetail`] made per record (most
/// batches touch one or a few hours in a row, so the last hour's choice is remembered).
struct DetailedRollups<'a, 'd> {
    detail: &'d MinuteDetail,
    rollups: BatchRollups<'a>,
    last: Option<(i64, bool)>,
}

impl<'a, 'd> DetailedRollups<'a, 'd> {
    fn new(detail: &'d MinuteDetail) -> Self {
        DetailedRollups {
            detail,
            rollups: BatchRollups::default(),
            last: None,
        }
    }

    fn add(&mut self, r: &'a TelemetryRecord) {
        let hour = hour_of(r.timestamp);
        let minutes = match self.last {
            Some((h, m)) if h == hour => m,
            _ => self.detail.minutes(hour),
        };
        self.last = Some((hour, minutes));
        self.rollups.add(r, minutes);
    }
}

/// One transaction: the rows with a cached prepared insert, then their rollups. The hours are
/// counted (and their minute detail decided) first, from the timestamps alone, so that each
/// record is added to its rollup right after its row is bound, while its fields are likely
/// still in the CPU's cache, instead of in a second pass over the batch's 10 000 records after
/// SQLite has been through its pages.
fn commit_records(
    conn: &mut Connection,
    interner: &mut Interner,
    known: &mut KnownRollups,
    inserts: &mut Inserts,
    records: &[Arc<TelemetryRecord>],
    minute_threshold: u64,
) -> Result<(), StoreError> {
    let result = insert_records(conn, interner, known, inserts, records, minute_threshold);
    match result {
        Ok(()) => {
            interner.committed();
            known.committed();
        }
        Err(_) => {
            interner.rolled_back();
            known.forget();
        }
    }
    result
}

fn insert_records(
    conn: &mut Connection,
    interner: &mut Interner,
    known: &mut KnownRollups,
    inserts: &mut Inserts,
    records: &[Arc<TelemetryRecord>],
    minute_threshold: u64,
) -> Result<(), StoreError> {
    let tx = begin(conn)?;
    known.check(&tx)?;
    {
        let (defaults, texts) = inserts.for_schema(&tx)?;
        let mut hours = HourCounts::default();
        for r in records {
            hours.add(r.timestamp);
        }
        let detail = MinuteDetail::decide(&tx, &hours.into_counts(), minute_threshold)?;
        let mut rollups = DetailedRollups::new(&detail);
        let mut yielder = Yielder::default();
        // Whole statements of ROWS_PER_INSERT rows, then the rest one row at a time. A
        // statement binds the fields any of its first rows holds a value other than the
        // default of, and takes the next rows while theirs outside it are unset (the usual
        // case: a recorder's records leave the same fields unset); a batch starts afresh.
        let whole = records.chunks_exact(ROWS_PER_INSERT);
        let rest = whole.remainder().chunks(1);
        let mut current: Option<(Shape, CachedStatement<'_>, BindState<'_>)> = None;
        // The field values of a statement's rows, in one place for the batch.
        let mut values = [[FieldValue::Flag(false); FIELD_COUNT]; ROWS_PER_INSERT];
        for group in whole.chain(rest) {
            let rows = group.len();
            let values = &mut values[..rows];
            for (v, r) in values.iter_mut().zip(group) {
                *v = r.field_values();
            }
            let reuse = match &current {
                Some((shape, _, state)) => {
                    state.rows() == rows
                        && group
                            .iter()
                            .zip(values.iter())
                            .all(|(r, v)| defaults.fits(r, v, *shape))
                }
                None => false,
            };
            let (stmt, state) = match current {
                Some((_, ref mut stmt, ref mut state)) if reuse => (stmt, state),
                _ => {
                    // The statement before goes back to the cache (its parameters cleared).
                    current = None;
                    let shape = group
                        .iter()
                        .zip(values.iter())
                        .fold(Shape::NONE, |s, (r, v)| s.union(defaults.shape_of(r, v)));
                    let stmt = tx
                        .prepare_cached(texts.get(shape, rows))
                        .map_err(sql("preparing the insert"))?;
                    let (_, stmt, state) =
                        current.insert((shape, stmt, BindState::new(rows, shape)));
                    (stmt, state)
                }
            };
            for (row, (r, values)) in group.iter().zip(values.iter()).enumerate() {
                bind_record(stmt, row, r, values, state, interner, &tx)?;
                rollups.add(r);
            }
            stmt.raw_execute().map_err(sql("inserting rows"))?;
            yielder.rows_written(rows);
        }
        drop(current);
        merge_into(&tx, rollups.rollups.into_levels(), known)?;
        if detail.backfills() {
            // Minute rows written besides the merge: not known.
            known.forget();
            detail.backfill(&tx)?;
        }
    }
    tx.commit().map_err(sql("committing a batch"))
}

fn import(
    conn: &mut Connection,
    interner: &mut Interner,
    rows: &[ImportRow],
    minute_threshold: u64,
) -> Result<u64, StoreError> {
    let result = import_rows(conn, interner, rows, minute_threshold);
    match result {
        Ok(_) => interner.committed(),
        Err(_) => interner.rolled_back(),
    }
    result
}

fn import_rows(
    conn: &mut Connection,
    interner: &mut Interner,
    rows: &[ImportRow],
    minute_threshold: u64,
) -> Result<u64, StoreError> {
    let tx = begin(conn)?;
    let mut inserted = 0;
    {
        let mut stmt = tx
            .prepare_cached(&IMPORT_SQL)
            .map_err(sql("preparing the import insert"))?;
        let mut hours = HourCounts::default();
        let mut fresh: Vec<&TelemetryRecord> = Vec::with_capacity(rows.len());
        let mut state = BindState::new(1, Shape::ALL);
        let mut yielder = Yielder::default();
        for row in rows {
            let values = row.record.field_values();
            bind_record(
                &mut stmt,
                0,
                &row.record,
                &values,
                &mut state,
                interner,
                &tx,
            )?;
            stmt.raw_bind_parameter(IMPORT_KEY_PARAM, row.key.as_str())
                .map_err(sql("binding an import key"))?;
            // Only rows actually inserted (key not seen before) count in the summaries.
            if stmt.raw_execute().map_err(sql("importing a row"))? == 1 {
                inserted += 1;
                hours.add(row.record.timestamp);
                fresh.push(&row.record);
            }
            // An import is a batch like any other for the threads sharing the CPU.
            yielder.rows_written(1);
        }
        write_rollups(&tx, fresh.iter().copied(), hours, minute_threshold)?;
    }
    tx.commit().map_err(sql("committing an import"))?;
    Ok(inserted)
}

fn clear(conn: &mut Connection) -> Result<u64, StoreError> {
    let tx = begin(conn)?;
    let deleted = tx
        .execute("DELETE FROM telemetry", [])
        .map_err(sql("clearing rows"))?;
    tx.execute("DELETE FROM telemetry_rollup", [])
        .map_err(sql("clearing summaries"))?;
    tx.commit().map_err(sql("committing a clear"))?;
    Ok(deleted as u64)
}

/// The rows' repeated texts stored once ([`store_texts_once`], in one transaction, the log then
/// folded back and truncated), then `VACUUM` with incremental auto-vacuum, with temporary data
/// on disk rather than in memory (the copy is the size of the data), then the write-ahead log
/// folded back and truncated again.
fn compact(conn: &mut Connection) -> Result<u64, StoreError> {
    let result = conn
        .execute_batch("PRAGMA temp_store = FILE")
        .map_err(sql("setting pragmas"))
        .and_then(|()| {
            let tx = begin(conn)?;
            let rows = store_texts_once(&tx)?;
            tx.commit()
                .map_err(sql("committing the texts stored once"))?;
            tracing::debug!(rows, "compact: repeated texts of older rows stored once");
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(sql("checkpointing after storing texts once"))?;
            conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")
                .map_err(sql("rewriting the file (VACUUM)"))
        });
    // Back to the setting of `open::configure` whatever happened.
    let restored = conn.execute_batch("PRAGMA temp_store = MEMORY");
    result?;
    restored.map_err(sql("setting pragmas"))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(sql("checkpointing after VACUUM"))?;
    Ok(crate::maintenance::FileSpace::read(conn)?.file_bytes())
}

fn rebuild_rollups(conn: &mut Connection, minute_threshold: u64) -> Result<u64, StoreError> {
    let tx = begin(conn)?;
    let read = rebuild_all(&tx, minute_threshold)?;
    tx.commit().map_err(sql("committing a rollup rebuild"))?;
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{Durability, Location};
    use crate::open::open_connection;
    use crate::rows::shaped_insert_sql;
    use proptest::prelude::*;
    use telemetry_core::testing::arb_record;
    use telemetry_core::{FieldKind, schema::RECORD_COLUMNS};
    use telemetry_core::{RECORD_FIELDS, StoredValue};

    fn memory_db() -> Connection {
        open_connection(
            &Location::Memory,
            Durability::Buffered,
            Duration::from_secs(1),
        )
        .expect("an in-memory database")
    }

    /// Every cell of every `telemetry` row (`quote` and `typeof`), and the stored texts.
    fn cells(conn: &Connection) -> (Vec<Vec<String>>, Vec<(i64, String)>) {
        let columns = RECORD_COLUMNS
            .iter()
            .map(|c| format!("quote({c}) || ' ' || typeof({c})"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = conn
            .prepare(&format!(
                "SELECT quote(id), {columns} FROM telemetry ORDER BY id"
            ))
            .expect("the select");
        let rows = stmt
            .query_map([], |row| {
                (0..=FIELD_COUNT)
                    .map(|i| row.get::<_, String>(i))
                    .collect::<Result<Vec<_>, _>>()
            })
            .expect("the rows")
            .collect::<Result<Vec<_>, _>>()
            .expect("each row");
        let mut stmt = conn
            .prepare("SELECT id, text FROM telemetry_strings ORDER BY id")
            .expect("the select");
        let texts = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("the texts")
            .collect::<Result<Vec<_>, _>>()
            .expect("each text");
        (rows, texts)
    }

    /// Sets field `i` of `r` to a value at or near its column's default: `how` 0 the default
    /// itself, 1 a value a shaped insert must still bind (-0.0, a non-empty text).
    fn near_default(r: &mut TelemetryRecord, i: usize, how: u8) {
        let value = match (RECORD_FIELDS[i].kind, how) {
            (FieldKind::OptReal, _) => StoredValue::Null,
            (FieldKind::Real, 0) => StoredValue::Real(0.0),
            (FieldKind::Real, _) => StoredValue::Real(-0.0),
            (FieldKind::Count | FieldKind::Flag, _) => StoredValue::Integer(0),
            (FieldKind::Text, 0) => StoredValue::Text(b""),
            (FieldKind::Text, _) => StoredValue::Text(b"ok"),
            (FieldKind::Json, _) => StoredValue::Text(b"{}"),
        };
        // A value the field refuses (an empty enum) leaves it as it was.
        let _ = r.set_field(i, value);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Records with fields at their column's default, near it or elsewhere, in batches
        /// whose 8-row statements change shape: the shaped inserts store, cell for cell and
        /// text for text, what binding every column stores.
        #[test]
        fn shaped_inserts_store_what_binding_every_column_stores(
            batch in proptest::collection::vec(
                (arb_record(), proptest::collection::vec(0u8..4, FIELD_COUNT)),
                1..30,
            ),
        ) {
            let records: Vec<Arc<TelemetryRecord>> = batch
                .into_iter()
                .map(|(mut r, hows)| {
                    for (i, how) in hows.into_iter().enumerate() {
                        if how < 2 {
                            near_default(&mut r, i, how);
                        }
                    }
                    Arc::new(r)
                })
                .collect();

            let mut shaped = memory_db();
            commit_records(
                &mut shaped,
                &mut Interner::default(),
                &mut KnownRollups::default(),
                &mut Inserts::default(),
                &records,
                u64::MAX,
            )
            .expect("the shaped inserts");

            let mut full = memory_db();
            let tx = full.transaction().expect("a transaction");
            {
                let mut interner = Interner::default();
                let mut stmt = tx
                    .prepare(&shaped_insert_sql(Shape::ALL, 1, false))
                    .expect("the full insert");
                let mut state = BindState::new(1, Shape::ALL);
                for r in &records {
                    bind_record(&mut stmt, 0, r, &r.field_values(), &mut state, &mut interner, &tx)
                        .expect("a bind");
                    stmt.raw_execute().expect("a row");
                }
            }
            tx.commit().expect("the commit");

            prop_assert_eq!(cells(&shaped), cells(&full));
        }
    }

    #[test]
    fn the_defaults_are_read_again_when_the_schema_changes() {
        let conn = memory_db();
        let mut inserts = Inserts::default();
        let version = |inserts: &Inserts| inserts.schema_version();
        inserts.for_schema(&conn).expect("the defaults");
        let first = version(&inserts);
        inserts.for_schema(&conn).expect("the defaults again");
        assert_eq!(version(&inserts), first);
        // Another process migrating the file changes its schema version.
        conn.execute_batch("CREATE TABLE elsewhere (x)")
            .expect("a schema change");
        inserts
            .for_schema(&conn)
            .expect("the defaults after the change");
        assert!(version(&inserts) > first);
    }

    #[test]
    fn a_shape_binds_only_the_fields_off_their_default() {
        let conn = memory_db();
        let mut inserts = Inserts::default();
        let (defaults, texts) = inserts.for_schema(&conn).expect("the defaults");
        let r = TelemetryRecord::default();
        let values = r.field_values();
        let shape = defaults.shape_of(&r, &values);
        // A default record binds the two columns without a default, and nothing else.
        let bound: Vec<&str> = (0..FIELD_COUNT)
            .filter(|&i| shape.has(i))
            .map(|i| RECORD_COLUMNS[i])
            .collect();
        assert_eq!(bound, ["timestamp", "model_id"]);
        assert_eq!(
            texts.get(shape, 2),
            "INSERT OR FAIL INTO telemetry (timestamp, model_id) VALUES (?1, ?2), (?3, ?4)"
        );
        let r = TelemetryRecord {
            cost_usd: -0.0,
            ttft: Some(0.0),
            agent: "a".into(),
            ..TelemetryRecord::default()
        };
        let values = r.field_values();
        let shape = defaults.shape_of(&r, &values);
        for column in ["cost_usd", "ttft", "agent"] {
            let i = RECORD_COLUMNS
                .iter()
                .position(|c| *c == column)
                .expect("a column");
            assert!(shape.has(i), "{column} is bound");
        }
        assert_eq!(shape.len(), 5);
    }

    #[test]
    fn the_writer_yields_once_per_yield_every_rows() {
        let mut y = Yielder::default();
        // Statements of 8 rows: a yield after every fourth.
        let yields: Vec<bool> = (0..9).map(|_| y.count(ROWS_PER_INSERT)).collect();
        let expected: Vec<bool> = (1..=9)
            .map(|i| (i * ROWS_PER_INSERT).is_multiple_of(YIELD_EVERY_ROWS))
            .collect();
        assert_eq!(yields, expected);
        assert_eq!(yields.iter().filter(|&&b| b).count(), 2);
        // A count that jumps past the mark yields once and starts again.
        let mut y = Yielder::default();
        assert!(y.count(YIELD_EVERY_ROWS + 5));
        assert!(!y.count(1));
    }
}
