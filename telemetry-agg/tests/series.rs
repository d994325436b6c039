//! Series: buckets per minute, hour and day, grouped by nothing, model, engine or agent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{DAY0, full_rec, write_db};
use telemetry_agg::{Bucket, GroupBy, TelemetryAggregator};
use telemetry_core::{TelemetryRecord, TimeRange};

/// Two models; calls at 00:00:30, 00:01:10, 01:00:00 and day 2 00:00:05.
fn records() -> Vec<TelemetryRecord> {
    vec![
        full_rec("a", "vllm", "x", DAY0 + 30.0, 1),
        full_rec("b", "vllm", "y", DAY0 + 70.0, 2),
        full_rec("a", "ollama", "x", DAY0 + 3_600.0, 3),
        full_rec("a", "vllm", "x", DAY0 + 86_405.0, 4),
    ]
}

#[test]
fn buckets_by_width() {
    let (_dir, path) = write_db(&records());
    let agg = TelemetryAggregator::open(&path).unwrap();
    let all = TimeRange::all();
    let starts = |b| -> Vec<(i64, u64)> {
        agg.series(&all, b, GroupBy::None)
            .unwrap()
            .iter()
            .map(|p| (p.bucket_start - DAY0 as i64, p.call_count))
            .collect()
    };
    assert_eq!(
        starts(Bucket::Minute),
        vec![(0, 1), (60, 1), (3_600, 1), (86_400, 1)]
    );
    assert_eq!(starts(Bucket::Hour), vec![(0, 2), (3_600, 1), (86_400, 1)]);
    assert_eq!(starts(Bucket::Day), vec![(0, 3), (86_400, 1)]);
}

#[test]
fn groups_split_each_bucket_and_sum_to_the_whole() {
    let recs = records();
    let (_dir, path) = write_db(&recs);
    let agg = TelemetryAggregator::open(&path).unwrap();
    let all = TimeRange::all();
    let by_model = agg.series(&all, Bucket::Day, GroupBy::Model).unwrap();
    let keys: Vec<(i64, Option<&str>, u64)> = by_model
        .iter()
        .map(|p| {
            (
                p.bucket_start - DAY0 as i64,
                p.group.as_deref(),
                p.call_count,
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![(0, Some("a"), 2), (0, Some("b"), 1), (86_400, Some("a"), 1)]
    );
    let by_engine = agg.series(&all, Bucket::Day, GroupBy::Engine).unwrap();
    assert_eq!(by_engine.len(), 3);
    let by_agent = agg.series(&all, Bucket::Day, GroupBy::Agent).unwrap();
    assert_eq!(by_agent.len(), 3);
    let tokens: u64 = by_agent.iter().map(|p| p.total_tokens).sum();
    assert_eq!(tokens, recs.iter().map(|r| r.total_tokens).sum::<u64>());
    let energy: f64 = by_engine.iter().map(|p| p.total_energy_joules).sum();
    let want: f64 = recs.iter().filter_map(|r| r.energy_joules).sum();
    assert!((energy - want).abs() < 1e-9);
    assert!(by_model.iter().all(|p| p.latency_p50.is_some()));
}

#[test]
fn edge_buckets_count_only_the_part_inside_the_range() {
    let (_dir, path) = write_db(&records());
    let agg = TelemetryAggregator::open(&path).unwrap();
    // From 00:01:00: the 00:00:30 call is out, the rest of day 1 is in.
    let range = TimeRange::new(Some(DAY0 + 60.0), Some(DAY0 + 86_404.0)).unwrap();
    let points = agg.series(&range, Bucket::Day, GroupBy::None).unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].bucket_start, DAY0 as i64);
    assert_eq!(points[0].call_count, 2);
    assert!(
        agg.series(
            &TimeRange::until(DAY0 - 1.0).unwrap(),
            Bucket::Hour,
            GroupBy::Model
        )
        .unwrap()
        .is_empty()
    );
}

#[test]
fn second_buckets_come_from_the_raw_rows_for_a_short_run() {
    // A run of a few seconds: with minute buckets one point, with second buckets one per second.
    let at = [0.2, 1.5, 1.7, 5.0, 5.9];
    let recs: Vec<TelemetryRecord> = at
        .iter()
        .map(|t| common::rec("m", "e", DAY0 + 7.0 + t, 0.1))
        .collect();
    let (_dir, path) = write_db(&recs);
    let agg = TelemetryAggregator::open(&path).unwrap();
    let minutes = agg
        .series(&TimeRange::all(), Bucket::Minute, GroupBy::None)
        .unwrap();
    assert_eq!(minutes.len(), 1);
    let seconds = agg
        .series(&TimeRange::all(), Bucket::Second, GroupBy::None)
        .unwrap();
    let got: Vec<(i64, u64)> = seconds
        .iter()
        .map(|p| (p.bucket_start - DAY0 as i64, p.call_count))
        .collect();
    assert_eq!(got, [(7, 1), (8, 2), (12, 2)]);
    assert_eq!("1s".parse::<Bucket>().unwrap(), Bucket::Second);
}
