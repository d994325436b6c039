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
