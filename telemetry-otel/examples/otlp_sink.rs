//! A counting OTLP/HTTP receiver for measurements: `cargo run --release -p telemetry-otel
//! --features testing --example otlp_sink` prints its endpoint, then the spans and metric
//! requests received once a second while the count changes; stop it with Ctrl-C.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use telemetry_otel::testing::OtlpReceiver;

fn main() {
    let receiver = OtlpReceiver::counting().expect("receiver");
    println!("{}", receiver.endpoint());
    let mut last = (u64::MAX, u64::MAX);
    loop {
        let r = receiver.received();
        if (r.span_count, r.metric_requests) != last {
            last = (r.span_count, r.metric_requests);
            println!(
                "spans {} in {} requests, metric requests {}, bad requests {}",
                r.span_count, r.trace_requests, r.metric_requests, r.bad_requests
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
