//! Whatever an engine reports (huge token counts, odd timings, negative or NaN costs, out-of-order
//! chunk offsets), every published record passes `validate()` and keeps its invariants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Collector, Scripted, messages};
use proptest::prelude::*;
use telemetry_core::EventBus;
use telemetry_wrap::{
    EngineTimings, GenerateParams, GenerateResult, InferenceEngine, InstrumentedEngine, Price,
    PriceTable, StreamChunk, Usage,
};

fn usage() -> impl Strategy<Value = Usage> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<(u64, u64)>(),
    )
        .prop_map(|(p, c, t, k, (w, r))| Usage {
            prompt_tokens: p >> (p % 64),
            completion_tokens: c >> (c % 64),
            total_tokens: t,
            cached_tokens: k >> (k % 64),
            cache_write_tokens: w >> (w % 64),
            reasoning_tokens: r >> (r % 64),
        })
}

fn duration() -> impl Strategy<Value = Option<Duration>> {
    proptest::option::of((0u64..10_000_000_000).prop_map(Duration::from_nanos))
}

fn cost() -> impl Strategy<Value = Option<f64>> {
    proptest::option::of(prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(-1.0),
        0.0f64..10.0
    ])
}

fn engine_with(scripted: Scripted) -> (InstrumentedEngine<Scripted>, Collector) {
    let bus = Arc::new(EventBus::new());
    let seen = Collector::attach(&bus);
    let prices = PriceTable::new().with(
        "m",
        Price::PerToken {
            input: 1e-6,
            cached_input: 5e-7,
            output: 2e-6,
        },
    );
    (
        InstrumentedEngine::new(scripted, bus).with_price_table(prices),
        seen,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn blocking_records_always_validate(
        usage in usage(),
        ttft in duration(),
        total in duration(),
        cost in cost(),
        model in prop_oneof![Just("m".to_owned()), Just(String::new()), "[a-z]{1,700}"],
    ) {
        let mut result = GenerateResult::new("x", usage);
        result.timings = EngineTimings {
            ttft,
            total,
            ..EngineTimings::default()
        };
        result.cost_usd = cost;
        let (engine, seen) = engine_with(Scripted { result: Some(result), ..Scripted::default() });
        engine.generate(&messages(), &GenerateParams::new(model)).unwrap();
        let r = seen.only_record();
        prop_assert_eq!(r.total_tokens, r.prompt_tokens + r.completion_tokens);
        prop_assert!(r.ttft.is_none_or(|t| t <= r.latency_seconds));
        prop_assert!(r.cost_usd.is_finite() && r.cost_usd >= 0.0);
    }

    #[test]
    fn stream_records_always_validate(
        offsets in proptest::collection::vec(duration(), 0..40),
        final_usage in proptest::option::of(usage()),
        cut in 0usize..45,
    ) {
        let mut chunks: Vec<_> = offsets
            .iter()
            .map(|o| {
                let c = StreamChunk::text("t");
                Ok(match o { Some(d) => c.at(*d), None => c })
            })
            .collect();
        if let Some(u) = final_usage {
            chunks.push(Ok(StreamChunk::usage(u)));
        }
        let total = chunks.len();
        let (engine, seen) = engine_with(Scripted { chunks, ..Scripted::default() });
        let taken = engine.stream(&messages(), &GenerateParams::new("m")).unwrap().take(cut).count();
        let r = seen.only_record();
        prop_assert_eq!(taken, cut.min(total));
        prop_assert!(r.is_streaming);
        prop_assert!(r.ttft.is_none_or(|t| t <= r.latency_seconds));
        if r.mean_itl_ms.is_some() {
            prop_assert!(r.median_itl_ms.unwrap() <= r.p99_itl_ms.unwrap() + 1e-9);
        }
    }
}
