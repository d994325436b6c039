//! [`Timeline`]: the bounded, per-device history of readings that energies are computed from.

use std::collections::VecDeque;

use crate::refresh::{RefreshTracker, StoredKnot};
use crate::{EnergyCurve, EnergySource, GpuReading, Timestamp};

/// How far back the counter-refresh search goes when a curve is cut out of the timeline.
const MAX_LOOKAROUND: usize = 4096;

/// The readings of one device, oldest first, at most `capacity` of them.
#[derive(Debug, Clone)]
pub struct DeviceTimeline {
    index: u32,
    samples: VecDeque<GpuReading>,
    /// The refresh detected between each sample and the previous one.
    refreshes: VecDeque<Option<StoredKnot>>,
    tracker: RefreshTracker,
    capacity: usize,
    last_refresh: Option<Timestamp>,
    /// Whether any reading carried a counter value (then coverage waits for counter refreshes).
    has_counter: bool,
    evicted: u64,
}

impl DeviceTimeline {
    fn new(index: u32, capacity: usize) -> Self {
        DeviceTimeline {
            index,
            samples: VecDeque::with_capacity(capacity.min(1 << 16)),
            refreshes: VecDeque::with_capacity(capacity.min(1 << 16)),
            tracker: RefreshTracker::default(),
            capacity: capacity.max(2),
            last_refresh: None,
            has_counter: false,
            evicted: 0,
        }
    }

    /// Device index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The readings, oldest first.
    pub fn samples(&self) -> impl ExactSizeIterator<Item = &GpuReading> + DoubleEndedIterator {
        self.samples.iter()
    }

    /// Number of readings held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether no reading is held.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Readings dropped because the buffer was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Time of the oldest reading.
    pub fn first_time(&self) -> Option<Timestamp> {
        self.samples.front().map(|s| s.timestamp)
    }

    /// Time of the newest reading.
    pub fn last_time(&self) -> Option<Timestamp> {
        self.samples.back().map(|s| s.timestamp)
    }

    /// Until when energy is settled by the best method available: where the device has a counter,
    /// the instant after which its last detected refresh happened (so a refresh lies beyond it;
    /// with the counter read every second, up to about a second behind); else the newest
    /// reading.
    pub fn covered_until(&self) -> Option<Timestamp> {
        let last = self.samples.back()?;
        if self.has_counter {
            self.last_refresh
        } else {
            Some(last.timestamp)
        }
    }

    /// Whether the newest reading is more than `stale_after` older than `now` (or there is none):
    /// the device stopped answering, whatever the other devices do.
    pub(crate) fn is_stale(&self, now: Timestamp, stale_after: std::time::Duration) -> bool {
        self.last_time().is_none_or(|last| last + stale_after < now)
    }

    /// Whether the readings held cover `[t0, t1]`, so that its energy is measured rather than
    /// guessed: a reading at or before `t0` (the window is not older than the kept history), no
    /// gap longer than `max_gap` between consecutive readings from there on through the window
    /// (the device did not stop answering inside it), and a reading at or after `t1` or at most
    /// `max_gap` before it (power is held past the newest reading for no longer than a gap).
    pub fn covers(&self, t0: Timestamp, t1: Timestamp, max_gap: std::time::Duration) -> bool {
        let t1 = t1.max(t0);
        // Readings at or before t0; the last of them starts the span.
        let before = self.samples.partition_point(|s| s.timestamp <= t0);
        let Some(lo) = before.checked_sub(1) else {
            return false;
        };
        // The first reading at or after t1 ends the span (or the newest one).
        let after = self.samples.partition_point(|s| s.timestamp < t1);
        let hi = after.min(self.samples.len() - 1);
        let mut prev = self.samples[lo].timestamp;
        for s in self.samples.range(lo + 1..=hi) {
            if s.timestamp.saturating_duration_since(prev) > max_gap {
                return false;
            }
            prev = s.timestamp;
        }
        t1.saturating_duration_since(prev) <= max_gap
    }

    fn push(&mut self, reading: GpuReading) -> bool {
        let refresh = if let Some(last) = self.samples.back() {
            if reading.timestamp <= last.timestamp {
                return false;
            }
            let refresh = self.tracker.observe(last, &reading);
            if let Some(r) = refresh {
                // The refresh happened after this instant, so the curve up to it is settled.
                self.last_refresh = Some(Timestamp::from_secs_f64(r.after));
            }
            refresh
        } else {
            self.tracker.start(&reading)
        };
        if reading.energy_mj.is_some() {
            self.has_counter = true;
        }
        if self.samples.len() >= self.capacity {
            self.samples.pop_front();
            if let Some(Some(evicted)) = self.refreshes.pop_front() {
                // Later refreshes belong to this run or newer ones.
                self.tracker.forget_before(evicted.run);
            }
            self.evicted += 1;
        }
        self.samples.push_back(reading);
        self.refreshes.push_back(refresh);
        true
    }

    /// The energy curve around `[t0, t1]`: built from the readings that cover the window plus
    /// enough on each side to find the surrounding counter refreshes. Outside the readings the
    /// nearest power is held: check [`covers`](Self::covers) before trusting a window's energy.
    pub fn curve(&self, t0: Timestamp, t1: Timestamp) -> EnergyCurve {
        let n = self.samples.len();
        if n == 0 {
            return EnergyCurve::default();
        }
        // Back to a refresh shown at or before t0 (so it was placed before t0), then back past
        // the instant after which it happened, so the slice's power covers its placement.
        let mut lo = self.samples.partition_point(|s| s.timestamp < t0);
        lo = lo.saturating_sub(1);
        let mut steps = 0;
        while lo > 0 && steps < MAX_LOOKAROUND && !self.changed_at(lo) {
            lo -= 1;
            steps += 1;
        }
        if let Some(Some(r)) = self.refreshes.get(lo) {
            let after = r.after;
            while lo > 0 && self.samples[lo].timestamp.as_secs_f64() > after {
                lo -= 1;
            }
        }
        lo = lo.saturating_sub(1);
        let mut hi = self
            .samples
            .partition_point(|s| s.timestamp <= t1)
            .min(n - 1);
        steps = 0;
        while hi + 1 < n && steps < MAX_LOOKAROUND && !self.refresh_after(hi, t1) {
            hi += 1;
            steps += 1;
        }
        EnergyCurve::from_parts(
            self.samples
                .range(lo..=hi)
                .zip(self.refreshes.range(lo..=hi).copied()),
            &self.tracker,
        )
    }

    /// Whether a refresh was detected between readings `i - 1` and `i`, at or after `t`.
    fn refresh_after(&self, i: usize, t: Timestamp) -> bool {
        matches!(self.refreshes.get(i), Some(Some(r)) if r.after >= t.as_secs_f64())
    }

    /// Whether a refresh was detected between readings `i - 1` and `i`.
    fn changed_at(&self, i: usize) -> bool {
        matches!(self.refreshes.get(i), Some(Some(_)))
    }

    /// The device's state over `[t0, t1]` from the readings inside it; when there is none, from
    /// the newest reading at or before `t1` (or the oldest one), so that short windows still get
    /// the device's state.
    pub(crate) fn state_in(&self, t0: Timestamp, t1: Timestamp) -> DeviceState {
        let start = self.samples.partition_point(|s| s.timestamp < t0);
        let end = self.samples.partition_point(|s| s.timestamp <= t1);
        let (range, inside) = if end > start {
            (start..end, end - start)
        } else {
            let i = end.saturating_sub(1);
            (i..(i + 1).min(self.samples.len()), 0)
        };
        let mut state = DeviceState {
            inside,
            ..DeviceState::default()
        };
        for s in self.samples.range(range) {
            state.peak_power_w = state.peak_power_w.max(s.power_w());
            if let Some(mem) = s.memory_used_bytes {
                state.peak_memory_used_bytes =
                    Some(state.peak_memory_used_bytes.map_or(mem, |p| p.max(mem)));
            }
            if let Some(util) = s.utilization_pct.map(f64::from) {
                state.peak_utilization_pct =
                    Some(state.peak_utilization_pct.map_or(util, |p| p.max(util)));
                state.utilization_sum += util;
                state.utilization_count += 1;
            }
            if let Some(temp) = s.temperature_c {
                state.temperature_sum += f64::from(temp);
                state.temperature_count += 1;
            }
            state.count += 1;
        }
        state
    }
}

/// A device's sampled state over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct DeviceState {
    /// Readings inside the window.
    pub inside: usize,
    /// Readings summarized (at least one when the device has any).
    pub count: usize,
    pub peak_power_w: f64,
    /// `None` when no summarized reading had the field.
    pub peak_memory_used_bytes: Option<u64>,
    pub peak_utilization_pct: Option<f64>,
    pub utilization_sum: f64,
    pub utilization_count: usize,
    pub temperature_sum: f64,
    pub temperature_count: usize,
}

/// The bounded history of readings of every sampled device.
///
/// A reading whose timestamp does not move its device's history forward is ignored. When a
/// device's buffer is full, its oldest reading is dropped.
#[derive(Debug, Clone)]
pub struct Timeline {
    devices: Vec<DeviceTimeline>,
}

impl Timeline {
    /// An empty timeline for `devices`, holding at most `capacity_per_device` readings each
    /// (at least 2).
    pub fn new(devices: &[u32], capacity_per_device: usize) -> Self {
        Timeline {
            devices: devices
                .iter()
                .map(|&i| DeviceTimeline::new(i, capacity_per_device))
                .collect(),
        }
    }

    /// Adds a reading; `false` if its device is not in the timeline or it is not newer than the
    /// device's last reading.
    pub fn push(&mut self, reading: GpuReading) -> bool {
        self.devices
            .iter_mut()
            .find(|d| d.index == reading.device)
            .is_some_and(|d| d.push(reading))
    }

    /// The devices' histories, in the order given to [`Timeline::new`].
    pub fn devices(&self) -> &[DeviceTimeline] {
        &self.devices
    }

    /// One device's history.
    pub fn device(&self, index: u32) -> Option<&DeviceTimeline> {
        self.devices.iter().find(|d| d.index == index)
    }

    /// Whether no device has a reading.
    pub fn is_empty(&self) -> bool {
        self.devices.iter().all(DeviceTimeline::is_empty)
    }

    /// The newest reading's time over all devices.
    pub fn last_time(&self) -> Option<Timestamp> {
        self.devices.iter().filter_map(|d| d.last_time()).max()
    }

    /// Until when every device's energy is known from its best method (the earliest
    /// [`DeviceTimeline::covered_until`]); `None` if some device has nothing yet.
    pub fn covered_until(&self) -> Option<Timestamp> {
        self.devices
            .iter()
            .map(DeviceTimeline::covered_until)
            .try_fold(Timestamp::MAX, |acc, c| c.map(|c| acc.min(c)))
            .filter(|_| !self.devices.is_empty())
    }

    /// Like [`covered_until`](Self::covered_until), ignoring devices whose newest reading is more
    /// than `stale_after` older than `now` (a lost or failing device must not hold every window
    /// back; its data cannot cover them anyway). When every device is stale, nothing more is
    /// coming: every window is as covered as it will be ([`Timestamp::MAX`]).
    pub(crate) fn covered_until_live(
        &self,
        now: Timestamp,
        stale_after: std::time::Duration,
    ) -> Option<Timestamp> {
        self.devices
            .iter()
            .filter(|d| !d.is_stale(now, stale_after))
            .map(DeviceTimeline::covered_until)
            .try_fold(Timestamp::MAX, |acc, c| c.map(|c| acc.min(c)))
    }

    /// One curve per device (same order as [`devices`](Self::devices)) around `[t0, t1]`.
    pub fn curves(&self, t0: Timestamp, t1: Timestamp) -> Vec<EnergyCurve> {
        self.devices.iter().map(|d| d.curve(t0, t1)).collect()
    }
}

impl EnergySource for Timeline {
    /// Builds the curves for the window on every call: for many windows over one timeline, build
    /// them once with [`Timeline::curves`] and use the `Vec<EnergyCurve>` instead.
    fn energy_between(&self, t0: Timestamp, t1: Timestamp) -> f64 {
        self.curves(t0, t1).energy_between(t0, t1)
    }
}
