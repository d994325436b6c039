//! Grouping is exact on the stored strings: quotes, SQL, Unicode, empty and look-alike labels are
//! just labels.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{DAY0, rec, write_db};
use telemetry_agg::{Bucket, GroupBy, TelemetryAggregator};
use telemetry_core::{TelemetryRecord, TimeRange};

const ODD: [&str; 7] = [
    "'; DROP TABLE telemetry; --",
    "llama\" OR 1=1",
    "模型-ü-🚀",
    "llama",
    "llama ",
    "LLAMA",
    "a\u{0}b",
];

#[test]
fn odd_model_names_are_just_models() {
    let mut records: Vec<TelemetryRecord> = Vec::new();
    for (i, name) in ODD.iter().enumerate() {
        for j in 0..=i {
            records.push(rec(name, name, DAY0 + (i * 10 + j) as f64, 1.0));
        }
    }
    let (_dir, path) = write_db(&records);
    let agg = TelemetryAggregator::open(&path).unwrap();
    let all = TimeRange::all();
    let models = agg.per_model_stats(&all).unwrap();
    let got: Vec<(&str, u64)> = models
        .iter()
        .map(|m| (m.model_id.as_str(), m.call_count))
        .collect();
    let want: Vec<(&str, u64)> = ODD
        .iter()
        .enumerate()
        .rev()
        .map(|(i, n)| (*n, i as u64 + 1))
        .collect();
    assert_eq!(got, want);
    let engines = agg.per_engine_stats(&all).unwrap();
    assert_eq!(engines.len(), ODD.len());
    assert_eq!(
        agg.series(&all, Bucket::Hour, GroupBy::Model)
            .unwrap()
            .len(),
        ODD.len()
    );
    // The table is still there.
    assert_eq!(agg.record_count(&all).unwrap(), records.len() as u64);
    let exported: Vec<String> = agg
        .export_records(&all)
        .unwrap()
        .map(|r| r.unwrap().model_id)
        .collect();
    assert_eq!(exported.first().map(String::as_str), Some(ODD[0]));
}
