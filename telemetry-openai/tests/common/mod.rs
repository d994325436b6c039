//! Shared by the engine tests: transcripts and a bus that keeps the records.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use telemetry_core::{EventBus, EventType, TelemetryRecord};

/// A transcript from `tests/transcripts`.
pub fn transcript(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/transcripts")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A bus whose `TelemetryRecord`s are kept.
pub fn recording_bus() -> (Arc<EventBus>, Arc<Mutex<Vec<TelemetryRecord>>>) {
    let bus = Arc::new(EventBus::new());
    let records = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&records);
    bus.subscribe(EventType::TelemetryRecord, move |e| {
        sink.lock()
            .unwrap()
            .extend(e.as_record().map(|r| (**r).clone()));
    });
    (bus, records)
}

/// The only record kept so far.
pub fn only(records: &Mutex<Vec<TelemetryRecord>>) -> TelemetryRecord {
    let records = records.lock().unwrap();
    assert_eq!(records.len(), 1, "{records:#?}");
    records[0].clone()
}
