//! [`SimulatedEngine`]: a deterministic, seeded engine with realistic timings.

mod model;
mod plan;
mod rng;
mod stream;

#[cfg(feature = "async")]
mod async_impl;
#[cfg(feature = "async")]
pub use async_impl::SimAsyncStream;

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use model::SimModel;
pub use stream::SimStream;

use crate::engine::InferenceEngine;
use crate::error::SimulatedError;
use crate::price::PriceTable;
use crate::request::{GenerateParams, Message};
use crate::response::{EngineTimings, GenerateResult};
use plan::Plan;
use rng::SplitMix64;

/// Whether the simulated engine sleeps through its delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SimTiming {
    /// Return at once and report synthetic timings (engine-reported TTFT and duration, chunk
    /// offsets), which the instrumented wrapper uses: records look real without waiting.
    #[default]
    Instant,
    /// Sleep for the simulated delays, like a real server.
    RealTime,
}

/// A deterministic inference engine for demos, tests and benches.
///
/// - Models with different speeds and prices: [`SimulatedEngine::models`].
/// - TTFT grows with the prompt length; each output token takes the model's decode time, with
///   jitter; completion lengths vary below `max_tokens`.
/// - Streams one word a token, then (by default) a final usage chunk.
/// - A configurable error rate injects `overloaded`, `timeout` and `rate_limited` failures.
/// - Seeded: the `n`-th call of two engines with the same seed and inputs is the same.
/// - [`SimTiming::Instant`] (default) returns at once with synthetic timings;
///   [`SimTiming::RealTime`] sleeps.
///
/// ```
/// use telemetry_wrap::{GenerateParams, InferenceEngine, Message, SimulatedEngine};
///
/// let engine = SimulatedEngine::new().with_seed(42);
/// let params = GenerateParams::new("sim-small-8b").with_max_tokens(64);
/// let out = engine.generate(&[Message::user("Why is the sky blue?")], &params).unwrap();
/// assert!(out.usage.completion_tokens <= 64);
/// assert!(out.timings.ttft.unwrap() > std::time::Duration::from_millis(30));
/// let again = SimulatedEngine::new().with_seed(42)
///     .generate(&[Message::user("Why is the sky blue?")], &params).unwrap();
/// assert_eq!(out, again);
/// ```
#[derive(Debug)]
pub struct SimulatedEngine {
    seed: u64,
    error_rate: f64,
    timing: SimTiming,
    usage_chunk: bool,
    engine_id: String,
    calls: AtomicU64,
}

impl Default for SimulatedEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl SimulatedEngine {
    /// An instant engine with seed 0, no errors, engine id `sim`.
    pub fn new() -> Self {
        SimulatedEngine {
            seed: 0,
            error_rate: 0.0,
            timing: SimTiming::Instant,
            usage_chunk: true,
            engine_id: "sim".to_owned(),
            calls: AtomicU64::new(0),
        }
    }

    /// Sets the seed (and restarts the call sequence).
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self.calls = AtomicU64::new(0);
        self
    }

    /// Sets the probability (clamped to 0–1) that a call fails.
    #[must_use]
    pub fn with_error_rate(mut self, rate: f64) -> Self {
        self.error_rate = if rate.is_nan() {
            0.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        self
    }

    /// Sets instant or real-time behaviour.
    #[must_use]
    pub fn with_timing(mut self, timing: SimTiming) -> Self {
        self.timing = timing;
        self
    }

    /// Shorthand for [`SimTiming::RealTime`].
    #[must_use]
    pub fn realtime(self) -> Self {
        self.with_timing(SimTiming::RealTime)
    }

    /// Whether streams end with a usage chunk (default true); without it the wrapper counts
    /// chunks and the record says `tokens_counted`.
    #[must_use]
    pub fn with_usage_chunk(mut self, send: bool) -> Self {
        self.usage_chunk = send;
        self
    }

    /// Sets the engine id (default `sim`).
    #[must_use]
    pub fn with_engine_id(mut self, id: impl Into<String>) -> Self {
        self.engine_id = id.into();
        self
    }

    /// The engine id.
    pub fn engine_id(&self) -> &str {
        &self.engine_id
    }

    /// The timing mode.
    pub fn timing(&self) -> SimTiming {
        self.timing
    }

    /// The simulated models, fastest first.
    pub fn models() -> &'static [SimModel] {
        model::MODELS
    }

    /// The prices of the simulated models (for [`InstrumentedEngine::with_price_table`](crate::InstrumentedEngine::with_price_table)).
    pub fn price_table() -> PriceTable {
        model::price_table()
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn plan(&self, messages: &[Message], params: &GenerateParams) -> Result<Plan, SimulatedError> {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let model = model::MODELS
            .iter()
            .find(|m| m.id == params.model)
            .ok_or_else(|| SimulatedError::UnknownModel {
                model: params.model.clone(),
                known: model::MODELS
                    .iter()
                    .map(|m| m.id)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let mut mixer = SplitMix64::new(self.seed ^ call.wrapping_mul(0xA24B_AED4_963E_E407));
        let rng = SplitMix64::new(mixer.next_u64());
        Plan::draw(model, rng, self.error_rate, call, messages, params)
    }

    fn generate_planned(&self, mut plan: Plan) -> (GenerateResult, Duration) {
        let content = plan.run_to_end();
        let total = plan.offset.max(plan.ttft);
        let result = GenerateResult {
            content,
            usage: plan.usage,
            cost_usd: None,
            timings: EngineTimings {
                ttft: Some(plan.ttft),
                total: (self.timing == SimTiming::Instant).then_some(total),
                ..EngineTimings::default()
            },
            finish_reason: plan.finish,
        };
        (result, total)
    }
}

impl InferenceEngine for SimulatedEngine {
    type Error = SimulatedError;
    type Stream = SimStream;

    fn engine_id(&self) -> &str {
        &self.engine_id
    }

    fn generate(
        &self,
        messages: &[Message],
        params: &GenerateParams,
    ) -> Result<GenerateResult, SimulatedError> {
        let plan = self.plan(messages, params)?;
        let (result, total) = self.generate_planned(plan);
        if self.timing == SimTiming::RealTime {
            std::thread::sleep(total);
        }
        Ok(result)
    }

    fn stream(
        &self,
        messages: &[Message],
        params: &GenerateParams,
    ) -> Result<SimStream, SimulatedError> {
        let plan = self.plan(messages, params)?;
        Ok(SimStream::new(plan, self.timing, self.usage_chunk))
    }

    fn error_kind(error: &SimulatedError) -> Cow<'static, str> {
        Cow::Borrowed(match error {
            SimulatedError::UnknownModel { .. } => "unknown_model",
            SimulatedError::Injected { kind, .. } => kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(model: &str) -> GenerateParams {
        GenerateParams::new(model).with_max_tokens(32)
    }

    #[test]
    fn unknown_model_is_an_error_listing_the_known_ones() {
        let err = SimulatedEngine::new()
            .generate(&[], &params("nope"))
            .unwrap_err();
        assert!(err.to_string().contains("sim-tiny-1b"), "{err}");
        assert_eq!(SimulatedEngine::error_kind(&err), "unknown_model");
    }

    #[test]
    fn ttft_grows_with_prompt_length_and_models_differ_in_speed() {
        let engine = SimulatedEngine::new();
        let short = [Message::user("hi")];
        let long = [Message::user("x".repeat(40_000))];
        let mean_ttft = |m: &[Message], model: &str| {
            (0..20)
                .map(|_| {
                    engine
                        .generate(m, &params(model))
                        .unwrap()
                        .timings
                        .ttft
                        .unwrap()
                        .as_secs_f64()
                })
                .sum::<f64>()
                / 20.0
        };
        assert!(mean_ttft(&long, "sim-small-8b") > 2.0 * mean_ttft(&short, "sim-small-8b"));
        assert!(mean_ttft(&short, "sim-large-70b") > 3.0 * mean_ttft(&short, "sim-tiny-1b"));
    }

    #[test]
    fn error_rate_injects_failures() {
        let engine = SimulatedEngine::new().with_error_rate(0.5).with_seed(3);
        let failures = (0..200)
            .filter(|_| engine.generate(&[], &params("sim-tiny-1b")).is_err())
            .count();
        assert!((60..140).contains(&failures), "{failures}");
        let always = SimulatedEngine::new().with_error_rate(2.0);
        let err = always.generate(&[], &params("sim-tiny-1b")).unwrap_err();
        assert!(matches!(err, SimulatedError::Injected { .. }));
    }

    #[test]
    fn stream_text_matches_generate_for_the_same_call() {
        let a = SimulatedEngine::new().with_seed(9);
        let b = SimulatedEngine::new().with_seed(9);
        let m = [Message::user("hello")];
        let whole = a.generate(&m, &params("sim-small-8b")).unwrap();
        let chunks: Vec<_> = b
            .stream(&m, &params("sim-small-8b"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let text: String = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(text, whole.content);
        let last = chunks.last().unwrap();
        assert_eq!(last.usage, Some(whole.usage));
        assert_eq!(
            chunks.iter().filter(|c| c.has_text()).count() as u64,
            whole.usage.completion_tokens
        );
        // Offsets increase.
        let offsets: Vec<_> = chunks.iter().map(|c| c.elapsed.unwrap()).collect();
        assert!(offsets.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn realtime_mode_sleeps() {
        let engine = SimulatedEngine::new().realtime();
        let started = std::time::Instant::now();
        let out = engine
            .generate(&[], &GenerateParams::new("sim-tiny-1b").with_max_tokens(2))
            .unwrap();
        assert!(started.elapsed() >= out.timings.ttft.unwrap());
        assert_eq!(out.timings.total, None);
    }
}
