//! A batch that fails for a reason other than I/O never wedges the writer: the offending records
//! are isolated and refused (counted, with the reason), every other record is committed, and
//! producers under the `Block` policy never wait for ever.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use telemetry_core::{MAX_TOKENS, TelemetryRecord};
use telemetry_store::{Health, OverflowPolicy, RecordError, TelemetryStore};

fn count(path: &std::path::Path) -> i64 {
    common::connect(path)
        .query_row("SELECT count(*) FROM telemetry", [], |r| r.get(0))
        .unwrap()
}

/// ~1 100 records of 2^53 prompt tokens in one bucket used to pass validation and overflow the
/// bucket's token sum as an SQLite integer: the writer retried that batch for ever and a
/// producer under `Block` blocked for ever. Now such counts are refused at `record` (above
/// `MAX_TOKENS`), every good record is written, and the producer finishes.
#[test]
fn huge_token_counts_never_block_the_producer_and_good_records_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::builder(&path)
        .queue_capacity(200)
        .batch_size(2_000)
        .overflow(OverflowPolicy::Block)
        .open()
        .unwrap();
    let producer = {
        let store = store.clone();
        std::thread::spawn(move || {
            let (mut good, mut refused) = (0u64, 0u64);
            for i in 0..3_000u64 {
                let mut r = TelemetryRecord::builder("m", 1_764_300_000.0 + (i % 50) as f64)
                    .tokens(10, 5)
                    .latency_seconds(1.0)
                    .build();
                if i % 3 == 0 && refused < 1_100 {
                    r.prompt_tokens = 1 << 53;
                    r.total_tokens = r.prompt_tokens + r.completion_tokens;
                }
                match store.record_arc(Arc::new(r)) {
                    Ok(()) => good += 1,
                    Err(RecordError::Invalid(e)) => {
                        assert_eq!(e.field(), "prompt_tokens");
                        refused += 1;
                    }
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
            (good, refused)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !producer.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the producer is blocked: {:?} {:?}",
            store.stats(),
            store.health()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (good, refused) = producer.join().unwrap();
    assert_eq!(refused, 1_000);
    assert_eq!(good, 2_000);
    store.flush().unwrap();
    assert_eq!(store.stats().written, good);
    assert_eq!(store.stats().rejected, refused);
    assert_eq!(store.health(), Health::Healthy);
    assert_eq!(count(&path), good as i64);
    const { assert!(MAX_TOKENS <= 1_000_000_000) };
    store.close().unwrap();
}

/// A batch whose commit fails for a reason of its own (here: a damaged summary row that the
/// records of one minute must be merged into) is split until the failing records are isolated:
/// they are refused with the reason in `stats()`, every other record is written, and `flush`
/// succeeds rather than retrying the whole batch for ever.
#[test]
fn a_batch_failing_for_a_non_io_reason_is_split_and_only_the_offenders_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::builder(&path)
        .batch_size(10_000)
        .flush_interval(Duration::from_secs(5))
        // Minute summaries for every hour, so that one damaged minute row concerns few records.
        .minute_rollup_threshold(1)
        .open()
        .unwrap();
    let at = |minute: u64| {
        TelemetryRecord::builder("m", 1_764_300_000.0 + minute as f64 * 60.0)
            .tokens(10, 5)
            .latency_seconds(1.0)
            .build()
    };
    store.record(&at(0)).unwrap();
    store.flush().unwrap();
    // Damage the stored minute summary of minute 0.
    let bucket = telemetry_core::bucket_start(at(0).timestamp, 60);
    let changed = common::connect(&path)
        .execute(
            "UPDATE telemetry_rollup SET latency_sketch = x'ffff' WHERE level = 60 AND bucket_start = ?1",
            [bucket],
        )
        .unwrap();
    assert_eq!(changed, 1);
    // One batch: 8 records in the damaged minute among 492 in other minutes.
    for i in 0..500u64 {
        let minute = if i % 70 == 3 { 0 } else { 1 + i % 40 };
        store.record(&at(minute)).unwrap();
    }
    store.flush().unwrap();
    let stats = store.stats();
    assert_eq!(stats.rejected, 8, "{stats:?}");
    assert_eq!(stats.written, 1 + 492, "{stats:?}");
    assert_eq!(stats.pending, 0);
    let reason = stats.last_rejection.unwrap();
    assert!(reason.contains("latency_sketch"), "{reason}");
    assert!(reason.contains("timestamp"), "{reason}");
    assert_eq!(store.health(), Health::Healthy);
    assert_eq!(count(&path), 1 + 492);
    // The writer carries on normally.
    store.record(&at(100)).unwrap();
    store.flush().unwrap();
    assert_eq!(count(&path), 1 + 492 + 1);
    store.close().unwrap();
}

/// The writer inserts a batch's rows several to a statement: a row failing in the middle of one
/// (here a trigger refuses rows of 13 prompt tokens) must leave none of that statement's rows
/// behind, and every other record of the batch is written once, in order, as it was recorded.
#[test]
fn a_row_failing_inside_a_many_row_insert_is_refused_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = TelemetryStore::builder(&path)
        .batch_size(10_000)
        .flush_interval(Duration::from_secs(5))
        .open()
        .unwrap();
    common::connect(&path)
        .execute_batch(
            "CREATE TRIGGER refuse_13 BEFORE INSERT ON telemetry WHEN NEW.prompt_tokens = 13 \
             BEGIN SELECT RAISE(ABORT, 'thirteen prompt tokens'); END;",
        )
        .unwrap();
    let records: Vec<TelemetryRecord> = (0..50u64)
        .map(|i| {
            let mut r = common::sample("poison", i);
            if [3, 17, 18, 40].contains(&i) {
                r.prompt_tokens = 13;
                r.total_tokens = r.prompt_tokens + r.completion_tokens;
            }
            r
        })
        .collect();
    for r in &records {
        store.record(r).unwrap();
    }
    store.flush().unwrap();
    let stats = store.stats();
    assert_eq!(stats.rejected, 4, "{stats:?}");
    assert_eq!(stats.written, 46, "{stats:?}");
    let reason = stats.last_rejection.unwrap();
    assert!(reason.contains("thirteen prompt tokens"), "{reason}");
    let good: Vec<TelemetryRecord> = records
        .into_iter()
        .filter(|r| r.prompt_tokens != 13)
        .collect();
    assert_eq!(common::read_all(&common::connect(&path)), good);
    assert_eq!(store.health(), Health::Healthy);
    store.close().unwrap();
}
