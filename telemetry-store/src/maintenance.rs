//! Deleting old rows and giving their space back to the file system, in transactions short
//! enough that the writer's batches commit in between.
//!
//! A [`Pruning`] is a prune (`prune_before`, `clear`, or a pass of the retention window) that
//! the writer thread advances one step at a time, between batches: a step deletes the rows of
//! the oldest whole minutes before the cutoff, at most [`PRUNE_STEP_ROWS`] (or one minute, if a
//! single minute holds more), and repairs the summaries at the cut (cheap on a minute boundary:
//! [`repair_after_prune`]); once no row before the cutoff is left, each step hands at most
//! [`RECLAIM_STEP_PAGES`] free pages back to the file system (`PRAGMA incremental_vacuum`, on
//! files created with `auto_vacuum = INCREMENTAL`: every file this crate creates, and older ones
//! after [`TelemetryStore::compact`](crate::TelemetryStore::compact)). A recorder therefore
//! waits at most one step for its batch, whatever the size of the prune.

use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use telemetry_core::{ROLLUP_LEVELS, bucket_start};

use crate::builder::Retention;
use crate::error::StoreError;
use crate::queue::Reply;
use crate::rollups::repair_after_prune;

/// Rows one prune step deletes at most, unless a single minute holds more (steps cut on minute
/// boundaries, so that the summaries of the cut need no rebuilding). About 10 ms of work on the
/// machine of `docs/benchmarks.md`.
pub(crate) const PRUNE_STEP_ROWS: i64 = 4_000;

/// Free pages one reclaim step hands back at most (1 MiB at the default page size).
pub(crate) const RECLAIM_STEP_PAGES: i64 = 256;

const MINUTE: i64 = ROLLUP_LEVELS[0];

fn sql(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::sqlite(context, e)
}

/// What a prune still has to do.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Delete the rows before this timestamp.
    Delete(f64),
    /// Hand free pages back.
    Reclaim,
}

/// Who asked for a prune, and so what happens when it ends.
#[derive(Debug)]
pub(crate) enum Origin {
    /// `prune_before` or `clear`: the caller waits for the count of deleted rows.
    Caller(SyncSender<Reply>),
    /// A pass of the retention window, up to this cutoff (unix seconds).
    Retention(i64),
}

/// A prune in progress: advanced by [`step`](Self::step), one short transaction at a time.
#[derive(Debug)]
pub(crate) struct Pruning {
    phase: Phase,
    /// Rows deleted so far.
    pub(crate) deleted: u64,
    pub(crate) origin: Origin,
}

/// What one step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StepOutcome {
    /// Rows deleted.
    pub(crate) deleted: u64,
    /// Bytes the file gave back.
    pub(crate) reclaimed: u64,
    /// Whether the prune is complete.
    pub(crate) done: bool,
}

impl Pruning {
    /// Deletes the rows before `cutoff`, then reclaims their space.
    pub(crate) fn before(cutoff: f64, origin: Origin) -> Self {
        Pruning {
            phase: Phase::Delete(cutoff),
            deleted: 0,
            origin,
        }
    }

    /// Only reclaims free space (after a `clear` that deleted `deleted` rows).
    pub(crate) fn reclaim_only(deleted: u64, origin: Origin) -> Self {
        Pruning {
            phase: Phase::Reclaim,
            deleted,
            origin,
        }
    }

    /// Whether a caller waits for this prune.
    pub(crate) fn has_caller(&self) -> bool {
        matches!(self.origin, Origin::Caller(_))
    }

    /// One step: a transaction of its own.
    pub(crate) fn step(&mut self, conn: &mut Connection) -> Result<StepOutcome, StoreError> {
        match self.phase {
            Phase::Delete(cutoff) => match delete_step(conn, cutoff, PRUNE_STEP_ROWS)? {
                Some(n) => {
                    self.deleted += n;
                    Ok(StepOutcome {
                        deleted: n,
                        ..StepOutcome::default()
                    })
                }
                None => {
                    self.phase = Phase::Reclaim;
                    Ok(StepOutcome::default())
                }
            },
            Phase::Reclaim => match reclaim_step(conn, RECLAIM_STEP_PAGES)? {
                Some(bytes) => Ok(StepOutcome {
                    reclaimed: bytes,
                    ..StepOutcome::default()
                }),
                None => {
                    // The file shrinks when the log's pages are copied back; PASSIVE waits for
                    // no one (what a reader still holds is copied at a later checkpoint).
                    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                        .map_err(sql("checkpointing after a prune"))?;
                    Ok(StepOutcome {
                        done: true,
                        ..StepOutcome::default()
                    })
                }
            },
        }
    }
}

/// Deletes the rows of the oldest whole minutes before `cutoff` (about `max_rows`, at least
/// one minute; the last step cuts at `cutoff` itself) and repairs the summaries, in one
/// transaction; `None` when no row before `cutoff` is left.
fn delete_step(
    conn: &mut Connection,
    cutoff: f64,
    max_rows: i64,
) -> Result<Option<u64>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql("beginning a prune step"))?;
    let oldest: Option<f64> = tx
        .query_row("SELECT MIN(timestamp) FROM telemetry", [], |r| r.get(0))
        .map_err(sql("finding the oldest row"))?;
    let Some(oldest) = oldest.filter(|&t| t < cutoff) else {
        return Ok(None);
    };
    let nth: Option<f64> = tx
        .prepare_cached("SELECT timestamp FROM telemetry ORDER BY timestamp LIMIT 1 OFFSET ?1")
        .and_then(|mut s| s.query_row([max_rows], |r| r.get(0)).optional())
        .map_err(sql("finding where a prune step ends"))?;
    let minute = |t: f64| bucket_start(t, MINUTE) as f64;
    let mut until = nth.map_or(f64::INFINITY, minute);
    if until <= oldest {
        // One minute holds more than `max_rows`: take that minute whole.
        until = minute(oldest) + MINUTE as f64;
    }
    let until = until.min(cutoff);
    let deleted = tx
        .prepare_cached("DELETE FROM telemetry WHERE timestamp < ?1")
        .and_then(|mut s| s.execute([until]))
        .map_err(sql("pruning rows"))?;
    repair_after_prune(&tx, until)?;
    tx.commit().map_err(sql("committing a prune step"))?;
    Ok(Some(deleted as u64))
}

/// Hands at most `max_pages` free pages back to the file system in one transaction; `None`
/// when there are none, or the file was not created for it (`auto_vacuum` is not incremental:
/// its free pages are reused by later rows, and [`compact`](crate::TelemetryStore::compact)
/// converts it).
fn reclaim_step(conn: &mut Connection, max_pages: i64) -> Result<Option<u64>, StoreError> {
    let space = FileSpace::read(conn)?;
    if !space.incremental || space.free_pages == 0 {
        return Ok(None);
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql("beginning a reclaim step"))?;
    tx.execute_batch(&format!("PRAGMA incremental_vacuum({max_pages})"))
        .map_err(sql("reclaiming free pages"))?;
    let pages: i64 = tx
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .map_err(sql("reading the page count"))?;
    tx.commit().map_err(sql("committing a reclaim step"))?;
    let freed = u64::try_from(space.pages.saturating_sub(pages)).unwrap_or(0);
    if freed == 0 {
        // Nothing moved (another connection holds the pages?): stop rather than spin.
        return Ok(None);
    }
    Ok(Some(freed * space.page_size))
}

/// How a database file uses its pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpace {
    /// Bytes per page.
    pub page_size: u64,
    /// Pages in the file.
    pub pages: i64,
    /// Pages on the free list: reused by later rows, or handed back by a prune when
    /// `incremental` holds.
    pub free_pages: i64,
    /// Whether the file was created with `auto_vacuum = INCREMENTAL` (every file this crate
    /// creates), so that prunes hand free pages back to the file system.
    pub incremental: bool,
}

impl FileSpace {
    /// Reads the page counts of `conn`'s main database.
    pub(crate) fn read(conn: &Connection) -> Result<FileSpace, StoreError> {
        let pragma = |name: &str| -> Result<i64, StoreError> {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .map_err(|e| StoreError::sqlite("reading the page counts", e))
        };
        Ok(FileSpace {
            page_size: u64::try_from(pragma("page_size")?).unwrap_or(0),
            pages: pragma("page_count")?,
            free_pages: pragma("freelist_count")?,
            incremental: pragma("auto_vacuum")? == 2,
        })
    }

    /// Bytes of the file (without its write-ahead log).
    pub fn file_bytes(&self) -> u64 {
        self.page_size * u64::try_from(self.pages).unwrap_or(0)
    }

    /// Bytes of free pages.
    pub fn free_bytes(&self) -> u64 {
        self.page_size * u64::try_from(self.free_pages).unwrap_or(0)
    }

    /// Bytes in use: what a compaction copies.
    pub fn used_bytes(&self) -> u64 {
        self.file_bytes().saturating_sub(self.free_bytes())
    }
}

/// The writer's retention window and when its next pass is due.
pub(crate) struct RetentionPolicy {
    pub(crate) policy: Retention,
    pub(crate) next_pass: Instant,
}

/// The cutoff of a retention pass at `now`: the start of the minute `window` before it, so
/// that every step cuts on a minute boundary.
pub(crate) fn retention_cutoff(now: f64, window: Duration) -> i64 {
    bucket_start(now - window.as_secs_f64(), MINUTE)
}
