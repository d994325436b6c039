//! [`RecordIter`]: streaming every record of a range back out, in constant memory.
//!
//! Rows come in `(timestamp, id)` order through the timestamp index, a page at a time with keyset
//! pagination (`WHERE (timestamp, id) > last`), so no statement outlives a page and memory stays
//! flat. Large exports split the range into time slices read by two worker threads, each with its
//! own read-only connection; the iterator hands out the slices' pages in order. Every query also
//! bounds `id` by the largest id when the export began, so pages read later (or by another
//! connection) do not pick up rows committed meanwhile.

use std::marker::PhantomData;
use std::path::Path;
use std::sync::LazyLock;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use rusqlite::{Connection, params};
use telemetry_core::schema::RECORD_COLUMNS;
use telemetry_core::{StringCache, TelemetryRecord, TimeRange};

use crate::error::AggError;
use crate::open::open_read_only;
use crate::row::read_record;

/// Rows fetched per query.
const PAGE: i64 = 4_096;
/// Exports of fewer rows than this run on the caller's thread.
const PARALLEL_MIN_ROWS: u64 = 20_000;
/// Worker threads of a large export.
const WORKERS: usize = 2;
/// Time slices per worker.
const SLICES_PER_WORKER: usize = 16;
/// Pages a worker may run ahead of the reader, per worker.
const PAGES_AHEAD: usize = 2;

type Item = Result<TelemetryRecord, AggError>;

/// `SELECT ... ORDER BY timestamp, id LIMIT` for a slice: `first` or after a cursor, with the
/// upper bound inclusive (`closed`) or not. Parameters: since (or the cursor's timestamp), until,
/// the largest id exported, then the cursor's id when not `first`, then the page size.
fn page_sql(first: bool, closed: bool) -> String {
    let upper = if closed { "<=" } else { "<" };
    let after = if first {
        ""
    } else {
        "AND (timestamp > ?1 OR id > ?4) "
    };
    let limit = if first { "?4" } else { "?5" };
    format!(
        "SELECT id, {} FROM telemetry WHERE timestamp >= ?1 AND timestamp {upper} ?2 \
         AND id <= ?3 {after}ORDER BY timestamp, id LIMIT {limit}",
        RECORD_COLUMNS.join(", ")
    )
}

static SQL: LazyLock<[[String; 2]; 2]> = LazyLock::new(|| {
    [
        [page_sql(true, false), page_sql(true, true)],
        [page_sql(false, false), page_sql(false, true)],
    ]
});

/// Pages through the rows with `since <= timestamp < until` (`<= until` when `closed`) and
/// `id <= max_id`.
#[derive(Debug, Clone)]
struct Pager {
    since: f64,
    until: f64,
    closed: bool,
    max_id: i64,
    cursor: Option<(f64, i64)>,
    done: bool,
}

impl Pager {
    fn new(since: f64, until: f64, closed: bool, max_id: i64) -> Self {
        Pager {
            since,
            until,
            closed,
            max_id,
            cursor: None,
            done: false,
        }
    }

    /// The next page (empty once done). A row that cannot be read is an `Err` item; a SQLite
    /// failure is the error of the call.
    fn next_page(
        &mut self,
        conn: &Connection,
        cache: &mut StringCache,
    ) -> Result<Vec<Item>, AggError> {
        let mut page = Vec::new();
        if self.done {
            return Ok(page);
        }
        let sql = |e| AggError::sqlite("exporting telemetry rows", e);
        let text = &SQL[usize::from(self.cursor.is_some())][usize::from(self.closed)];
        let mut stmt = conn.prepare_cached(text).map_err(sql)?;
        let mut rows = match self.cursor {
            None => stmt.query(params![self.since, self.until, self.max_id, PAGE]),
            Some((ts, id)) => stmt.query(params![ts, self.until, self.max_id, id, PAGE]),
        }
        .map_err(sql)?;
        page.reserve(PAGE as usize);
        while let Some(row) = rows.next().map_err(sql)? {
            let id: i64 = row.get(0).map_err(sql)?;
            let ts: f64 = row.get(1).map_err(sql)?;
            self.cursor = Some((ts, id));
            page.push(read_record(conn, cache, row, id));
        }
        if (page.len() as i64) < PAGE {
            self.done = true;
        }
        Ok(page)
    }
}

/// What a worker sends: pages of a slice, then the end of the slice; or a fatal error.
enum Message {
    Page(Vec<Item>),
    SliceEnd,
    Fatal(AggError),
}

/// The records of a range, ordered by timestamp then insertion, read a page at a time, so
/// memory stays flat however many rows there are. Made by
/// [`TelemetryAggregator::export_records`](crate::TelemetryAggregator::export_records).
///
/// The export holds the rows committed before
/// [`export_records`](crate::TelemetryAggregator::export_records) was called: rows a writer
/// commits while it runs are left out, even in pages read later, so the count matches
/// [`record_count`](crate::TelemetryAggregator::record_count) taken just before. (Rows removed
/// meanwhile by the store's `prune_before` or `clear`, the only deletions, are gone from the
/// pages read after the deletion.)
/// A row whose stored value cannot be read back yields an [`AggError::BadRow`] naming its id and
/// column, and the export goes on with the next row; a SQLite error ends the iteration after it
/// is yielded. Dropping the iterator early stops its worker threads.
#[derive(Debug)]
pub struct RecordIter<'a> {
    source: Source<'a>,
    page: std::vec::IntoIter<Item>,
    done: bool,
}

#[derive(Debug)]
enum Source<'a> {
    /// Small exports: pages read on the caller's thread.
    Inline {
        conn: &'a Connection,
        pager: Pager,
        /// Texts stored once, met so far on `conn`.
        cache: StringCache,
    },
    /// Large exports: slice `i` is read by worker `i % workers`.
    Parallel {
        receivers: Vec<Receiver<Message>>,
        workers: Vec<JoinHandle<()>>,
        slice: usize,
        slices: usize,
        _borrow: PhantomData<&'a Connection>,
    },
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Page(p) => write!(f, "Page({} rows)", p.len()),
            Message::SliceEnd => f.write_str("SliceEnd"),
            Message::Fatal(e) => write!(f, "Fatal({e})"),
        }
    }
}

impl<'a> RecordIter<'a> {
    /// Reads on `conn`, or on worker connections to `path` when `rows` is large; only rows with
    /// `id <= max_id`.
    pub(crate) fn new(
        conn: &'a Connection,
        path: &Path,
        range: &TimeRange,
        extent: Option<(f64, f64)>,
        rows: u64,
        max_id: i64,
    ) -> Result<Self, AggError> {
        let since = range.since_bound().unwrap_or(f64::MIN);
        let until = range.until_bound().unwrap_or(f64::MAX);
        let source = match extent {
            Some((lo, hi)) if rows >= PARALLEL_MIN_ROWS && lo < hi => {
                parallel(path, lo.max(since), hi.min(until), max_id)?
            }
            _ => Source::Inline {
                conn,
                pager: Pager::new(since, until, true, max_id),
                cache: StringCache::new(),
            },
        };
        Ok(RecordIter {
            source,
            page: Vec::new().into_iter(),
            done: false,
        })
    }

    /// Refills `page`; `false` when there is nothing more.
    fn refill(&mut self) -> Result<bool, AggError> {
        match &mut self.source {
            Source::Inline { conn, pager, cache } => {
                let page = pager.next_page(conn, cache)?;
                let more = !page.is_empty();
                self.page = page.into_iter();
                Ok(more)
            }
            Source::Parallel {
                receivers,
                slice,
                slices,
                ..
            } => loop {
                if *slice >= *slices {
                    return Ok(false);
                }
                let worker = slice.checked_rem(receivers.len());
                let Some(rx) = worker.and_then(|w| receivers.get(w)) else {
                    return Ok(false);
                };
                match rx.recv() {
                    Ok(Message::Page(page)) => {
                        self.page = page.into_iter();
                        return Ok(true);
                    }
                    Ok(Message::SliceEnd) => *slice += 1,
                    Ok(Message::Fatal(e)) => return Err(e),
                    // A worker that stopped without a fatal error has nothing more.
                    Err(_) => return Ok(false),
                }
            },
        }
    }
}

/// Splits `[lo, hi]` into time slices and starts the workers.
fn parallel<'a>(path: &Path, lo: f64, hi: f64, max_id: i64) -> Result<Source<'a>, AggError> {
    let slices = WORKERS * SLICES_PER_WORKER;
    // Monotonic in k, so the half-open slices [t_k, t_k+1) and the closed last one tile [lo, hi].
    let edge = |k: usize| {
        if k == slices {
            hi
        } else {
            lo + (hi - lo) * k as f64 / slices as f64
        }
    };
    let mut receivers = Vec::with_capacity(WORKERS);
    let mut workers = Vec::with_capacity(WORKERS);
    for w in 0..WORKERS {
        // Opened here, so that a failure is the caller's error rather than a worker's.
        let (conn, side_files) = open_read_only(path)?;
        let pagers: Vec<Pager> = (w..slices)
            .step_by(WORKERS)
            .map(|k| Pager::new(edge(k), edge(k + 1), k + 1 == slices, max_id))
            .collect();
        let (tx, rx) = sync_channel(PAGES_AHEAD);
        receivers.push(rx);
        let handle = std::thread::Builder::new()
            .name(format!("telemetry-export-{w}"))
            .spawn(move || {
                work(&conn, pagers, &tx);
                // The connection first, then any side files it made.
                drop(conn);
                drop(side_files);
            })
            .map_err(|source| AggError::Io {
                context: "starting an export thread",
                source,
            })?;
        workers.push(handle);
    }
    Ok(Source::Parallel {
        receivers,
        workers,
        slice: 0,
        slices,
        _borrow: PhantomData,
    })
}

/// A worker: every page of each of its slices, in order; stops when the reader is gone.
fn work(conn: &Connection, pagers: Vec<Pager>, tx: &SyncSender<Message>) {
    let mut cache = StringCache::new();
    for mut pager in pagers {
        loop {
            let message = match pager.next_page(conn, &mut cache) {
                Ok(page) if page.is_empty() => break,
                Ok(page) => Message::Page(page),
                Err(e) => {
                    let _ = tx.send(Message::Fatal(e));
                    return;
                }
            };
            if send(tx, message).is_err() {
                return;
            }
        }
        if send(tx, Message::SliceEnd).is_err() {
            return;
        }
    }
}

fn send(tx: &SyncSender<Message>, message: Message) -> Result<(), ()> {
    tx.send(message).map_err(|_| ())
}

impl Iterator for RecordIter<'_> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.page.next() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            match self.refill() {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl Drop for RecordIter<'_> {
    fn drop(&mut self) {
        if let Source::Parallel {
            receivers, workers, ..
        } = &mut self.source
        {
            // Closing the channels makes every blocked or later send fail, so the workers end.
            receivers.clear();
            for handle in workers.drain(..) {
                let _ = handle.join();
            }
        }
    }
}
