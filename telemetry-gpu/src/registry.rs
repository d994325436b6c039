//! The sampler's book of windows: begun (active), ended (pending completion) and recently completed
//! (kept so that later completions can split slices with them).

use std::collections::VecDeque;
use std::time::Duration;

use crate::{EnergyReading, Timestamp, Window};

/// What to do with a window's reading once it is known.
pub(crate) type Callback = Box<dyn FnOnce(EnergyReading) + Send + 'static>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Free,
    Active,
    Pending,
    Done,
}

struct Slot {
    state: SlotState,
    start: Timestamp,
    end: Timestamp,
    weight: f64,
    first_token: Option<Timestamp>,
    callback: Option<Callback>,
    /// Position in `Registry::active` while active.
    active_pos: usize,
}

/// How long a completed window is remembered for splitting with windows that begin later but
/// started (per the caller's `t0`) before it ended.
const DONE_SLACK: Duration = Duration::from_secs(2);
/// Upper bound on remembered completed windows.
const MAX_DONE: usize = 65_536;

/// A window taken out of the registry for completion.
pub(crate) struct ReadyWindow {
    pub window: Window,
    pub first_token: Option<Timestamp>,
    pub weight: f64,
    pub callback: Option<Callback>,
    /// Slot id, to leave the window itself out of its overlaps.
    id: usize,
}

/// Windows taken for completion, with a snapshot of every window they may overlap, so that the
/// overlaps are found after the registry's lock is released.
pub(crate) struct Batch {
    pub ready: Vec<ReadyWindow>,
    index: EndedIndex,
    /// Windows still active: start and weight (their end is unknown).
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
}

/// Windows by slot; slots are reused, so `begin`/`end` do not allocate once warm.
#[derive(Default)]
pub(crate) struct Registry {
    slots: Vec<Slot>,
    free: Vec<usize>,
    active: Vec<usize>,
    pending: Vec<usize>,
    done: VecDeque<usize>,
}

impl Registry {
    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    pub fn begin(&mut self, start: Timestamp, weight: f64) -> usize {
        let slot = Slot {
            state: SlotState::Active,
            start,
            end: Timestamp::MAX,
            weight,
            first_token: None,
            callback: None,
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
        let Some(slot) = self
            .slots
            .get_mut(id)
            .filter(|s| s.state == SlotState::Active)
        else {
            return;
        };
        slot.state = SlotState::Pending;
        slot.end = end.max(slot.start);
        slot.first_token = first_token;
        slot.callback = callback;
        let pos = slot.active_pos;
        self.active.swap_remove(pos);
        if let Some(&moved) = self.active.get(pos) {
            self.slots[moved].active_pos = pos;
        }
        self.pending.push(id);
    }

    /// Takes the pending windows whose end satisfies `ready`, in order of end, with a snapshot of
    /// the windows they may overlap; marks them done and forgets completed windows that can no
    /// longer overlap anything (ended before every open window began and more than 2 s before
    /// `now`). Cost under the lock: one pass over the remembered windows, no overlap search.
    pub fn take_ready(&mut self, ready: impl Fn(Timestamp) -> bool, now: Timestamp) -> Batch {
        let mut ids: Vec<usize> = Vec::new();
        let slots = &self.slots;
        self.pending.retain(|&id| {
            let take = ready(slots[id].end);
            if take {
                ids.push(id);
            }
            !take
        });
        if ids.is_empty() {
            return Batch {
                ready: Vec::new(),
                index: EndedIndex::default(),
                active: Vec::new(),
            };
        }
        ids.sort_unstable_by_key(|&id| (self.slots[id].end, id));
        let index = EndedIndex::new(self, &ids);
        let active = self
            .active
            .iter()
            .map(|&a| (self.slots[a].start, self.slots[a].weight))
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for &id in &ids {
            let slot = &mut self.slots[id];
            slot.state = SlotState::Done;
            out.push(ReadyWindow {
                window: Window::new(slot.start, slot.end),
                first_token: slot.first_token,
                weight: slot.weight,
                callback: slot.callback.take(),
                id,
            });
            self.done.push_back(id);
        }
        self.prune(now);
        Batch {
            ready: out,
            index,
            active,
        }
    }

    fn prune(&mut self, now: Timestamp) {
        let open_start = self
            .active
            .iter()
            .chain(&self.pending)
            .map(|&id| self.slots[id].start)
            .min()
            .unwrap_or(Timestamp::MAX);
        let horizon = open_start.min(now - DONE_SLACK);
        let slots = &mut self.slots;
        let free = &mut self.free;
        self.done.retain(|&id| {
            let keep = slots[id].end >= horizon;
            if !keep {
                slots[id].state = SlotState::Free;
                free.push(id);
            }
            keep
        });
        while self.done.len() > MAX_DONE {
            if let Some(id) = self.done.pop_front() {
                self.slots[id].state = SlotState::Free;
                self.free.push(id);
            }
        }
    }
}

/// Pending and completed windows sorted by start, for overlap queries during one completion.
#[derive(Default)]
struct EndedIndex {
    by_start: Vec<(Timestamp, Timestamp, f64, usize)>,
    max_len: Duration,
}

impl EndedIndex {
    /// `taking`: the windows being completed now, already out of `pending`, not yet in `done`.
    fn new(reg: &Registry, taking: &[usize]) -> Self {
        let mut by_start: Vec<_> = reg
            .pending
            .iter()
            .chain(&reg.done)
            .chain(taking)
            .map(|&id| {
                let s = &reg.slots[id];
                (s.start, s.end, s.weight, id)
            })
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
