//! Time arguments (`--since`, `--until`) and durations (`--older-than`), parsed with `jiff`.
//!
//! A time is one of:
//! - RFC 3339 with any offset, e.g. `2026-11-28T04:00:00Z`, `2026-11-28T10:00:00+05:00`, lowercase
//!   `t`/`z` too; without an offset (`2026-11-28 04:00:00`, `2026-11-28`) it is UTC;
//! - unix seconds, e.g. `1764302400` or `1764302400.5`;
//! - a duration before now, e.g. `90s`, `15m`, `2h`, `7d`, `1h 30m`, `2 days ago`.
//!
//! Every time lies between 1970 and the year 9999: anything else is refused, never printed
//! as a 300-digit number.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Span, SpanRelativeTo, SpanRound, Timestamp, Unit};

/// What a time argument accepts, for error messages and `--help`.
pub const TIME_FORMS: &str = "RFC 3339 (2026-11-28T04:00:00Z, 2026-11-28T10:00:00+05:00), unix seconds (1764302400) or a duration before now (90s, 15m, 2h, 7d)";

/// The latest time accepted, unix seconds: 9999-12-30T22:00:00Z, the latest `jiff` timestamp.
pub const MAX_UNIX: f64 = 253_402_207_200.0;

/// Seconds since the unix epoch, now.
pub fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Parses a time argument to unix seconds, resolving relative durations against `now`.
pub fn parse_time_at(value: &str, now: f64) -> Result<f64, String> {
    let text = value.trim();
    if text.is_empty() {
        return Err(format!("empty time; expected {TIME_FORMS}"));
    }
    let at = if let Ok(seconds) = text.parse::<f64>() {
        if !seconds.is_finite() {
            return Err(format!("`{text}` is not a finite number of unix seconds"));
        }
        seconds
    } else if let Ok(at) = text.parse::<Timestamp>() {
        unix_seconds(at)
    } else if let Ok(civil) = text.parse::<DateTime>() {
        // No offset: UTC.
        let at = civil
            .to_zoned(TimeZone::UTC)
            .map_err(|e| format!("`{text}` is not a valid time: {e}"))?;
        unix_seconds(at.timestamp())
    } else {
        match text.parse::<Span>() {
            Ok(span) => {
                if span.is_negative() && !text.ends_with("ago") {
                    return Err(format!("`{text}` is negative; give a duration before now"));
                }
                now - span_seconds(text, span.abs())?
            }
            Err(_) => return Err(format!("`{text}` is not a time; expected {TIME_FORMS}")),
        }
    };
    if at < 0.0 {
        return Err(format!("`{text}` is before 1970"));
    }
    if at > MAX_UNIX {
        return Err(format!(
            "`{text}` is later than 9999-12-30T22:00:00Z, the latest time accepted"
        ));
    }
    Ok(at)
}

/// Clap value parser for `--since` / `--until`: relative times are resolved against the clock
/// when the command line is parsed.
pub fn parse_time(value: &str) -> Result<f64, String> {
    parse_time_at(value, now_unix())
}

/// Parses a duration such as `30d` or `12h` that reaches back from `now`: longer than zero, and
/// not further back than 1970.
pub fn parse_duration_at(value: &str, now: f64) -> Result<Duration, String> {
    let text = value.trim();
    let span = text
        .parse::<Span>()
        .map_err(|e| format!("`{text}` is not a duration like 90s, 15m, 2h or 7d ({e})"))?;
    if span.is_negative() {
        return Err(format!("`{text}` is negative; give a positive duration"));
    }
    let seconds = span_seconds(text, span)?;
    if seconds <= 0.0 {
        return Err(format!("`{text}` is zero; give a positive duration"));
    }
    if seconds > now {
        return Err(format!(
            "`{text}` reaches back before 1970, older than any record (use `clear` to delete everything)"
        ));
    }
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

/// Clap value parser for `--older-than`, against the clock when the command line is parsed.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    parse_duration_at(value, now_unix())
}

/// Formats unix seconds as RFC 3339 (UTC, whole seconds), or the number when out of range (in
/// scientific notation when huge).
pub fn format_time(unix: f64) -> String {
    if !(0.0..=MAX_UNIX).contains(&unix) {
        return if unix.abs() < 1e12 {
            format!("{unix}")
        } else {
            format!("{unix:e}")
        };
    }
    // In range, so the whole seconds fit an i64 and a Timestamp.
    match Timestamp::from_second(unix.floor() as i64) {
        Ok(at) => at.to_string(),
        Err(_) => format!("{unix}"),
    }
}

/// Formats a duration in the friendly form it is typed in: `30d`, `1h 30m`, `1m 30s`.
pub fn format_duration(duration: Duration) -> String {
    let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
    Span::new()
        .try_milliseconds(millis)
        .and_then(|span| span.round(SpanRound::new().largest(Unit::Day).days_are_24_hours()))
        .map_or_else(
            |_| format!("{}s", duration.as_secs()),
            |span| format!("{span:#}"),
        )
}

fn unix_seconds(at: Timestamp) -> f64 {
    at.as_second() as f64 + f64::from(at.subsec_nanosecond()) / 1e9
}

/// A span's length in seconds, days and weeks counting 24 hours; months and years, whose length
/// varies, are refused.
fn span_seconds(text: &str, span: Span) -> Result<f64, String> {
    span.total((Unit::Second, SpanRelativeTo::days_are_24_hours()))
        .map_err(|_| {
            format!(
                "`{text}`: months and years have no fixed length; give days or weeks (90d, 12w)"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_764_302_400.0; // 2025-11-28T04:00:00Z

    #[test]
    fn unix_seconds_pass_through() {
        assert_eq!(parse_time_at("1764302400", NOW), Ok(1_764_302_400.0));
        assert_eq!(parse_time_at(" 12.5 ", NOW), Ok(12.5));
    }

    #[test]
    fn rfc3339_with_offsets_lowercase_and_without_zone() {
        assert_eq!(parse_time_at("2025-11-28T04:00:00Z", NOW), Ok(NOW));
        assert_eq!(parse_time_at("2025-11-28t04:00:00z", NOW), Ok(NOW));
        assert_eq!(parse_time_at("2025-11-28T09:00:00+05:00", NOW), Ok(NOW));
        assert_eq!(parse_time_at("2025-11-27T23:30:00-04:30", NOW), Ok(NOW));
        assert_eq!(parse_time_at("2025-11-28 04:00:00", NOW), Ok(NOW));
        assert_eq!(parse_time_at("2025-11-28", NOW), Ok(NOW - 4.0 * 3_600.0));
        assert_eq!(parse_time_at("2025-11-28T04:00:01.5Z", NOW), Ok(NOW + 1.5));
    }

    #[test]
    fn relative_durations_count_back_from_now() {
        assert_eq!(parse_time_at("90s", NOW), Ok(NOW - 90.0));
        assert_eq!(parse_time_at("15m", NOW), Ok(NOW - 900.0));
        assert_eq!(parse_time_at("2h", NOW), Ok(NOW - 7_200.0));
        assert_eq!(parse_time_at("7d", NOW), Ok(NOW - 604_800.0));
        assert_eq!(parse_time_at("1h 30m", NOW), Ok(NOW - 5_400.0));
        assert_eq!(parse_time_at("2 days ago", NOW), Ok(NOW - 172_800.0));
    }

    #[test]
    fn bad_times_say_what_was_wrong() {
        let err = parse_time_at("yesterday", NOW).unwrap_err();
        assert!(
            err.contains("yesterday") && err.contains("RFC 3339"),
            "{err}"
        );
        assert!(parse_time_at("", NOW).is_err());
        assert!(parse_time_at("-5", NOW).unwrap_err().contains("1970"));
        assert!(parse_time_at("-5m", NOW).unwrap_err().contains("negative"));
        assert!(parse_time_at("NaN", NOW).is_err());
        assert!(parse_time_at("inf", NOW).is_err());
        assert!(parse_time_at("100000d", NOW).unwrap_err().contains("1970"));
        assert!(parse_time_at("3mo", NOW).unwrap_err().contains("months"));
        assert!(parse_time_at("2025-13-01T00:00:00Z", NOW).is_err());
        let err = parse_time_at("1e300", NOW).unwrap_err();
        assert!(err.contains("1e300") && err.contains("9999"), "{err}");
        assert!(parse_time_at("253402207201", NOW).is_err());
        assert_eq!(parse_time_at("253402207200", NOW), Ok(MAX_UNIX));
    }

    #[test]
    fn durations_must_be_positive_well_formed_and_after_1970() {
        assert_eq!(
            parse_duration_at("30d", NOW),
            Ok(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(
            parse_duration_at("1h30m", NOW),
            Ok(Duration::from_secs(5_400))
        );
        assert!(parse_duration_at("0s", NOW).unwrap_err().contains("zero"));
        assert!(parse_duration_at("soon", NOW).unwrap_err().contains("soon"));
        assert!(
            parse_duration_at("5m ago", NOW)
                .unwrap_err()
                .contains("negative")
        );
        let err = parse_duration_at("99999999999999d", NOW).unwrap_err();
        assert!(err.contains("99999999999999d"), "{err}");
        let err = parse_duration_at("30000d", NOW).unwrap_err();
        assert!(err.contains("before 1970"), "{err}");
    }

    #[test]
    fn durations_format_as_typed() {
        for text in ["30d", "1h 30m", "1m 30s", "2h", "1d 1m 1s"] {
            let parsed = parse_duration_at(text, NOW).unwrap();
            assert_eq!(format_duration(parsed), text);
        }
        assert_eq!(format_duration(Duration::from_millis(1_500)), "1s 500ms");
    }

    #[test]
    fn format_time_is_rfc3339() {
        assert_eq!(format_time(NOW), "2025-11-28T04:00:00Z");
        assert_eq!(format_time(NOW + 0.9), "2025-11-28T04:00:00Z");
        assert_eq!(format_time(-1.0), "-1");
        assert_eq!(format_time(MAX_UNIX), "9999-12-30T22:00:00Z");
        assert_eq!(format_time(1e300), "1e300");
    }
}
