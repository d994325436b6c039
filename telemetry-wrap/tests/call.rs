//! The public call lifecycle driven from outside an engine, as a proxy does: chunks as they
//! arrive, usage, server timings, the response model, and each way a call can end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Collector, ms};
use telemetry_core::{Event, EventBus, EventType, Outcome};
use telemetry_wrap::{CallContext, Price, PriceTable, StreamChunk, Usage};

fn context() -> (CallContext, Collector) {
    let bus = Arc::new(EventBus::new());
    let seen = Collector::attach(&bus);
    (CallContext::new(bus, "llama.cpp").with_agent("proxy"), seen)
}

#[test]
fn ttft_is_the_first_non_empty_content_and_gaps_follow() {
    let (ctx, seen) = context();
    let mut call = ctx.call("m").streaming(true).start();
    std::thread::sleep(ms(20));
    call.on_text(""); // role-only first chunk, before any computation
    std::thread::sleep(ms(20));
    call.on_text("Hel");
    std::thread::sleep(ms(5));
    call.on_text("lo");
    call.on_text("");
    assert_eq!(call.output_chunks(), 2);
    call.finish();

    let r = seen.only_record();
    assert!(r.is_streaming);
    let ttft = r.ttft.unwrap();
    assert!(ttft >= 0.040, "TTFT must skip the empty chunk: {ttft}");
    assert!(r.mean_itl_ms.unwrap() >= 5.0, "{:?}", r.mean_itl_ms);
    assert!(r.latency_seconds >= ttft);
    // Without usage the text chunks are the completion tokens.
    assert!(r.tokens_counted);
    assert_eq!((r.prompt_tokens, r.completion_tokens), (0, 2));
    assert_eq!(
        (r.agent.as_str(), r.engine.as_str()),
        ("proxy", "llama.cpp")
    );
    let tokens = seen
        .events()
        .iter()
        .filter(|e| e.event_type() == EventType::StreamToken)
        .count();
    assert_eq!(tokens, 2);
}

#[test]
fn reported_usage_server_timings_and_response_model_win() {
    let (ctx, seen) = context();
    let mut call = ctx.call("requested").streaming(true).agent("app").start();
    call.on_text("a");
    call.on_text("b");
    call.set_usage(Usage::new(30, 7).with_cached(10));
    call.set_server_timings(Some(ms(12)), Some(ms(250)));
    call.set_model("served-model");
    call.finish();

    let events = seen.events();
    let Event::InferenceStart(start) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(&*start.model_id, "requested");
    assert_eq!(&*start.agent, "app");
    assert!(start.is_streaming);
    let r = seen.only_record();
    assert_eq!(r.model_id, "served-model");
    assert_eq!(r.agent, "app");
    assert!(!r.tokens_counted);
    assert_eq!(
        (r.prompt_tokens, r.completion_tokens, r.prompt_tokens_cached),
        (30, 7, 10)
    );
    assert_eq!(r.server_prefill_ms, Some(12.0));
    assert_eq!(r.server_decode_ms, Some(250.0));
}

#[test]
fn counted_usage_is_flagged() {
    let (ctx, seen) = context();
    let mut call = ctx.call("m").start();
    call.set_counted_usage(Usage::new(4, 9));
    call.finish();
    let r = seen.only_record();
    assert!(r.tokens_counted);
    assert_eq!((r.prompt_tokens, r.completion_tokens), (4, 9));
    assert!(!r.is_streaming);
}

#[test]
fn cost_comes_from_the_price_table_unless_reported() {
    let prices = PriceTable::new().with(
        "m",
        Price::PerToken {
            input: 1.0,
            cached_input: 1.0,
            output: 2.0,
        },
    );
    let (ctx, seen) = context();
    let ctx = ctx.with_price_table(prices);
    let mut call = ctx.call("m").start();
    call.set_usage(Usage::new(3, 4));
    call.finish();
    let mut reported = ctx.call("m").start();
    reported.set_usage(Usage::new(3, 4));
    reported.set_cost(0.5);
    reported.finish();
    let unknown = ctx.call("other").start();
    unknown.finish();
    let r = seen.records();
    assert_eq!((r[0].cost_usd, r[0].cost_unknown), (11.0, false));
    assert_eq!((r[1].cost_usd, r[1].cost_unknown), (0.5, false));
    assert_eq!((r[2].cost_usd, r[2].cost_unknown), (0.0, true));
}

#[test]
fn a_failed_call_has_its_kind_and_message() {
    let (ctx, seen) = context();
    let call = ctx.call("m").start();
    call.fail("http_400", format_args!("status {}", 400));
    let blank = ctx.call("m").start();
    blank.fail("", "no kind");
    let r = seen.records();
    assert_eq!(r[0].outcome, Outcome::Error);
    assert_eq!(
        (r[0].error_kind.as_str(), r[0].error_message.as_str()),
        ("http_400", "status 400")
    );
    assert_eq!(r[1].error_kind, "error");
    assert!(r.iter().all(|r| r.validate().is_ok()));
}

#[test]
fn dropping_an_unfinished_call_records_it_cancelled_once() {
    let (ctx, seen) = context();
    let mut call = ctx.call("m").streaming(true).start();
    call.on_chunk(&StreamChunk::text("a").at(ms(10)));
    call.on_chunk(&StreamChunk::text("b").at(ms(30)));
    drop(call);
    ctx.call("m").start().cancel();
    assert_eq!(
        seen.types(),
        [
            EventType::InferenceStart,
            EventType::StreamToken,
            EventType::StreamToken,
            EventType::InferenceEnd,
            EventType::TelemetryRecord,
            EventType::InferenceStart,
            EventType::InferenceEnd,
            EventType::TelemetryRecord,
        ]
    );
    let r = seen.records();
    assert_eq!(r[0].outcome, Outcome::Cancelled);
    assert_eq!(
        r[0].completion_tokens, 2,
        "what was measured so far is kept"
    );
    assert_eq!(r[0].ttft, Some(0.01));
    assert_eq!(r[1].outcome, Outcome::Cancelled);
}

#[test]
fn a_call_moves_to_another_thread_and_ends_there() {
    let (ctx, seen) = context();
    let mut call = ctx.call("m").streaming(true).start();
    let id = call.id();
    let handle = std::thread::spawn(move || {
        call.on_text("x");
        std::thread::sleep(Duration::from_millis(2));
        call.finish();
    });
    handle.join().unwrap();
    let r = seen.only_record();
    assert_eq!(r.outcome, Outcome::Ok);
    assert!(r.latency_seconds >= 0.002);
    let Event::InferenceEnd(end) = &seen.events()[2] else {
        panic!()
    };
    assert_eq!(end.call_id, id);
}

#[test]
fn output_of_any_kind_is_a_chunk_and_records_name_api_and_operation() {
    let (ctx, seen) = context();
    let mut call = ctx
        .call("m")
        .api(telemetry_core::api::ANTHROPIC_MESSAGES, "chat")
        .start();
    // Learnt from the response: it streams.
    call.set_streaming(true);
    call.on_output(); // a tool-call argument delta: output, no text
    call.on_text("a");
    call.on_output();
    assert_eq!(call.output_chunks(), 3);
    call.set_usage(
        Usage::new(40, 12)
            .with_cached(10)
            .with_cache_write(20)
            .with_reasoning(5),
    );
    call.finish();
    let r = seen.only_record();
    assert_eq!(r.validate(), Ok(()));
    assert!(r.is_streaming && r.ttft.is_some());
    assert_eq!(r.output_chunks, 3);
    assert_eq!(
        (r.api.as_str(), r.operation.as_str()),
        ("anthropic_messages", "chat")
    );
    assert_eq!(
        (
            r.prompt_tokens_cached,
            r.prompt_tokens_cache_write,
            r.reasoning_tokens
        ),
        (10, 20, 5)
    );
}

#[test]
fn chunks_of_a_call_that_did_not_stream_and_names_that_are_not_names_are_dropped() {
    let (ctx, seen) = context();
    let mut call = ctx.call("m").api("Not A Name", "chat").start();
    call.on_text("x");
    call.set_usage(Usage::new(1, 1).with_cache_write(5).with_reasoning(9));
    call.finish();
    let r = seen.only_record();
    assert_eq!(r.validate(), Ok(()));
    assert_eq!((r.output_chunks, r.api.as_str()), (0, ""));
    assert_eq!((r.prompt_tokens_cache_write, r.reasoning_tokens), (1, 1));
}

#[test]
fn a_per_token_price_of_counted_tokens_is_unknown() {
    let bus = Arc::new(EventBus::new());
    let seen = Collector::attach(&bus);
    let prices = PriceTable::new()
        .with(
            "m",
            Price::PerToken {
                input: 1.0,
                cached_input: 1.0,
                output: 2.0,
            },
        )
        .with(
            "gpu",
            Price::PerSecond {
                usd_per_second: 1.0,
            },
        );
    let ctx = CallContext::new(bus, "e").with_price_table(prices);
    for model in ["m", "gpu"] {
        let mut call = ctx.call(model).streaming(true).start();
        call.on_text("a");
        call.on_text("b");
        call.finish();
    }
    let records = seen.records();
    // No usage: the prompt is not known, so neither is a price per token of it.
    assert_eq!((records[0].cost_usd, records[0].cost_unknown), (4.0, true));
    assert!(records[0].tokens_counted);
    // A price per second does not depend on the counts.
    assert!(!records[1].cost_unknown && records[1].cost_usd >= 0.0);
}

#[test]
fn output_at_an_instant_is_timed_at_that_instant() {
    let (ctx, seen) = context();
    let before = std::time::Instant::now();
    let mut call = ctx.call("m").streaming(true).start();
    std::thread::sleep(ms(30));
    let at = std::time::Instant::now();
    std::thread::sleep(ms(10));
    let later = std::time::Instant::now();
    // Two chunks read together share their instant, whenever they are noted; an instant
    // before the call is its start.
    call.on_output_at(at);
    call.on_output_at(at);
    call.on_output_at(later);
    call.on_output_at(before);
    assert_eq!(call.output_chunks(), 4);
    call.finish();
    let r = seen.only_record();
    let ttft = r.ttft.unwrap();
    assert!(
        ttft >= 0.030 && ttft <= at.duration_since(before).as_secs_f64(),
        "ttft {ttft}"
    );
    // Gaps: 0, `later - at`, and 0 for the instant before the start (never negative).
    let mean = r.mean_itl_ms.unwrap();
    let gap = later.duration_since(at).as_secs_f64() * 1000.0;
    assert!((mean - gap / 3.0).abs() < 1e-6, "mean {mean}, gap {gap}");
    assert_eq!(r.median_itl_ms, Some(0.0));
}
