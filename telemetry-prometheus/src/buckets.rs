//! The fixed histogram bucket bounds of the exposition, in base units.
//!
//! Prometheus histograms need the same bounds on every scrape, while the store keeps
//! [`QuantileSketch`](telemetry_core::QuantileSketch)es (logarithmic buckets of ±0.5 % relative
//! width). Each scrape therefore re-bins the merged sketches into these bounds with
//! [`QuantileSketch::bucket_counts`](telemetry_core::QuantileSketch::bucket_counts): a value within
//! 0.5 % of a bound may be counted on either side of it, every other value lands exactly.

/// Latency and time to first token, seconds: the OpenTelemetry GenAI conventions' boundaries for
/// `gen_ai.client.operation.duration` (0.01 s doubling to 81.92 s).
pub const LATENCY_SECONDS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// Time per output token (each call's mean inter-token latency), seconds: 1 ms to 2.5 s, finer
/// than the GenAI `time_per_output_chunk` boundaries at the low end, where local engines decode.
pub const TIME_PER_OUTPUT_TOKEN_SECONDS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 1.0, 2.5,
];
