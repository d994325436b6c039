//! Wrapping an already instrumented engine (by value, reference or Arc, same bus or another)
//! records each call once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{Collector, Scripted, messages};
use telemetry_core::EventBus;
use telemetry_wrap::{
    GenerateParams, InferenceEngine, InstrumentedEngine, StreamChunk, instrumented_generate,
};

fn scripted() -> Scripted {
    Scripted {
        chunks: vec![Ok(StreamChunk::text("a")), Ok(StreamChunk::text("b"))],
        ..Scripted::default()
    }
}

#[test]
fn nested_wrappers_record_once() {
    let bus = Arc::new(EventBus::new());
    let seen = Collector::attach(&bus);
    let inner = InstrumentedEngine::new(scripted(), Arc::clone(&bus)).with_agent("inner");
    let outer = InstrumentedEngine::new(inner, Arc::clone(&bus)).with_agent("outer");
    assert!(outer.is_passthrough());
    outer
        .generate(&messages(), &GenerateParams::new("m"))
        .unwrap();
    let _ = outer
        .stream(&messages(), &GenerateParams::new("m"))
        .unwrap()
        .count();
    let records = seen.records();
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r.agent == "inner"));
}

#[test]
fn wrapping_a_reference_or_arc_of_an_instrumented_engine_records_once() {
    let bus = Arc::new(EventBus::new());
    let seen = Collector::attach(&bus);
    let inner = Arc::new(InstrumentedEngine::new(scripted(), Arc::clone(&bus)));
    let by_ref = InstrumentedEngine::new(&*inner, EventBus::new());
    let by_arc = InstrumentedEngine::new(Arc::clone(&inner), EventBus::new());
    by_ref
        .generate(&messages(), &GenerateParams::new("m"))
        .unwrap();
    by_arc
        .generate(&messages(), &GenerateParams::new("m"))
        .unwrap();
    instrumented_generate(&*inner, &messages(), &GenerateParams::new("m"), &bus).unwrap();
    assert_eq!(seen.records().len(), 3);
}

#[test]
fn a_plain_engine_is_recorded() {
    let bus = Arc::new(EventBus::new());
    let seen = Collector::attach(&bus);
    let engine = InstrumentedEngine::new(scripted(), Arc::clone(&bus));
    assert!(!engine.is_passthrough());
    assert!(engine.is_instrumented());
    engine
        .generate(&messages(), &GenerateParams::new("m"))
        .unwrap();
    assert_eq!(seen.records().len(), 1);
}
