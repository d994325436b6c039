//! Record fields of streamed calls: TTFT, ITL statistics, reported vs counted tokens, failures
//! mid-stream and at the start, and streams the caller drops early.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{Collector, Scripted, ScriptedError, messages, ms};
use telemetry_core::{EventBus, Outcome};
use telemetry_wrap::{GenerateParams, InferenceEngine, InstrumentedEngine, StreamChunk, Usage};

fn wrapped(engine: Scripted) -> (InstrumentedEngine<Scripted>, Collector) {
    let bus = Arc::new(EventBus::new());
    let seen = Collector::attach(&bus);
    (InstrumentedEngine::new(engine, bus), seen)
}

/// Text chunks at 100, 110, 130, 160, 200 ms: gaps 10, 20, 30, 40 ms.
fn timed_chunks() -> Vec<Result<StreamChunk, ScriptedError>> {
    [100, 110, 130, 160, 200]
        .into_iter()
        .map(|t| Ok(StreamChunk::text("tok").at(ms(t))))
        .collect()
}

#[test]
fn ttft_itl_and_phases_from_chunk_times() {
    let mut chunks = timed_chunks();
    chunks.push(Ok(StreamChunk::usage(Usage::new(50, 5)).at(ms(210))));
    let (engine, seen) = wrapped(Scripted {
        chunks,
        ..Scripted::default()
    });
    let n = engine
        .stream(&messages(), &GenerateParams::new("m"))
        .unwrap()
        .count();
    assert_eq!(n, 6);
    let r = seen.only_record();
    assert!(r.is_streaming);
    assert!(!r.tokens_counted, "the engine sent usage");
    assert_eq!((r.prompt_tokens, r.completion_tokens), (50, 5));
    assert_eq!(r.ttft, Some(0.1));
    assert!(
        (r.latency_seconds - 0.21).abs() < 1e-9,
        "{}",
        r.latency_seconds
    );
    assert_eq!(r.prefill_latency_seconds, Some(0.1));
    assert!((r.decode_latency_seconds.unwrap() - 0.11).abs() < 1e-9);
    assert!((r.throughput_tok_per_sec.unwrap() - 5.0 / 0.11).abs() < 1e-6);
    let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-6;
    assert!(close(r.mean_itl_ms, 25.0), "{:?}", r.mean_itl_ms);
    assert!(close(r.median_itl_ms, 25.0));
    assert!(close(r.p90_itl_ms, 37.0));
    assert!(close(r.p95_itl_ms, 38.5));
    assert!(close(r.p99_itl_ms, 39.7));
    assert!(close(r.std_itl_ms, 11.180_339_887));
}

#[test]
fn without_a_usage_chunk_tokens_are_counted_and_flagged() {
    let (engine, seen) = wrapped(Scripted {
        chunks: timed_chunks(),
        ..Scripted::default()
    });
    let _ = engine
        .stream(&messages(), &GenerateParams::new("m"))
        .unwrap()
        .count();
    let r = seen.only_record();
    assert!(r.tokens_counted);
    assert_eq!((r.prompt_tokens, r.completion_tokens), (0, 5));
}

#[test]
fn measured_clock_is_used_when_chunks_carry_no_time() {
    struct Slow(u32);
    impl Iterator for Slow {
        type Item = Result<StreamChunk, ScriptedError>;
        fn next(&mut self) -> Option<Self::Item> {
            if self.0 == 0 {
                return None;
            }
            self.0 -= 1;
            std::thread::sleep(ms(5));
            Some(Ok(StreamChunk::text("x")))
        }
    }
    let bus = Arc::new(EventBus::new());
    let seen = Collector::attach(&bus);
    let wrapped_slow = InstrumentedEngine::new(SlowEngine, bus);
    let n = wrapped_slow
        .stream(&messages(), &GenerateParams::new("m"))
        .unwrap()
        .count();
    assert_eq!(n, 3);
    let records = seen.records();
    let r = records.last().unwrap();
    assert!(r.ttft.unwrap() >= 0.005);
    assert!(r.mean_itl_ms.unwrap() >= 4.0, "{:?}", r.mean_itl_ms);
    assert!(r.latency_seconds >= 0.015);

    struct SlowEngine;
    impl InferenceEngine for SlowEngine {
        type Error = ScriptedError;
        type Stream = Slow;
        fn engine_id(&self) -> &str {
            "slow"
        }
        fn generate(
            &self,
            _: &[telemetry_wrap::Message],
            _: &GenerateParams,
        ) -> Result<telemetry_wrap::GenerateResult, ScriptedError> {
            Err(ScriptedError("no".into()))
        }
        fn stream(
            &self,
            _: &[telemetry_wrap::Message],
            _: &GenerateParams,
        ) -> Result<Slow, ScriptedError> {
            Ok(Slow(3))
        }
    }
}

#[test]
fn error_mid_stream_is_recorded_and_passed_through() {
    let mut chunks = timed_chunks();
    chunks.truncate(2);
    chunks.push(Err(ScriptedError("connection reset".into())));
    chunks.push(Ok(StreamChunk::text("after")));
    let (engine, seen) = wrapped(Scripted {
        chunks,
        ..Scripted::default()
    });
    let items: Vec<_> = engine
        .stream(&messages(), &GenerateParams::new("m"))
        .unwrap()
        .collect();
    assert_eq!(items.len(), 4);
    assert_eq!(
        items[2].as_ref().unwrap_err(),
        &ScriptedError("connection reset".into())
    );
    let r = seen.only_record();
    assert_eq!(r.outcome, Outcome::Error);
    assert_eq!(r.error_kind, "scripted");
    assert_eq!(r.error_message, "scripted failure: connection reset");
    assert_eq!(r.completion_tokens, 2, "what arrived before the error");
    assert_eq!(r.ttft, Some(0.1));
}

#[test]
fn error_starting_the_stream_is_recorded() {
    let (engine, seen) = wrapped(Scripted {
        error: Some(ScriptedError("timeout".into())),
        ..Scripted::default()
    });
    let err = engine
        .stream(&messages(), &GenerateParams::new("m"))
        .unwrap_err();
    assert_eq!(err, ScriptedError("timeout".into()));
    let r = seen.only_record();
    assert_eq!((r.outcome, r.is_streaming), (Outcome::Error, true));
    assert_eq!(r.error_kind, "timeout");
}

#[test]
fn dropping_a_stream_early_records_it_cancelled() {
    let (engine, seen) = wrapped(Scripted {
        chunks: timed_chunks(),
        ..Scripted::default()
    });
    let mut stream = engine
        .stream(&messages(), &GenerateParams::new("m"))
        .unwrap();
    stream.next().unwrap().unwrap();
    stream.next().unwrap().unwrap();
    assert_eq!(stream.chunks_seen(), 2);
    assert!(
        seen.records().is_empty(),
        "nothing recorded while streaming"
    );
    drop(stream);
    let r = seen.only_record();
    assert_eq!(r.outcome, Outcome::Cancelled);
    assert_eq!(r.completion_tokens, 2);
    assert!(r.tokens_counted);
    assert_eq!(r.ttft, Some(0.1));
    assert!((r.mean_itl_ms.unwrap() - 10.0).abs() < 1e-6);
    assert!(r.error_kind.is_empty());
}

#[test]
fn dropping_a_stream_before_any_chunk_records_it_cancelled_without_ttft() {
    let (engine, seen) = wrapped(Scripted {
        chunks: timed_chunks(),
        ..Scripted::default()
    });
    drop(
        engine
            .stream(&messages(), &GenerateParams::new("m"))
            .unwrap(),
    );
    let r = seen.only_record();
    assert_eq!(
        (r.outcome, r.ttft, r.completion_tokens),
        (Outcome::Cancelled, None, 0)
    );
    assert_eq!(r.mean_itl_ms, None);
}
