//! Shared rig for the mock-backed tests: a manual sampler on a mock clock, ticked by the test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use telemetry_gpu::{
    Clock, EnergyReading, GpuSampler, MockBackend, MockClock, MockDevice, SamplerConfig, Timestamp,
};

/// Milliseconds as a timestamp.
pub fn ms(v: u64) -> Timestamp {
    Timestamp::from_millis(v)
}

/// Seconds as a timestamp.
pub fn secs(v: f64) -> Timestamp {
    Timestamp::from_secs_f64(v)
}

/// `|a - b| <= rel * |b|` (or `<= 1e-9` around 0).
pub fn assert_close(actual: f64, expected: f64, rel: f64, what: &str) {
    let tol = (expected.abs() * rel).max(1e-9);
    assert!(
        (actual - expected).abs() <= tol,
        "{what}: got {actual}, expected {expected} ± {tol}"
    );
}

/// A manual sampler over mock devices, sampled every `interval` as the test advances time.
pub struct Rig {
    pub clock: MockClock,
    pub backend: MockBackend,
    pub sampler: GpuSampler,
    pub interval: Duration,
}

impl Rig {
    pub fn new(devices: Vec<MockDevice>) -> Self {
        Rig::with_interval(devices, Duration::from_millis(100))
    }

    pub fn with_interval(devices: Vec<MockDevice>, interval: Duration) -> Self {
        let config = SamplerConfig {
            interval,
            manual: true,
            ..SamplerConfig::default()
        };
        Rig::with_config(devices, config)
    }

    pub fn with_config(devices: Vec<MockDevice>, config: SamplerConfig) -> Self {
        let clock = MockClock::new();
        let backend = MockBackend::new(devices);
        let interval = config.interval;
        let sampler =
            GpuSampler::with_config(backend.clone(), Arc::new(clock.clone()), config).unwrap();
        Rig {
            clock,
            backend,
            sampler,
            interval,
        }
    }

    /// Samples on the interval grid until the clock reaches `t` (inclusive).
    pub fn tick_to(&self, t: Timestamp) {
        loop {
            let next = self.clock.now() + self.interval;
            if next > t {
                self.clock.set(t.max(self.clock.now()));
                return;
            }
            self.clock.set(next);
            self.sampler.sample_now();
        }
    }

    /// Samples at each of the given instants.
    pub fn sample_at(&self, times: impl IntoIterator<Item = Timestamp>) {
        for t in times {
            self.clock.set(t);
            self.sampler.sample_now();
        }
    }

    /// Exact energy of device `d` over `[t0, t1]`.
    pub fn truth(&self, d: u32, t0: Timestamp, t1: Timestamp) -> f64 {
        self.backend.true_energy(d, t0, t1)
    }
}

/// Collects readings delivered to callbacks, tagged, in delivery order.
#[derive(Clone, Default)]
pub struct Sink(pub Arc<Mutex<Vec<(&'static str, EnergyReading)>>>);

impl Sink {
    pub fn callback(&self, tag: &'static str) -> impl FnOnce(EnergyReading) + Send + 'static {
        let sink = Arc::clone(&self.0);
        move |r| sink.lock().unwrap().push((tag, r))
    }

    pub fn tags(&self) -> Vec<&'static str> {
        self.0.lock().unwrap().iter().map(|(t, _)| *t).collect()
    }

    pub fn get(&self, tag: &str) -> Option<EnergyReading> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, r)| r.clone())
    }
}
