//! [`Timestamp`], the [`Clock`] trait, [`SystemClock`] and (feature `mock`) `MockClock`.

use std::fmt;
use std::ops::{Add, Sub};
#[cfg(feature = "mock")]
use std::sync::Arc;
#[cfg(feature = "mock")]
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A monotonic instant: nanoseconds since its [`Clock`]'s origin.
///
/// Windows, samples and readings are all in this type. It is a plain `u64`, so it is cheap to
/// copy, compare and send; convert a [`std::time::Instant`] with [`Clock::timestamp_of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The clock's origin.
    pub const ZERO: Timestamp = Timestamp(0);
    /// The largest representable instant (about 584 years after the origin).
    pub const MAX: Timestamp = Timestamp(u64::MAX);

    /// From nanoseconds since the origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    /// From milliseconds since the origin (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis.saturating_mul(1_000_000))
    }

    /// From seconds since the origin; negative or NaN gives [`Timestamp::ZERO`], too large
    /// saturates.
    pub fn from_secs_f64(secs: f64) -> Self {
        // `as` saturates and maps NaN to 0, which is the documented behaviour.
        Timestamp((secs * 1e9).round() as u64)
    }

    /// From a duration since the origin (saturating).
    pub fn from_duration(since_origin: Duration) -> Self {
        Timestamp(u64::try_from(since_origin.as_nanos()).unwrap_or(u64::MAX))
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Seconds since the origin.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// Time since the origin.
    pub const fn as_duration(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    /// Saturating addition.
    fn add(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(Timestamp::from_duration(rhs).0))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    /// Saturating subtraction (never before the origin).
    fn sub(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(Timestamp::from_duration(rhs).0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6} s", self.as_secs_f64())
    }
}

/// A monotonic clock that the sampler, the backends and the callers share.
///
/// [`SystemClock`] is the real one; `MockClock` (feature `mock`) is advanced by tests so that
/// sampling, and so the joules, are exact.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, since the clock's origin.
    fn now(&self) -> Timestamp;

    /// Converts an [`Instant`] taken by a caller (e.g. at the start of an inference call) to this
    /// clock. Costs one `Instant` subtraction; no system call for [`SystemClock`].
    fn timestamp_of(&self, instant: Instant) -> Timestamp;
}

/// The real monotonic clock, based on [`Instant`]; its origin is when it was created.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }

    /// A clock whose origin is `origin`.
    pub fn with_origin(origin: Instant) -> Self {
        SystemClock { origin }
    }

    /// The origin.
    pub fn origin(&self) -> Instant {
        self.origin
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_duration(self.origin.elapsed())
    }

    fn timestamp_of(&self, instant: Instant) -> Timestamp {
        Timestamp::from_duration(instant.saturating_duration_since(self.origin))
    }
}

/// A clock that only moves when told to. Clones share the same time.
///
/// [`timestamp_of`](Clock::timestamp_of) maps an `Instant` taken `d` ago (in real time) to
/// `now() - d`, so code that takes real `Instant`s still lands near the mock's present.
#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
#[derive(Debug, Clone, Default)]
pub struct MockClock {
    nanos: Arc<AtomicU64>,
}

#[cfg(feature = "mock")]
impl MockClock {
    /// A clock at its origin.
    pub fn new() -> Self {
        MockClock::default()
    }

    /// A clock at `t`.
    pub fn starting_at(t: Timestamp) -> Self {
        let clock = MockClock::new();
        clock.set(t);
        clock
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = Timestamp::from_duration(by).as_nanos();
        // fetch_update cannot fail with a closure that always returns Some.
        let _ = self
            .nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(by))
            });
    }

    /// Sets the clock to `t` (tests may move it backwards; the sampler ignores samples that do
    /// not move forward).
    pub fn set(&self, t: Timestamp) {
        self.nanos.store(t.as_nanos(), Ordering::SeqCst);
    }
}

#[cfg(feature = "mock")]
impl Clock for MockClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.nanos.load(Ordering::SeqCst))
    }

    fn timestamp_of(&self, instant: Instant) -> Timestamp {
        self.now() - instant.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "mock")]
    #[test]
    fn mock_clock_moves_only_when_told_and_clones_share_time() {
        let clock = MockClock::new();
        let other = clock.clone();
        assert_eq!(clock.now(), Timestamp::ZERO);
        clock.advance(Duration::from_millis(250));
        assert_eq!(other.now(), Timestamp::from_millis(250));
        other.set(Timestamp::from_secs_f64(2.0));
        assert_eq!(clock.now().as_nanos(), 2_000_000_000);
    }

    #[test]
    fn system_clock_converts_instants_relative_to_its_origin() {
        let origin = Instant::now();
        let clock = SystemClock::with_origin(origin);
        let later = origin + Duration::from_millis(1500);
        assert_eq!(clock.timestamp_of(later), Timestamp::from_millis(1500));
        let before = origin
            .checked_sub(Duration::from_millis(5))
            .unwrap_or(origin);
        assert_eq!(clock.timestamp_of(before), Timestamp::ZERO);
    }

    #[test]
    fn timestamp_arithmetic_saturates() {
        let t = Timestamp::from_millis(10);
        assert_eq!(t - Duration::from_secs(1), Timestamp::ZERO);
        assert_eq!(Timestamp::MAX + Duration::from_secs(1), Timestamp::MAX);
        assert_eq!(Timestamp::from_secs_f64(-3.0), Timestamp::ZERO);
        assert_eq!(
            Timestamp::from_millis(30).saturating_duration_since(t),
            Duration::from_millis(20)
        );
        assert_eq!(t.to_string(), "0.010000 s");
    }
}
