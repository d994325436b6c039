//! Arguments that used to be misread: RFC 3339 offsets and lowercase `t`/`z`, times and durations
//! out of range, `--top 0`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{now, on_db, seed, standard_records, stderr_on_exit, stdout_of, telemetry, temp_db};
use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};
use serde_json::Value;

fn total_calls(dir: &std::path::Path, db: &std::path::Path, since: &str) -> u64 {
    let out = stdout_of(on_db(dir, db).args(["stats", "--format", "json", "--since", since]));
    let v: Value = serde_json::from_str(&out).unwrap();
    v["total_calls"].as_u64().unwrap()
}

/// stderr of a run that must fail with a usage error (exit 2), checked to be one line.
fn usage_error(dir: &std::path::Path, args: &[&str]) -> String {
    let err = stderr_on_exit(telemetry(dir).args(args), 2);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    err
}

#[test]
fn rfc3339_with_an_offset_or_lowercase_letters_is_accepted() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    // Half an hour ago: the 20 recent records are after it, the 10 from an hour ago before it.
    let at = Timestamp::from_second((now() - 1_800.0) as i64).unwrap();
    let utc = at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let plus_five = at
        .to_zoned(TimeZone::fixed(Offset::constant(5)))
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    let minus_three_thirty = at
        .to_zoned(TimeZone::fixed(
            Offset::from_seconds(-3 * 3_600 - 1_800).unwrap(),
        ))
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    assert!(plus_five.ends_with("+05:00"), "{plus_five}");
    for since in [
        utc.clone(),
        utc.to_lowercase(),
        plus_five,
        minus_three_thirty,
    ] {
        assert_eq!(total_calls(dir.path(), &db, &since), 20, "{since}");
    }
}

#[test]
fn times_out_of_range_are_refused() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let db = db.to_str().unwrap();
    for since in ["1e300", "-1", "100000d", "99999999999999d"] {
        let err = usage_error(dir.path(), &["--db", db, "stats", "--since", since]);
        assert!(err.contains(since), "{err}");
    }
    let err = usage_error(dir.path(), &["--db", db, "stats", "--until", "1e300"]);
    assert!(err.contains("9999"), "{err}");
}

#[test]
fn prune_refuses_a_cutoff_before_1970() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    for older_than in ["99999999999999d", "30000d"] {
        let err = usage_error(
            dir.path(),
            &[
                "--db",
                db.to_str().unwrap(),
                "prune",
                "--older-than",
                older_than,
                "--yes",
            ],
        );
        assert!(err.contains(older_than), "{err}");
        assert!(!err.contains("cutoff -"), "{err}");
    }
    assert_eq!(total_calls(dir.path(), &db, "0"), 30);
}

#[test]
fn top_zero_is_refused() {
    let (dir, db) = temp_db();
    seed(&db, &standard_records());
    let err = usage_error(
        dir.path(),
        &["--db", db.to_str().unwrap(), "stats", "--top", "0"],
    );
    assert!(err.contains("--top") && err.contains('0'), "{err}");
    let one = stdout_of(on_db(dir.path(), &db).args(["stats", "--top", "1"]));
    assert!(one.contains("qwen") && !one.contains("llama"), "{one}");
}
