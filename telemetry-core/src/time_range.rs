//! [`TimeRange`]: the inclusive time filter every query takes.

use crate::error::TimeRangeError;

/// An inclusive range of unix-second timestamps: `since <= timestamp <= until`, either bound
/// optional. Construct it with [`TimeRange::new`], which refuses `since > until` and non-finite
/// bounds, so a `TimeRange` in hand is always well formed.
///
/// ```
/// use telemetry_core::TimeRange;
///
/// let all = TimeRange::all();
/// assert!(all.contains(1_764_300_000.0));
///
/// let r = TimeRange::new(Some(100.0), Some(200.0)).unwrap();
/// assert!(r.contains(100.0) && r.contains(200.0) && !r.contains(200.5));
///
/// assert!(TimeRange::new(Some(2.0), Some(1.0)).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct TimeRange {
    since: Option<f64>,
    until: Option<f64>,
}

impl TimeRange {
    /// A range with the given bounds; errors if a bound is not finite or `since > until`.
    pub fn new(since: Option<f64>, until: Option<f64>) -> Result<Self, TimeRangeError> {
        if let Some(value) = since
            && !value.is_finite()
        {
            return Err(TimeRangeError::NotFinite {
                bound: "since",
                value,
            });
        }
        if let Some(value) = until
            && !value.is_finite()
        {
            return Err(TimeRangeError::NotFinite {
                bound: "until",
                value,
            });
        }
        if let (Some(since), Some(until)) = (since, until)
            && since > until
        {
            return Err(TimeRangeError::SinceAfterUntil { since, until });
        }
        Ok(TimeRange { since, until })
    }

    /// The unbounded range.
    pub const fn all() -> Self {
        TimeRange {
            since: None,
            until: None,
        }
    }

    /// `timestamp >= since`; errors if `since` is not finite.
    pub fn since(since: f64) -> Result<Self, TimeRangeError> {
        Self::new(Some(since), None)
    }

    /// `timestamp <= until`; errors if `until` is not finite.
    pub fn until(until: f64) -> Result<Self, TimeRangeError> {
        Self::new(None, Some(until))
    }

    /// The lower bound, if any.
    pub fn since_bound(&self) -> Option<f64> {
        self.since
    }

    /// The upper bound, if any.
    pub fn until_bound(&self) -> Option<f64> {
        self.until
    }

    /// Whether `timestamp` lies within the range (bounds included).
    pub fn contains(&self, timestamp: f64) -> bool {
        self.since.is_none_or(|s| timestamp >= s) && self.until.is_none_or(|u| timestamp <= u)
    }

    /// Whether neither bound is set.
    pub fn is_unbounded(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for TimeRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Raw {
            #[serde(default)]
            since: Option<f64>,
            #[serde(default)]
            until: Option<f64>,
        }
        let raw = Raw::deserialize(d)?;
        TimeRange::new(raw.since, raw.until).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_optional() {
        let r = TimeRange::new(Some(10.0), None).unwrap();
        assert!(r.contains(10.0) && r.contains(1e9) && !r.contains(9.999));
        let r = TimeRange::until(10.0).unwrap();
        assert!(r.contains(10.0) && r.contains(-1.0) && !r.contains(10.001));
        assert!(TimeRange::all().is_unbounded());
        let point = TimeRange::new(Some(5.0), Some(5.0)).unwrap();
        assert!(point.contains(5.0) && !point.contains(5.0001));
    }

    #[test]
    fn since_after_until_is_an_error_naming_both() {
        let err = TimeRange::new(Some(3.0), Some(2.0)).unwrap_err();
        assert_eq!(
            err,
            TimeRangeError::SinceAfterUntil {
                since: 3.0,
                until: 2.0
            }
        );
        let msg = err.to_string();
        assert!(msg.contains('3') && msg.contains('2'), "{msg}");
    }

    #[test]
    fn non_finite_bounds_are_errors() {
        assert!(matches!(
            TimeRange::since(f64::NAN),
            Err(TimeRangeError::NotFinite { bound: "since", .. })
        ));
        assert!(matches!(
            TimeRange::until(f64::INFINITY),
            Err(TimeRangeError::NotFinite { bound: "until", .. })
        ));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializing_checks_the_bounds() {
        let ok: TimeRange = serde_json::from_str(r#"{"since": 1.0}"#).unwrap();
        assert_eq!(ok.since_bound(), Some(1.0));
        assert!(serde_json::from_str::<TimeRange>(r#"{"since": 2.0, "until": 1.0}"#).is_err());
    }
}
