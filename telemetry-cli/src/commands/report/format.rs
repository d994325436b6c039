//! Text for the report: HTML escaping, axis numbers and time labels.

use telemetry_agg::Bucket;

use crate::output::escape_controls;
use crate::timearg::format_time;

/// `text` as shown on the page: control characters (C0, DEL, C1) and bidirectional overrides
/// and isolates made visible (`\n`, `\x1b`, `\u{202e}`, as the terminal tables show them, so a
/// name cannot pass for another), then [`escape_exact`]: safe in element content and quoted
/// attributes.
pub fn escape(text: &str) -> String {
    escape_exact(&escape_controls(text))
}

/// `text` with `& < > " '` replaced by entities and nothing else changed (for machine-read
/// attributes such as `data-group`).
pub fn escape_exact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An axis tick: `0`, `0.25`, `12`, `3.4k`, `1.2M`, `5.6G`, or `2.5e-4` for tiny values.
pub fn axis_number(v: f64) -> String {
    let a = v.abs();
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    };
    if a == 0.0 {
        "0".to_owned()
    } else if a >= 1e9 {
        format!("{}G", trim(format!("{:.1}", v / 1e9)))
    } else if a >= 1e6 {
        format!("{}M", trim(format!("{:.1}", v / 1e6)))
    } else if a >= 1e4 {
        format!("{}k", trim(format!("{:.1}", v / 1e3)))
    } else if a >= 1.0 {
        trim(format!("{v:.2}"))
    } else if a >= 1e-3 {
        trim(format!("{v:.4}"))
    } else {
        format!("{v:.1e}")
    }
}

/// Seconds on an axis: `850µs`, `12ms`, `1.5s`, `2m`.
pub fn axis_seconds(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".to_owned()
    } else if a < 1e-3 {
        format!("{}µs", axis_number(v * 1e6))
    } else if a < 1.0 {
        format!("{}ms", axis_number(v * 1e3))
    } else if a < 120.0 {
        format!("{}s", axis_number(v))
    } else {
        format!("{}m", axis_number(v / 60.0))
    }
}

/// Dollars on an axis: `$0.0012`, `$3.4`, `$12k`.
pub fn axis_usd(v: f64) -> String {
    format!("${}", axis_number(v))
}

/// A time tick for buckets of `bucket`: `11-28` for days, `11-28 14:00` for hours, `14:05` for
/// minutes (UTC).
pub fn time_label(unix: f64, bucket: Bucket) -> String {
    // RFC 3339 `YYYY-MM-DDTHH:MM:SSZ`; anything else (out of range) passes through.
    let text = format_time(unix);
    let (Some(date), Some(clock), Some(seconds)) =
        (text.get(5..10), text.get(11..16), text.get(11..19))
    else {
        return text;
    };
    match bucket {
        Bucket::Second => seconds.to_owned(),
        Bucket::Day => date.to_owned(),
        Bucket::Hour => format!("{date} {clock}"),
        Bucket::Minute => clock.to_owned(),
    }
}

/// `1m`, `1h` or `1d`.
pub fn bucket_name(bucket: Bucket) -> &'static str {
    match bucket {
        Bucket::Second => "1 second",
        Bucket::Minute => "1 minute",
        Bucket::Hour => "1 hour",
        Bucket::Day => "1 day",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_both_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(escape("llama-3.1-8b"), "llama-3.1-8b");
        assert_eq!(
            escape("gpt\u{202e}4-mini\x1b[0m\n<"),
            "gpt\\u{202e}4-mini\\x1b[0m\\n&lt;"
        );
        assert_eq!(escape_exact("a\u{202e}b"), "a\u{202e}b");
    }

    #[test]
    fn axis_numbers_are_short() {
        assert_eq!(axis_number(0.0), "0");
        assert_eq!(axis_number(12.0), "12");
        assert_eq!(axis_number(0.25), "0.25");
        assert_eq!(axis_number(34_000.0), "34k");
        assert_eq!(axis_number(1_250_000.0), "1.2M");
        assert_eq!(axis_number(0.00025), "2.5e-4");
        assert_eq!(axis_seconds(0.012), "12ms");
        assert_eq!(axis_seconds(1.5), "1.5s");
        assert_eq!(axis_usd(0.5), "$0.5");
    }

    #[test]
    fn time_labels_follow_the_bucket() {
        let t = 1_764_302_400.0; // 2025-11-28T04:00:00Z
        assert_eq!(time_label(t, Bucket::Day), "11-28");
        assert_eq!(time_label(t, Bucket::Hour), "11-28 04:00");
        assert_eq!(time_label(t + 300.0, Bucket::Minute), "04:05");
    }
}
