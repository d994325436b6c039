//! The sampler's book of windows, in two parts so that the call path never waits on completion:
//!
//! - [`Registry`], behind the lock that `begin`/`end` take: the active windows (in reusable
//!   slots) and the windows ended since the last completion, in a plain `Vec`.
//! - [`Completer`], owned by whoever completes (the sampler thread, `sample_now`, `flush`), behind
//!   its own lock: the ended windows still waiting for coverage, and recently completed ones kept
//!   so that later completions can split slices with them.
//!
//! A completion takes the registry lock only to swap out the ended `Vec` and copy the active
//! windows' starts and weights (O(active), no allocation beyond that copy, no sorting); sorting,
//! overlap search, energy and callbacks all run after it is released.
//!
//! **Overlap rule.** A window being completed shares each slice with every other window that was
//! active in it, as known at the moment of the swap: windows ended by then (completed, pending or
//! in the swapped batch) with their real end, and windows still active as running to the end of
//! time (they are active at the window's end, or began after it and are clipped away). A window
//! that begins later with a start before that moment — a caller's `t0` in the past — is not seen
//! by windows completed before it began; it is seen by the ones completed after, and remembered
//! completed windows (2 s, see `DONE_SLACK`) let it split with them in its own reading.

use std::collections::VecDeque;
use std::time::Duration;

use crate::{EnergyReading, Timestamp, Window};

/// What to do with a window's reading once it is known.
pub(crate) type Callback = Box<dyn FnOnce(EnergyReading) + Send + 'static>;

struct Slot {
    live: bool,
    start: Timestamp,
    weight: f64,
    /// Position in `Registry::active` while live.
    active_pos: usize,
}

/// A window that has ended, waiting for completion.
pub(crate) struct EndedWindow {
    pub window: Window,
    pub first_token: Option<Timestamp>,
    pub weight: f64,
    pub callback: Option<Callback>,
}

/// Active windows by slot (slots are reused, so `begin` does not allocate once warm) and the
/// windows ended since the last [`take`](Registry::take).
#[derive(Default)]
pub(crate) struct Registry {
    slots: Vec<Slot>,
    free: Vec<usize>,
    active: Vec<usize>,
    ended: Vec<EndedWindow>,
}

impl Registry {
    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    /// Windows ended and not yet taken by a completion.
    pub fn ended_count(&self) -> usize {
        self.ended.len()
    }

    pub fn begin(&mut self, start: Timestamp, weight: f64) -> usize {
        let slot = Slot {
            live: true,
            start,
            weight,
            active_pos: self.active.len(),
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id] = slot;
                id
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.active.push(id);
        id
    }

    pub fn end(
        &mut self,
        id: usize,
        end: Timestamp,
        first_token: Option<Timestamp>,
        callback: Option<Callback>,
    ) {
        let Some(slot) = self.slots.get_mut(id).filter(|s| s.live) else {
            return;
        };
        slot.live = false;
        let (start, weight, pos) = (slot.start, slot.weight, slot.active_pos);
        self.active.swap_remove(pos);
        if let Some(&moved) = self.active.get(pos) {
            self.slots[moved].active_pos = pos;
        }
        self.free.push(id);
        self.ended.push(EndedWindow {
            window: Window::new(start, end.max(start)),
            first_token,
            weight,
            callback,
        });
    }

    /// Swaps the ended windows out for `spare` (an empty `Vec`, ideally with capacity) and copies
    /// the active windows' starts and weights into `active`: all a completion needs, taken at one
    /// instant.
    pub fn take(
        &mut self,
        spare: Vec<EndedWindow>,
        active: &mut Vec<(Timestamp, f64)>,
    ) -> Vec<EndedWindow> {
        active.clear();
        active.extend(
            self.active
                .iter()
                .map(|&a| (self.slots[a].start, self.slots[a].weight)),
        );
        std::mem::replace(&mut self.ended, spare)
    }
}

/// How long a completed window is remembered for splitting with windows that begin later but
/// started (per the caller's `t0`) before it ended.
const DONE_SLACK: Duration = Duration::from_secs(2);
/// Upper bound on remembered completed windows.
const MAX_DONE: usize = 65_536;

/// A window taken for completion now.
pub(crate) struct ReadyWindow {
    pub window: Window,
    pub first_token: Option<Timestamp>,
    pub weight: f64,
    pub callback: Option<Callback>,
    /// Sequence number, to leave the window itself out of its overlaps.
    id: u64,
}

/// Windows taken for completion, with every window they may overlap.
pub(crate) struct Batch {
    pub ready: Vec<ReadyWindow>,
    index: EndedIndex,
    /// Windows still active at the swap: start and weight (their end is unknown).
    active: Vec<(Timestamp, f64)>,
}

impl Batch {
    /// Other windows overlapping `w` (active ones end at `Timestamp::MAX`), with their weights.
    pub fn overlapping(&self, w: &ReadyWindow) -> Vec<(Window, f64)> {
        let win = w.window;
        let mut out: Vec<(Window, f64)> = self
            .active
            .iter()
            .filter(|a| a.0 <= win.end)
            .map(|&(start, weight)| (Window::new(start, Timestamp::MAX), weight))
            .collect();
        // Ended windows starting after `start - max_len` are the only ones that can reach it.
        let from = win.start - self.index.max_len;
        let lo = self.index.by_start.partition_point(|e| e.0 < from);
        for &(start, end, weight, other) in &self.index.by_start[lo..] {
            if start > win.end {
                break;
            }
            if other != w.id && end >= win.start {
                out.push((Window::new(start, end), weight));
            }
        }
        out
    }

    /// Hands the active-window buffer back for reuse.
    pub fn into_parts(self) -> (Vec<ReadyWindow>, Vec<(Timestamp, f64)>) {
        (self.ready, self.active)
    }
}

/// An ended window waiting for coverage, or a completed one remembered.
struct Known {
    window: Window,
    weight: f64,
    id: u64,
}

/// The completion side's book: pending (ended, not yet covered) and recently completed windows.
/// Only the completing thread touches it, under the completion lock, never under the registry's.
#[derive(Default)]
pub(crate) struct Completer {
    pending: Vec<(Known, Option<Timestamp>, Option<Callback>)>,
    done: VecDeque<Known>,
    next_id: u64,
    /// Recycled buffers for [`Registry::take`].
    pub spare: Vec<EndedWindow>,
    pub active: Vec<(Timestamp, f64)>,
}

impl Completer {
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Adds windows taken from the registry to the pending ones.
    pub fn receive(&mut self, mut ended: Vec<EndedWindow>) {
        for e in ended.drain(..) {
            let id = self.next_id;
            self.next_id += 1;
            self.pending.push((
                Known {
                    window: e.window,
                    weight: e.weight,
                    id,
                },
                e.first_token,
                e.callback,
            ));
        }
        self.spare = ended;
    }

    /// Takes the pending windows whose end satisfies `ready`, in order of end, with every window
    /// they may overlap (`active`: the windows active at the swap); marks them done and forgets
    /// completed windows that can no longer overlap anything (ended before every open window began
    /// and more than 2 s before `now`).
    pub fn take_ready(
        &mut self,
        ready: impl Fn(Timestamp) -> bool,
        active: Vec<(Timestamp, f64)>,
        now: Timestamp,
    ) -> Batch {
        let mut out: Vec<ReadyWindow> = Vec::new();
        let mut kept = Vec::with_capacity(self.pending.len());
        for (known, first_token, callback) in self.pending.drain(..) {
            if ready(known.window.end) {
                out.push(ReadyWindow {
                    window: known.window,
                    first_token,
                    weight: known.weight,
                    callback,
                    id: known.id,
                });
                self.done.push_back(known);
            } else {
                kept.push((known, first_token, callback));
            }
        }
        self.pending = kept;
        if out.is_empty() {
            return Batch {
                ready: out,
                index: EndedIndex::default(),
                active,
            };
        }
        out.sort_unstable_by_key(|w| (w.window.end, w.id));
        let index = EndedIndex::new(self);
        let open_start = active
            .iter()
            .map(|a| a.0)
            .chain(self.pending.iter().map(|p| p.0.window.start))
            .min()
            .unwrap_or(Timestamp::MAX);
        self.prune(open_start.min(now - DONE_SLACK));
        Batch {
            ready: out,
            index,
            active,
        }
    }

    fn prune(&mut self, horizon: Timestamp) {
        self.done.retain(|k| k.window.end >= horizon);
        while self.done.len() > MAX_DONE {
            self.done.pop_front();
        }
    }
}

/// Pending and completed windows sorted by start, for overlap queries during one completion.
#[derive(Default)]
struct EndedIndex {
    by_start: Vec<(Timestamp, Timestamp, f64, u64)>,
    max_len: Duration,
}

impl EndedIndex {
    /// Pending and done windows (the ones being completed are already in `done`).
    fn new(c: &Completer) -> Self {
        let mut by_start: Vec<_> = c
            .pending
            .iter()
            .map(|p| &p.0)
            .chain(&c.done)
            .map(|k| (k.window.start, k.window.end, k.weight, k.id))
            .collect();
        by_start.sort_unstable_by_key(|e| (e.0, e.3));
        let max_len = by_start
            .iter()
            .map(|e| e.1.saturating_duration_since(e.0))
            .max()
            .unwrap_or_default();
        EndedIndex { by_start, max_len }
    }
}
