//! [`instrumented_generate`]: one recorded call without building a wrapper.

use std::sync::Arc;

use telemetry_core::EventBus;

use crate::context::CallContext;
use crate::engine::InferenceEngine;
use crate::instrumented::end_with_result;
use crate::request::{GenerateParams, Message};
use crate::response::GenerateResult;

/// Calls `engine.generate` and publishes `InferenceStart`, `InferenceEnd` and `TelemetryRecord`
/// on `bus`, returning the engine's result or error unchanged. No agent, metadata, prices or GPU
/// energy: see [`instrumented_generate_with`]. An already instrumented engine is called without
/// recording twice.
///
/// ```
/// use std::sync::Arc;
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
/// let bus = Arc::new(EventBus::with_history(8));
/// let out = instrumented_generate(&Fixed, &[Message::user("hi")], &GenerateParams::new("m"), &bus).unwrap();
/// assert_eq!(out.content, "ok");
/// let record = bus.history().iter().find_map(|e| e.as_record().cloned()).unwrap();
/// assert_eq!((record.model_id.as_str(), record.total_tokens), ("m", 4));
/// ```
pub fn instrumented_generate<E: InferenceEngine>(
    engine: &E,
    messages: &[Message],
    params: &GenerateParams,
    bus: &Arc<EventBus>,
) -> Result<GenerateResult, E::Error> {
    if engine.is_instrumented() {
        return engine.generate(messages, params);
    }
    let ctx = CallContext::new(Arc::clone(bus), engine.engine_id());
    instrumented_generate_with(engine, messages, params, &ctx)
}

/// [`instrumented_generate`] with a [`CallContext`]: its bus, engine name, agent, metadata,
/// price table and (feature `gpu`) GPU sampler, exactly as an
/// [`InstrumentedEngine`](crate::InstrumentedEngine) with the same context records.
pub fn instrumented_generate_with<E: InferenceEngine>(
    engine: &E,
    messages: &[Message],
    params: &GenerateParams,
    ctx: &CallContext,
) -> Result<GenerateResult, E::Error> {
    if engine.is_instrumented() {
        return engine.generate(messages, params);
    }
    let call = ctx.call(params.model.as_str()).start();
    let result = engine.generate(messages, params);
    end_with_result(call, &result, E::error_kind);
    result
}
