//! The README's "in your code" example: instrument an engine, store every call, query the file.
//!
//! `cargo run -p telemetry-cli --example quickstart`

use std::sync::Arc;

use telemetry_agg::TelemetryAggregator;
use telemetry_core::{EventBus, TimeRange};
use telemetry_store::TelemetryStore;
use telemetry_wrap::{
    GenerateParams, InferenceEngine, InstrumentedEngine, Message, SimulatedEngine,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("telemetry-quickstart-{}", std::process::id()));
    let db = dir.join("telemetry.db");

    // 1. The store subscribes to the bus; the engine publishes one record per call on it.
    let bus = Arc::new(EventBus::new());
    let store = TelemetryStore::open(&db)?;
    store.subscribe_to_bus(&bus);

    // 2. Wrap any `InferenceEngine` (here the seeded simulator); use it as before.
    let engine = InstrumentedEngine::new(SimulatedEngine::new(), Arc::clone(&bus))
        .with_agent("quickstart")
        .with_price_table(SimulatedEngine::price_table());
    let model = SimulatedEngine::models()[0].id;
    for i in 0..100 {
        let messages = [Message::user(format!("question {i}"))];
        // Failed calls are recorded too, and the error comes back unchanged.
        let _ = engine.generate(&messages, &GenerateParams::new(model));
    }
    store.flush()?; // everything recorded so far is committed

    // 3. Ask questions through the read-only query layer.
    let stats = TelemetryAggregator::open(&db)?.summary(&TimeRange::all())?;
    println!(
        "{} calls ({} failed), latency p50 {:.3} s, p99 {:.3} s, cost ${:.4}",
        stats.total_calls,
        stats.error_count,
        stats.latency_p50.unwrap_or(0.0),
        stats.latency_p99.unwrap_or(0.0),
        stats.total_cost,
    );
    assert_eq!(stats.total_calls, 100);

    store.close()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
