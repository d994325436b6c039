//! The writer thread's cost per record for records shaped like `telemetry proxy`'s (a blocking
//! chat call or a 20-chunk stream: the same labels and metadata on every record, times that
//! change, one metadata shared by all), committed in batches of a given size, as the proxy's writer commits them under load.
//!
//! Records `N` records (default 20 000) in batches of `B` (default 80: what the writer takes
//! per wake-up at ~1 100 calls/s under callgrind; ~1 000 at the proxy's full rate), one `flush`
//! per batch, and prints the wall time per record. Meant to be run under callgrind, which gives
//! the writer thread's instructions per record without the proxy around it:
//!
//! ```text
//! cargo build --release -p telemetry-store --example writer_cost
//! valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file=/tmp/wc.out \
//!     target/release/examples/writer_cost blocking 20000 80
//! # the writer is the thread whose file ends in -02: its `summary:` line / N
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use telemetry_core::{Metadata, TelemetryRecord};
use telemetry_store::TelemetryStore;

fn proxy_record(i: usize, stream: bool, upstream: &Metadata) -> TelemetryRecord {
    let jitter = (i % 97) as f64 * 1e-5;
    let mut r = TelemetryRecord::builder("bench", 1_796_587_796.0 + i as f64 * 1e-3)
        .engine("openai-compatible")
        .tokens(9, if stream { 20 } else { 16 })
        .latency_seconds(0.0014 + jitter)
        .metadata(upstream.clone())
        .build();
    r.cost_unknown = true;
    r.server_prefill_ms = Some(12.5);
    r.server_decode_ms = Some(40.0);
    r.api = "openai_chat".into();
    r.operation = "chat".into();
    if stream {
        r.is_streaming = true;
        r.ttft = Some(0.0011 + jitter);
        r.throughput_tok_per_sec = Some(2115.47 - jitter);
        r.prefill_latency_seconds = r.ttft;
        r.decode_latency_seconds = Some(0.0003 + jitter);
        r.mean_itl_ms = Some(0.0546 + jitter);
        r.median_itl_ms = Some(0.0177 + jitter);
        r.p90_itl_ms = Some(0.1003 + jitter);
        r.p95_itl_ms = Some(0.2145 + jitter);
        r.p99_itl_ms = Some(0.4023 + jitter);
        r.std_itl_ms = Some(0.1011 + jitter);
        r.output_chunks = 20;
    }
    r
}

fn main() {
    let mut args = std::env::args().skip(1);
    let stream = args.next().is_some_and(|a| a == "stream");
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let batch: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(80)
        .max(1);
    let dir = tempfile::tempdir().unwrap();
    let store = TelemetryStore::open(dir.path().join("writer-cost.db")).unwrap();
    // One metadata shared by every record, as the proxy's upstream context is.
    let upstream =
        Metadata::from(serde_json::json!({ "server.address": "127.0.0.1", "server.port": 18786 }));
    let records: Vec<Arc<TelemetryRecord>> = (0..n)
        .map(|i| Arc::new(proxy_record(i, stream, &upstream)))
        .collect();
    let start = Instant::now();
    for chunk in records.chunks(batch) {
        for r in chunk {
            store.record_arc(Arc::clone(r)).unwrap();
        }
        store.flush().unwrap();
    }
    let elapsed = start.elapsed();
    assert_eq!(store.stats().written, n as u64);
    store.close().unwrap();
    println!(
        "{} records ({}), batches of {batch}: {:.2} µs a record",
        n,
        if stream { "stream" } else { "blocking" },
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
}
