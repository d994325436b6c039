//! [`instrumented_generate`]: one recorded call without building a wrapper.

use std::sync::Arc;

use telemetry_core::{Event, EventBus};

use crate::call::{CallStart, Measurement, build_record, publish_end};
use crate::engine::InferenceEngine;
use crate::options::CallOptions;
use crate::request::{GenerateParams, Message};
use crate::response::GenerateResult;

/// Calls `engine.generate` and publishes `InferenceStart`, `InferenceEnd` and `TelemetryRecord`
/// on `bus`, returning the engine's result or error unchanged. No agent, metadata or prices: see
/// [`instrumented_generate_with`]. An already instrumented engine is called without recording
/// twice.
///
/// ```
/// use telemetry_core::{EventBus, EventType};
/// use telemetry_wrap::{instrumented_generate, GenerateParams, GenerateResult, InferenceEngine, Message, SingleChunk, Usage};
///
/// struct Fixed;
/// impl InferenceEngine for Fixed {
///     type Error = std::io::Error;
///     type Stream = SingleChunk<std::io::Error>;
///     fn engine_id(&self) -> &str { "fixed" }
///     fn generate(&self, _: &[Message], _: &GenerateParams) -> Result<GenerateResult, Self::Error> {
///         Ok(GenerateResult::new("ok", Usage::new(3, 1)))
///     }
///     fn stream(&self, m: &[Message], p: &GenerateParams) -> Result<Self::Stream, Self::Error> {
///         Ok(Some(Ok(self.generate(m, p)?.into())).into_iter())
///     }
/// }
///
/// let bus = EventBus::with_history(8);
/// let out = instrumented_generate(&Fixed, &[Message::user("hi")], &GenerateParams::new("m"), &bus).unwrap();
/// assert_eq!(out.content, "ok");
/// let record = bus.history().iter().find_map(|e| e.as_record().cloned()).unwrap();
/// assert_eq!((record.model_id.as_str(), record.total_tokens), ("m", 4));
/// ```
pub fn instrumented_generate<E: InferenceEngine>(
    engine: &E,
    messages: &[Message],
    params: &GenerateParams,
    bus: &EventBus,
) -> Result<GenerateResult, E::Error> {
    instrumented_generate_with(engine, messages, params, bus, &CallOptions::default())
}

/// [`instrumented_generate`] with an agent, metadata and a price table.
pub fn instrumented_generate_with<E: InferenceEngine>(
    engine: &E,
    messages: &[Message],
    params: &GenerateParams,
    bus: &EventBus,
    options: &CallOptions,
) -> Result<GenerateResult, E::Error> {
    if engine.is_instrumented() {
        return engine.generate(messages, params);
    }
    let call = CallStart::begin(bus, false, || {
        (
            Arc::from(params.model.as_str()),
            Arc::from(engine.engine_id()),
            Arc::clone(&options.agent),
        )
    });
    let result = engine.generate(messages, params);
    let elapsed = call.start.elapsed();
    let measured = match &result {
        Ok(r) => Measurement::blocking(elapsed, r),
        Err(e) => Measurement::failed(elapsed, E::error_kind(e), e),
    };
    let record = build_record(&call, &params.model, engine.engine_id(), options, measured);
    publish_end(bus, call.call_id, &record);
    bus.publish(Event::from(record));
    result
}
