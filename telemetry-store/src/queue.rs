//! The bounded queue between callers and the writer thread.
//!
//! A `Mutex<VecDeque>` with two condition variables rather than a channel, because the writer
//! needs what channels hide: the number of queued records (for `stats`), control messages that
//! bypass the capacity (so `flush` never waits behind a full queue of records it is flushing),
//! and waking only when there is a reason to. Producers notify the writer only when it sleeps and
//! either the queue just became non-empty or a batch just filled, so `record` rarely makes a
//! system call; the writer takes a whole batch per lock.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use telemetry_core::TelemetryRecord;

use crate::builder::OverflowPolicy;
use crate::error::{RecordError, StoreError};
use crate::import::ImportRow;

/// What a control message asks the writer to do once everything queued before it is committed.
#[derive(Debug)]
pub(crate) enum ControlKind {
    /// Reply when committed.
    Flush,
    /// Delete rows before the timestamp.
    Prune(f64),
    /// Delete every row.
    Clear,
    /// Recompute every summary row from the rows.
    RebuildRollups,
    /// Rewrite the file with incremental auto-vacuum.
    Compact,
    /// Insert imported rows, ignoring those whose key is stored.
    Import(Vec<ImportRow>),
    /// Commit everything, then exit.
    Stop,
}

/// Reply to a control: a row count (deleted, imported) or the error.
pub(crate) type Reply = Result<u64, StoreError>;

/// A control message and where to send its reply.
#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) kind: ControlKind,
    pub(crate) reply: SyncSender<Reply>,
}

#[derive(Debug)]
enum Msg {
    Record(Arc<TelemetryRecord>),
    Control(Control),
}

#[derive(Debug, Default)]
struct State {
    msgs: VecDeque<Msg>,
    records: usize,
    controls: usize,
    writer_sleeping: bool,
    /// Committed records whose memory callers free, one per `push_record` (see [`Queue::recycle`]).
    recycle: Vec<Arc<TelemetryRecord>>,
    blocked_producers: usize,
    closed: bool,
    /// Set while commits have failed for longer than the retry budget: (attempts, last error).
    /// Records are then refused instead of queued.
    failing: Option<(u32, String)>,
    /// Set for good once the database file was deleted or replaced (what happened to it).
    gone: Option<&'static str>,
}

/// What the writer takes at once.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    pub(crate) records: Vec<Arc<TelemetryRecord>>,
    pub(crate) control: Option<Control>,
}

/// The queue; shared by the store handles and the writer.
#[derive(Debug)]
pub(crate) struct Queue {
    state: Mutex<State>,
    writer_cv: Condvar,
    space_cv: Condvar,
    capacity: usize,
    batch_size: usize,
    overflow: OverflowPolicy,
    /// The database, for [`RecordError::WriteFailed`].
    path: PathBuf,
}

impl Queue {
    pub(crate) fn new(
        capacity: usize,
        batch_size: usize,
        overflow: OverflowPolicy,
        path: PathBuf,
    ) -> Self {
        Queue {
            path,
            state: Mutex::new(State::default()),
            writer_cv: Condvar::new(),
            space_cv: Condvar::new(),
            capacity,
            batch_size,
            overflow,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; recover anyway rather than propagate a poison.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Enqueues a record, applying the overflow policy. With `then_flush`, also enqueues a flush
    /// right behind it (under the same lock) and returns its reply receiver.
    pub(crate) fn push_record(
        &self,
        record: Arc<TelemetryRecord>,
        then_flush: bool,
    ) -> Result<Option<Receiver<Reply>>, RecordError> {
        let mut s = self.lock();
        loop {
            if s.closed {
                return Err(RecordError::Closed);
            }
            if let Some(what) = s.gone {
                return Err(RecordError::FileGone {
                    path: self.path.clone(),
                    what,
                });
            }
            if let Some((attempts, message)) = &s.failing {
                return Err(RecordError::WriteFailed {
                    path: self.path.clone(),
                    attempts: *attempts,
                    message: message.clone(),
                });
            }
            if s.records < self.capacity {
                break;
            }
            match self.overflow {
                OverflowPolicy::DropNewest => {
                    return Err(RecordError::QueueFull {
                        capacity: self.capacity,
                    });
                }
                OverflowPolicy::Block => {
                    s.blocked_producers += 1;
                    s = self
                        .space_cv
                        .wait(s)
                        .unwrap_or_else(PoisonError::into_inner);
                    s.blocked_producers -= 1;
                }
            }
        }
        s.msgs.push_back(Msg::Record(record));
        s.records += 1;
        let old = s.recycle.pop();
        let receiver = then_flush.then(|| {
            let (reply, receiver) = sync_channel(1);
            s.msgs.push_back(Msg::Control(Control {
                kind: ControlKind::Flush,
                reply,
            }));
            s.controls += 1;
            receiver
        });
        let wake =
            s.writer_sleeping && (then_flush || s.records == 1 || s.records >= self.batch_size);
        if wake {
            s.writer_sleeping = false;
        }
        drop(s);
        drop(old);
        if wake {
            self.writer_cv.notify_one();
        }
        Ok(receiver)
    }

    /// Writer side: hands committed records over to be freed by callers, one per
    /// `push_record`, rather than by the writer in a burst. With the system allocator, a burst
    /// of frees in the writer of memory that callers allocated both slows the writer (which is
    /// the ingest bottleneck) and makes the callers' next allocations slow; a caller freeing one
    /// old record as it allocates a new one reuses warm memory instead. At most one batch waits
    /// here; what callers do not take (they went quiet) the writer frees when idle.
    pub(crate) fn recycle(&self, mut committed: Vec<Arc<TelemetryRecord>>) {
        let mut s = self.lock();
        if s.recycle.is_empty() && s.records > 0 {
            std::mem::swap(&mut s.recycle, &mut committed);
        }
        let idle = s.records == 0;
        let leftover = if idle {
            std::mem::take(&mut s.recycle)
        } else {
            Vec::new()
        };
        drop(s);
        drop(committed);
        drop(leftover);
    }

    /// Enqueues a control message; it is not subject to the capacity. `Stop` closes the queue to
    /// further messages.
    pub(crate) fn push_control(&self, kind: ControlKind) -> Result<Receiver<Reply>, StoreError> {
        let (reply, receiver) = sync_channel(1);
        let mut s = self.lock();
        if s.closed {
            return Err(StoreError::Closed);
        }
        if matches!(kind, ControlKind::Stop) {
            s.closed = true;
        }
        s.msgs.push_back(Msg::Control(Control { kind, reply }));
        s.controls += 1;
        s.writer_sleeping = false;
        let blocked = s.closed && s.blocked_producers > 0;
        drop(s);
        self.writer_cv.notify_one();
        if blocked {
            // Producers blocked on a full queue must see `closed` rather than wait forever.
            self.space_cv.notify_all();
        }
        Ok(receiver)
    }

    /// Writer side: waits until a batch is full, the oldest queued record has waited
    /// `flush_interval`, a control message is queued, or `wake_by` (the writer has other work
    /// then: a prune's next step, a retention pass); then takes up to `batch_size` records
    /// and, if reached, the first control message after them (possibly nothing at `wake_by`).
    pub(crate) fn take_batch(&self, flush_interval: Duration, wake_by: Option<Instant>) -> Taken {
        let mut s = self.lock();
        let mut deadline: Option<Instant> = None;
        loop {
            if s.controls > 0 || s.records >= self.batch_size {
                break;
            }
            let now = Instant::now();
            if wake_by.is_some_and(|w| now >= w) {
                break;
            }
            if s.records == 0 {
                s.writer_sleeping = true;
                s = match wake_by {
                    Some(w) => {
                        self.writer_cv
                            .wait_timeout(s, w - now)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0
                    }
                    None => self
                        .writer_cv
                        .wait(s)
                        .unwrap_or_else(PoisonError::into_inner),
                };
            } else {
                let due = *deadline.get_or_insert(now + flush_interval);
                let due = wake_by.map_or(due, |w| due.min(w));
                if now >= due {
                    break;
                }
                s.writer_sleeping = true;
                s = self
                    .writer_cv
                    .wait_timeout(s, due - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            s.writer_sleeping = false;
        }
        let mut taken = Taken {
            records: Vec::with_capacity(s.records.min(self.batch_size)),
            control: None,
        };
        while taken.records.len() < self.batch_size {
            match s.msgs.pop_front() {
                Some(Msg::Record(r)) => {
                    s.records -= 1;
                    taken.records.push(r);
                }
                Some(Msg::Control(c)) => {
                    s.controls -= 1;
                    taken.control = Some(c);
                    break;
                }
                None => break,
            }
        }
        // A control right behind a full batch belongs to this batch's commit too.
        if taken.control.is_none()
            && matches!(s.msgs.front(), Some(Msg::Control(_)))
            && let Some(Msg::Control(c)) = s.msgs.pop_front()
        {
            s.controls -= 1;
            taken.control = Some(c);
        }
        let wake_producers = s.blocked_producers > 0 && !taken.records.is_empty();
        drop(s);
        if wake_producers {
            self.space_cv.notify_all();
        }
        taken
    }

    /// Writer side, while a batch keeps failing: waits until `until` or until a control message
    /// is queued; returns whether one is.
    pub(crate) fn wait_retry(&self, until: Instant) -> bool {
        let mut s = self.lock();
        loop {
            let now = Instant::now();
            if s.controls > 0 || now >= until {
                return s.controls > 0;
            }
            s.writer_sleeping = true;
            s = self
                .writer_cv
                .wait_timeout(s, until - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            s.writer_sleeping = false;
        }
    }

    /// Writer side, giving up on the controls queued now: removes them (records stay, in order).
    pub(crate) fn take_controls(&self) -> Vec<Control> {
        let mut s = self.lock();
        let mut controls = Vec::with_capacity(s.controls);
        let msgs = std::mem::take(&mut s.msgs);
        for m in msgs {
            match m {
                Msg::Control(c) => controls.push(c),
                record => s.msgs.push_back(record),
            }
        }
        s.controls = 0;
        controls
    }

    /// Writer side, at exit: closes the queue and removes every queued record; returns how many.
    pub(crate) fn close_and_discard(&self) -> usize {
        let mut s = self.lock();
        s.closed = true;
        let n = s.records;
        for m in std::mem::take(&mut s.msgs) {
            if let Msg::Control(c) = m {
                let _ = c.reply.send(Err(StoreError::Closed));
            }
        }
        s.records = 0;
        s.controls = 0;
        let blocked = s.blocked_producers > 0;
        drop(s);
        if blocked {
            self.space_cv.notify_all();
        }
        n
    }

    /// Writer side, once the database file is gone: refuses records from now on with
    /// [`RecordError::FileGone`] and removes those queued (controls stay, in order, for the
    /// writer to answer); returns how many records it removed.
    pub(crate) fn refuse_records(&self, what: &'static str) -> usize {
        let mut s = self.lock();
        s.gone = Some(what);
        let n = s.records;
        let (controls, records): (VecDeque<Msg>, VecDeque<Msg>) = std::mem::take(&mut s.msgs)
            .into_iter()
            .partition(|m| matches!(m, Msg::Control(_)));
        s.msgs = controls;
        s.records = 0;
        let blocked = s.blocked_producers > 0;
        drop(s);
        drop(records);
        if blocked {
            self.space_cv.notify_all();
        }
        n
    }

    /// Records queued now.
    pub(crate) fn len(&self) -> usize {
        self.lock().records
    }

    /// Writer side: `Some((attempts, last error))` once commits have failed for longer than the
    /// retry budget (records are refused and blocked producers woken with the error), `None`
    /// after a commit succeeds.
    pub(crate) fn set_failing(&self, failing: Option<(u32, String)>) {
        let mut s = self.lock();
        let wake = failing.is_some() && s.blocked_producers > 0;
        s.failing = failing;
        drop(s);
        if wake {
            self.space_cv.notify_all();
        }
    }

    /// Whether the queue accepts no more messages.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }
}
