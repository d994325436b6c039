//! Events are published in order (start, stream tokens, end, record) with matching payloads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{Collector, Scripted, messages, ms};
use telemetry_core::{Event, EventBus, EventType, Outcome};
use telemetry_wrap::{
    CallContext, CallOptions, GenerateParams, GenerateResult, InferenceEngine, InstrumentedEngine,
    StreamChunk, Usage, instrumented_generate, instrumented_generate_with,
};

fn engine() -> Scripted {
    Scripted {
        result: Some(GenerateResult::new("hi there", Usage::new(12, 2))),
        chunks: vec![
            Ok(StreamChunk::text("hi").at(ms(10))),
            Ok(StreamChunk::text(" there").at(ms(30))),
            Ok(StreamChunk::usage(Usage::new(12, 2)).at(ms(31))),
        ],
        ..Scripted::default()
    }
}

#[test]
fn generate_publishes_start_end_record_with_one_call_id() {
    let bus = Arc::new(EventBus::new());
    let seen = Collector::attach(&bus);
    let wrapped = InstrumentedEngine::new(engine(), Arc::clone(&bus)).with_agent("planner");
    wrapped
        .generate(&messages(), &GenerateParams::new("m-1"))
        .unwrap();

    assert_eq!(
        seen.types(),
        [
            EventType::InferenceStart,
            EventType::InferenceEnd,
            EventType::TelemetryRecord
        ]
    );
    let events = seen.events();
    let (Event::InferenceStart(start), Event::InferenceEnd(end), Event::TelemetryRecord(record)) =
        (&events[0], &events[1], &events[2])
    else {
        panic!("unexpected events {events:?}");
    };
    assert_eq!(start.call_id, end.call_id);
    assert_eq!(&*start.model_id, "m-1");
    assert_eq!(&*start.engine, "scripted");
    assert_eq!(&*start.agent, "planner");
    assert!(!start.is_streaming);
    assert_eq!(start.timestamp, record.timestamp);
    assert_eq!(end.outcome, Outcome::Ok);
    assert_eq!(end.completion_tokens, 2);
    assert_eq!(end.latency_seconds, record.latency_seconds);
}

#[test]
fn call_ids_differ_between_calls() {
    let bus = Arc::new(EventBus::new());
    let seen = Collector::attach(&bus);
    let wrapped = InstrumentedEngine::new(engine(), Arc::clone(&bus));
    for _ in 0..3 {
        wrapped
            .generate(&messages(), &GenerateParams::new("m"))
            .unwrap();
    }
    let mut ids: Vec<u64> = seen
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::InferenceStart(s) => Some(s.call_id),
            _ => None,
        })
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 3);
}

#[test]
fn stream_publishes_tokens_between_start_and_end() {
    let bus = Arc::new(EventBus::new());
    let seen = Collector::attach(&bus);
    let wrapped = InstrumentedEngine::new(engine(), Arc::clone(&bus));
    let chunks: Vec<_> = wrapped
        .stream(&messages(), &GenerateParams::new("m"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(chunks.len(), 3);
    assert_eq!(
        seen.types(),
        [
            EventType::InferenceStart,
            EventType::StreamToken,
            EventType::StreamToken,
            EventType::InferenceEnd,
            EventType::TelemetryRecord
        ]
    );
    let events = seen.events();
    let tokens: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::StreamToken(t) => Some(*t),
            _ => None,
        })
        .collect();
    assert_eq!((tokens[0].index, tokens[1].index), (0, 1));
    assert_eq!(tokens[0].elapsed_seconds, 0.010);
    assert_eq!(tokens[1].elapsed_seconds, 0.030);
    let Event::InferenceStart(start) = &events[0] else {
        panic!()
    };
    assert!(start.is_streaming);
    assert!(tokens.iter().all(|t| t.call_id == start.call_id));
}

#[test]
fn only_the_record_is_built_when_nobody_listens_to_start_and_end() {
    let bus = Arc::new(EventBus::new());
    bus.subscribe(EventType::TelemetryRecord, |_| {});
    instrumented_generate(&engine(), &messages(), &GenerateParams::new("m"), &bus).unwrap();
    // Start and end were skipped: only the record went through `publish`.
    assert_eq!(bus.stats().published, 1);
}

#[test]
fn a_history_only_bus_keeps_start_end_and_record() {
    // No subscriber at all: keeping history counts as listening (issue 11, item 7).
    let bus = Arc::new(EventBus::with_history(16));
    instrumented_generate(&engine(), &messages(), &GenerateParams::new("m"), &bus).unwrap();
    let types: Vec<_> = bus.history().iter().map(Event::event_type).collect();
    assert_eq!(
        types,
        [
            EventType::InferenceStart,
            EventType::InferenceEnd,
            EventType::TelemetryRecord
        ]
    );
}

#[test]
fn a_history_only_bus_keeps_stream_tokens() {
    let bus = Arc::new(EventBus::with_history(16));
    let wrapped = InstrumentedEngine::new(engine(), Arc::clone(&bus));
    let chunks: Vec<_> = wrapped
        .stream(&messages(), &GenerateParams::new("m"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(chunks.len(), 3);
    let types: Vec<_> = bus.history().iter().map(Event::event_type).collect();
    assert_eq!(
        types,
        [
            EventType::InferenceStart,
            EventType::StreamToken,
            EventType::StreamToken,
            EventType::InferenceEnd,
            EventType::TelemetryRecord
        ]
    );
}

#[test]
fn instrumented_generate_publishes_the_same_sequence() {
    let bus = Arc::new(EventBus::new());
    let seen = Collector::attach(&bus);
    let options = CallOptions::new()
        .with_agent("fn")
        .with_metadata(serde_json::json!({"run": 7}))
        .unwrap();
    let ctx = CallContext::new(Arc::clone(&bus), engine().engine_id()).with_options(options);
    let out = instrumented_generate_with(&engine(), &messages(), &GenerateParams::new("m"), &ctx)
        .unwrap();
    assert_eq!(out.content, "hi there");
    assert_eq!(
        seen.types(),
        [
            EventType::InferenceStart,
            EventType::InferenceEnd,
            EventType::TelemetryRecord
        ]
    );
    let r = seen.only_record();
    assert_eq!(r.agent, "fn");
    assert_eq!(r.metadata["run"], 7);
}
