//! Any valid record, written and read back with raw SQL, equals what went in (metadata too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use telemetry_core::testing::arb_record;
use telemetry_store::TelemetryStore;

#[test]
fn any_valid_record_reads_back_equal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::open(&path).unwrap();
    let conn = common::connect(&path);
    let mut runner = TestRunner::new(Config::with_cases(128));
    runner
        .run(&arb_record(), |r| {
            prop_assume!(r.validate().is_ok());
            store.record(&r).unwrap();
            store.flush().unwrap();
            let rows = common::read_all(&conn);
            let last = rows.last().unwrap();
            prop_assert_eq!(last, &r);
            Ok(())
        })
        .unwrap();
    store.close().unwrap();
    // The summaries of everything written agree with the naive oracle.
    let rows = common::read_all(&conn);
    assert!(rows.len() >= 64);
    common::assert_rollups_eq(&common::read_rollups(&conn), &common::rollups_of(&rows));
}

/// Records written as one batch, each like the one before but for a field or two (the insert
/// binds only the parameters that differ from the previous row's), read back equal, in order.
#[test]
fn a_batch_of_records_alike_reads_back_equal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::open(&path).unwrap();
    let conn = common::connect(&path);
    let mut runner = TestRunner::new(Config::with_cases(24));
    runner
        .run(&prop::collection::vec(arb_record(), 1..12), |records| {
            let mut batch = Vec::new();
            for r in records.into_iter().filter(|r| r.validate().is_ok()) {
                let mut other_ttft = r.clone();
                other_ttft.ttft = match r.ttft {
                    Some(_) => None,
                    None => Some(r.latency_seconds / 2.0),
                };
                let mut other_model = r.clone();
                other_model.model_id.push('x');
                other_model.energy_joules = None;
                batch.extend([r.clone(), r.clone(), other_ttft, other_model, r]);
            }
            batch.retain(|r| r.validate().is_ok());
            let before = common::read_all(&conn).len();
            for r in &batch {
                store.record(r).unwrap();
            }
            store.flush().unwrap();
            let rows = common::read_all(&conn);
            prop_assert_eq!(&rows[before..], &batch[..]);
            Ok(())
        })
        .unwrap();
    store.close().unwrap();
    let rows = common::read_all(&conn);
    assert!(rows.len() >= 24, "{} rows", rows.len());
    common::assert_rollups_eq(&common::read_rollups(&conn), &common::rollups_of(&rows));
}
