//! Time arguments (`--since`, `--until`) and durations (`--older-than`).
//!
//! A time is one of:
//! - RFC 3339, e.g. `2026-11-28T04:00:00Z`; the weak form (`2026-11-28 04:00:00`, no zone = UTC)
//!   is accepted too;
//! - unix seconds, e.g. `1764302400` or `1764302400.5`;
//! - a duration before now, e.g. `90s`, `15m`, `2h`, `7d`, `1h 30m`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a time argument accepts, for error messages and `--help`.
pub const TIME_FORMS: &str = "RFC 3339 (2026-11-28T04:00:00Z), unix seconds (1764302400) or a duration before now (90s, 15m, 2h, 7d)";

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
    if let Ok(seconds) = text.parse::<f64>() {
        if !seconds.is_finite() || seconds < 0.0 {
            return Err(format!(
                "`{text}` is not a valid number of unix seconds (finite, not negative)"
            ));
        }
        return Ok(seconds);
    }
    if let Ok(at) = humantime::parse_rfc3339_weak(text) {
        return at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .map_err(|_| format!("`{text}` is before 1970"));
    }
    match humantime::parse_duration(text) {
        Ok(ago) => {
            let at = now - ago.as_secs_f64();
            if at < 0.0 {
                Err(format!("`{text}` ago is before 1970"))
            } else {
                Ok(at)
            }
        }
        Err(_) => Err(format!("`{text}` is not a time; expected {TIME_FORMS}")),
    }
}

/// Clap value parser for `--since` / `--until`: relative times are resolved against the clock
/// when the command line is parsed.
pub fn parse_time(value: &str) -> Result<f64, String> {
    parse_time_at(value, now_unix())
}

/// Clap value parser for a duration such as `30d` or `12h`; must be longer than zero.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let text = value.trim();
    let duration = humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration like 90s, 15m, 2h or 7d ({e})"))?;
    if duration.is_zero() {
        return Err(format!("`{text}` is zero; give a positive duration"));
    }
    Ok(duration)
}

/// Formats unix seconds as RFC 3339 (UTC, whole seconds), or the number when out of range.
pub fn format_time(unix: f64) -> String {
    if !(0.0..=4_102_444_800.0).contains(&unix) {
        return format!("{unix}");
    }
    let at = UNIX_EPOCH + Duration::from_secs_f64(unix);
    humantime::format_rfc3339_seconds(at).to_string()
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
    fn rfc3339_strict_and_weak() {
        assert_eq!(parse_time_at("2025-11-28T04:00:00Z", NOW), Ok(NOW));
        assert_eq!(parse_time_at("2025-11-28 04:00:00", NOW), Ok(NOW));
        assert_eq!(parse_time_at("2025-11-28T04:00:01.5Z", NOW), Ok(NOW + 1.5));
    }

    #[test]
    fn relative_durations_count_back_from_now() {
        assert_eq!(parse_time_at("90s", NOW), Ok(NOW - 90.0));
        assert_eq!(parse_time_at("15m", NOW), Ok(NOW - 900.0));
        assert_eq!(parse_time_at("2h", NOW), Ok(NOW - 7_200.0));
        assert_eq!(parse_time_at("7d", NOW), Ok(NOW - 604_800.0));
        assert_eq!(parse_time_at("1h 30m", NOW), Ok(NOW - 5_400.0));
    }

    #[test]
    fn bad_times_say_what_was_wrong() {
        let err = parse_time_at("yesterday", NOW).unwrap_err();
        assert!(
            err.contains("yesterday") && err.contains("RFC 3339"),
            "{err}"
        );
        assert!(parse_time_at("", NOW).is_err());
        assert!(parse_time_at("-5", NOW).is_err());
        assert!(parse_time_at("NaN", NOW).is_err());
        assert!(parse_time_at("inf", NOW).is_err());
        assert!(parse_time_at("100000d", NOW).is_err());
        assert!(parse_time_at("2025-13-01T00:00:00Z", NOW).is_err());
    }

    #[test]
    fn durations_must_be_positive_and_well_formed() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_duration("0s").unwrap_err().contains("zero"));
        assert!(parse_duration("soon").unwrap_err().contains("soon"));
    }

    #[test]
    fn format_time_is_rfc3339() {
        assert_eq!(format_time(NOW), "2025-11-28T04:00:00Z");
        assert_eq!(format_time(-1.0), "-1");
    }
}
