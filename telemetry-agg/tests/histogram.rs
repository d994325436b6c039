//! The latency histogram and the time extent: what a report draws without reading raw rows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{DAY0, full_rec, write_db};
use telemetry_agg::{Bucket, GroupBy, TelemetryAggregator};
use telemetry_core::{TelemetryRecord, TimeRange};

/// 500 calls a minute apart over two days' edge, latencies 0.2 .. 1.8 s.
fn records() -> Vec<TelemetryRecord> {
    (0..500)
        .map(|i| {
            full_rec(
                ["a", "b"][i as usize % 2],
                "vllm",
                "x",
                DAY0 + 80_000.0 + i as f64 * 60.0,
                i,
            )
        })
        .collect()
}

#[test]
fn histogram_counts_every_call_of_the_range_in_its_bin() {
    let recs = records();
    let (_dir, path) = write_db(&recs);
    let agg = TelemetryAggregator::open(&path).unwrap();
    let all = agg.latency_histogram(&TimeRange::all(), 24).unwrap();
    assert_eq!(all.count, 500);
    assert_eq!(all.bins.iter().map(|b| b.count).sum::<u64>(), 500);
    assert_eq!(all.bins.len(), 24);
    // Each bin's count is the number of calls whose latency it holds (edges off by ≤ 0.5 %).
    for b in &all.bins {
        let exact = recs
            .iter()
            .filter(|r| b.lower * 1.005 < r.latency_seconds && r.latency_seconds <= b.upper / 1.005)
            .count() as u64;
        let loose = recs
            .iter()
            .filter(|r| b.lower / 1.005 < r.latency_seconds && r.latency_seconds <= b.upper * 1.005)
            .count() as u64;
        assert!(
            exact <= b.count && b.count <= loose,
            "{b:?}: {exact}..{loose}"
        );
    }
    // A partial range: summaries plus raw edge rows, same count as the summary.
    let range = TimeRange::new(Some(DAY0 + 85_000.5), Some(DAY0 + 95_000.25)).unwrap();
    let part = agg.latency_histogram(&range, 10).unwrap();
    assert_eq!(part.count, agg.summary(&range).unwrap().total_calls);
    assert_eq!(part.bins.iter().map(|b| b.count).sum::<u64>(), part.count);
    let empty = TimeRange::new(Some(DAY0 - 10.0), Some(DAY0 - 5.0)).unwrap();
    assert!(agg.latency_histogram(&empty, 10).unwrap().bins.is_empty());
}

#[test]
fn time_extent_is_the_first_and_last_record_in_the_range() {
    let (_dir, path) = write_db(&records());
    let agg = TelemetryAggregator::open(&path).unwrap();
    assert_eq!(
        agg.time_extent(&TimeRange::all()).unwrap(),
        Some((DAY0 + 80_000.0, DAY0 + 80_000.0 + 499.0 * 60.0))
    );
    let range = TimeRange::new(Some(DAY0 + 80_001.0), Some(DAY0 + 80_200.0)).unwrap();
    assert_eq!(
        agg.time_extent(&range).unwrap(),
        Some((DAY0 + 80_060.0, DAY0 + 80_180.0))
    );
    let none = TimeRange::new(Some(DAY0), Some(DAY0 + 1.0)).unwrap();
    assert_eq!(agg.time_extent(&none).unwrap(), None);
}

#[test]
fn series_points_carry_energy_per_output_token() {
    let recs = records();
    let (_dir, path) = write_db(&recs);
    let agg = TelemetryAggregator::open(&path).unwrap();
    let points = agg
        .series(&TimeRange::all(), Bucket::Day, GroupBy::None)
        .unwrap();
    for p in &points {
        let day: Vec<_> = recs
            .iter()
            .filter(|r| (r.timestamp as i64).div_euclid(86_400) * 86_400 == p.bucket_start)
            .collect();
        let joules: f64 = day.iter().filter_map(|r| r.energy_joules).sum();
        let tokens: u64 = day.iter().map(|r| r.completion_tokens).sum();
        let got = p.energy_per_output_token_joules.unwrap();
        assert!((got - joules / tokens as f64).abs() < 1e-9, "{got}");
    }
    assert_eq!(points.len(), 2);
}
