//! Time ranges: since, until, both, inclusive bounds, empty ranges and bucket edges.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{DAY0, rec, write_db};
use telemetry_agg::{AggregatedStats, TelemetryAggregator};
use telemetry_core::{TelemetryRecord, TimeRange};

/// One record per hour for three days, plus records on and around bucket edges.
fn records() -> Vec<TelemetryRecord> {
    let mut v: Vec<TelemetryRecord> = (0..72)
        .map(|h| rec("hourly", "e", DAY0 + h as f64 * 3_600.0 + 17.5, 1.0))
        .collect();
    for ts in [DAY0 + 86_400.0, DAY0 + 86_399.999, DAY0 + 60.0, DAY0 + 59.5] {
        v.push(rec("edge", "e", ts, 2.0));
    }
    v
}

fn count_in(records: &[TelemetryRecord], range: &TimeRange) -> u64 {
    records
        .iter()
        .filter(|r| range.contains(r.timestamp))
        .count() as u64
}

#[test]
fn since_until_and_both_filter_inclusively() {
    let recs = records();
    let (_dir, path) = write_db(&recs);
    let agg = TelemetryAggregator::open(&path).unwrap();
    let ranges = [
        TimeRange::all(),
        TimeRange::since(DAY0 + 86_400.0).unwrap(),
        TimeRange::until(DAY0 + 86_400.0).unwrap(),
        TimeRange::new(Some(DAY0 + 60.0), Some(DAY0 + 86_400.0)).unwrap(),
        TimeRange::new(Some(DAY0 + 59.5), Some(DAY0 + 59.5)).unwrap(),
        TimeRange::new(Some(DAY0 + 3_617.5), Some(DAY0 + 2.0 * 86_400.0 + 3_617.4)).unwrap(),
        TimeRange::new(Some(DAY0 + 1_000.25), Some(DAY0 + 50_000.75)).unwrap(),
    ];
    for range in ranges {
        let want = count_in(&recs, &range);
        assert_eq!(agg.record_count(&range).unwrap(), want, "{range:?}");
        assert_eq!(agg.summary(&range).unwrap().total_calls, want, "{range:?}");
        assert_eq!(
            agg.export_records(&range).unwrap().count() as u64,
            want,
            "{range:?}"
        );
        let by_model: u64 = agg
            .per_model_stats(&range)
            .unwrap()
            .iter()
            .map(|m| m.call_count)
            .sum();
        assert_eq!(by_model, want, "{range:?}");
    }
}

#[test]
fn a_record_exactly_at_a_bucket_end_belongs_to_the_next_bucket() {
    let recs = records();
    let (_dir, path) = write_db(&recs);
    let agg = TelemetryAggregator::open(&path).unwrap();
    // [DAY0, DAY0 + 1 day): the record at exactly DAY0 + 86 400 is outside.
    let day = TimeRange::new(Some(DAY0), Some(DAY0 + 86_399.999_9)).unwrap();
    assert_eq!(agg.record_count(&day).unwrap(), count_in(&recs, &day));
    // Inclusive until: now it is inside, although the day bucket is whole.
    let day_and_edge = TimeRange::new(Some(DAY0), Some(DAY0 + 86_400.0)).unwrap();
    assert_eq!(
        agg.record_count(&day_and_edge).unwrap(),
        count_in(&recs, &day) + 1
    );
}

#[test]
fn empty_ranges_give_zeroed_stats() {
    let (_dir, path) = write_db(&records());
    let agg = TelemetryAggregator::open(&path).unwrap();
    for range in [
        TimeRange::until(DAY0 - 1.0).unwrap(),
        TimeRange::since(DAY0 + 10.0 * 86_400.0).unwrap(),
        TimeRange::new(Some(DAY0 + 1.0), Some(DAY0 + 2.0)).unwrap(),
    ] {
        assert_eq!(agg.summary(&range).unwrap(), AggregatedStats::default());
        assert_eq!(agg.record_count(&range).unwrap(), 0);
        assert!(agg.per_engine_stats(&range).unwrap().is_empty());
    }
}

#[test]
fn far_out_bounds_are_the_same_as_none() {
    let recs = records();
    let (_dir, path) = write_db(&recs);
    let agg = TelemetryAggregator::open(&path).unwrap();
    let wide = TimeRange::new(Some(-1e300), Some(1e300)).unwrap();
    assert_eq!(
        agg.summary(&wide).unwrap(),
        agg.summary(&TimeRange::all()).unwrap()
    );
    assert_eq!(agg.record_count(&wide).unwrap(), recs.len() as u64);
}

#[test]
fn after_a_prune_the_summaries_match_the_remaining_rows() {
    let recs: Vec<TelemetryRecord> = (0..600)
        .map(|i| {
            rec(
                ["a", "b"][i % 2],
                "e",
                DAY0 + i as f64 * 397.25,
                1.0 + (i % 7) as f64,
            )
        })
        .collect();
    let (_dir, path) = write_db(&recs);
    // Cut in the middle of a minute, an hour and a day.
    let cut = DAY0 + 86_400.0 + 3_600.0 * 5.0 + 60.0 * 7.0 + 13.5;
    let store = telemetry_store::TelemetryStore::open(&path).unwrap();
    store.prune_before(cut).unwrap();
    store.close().unwrap();
    let left: Vec<TelemetryRecord> = recs.into_iter().filter(|r| r.timestamp >= cut).collect();
    let agg = TelemetryAggregator::open(&path).unwrap();
    for range in [
        TimeRange::all(),
        TimeRange::since(DAY0 + 86_400.0).unwrap(),
        TimeRange::new(Some(DAY0 + 3_600.0), Some(DAY0 + 2.0 * 86_400.0 + 0.5)).unwrap(),
    ] {
        let want = count_in(&left, &range);
        assert_eq!(agg.record_count(&range).unwrap(), want, "{range:?}");
        let s = agg.summary(&range).unwrap();
        assert_eq!(s.total_calls, want, "{range:?}");
        let latency: f64 = left
            .iter()
            .filter(|r| range.contains(r.timestamp))
            .map(|r| r.latency_seconds)
            .sum();
        assert!(
            (s.total_latency - latency).abs() <= 1e-9 * latency,
            "{range:?}"
        );
    }
}
