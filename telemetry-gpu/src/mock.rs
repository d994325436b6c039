//! [`MockBackend`]: scripted GPUs for tests and demos (feature `mock`).
//!
//! Each [`MockDevice`] replays a [`PowerProfile`] against the sampler's clock. Its energy counter
//! shows the exact energy of the profile *as of its last refresh* (every 100 ms by default, like an
//! H100), rounded to millijoules, so tests can compare the sampler's joules with
//! [`PowerProfile::energy_between`]. Counters can be unsupported, start high, reset or wrap; reads
//! can fail on demand and devices can be lost.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::{BackendError, Clock, DeviceInfo, GpuBackend, GpuReading, Timestamp};

/// A scripted power draw over time, in watts.
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
#[derive(Debug, Clone, PartialEq)]
pub enum PowerProfile {
    /// The same power forever.
    Constant(f64),
    /// `(from, watts)`: from each instant on, that power (before the first instant: the first
    /// power). Instants must be increasing.
    Steps(Vec<(Timestamp, f64)>),
    /// `(at, watts)` points joined linearly; the first/last power holds outside them. Instants must
    /// be increasing.
    Trace(Vec<(Timestamp, f64)>),
}

impl PowerProfile {
    /// The power at `t`, watts.
    pub fn power_at(&self, t: Timestamp) -> f64 {
        match self {
            PowerProfile::Constant(w) => *w,
            PowerProfile::Steps(steps) => {
                let i = steps.partition_point(|s| s.0 <= t);
                steps
                    .get(i.saturating_sub(1))
                    .map_or(0.0, |&(_, watts)| watts)
            }
            PowerProfile::Trace(points) => {
                let i = points.partition_point(|p| p.0 <= t);
                match (points.get(i.wrapping_sub(1)), points.get(i)) {
                    (Some(a), Some(b)) => {
                        let f = t.saturating_duration_since(a.0).as_secs_f64()
                            / b.0.saturating_duration_since(a.0).as_secs_f64();
                        a.1 + (b.1 - a.1) * f
                    }
                    (Some(a), None) => a.1,
                    (None, Some(b)) => b.1,
                    (None, None) => 0.0,
                }
            }
        }
    }

    /// The exact energy of the profile over `[t0, t1]`, joules (0 when `t1 <= t0`).
    pub fn energy_between(&self, t0: Timestamp, t1: Timestamp) -> f64 {
        if t1 <= t0 {
            return 0.0;
        }
        let points: &[(Timestamp, f64)] = match self {
            PowerProfile::Constant(w) => return w * (t1.as_secs_f64() - t0.as_secs_f64()),
            PowerProfile::Steps(p) | PowerProfile::Trace(p) => p,
        };
        // Integrate piece by piece between the profile's own breakpoints.
        let mut cuts: Vec<Timestamp> = vec![t0];
        cuts.extend(points.iter().map(|p| p.0).filter(|&t| t > t0 && t < t1));
        cuts.push(t1);
        cuts.windows(2)
            .map(|c| {
                let secs = c[1].as_secs_f64() - c[0].as_secs_f64();
                match self {
                    PowerProfile::Steps(_) => self.power_at(c[0]) * secs,
                    _ => (self.power_at(c[0]) + self.power_at(c[1])) / 2.0 * secs,
                }
            })
            .sum()
    }
}

/// One scripted GPU. Build with [`MockDevice::new`] and the setters.
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
#[derive(Debug, Clone, PartialEq)]
pub struct MockDevice {
    /// Name reported by [`GpuBackend::devices`].
    pub name: String,
    /// Total memory, bytes.
    pub memory_total_bytes: u64,
    /// The power draw.
    pub profile: PowerProfile,
    /// Counter refresh period; `None` for a device without an energy counter.
    pub counter_refresh: Option<Duration>,
    /// First counter refresh instant (then every `counter_refresh`).
    pub counter_phase: Duration,
    /// Counter value at the origin, millijoules.
    pub counter_start_mj: u64,
    /// Instants at which the counter restarts from 0.
    pub counter_resets: Vec<Timestamp>,
    /// The counter wraps to 0 at this value, millijoules.
    pub counter_wrap_mj: Option<u64>,
    /// Whether the instantaneous power field is reported.
    pub instant_power: bool,
    /// Reported utilization, percent (`None`: not supported, as on a MIG instance).
    pub utilization_pct: Option<u32>,
    /// Reported memory in use, bytes (`None`: not supported).
    pub memory_used_bytes: Option<u64>,
    /// Reported temperature, °C (`None`: not supported).
    pub temperature_c: Option<u32>,
}

impl MockDevice {
    /// An H100-like device drawing `profile`: counter refreshing every 100 ms from the origin,
    /// instant power reported, 80 GB, 50 % utilization, 40 GB used, 60 °C.
    pub fn new(profile: PowerProfile) -> Self {
        MockDevice {
            name: "Mock H100".to_owned(),
            memory_total_bytes: 80_000_000_000,
            profile,
            counter_refresh: Some(Duration::from_millis(100)),
            counter_phase: Duration::ZERO,
            counter_start_mj: 0,
            counter_resets: Vec::new(),
            counter_wrap_mj: None,
            instant_power: true,
            utilization_pct: Some(50),
            memory_used_bytes: Some(40_000_000_000),
            temperature_c: Some(60),
        }
    }

    /// Counter refresh period and the instant of the first refresh.
    #[must_use]
    pub fn counter_refresh(mut self, period: Duration, phase: Duration) -> Self {
        self.counter_refresh = Some(period);
        self.counter_phase = phase;
        self
    }

    /// No energy counter (pre-Volta): energy must come from power integration.
    #[must_use]
    pub fn without_counter(mut self) -> Self {
        self.counter_refresh = None;
        self
    }

    /// Counter value at the origin, millijoules.
    #[must_use]
    pub fn counter_start_mj(mut self, start: u64) -> Self {
        self.counter_start_mj = start;
        self
    }

    /// The counter restarts from 0 at `at`.
    #[must_use]
    pub fn reset_counter_at(mut self, at: Timestamp) -> Self {
        self.counter_resets.push(at);
        self.counter_resets.sort_unstable();
        self
    }

    /// The counter wraps to 0 when it reaches `modulus` millijoules.
    #[must_use]
    pub fn wrap_counter_at(mut self, modulus: u64) -> Self {
        self.counter_wrap_mj = Some(modulus.max(1));
        self
    }

    /// Reported utilization, memory in use and temperature.
    #[must_use]
    pub fn state(
        mut self,
        utilization_pct: u32,
        memory_used_bytes: u64,
        temperature_c: u32,
    ) -> Self {
        self.utilization_pct = Some(utilization_pct);
        self.memory_used_bytes = Some(memory_used_bytes);
        self.temperature_c = Some(temperature_c);
        self
    }

    /// Utilization, memory and temperature not reported (as a MIG instance answers NotSupported
    /// for utilization): readings carry power and the counter only.
    #[must_use]
    pub fn without_state(mut self) -> Self {
        self.utilization_pct = None;
        self.memory_used_bytes = None;
        self.temperature_c = None;
        self
    }

    /// The counter value at `t`, millijoules (`None` without a counter).
    pub fn counter_at(&self, t: Timestamp) -> Option<u64> {
        let period = Timestamp::from_duration(self.counter_refresh?)
            .as_nanos()
            .max(1);
        let phase = Timestamp::from_duration(self.counter_phase).as_nanos();
        let Some(since_phase) = t.as_nanos().checked_sub(phase) else {
            return Some(self.wrap(self.counter_start_mj));
        };
        let refresh = Timestamp::from_nanos(phase + since_phase / period * period);
        let reset = self.counter_resets.iter().rev().find(|&&r| r <= refresh);
        let value = match reset {
            Some(&r) => mj(self.profile.energy_between(r, refresh)),
            None => self
                .counter_start_mj
                .saturating_add(mj(self.profile.energy_between(Timestamp::ZERO, refresh))),
        };
        Some(self.wrap(value))
    }

    fn wrap(&self, value: u64) -> u64 {
        self.counter_wrap_mj.map_or(value, |m| value % m)
    }
}

fn mj(joules: f64) -> u64 {
    // Profiles are non-negative; `as` saturates.
    (joules * 1000.0).round() as u64
}

fn mw(watts: f64) -> u32 {
    (watts * 1000.0).round() as u32
}

#[derive(Debug)]
struct MockState {
    devices: Vec<MockDevice>,
    failures: Vec<VecDeque<BackendError>>,
    lost: Vec<bool>,
    reads: u64,
    counter_reads: u64,
}

/// Scripted GPUs. Clones share their state, so a test keeps a clone to inject failures while the
/// sampler owns the other.
///
/// ```
/// use telemetry_gpu::{Clock, GpuBackend, MockBackend, MockClock, MockDevice, PowerProfile};
/// use std::time::Duration;
///
/// let clock = MockClock::new();
/// let mut gpu = MockBackend::new(vec![MockDevice::new(PowerProfile::Constant(700.0))]);
/// clock.advance(Duration::from_millis(250));
/// let reading = gpu.read(0, &clock)?;
/// assert_eq!(reading.energy_mj, Some(140_000)); // 700 W up to the refresh at 200 ms
/// assert_eq!(reading.power_mw, 700_000);
/// # Ok::<(), telemetry_gpu::BackendError>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
#[derive(Debug, Clone)]
pub struct MockBackend {
    state: Arc<Mutex<MockState>>,
}

impl MockBackend {
    /// A backend with these devices (index = position).
    pub fn new(devices: Vec<MockDevice>) -> Self {
        let n = devices.len();
        MockBackend {
            state: Arc::new(Mutex::new(MockState {
                devices,
                failures: vec![VecDeque::new(); n],
                lost: vec![false; n],
                reads: 0,
                counter_reads: 0,
            })),
        }
    }

    /// One H100-like device drawing `profile`.
    pub fn single(profile: PowerProfile) -> Self {
        MockBackend::new(vec![MockDevice::new(profile)])
    }

    fn lock(&self) -> MutexGuard<'_, MockState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next `count` reads of `device` fail with `error`.
    pub fn fail_next_reads(&self, device: u32, count: usize, error: BackendError) {
        if let Some(q) = self.lock().failures.get_mut(device as usize) {
            q.extend(std::iter::repeat_n(error, count));
        }
    }

    /// Every read of `device` fails with [`BackendError::DeviceLost`] until
    /// [`restore_device`](Self::restore_device).
    pub fn lose_device(&self, device: u32) {
        if let Some(l) = self.lock().lost.get_mut(device as usize) {
            *l = true;
        }
    }

    /// Undoes [`lose_device`](Self::lose_device).
    pub fn restore_device(&self, device: u32) {
        if let Some(l) = self.lock().lost.get_mut(device as usize) {
            *l = false;
        }
    }

    /// Reads attempted so far, all devices, with or without the counter.
    pub fn reads(&self) -> u64 {
        self.lock().reads
    }

    /// Reads that included the energy counter (attempted), all devices: the sampler reads it only
    /// every [`SamplerConfig::counter_interval`](crate::SamplerConfig::counter_interval).
    pub fn counter_reads(&self) -> u64 {
        self.lock().counter_reads
    }

    /// The exact energy `device` drew over `[t0, t1]` (0 for an unknown device).
    pub fn true_energy(&self, device: u32, t0: Timestamp, t1: Timestamp) -> f64 {
        self.lock()
            .devices
            .get(device as usize)
            .map_or(0.0, |d| d.profile.energy_between(t0, t1))
    }
}

impl GpuBackend for MockBackend {
    fn vendor(&self) -> &'static str {
        "mock"
    }

    fn devices(&self) -> Result<Vec<DeviceInfo>, BackendError> {
        Ok(self
            .lock()
            .devices
            .iter()
            .zip(0_u32..)
            .map(|(d, index)| DeviceInfo {
                index,
                name: d.name.clone(),
                uuid: format!("GPU-mock-{index:04}"),
                memory_total_bytes: d.memory_total_bytes,
                energy_counter_supported: d.counter_refresh.is_some(),
            })
            .collect())
    }

    fn read(&mut self, index: u32, clock: &dyn Clock) -> Result<GpuReading, BackendError> {
        self.read_inner(index, clock, true)
    }

    fn read_without_counter(
        &mut self,
        index: u32,
        clock: &dyn Clock,
    ) -> Result<GpuReading, BackendError> {
        self.read_inner(index, clock, false)
    }
}

impl MockBackend {
    fn read_inner(
        &mut self,
        index: u32,
        clock: &dyn Clock,
        counter: bool,
    ) -> Result<GpuReading, BackendError> {
        let t = clock.now();
        let mut state = self.lock();
        state.reads += 1;
        if counter {
            state.counter_reads += 1;
        }
        let count = u32::try_from(state.devices.len()).unwrap_or(u32::MAX);
        let i = index as usize;
        if i >= state.devices.len() {
            return Err(BackendError::NoSuchDevice { index, count });
        }
        if state.lost[i] {
            return Err(BackendError::DeviceLost { device: index });
        }
        if let Some(error) = state.failures[i].pop_front() {
            return Err(error);
        }
        let d = &state.devices[i];
        let power = mw(d.profile.power_at(t));
        Ok(GpuReading {
            device: index,
            timestamp: t,
            energy_mj: if counter { d.counter_at(t) } else { None },
            power_mw: power,
            instant_power_mw: d.instant_power.then_some(power),
            utilization_pct: d.utilization_pct,
            memory_used_bytes: d.memory_used_bytes,
            temperature_c: d.temperature_c,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Timestamp {
        Timestamp::from_millis(v)
    }

    #[test]
    fn profiles_integrate_exactly() {
        let steps = PowerProfile::Steps(vec![(ms(0), 100.0), (ms(1000), 300.0)]);
        assert!((steps.energy_between(ms(500), ms(1500)) - 200.0).abs() < 1e-9);
        let trace = PowerProfile::Trace(vec![(ms(0), 0.0), (ms(1000), 100.0)]);
        assert!((trace.energy_between(ms(0), ms(1000)) - 50.0).abs() < 1e-9);
        assert!((trace.energy_between(ms(1000), ms(2000)) - 100.0).abs() < 1e-9);
        assert!((trace.power_at(ms(250)) - 25.0).abs() < 1e-9);
        assert_eq!(
            PowerProfile::Constant(5.0).energy_between(ms(2), ms(1)),
            0.0
        );
    }

    #[test]
    fn counter_shows_energy_as_of_last_refresh_with_resets_and_wraps() {
        let d = MockDevice::new(PowerProfile::Constant(1000.0))
            .counter_refresh(Duration::from_millis(100), Duration::from_millis(30))
            .counter_start_mj(5);
        assert_eq!(d.counter_at(ms(10)), Some(5));
        assert_eq!(d.counter_at(ms(129)), Some(5 + 30_000));
        assert_eq!(d.counter_at(ms(130)), Some(5 + 130_000));
        let reset = d.clone().reset_counter_at(ms(200));
        assert_eq!(reset.counter_at(ms(235)), Some(30_000));
        let wrapped = d.wrap_counter_at(100_000);
        assert_eq!(wrapped.counter_at(ms(130)), Some(30_005));
        assert_eq!(
            MockDevice::new(PowerProfile::Constant(1.0))
                .without_counter()
                .counter_at(ms(1)),
            None
        );
    }

    #[test]
    fn injected_failures_and_lost_devices_are_reported() {
        let clock = crate::MockClock::new();
        let mut gpu = MockBackend::single(PowerProfile::Constant(100.0));
        let handle = gpu.clone();
        handle.fail_next_reads(
            0,
            1,
            BackendError::ReadFailed {
                device: 0,
                what: "power",
                reason: "timeout".into(),
            },
        );
        assert!(matches!(
            gpu.read(0, &clock),
            Err(BackendError::ReadFailed { .. })
        ));
        assert!(gpu.read(0, &clock).is_ok());
        handle.lose_device(0);
        assert_eq!(
            gpu.read(0, &clock),
            Err(BackendError::DeviceLost { device: 0 })
        );
        handle.restore_device(0);
        assert!(gpu.read(0, &clock).is_ok());
        assert_eq!(
            gpu.read(3, &clock),
            Err(BackendError::NoSuchDevice { index: 3, count: 1 })
        );
        assert_eq!(handle.reads(), 5);
    }
}
