//! [`InstrumentedEngine`]: the decorator that records every call of the engine it wraps.

use std::borrow::Cow;
use std::sync::Arc;

use telemetry_core::EventBus;

use crate::call::Call;
use crate::context::CallContext;
use crate::engine::InferenceEngine;
use crate::error::ConfigError;
use crate::options::CallOptions;
use crate::price::PriceTable;
use crate::request::{GenerateParams, Message};
use crate::response::GenerateResult;
use crate::stream::InstrumentedStream;

/// Wraps an engine and publishes `InferenceStart`, `InferenceEnd` and `TelemetryRecord` on the
/// bus for every call, returning the inner engine's results and errors unchanged.
///
/// It implements the engine traits itself, so it drops in wherever the inner engine went.
/// Wrapping an engine that is already instrumented passes calls through without recording them
/// twice (see [`InferenceEngine::is_instrumented`]).
///
/// ```
/// use std::sync::Arc;
/// use telemetry_core::{EventBus, EventType};
/// use telemetry_wrap::{GenerateParams, GenerateResult, InferenceEngine, InstrumentedEngine, Message, SingleChunk, Usage};
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
/// let bus = Arc::new(EventBus::with_history(16));
/// bus.subscribe(EventType::TelemetryRecord, |_| {});
/// let engine = InstrumentedEngine::new(Fixed, Arc::clone(&bus)).with_agent("docs");
/// let twice = InstrumentedEngine::new(&engine, Arc::clone(&bus));
/// twice.generate(&[Message::user("hi")], &GenerateParams::new("m")).unwrap();
/// let records: Vec<_> = bus.history().iter().filter_map(|e| e.as_record().cloned()).collect();
/// assert_eq!(records.len(), 1);
/// assert_eq!(records[0].agent, "docs");
/// ```
#[derive(Debug)]
pub struct InstrumentedEngine<E> {
    inner: E,
    ctx: CallContext,
    passthrough: bool,
}

impl<E> InstrumentedEngine<E> {
    pub(crate) fn with_parts(
        inner: E,
        bus: Arc<EventBus>,
        engine_id: &str,
        passthrough: bool,
    ) -> Self {
        InstrumentedEngine {
            inner,
            ctx: CallContext::new(bus, engine_id),
            passthrough,
        }
    }

    /// Sets the agent recorded with every call (cut to 512 bytes).
    #[must_use]
    pub fn with_agent(mut self, agent: impl AsRef<str>) -> Self {
        self.ctx = self.ctx.with_agent(agent);
        self
    }

    /// Sets the metadata recorded with every call; refused unless it is a JSON object that a
    /// record can carry.
    pub fn with_metadata(mut self, metadata: serde_json::Value) -> Result<Self, ConfigError> {
        self.ctx = self.ctx.with_metadata(metadata)?;
        Ok(self)
    }

    /// Sets the price table used when the engine reports no cost.
    #[must_use]
    pub fn with_price_table(mut self, prices: impl Into<Arc<PriceTable>>) -> Self {
        self.ctx = self.ctx.with_price_table(prices);
        self
    }

    /// Replaces all caller options at once.
    #[must_use]
    pub fn with_options(mut self, options: CallOptions) -> Self {
        self.ctx = self.ctx.with_options(options);
        self
    }

    /// Measures GPU energy, power, utilization, memory and temperature of every call with
    /// `sampler`. The `TelemetryRecord` event is then published from the sampler's thread once
    /// the call's energy is known (the call itself returns at once); `InferenceStart` and
    /// `InferenceEnd` are still published on the caller's thread. [`flush`](Self::flush)
    /// completes pending records.
    #[cfg(feature = "gpu")]
    #[cfg_attr(docsrs, doc(cfg(feature = "gpu")))]
    #[must_use]
    pub fn with_gpu_sampler(mut self, sampler: impl Into<Arc<telemetry_gpu::GpuSampler>>) -> Self {
        self.ctx = self.ctx.with_gpu_sampler(sampler);
        self
    }

    /// The GPU sampler, when one is attached.
    #[cfg(feature = "gpu")]
    #[cfg_attr(docsrs, doc(cfg(feature = "gpu")))]
    pub fn gpu_sampler(&self) -> Option<&Arc<telemetry_gpu::GpuSampler>> {
        self.ctx.gpu_sampler()
    }

    /// The caller options.
    pub fn options(&self) -> &CallOptions {
        self.ctx.options()
    }

    /// The bus records are published on.
    pub fn bus(&self) -> &Arc<EventBus> {
        self.ctx.bus()
    }

    /// The engine id recorded with every call.
    pub fn engine_id(&self) -> &str {
        self.ctx.engine()
    }

    /// The context every call of this engine is recorded with.
    pub fn context(&self) -> &CallContext {
        &self.ctx
    }

    /// The wrapped engine.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// Unwraps the engine.
    pub fn into_inner(self) -> E {
        self.inner
    }

    /// Whether this wrapper passes calls through because the inner engine already records them.
    pub fn is_passthrough(&self) -> bool {
        self.passthrough
    }

    /// Completes every record still waiting for GPU energy (feature `gpu`) and publishes it;
    /// without a GPU sampler records are published as calls end, so this returns at once.
    pub fn flush(&self) {
        self.ctx.flush();
    }

    /// Starts a call of `params.model`, or `None` when this wrapper passes calls through.
    pub(crate) fn start_call(&self, params: &GenerateParams, is_streaming: bool) -> Option<Call> {
        if self.passthrough {
            return None;
        }
        let mut builder = self.ctx.call(params.model.as_str()).streaming(is_streaming);
        if is_streaming {
            builder = builder.expected_tokens(params.max_tokens.unwrap_or(256));
        }
        Some(builder.start())
    }
}

impl<E: InferenceEngine> InstrumentedEngine<E> {
    /// Wraps a blocking engine; records go to `bus` (an `EventBus` or an `Arc` of one).
    pub fn new(engine: E, bus: impl Into<Arc<EventBus>>) -> Self {
        let passthrough = engine.is_instrumented();
        let id = engine.engine_id().to_owned();
        Self::with_parts(engine, bus.into(), &id, passthrough)
    }
}

impl<E: InferenceEngine> InferenceEngine for InstrumentedEngine<E> {
    type Error = E::Error;
    type Stream = InstrumentedStream<E>;

    fn engine_id(&self) -> &str {
        self.ctx.engine()
    }

    fn generate(
        &self,
        messages: &[Message],
        params: &GenerateParams,
    ) -> Result<GenerateResult, Self::Error> {
        let Some(call) = self.start_call(params, false) else {
            return self.inner.generate(messages, params);
        };
        let result = self.inner.generate(messages, params);
        end_with_result(call, &result, E::error_kind);
        result
    }

    fn stream(
        &self,
        messages: &[Message],
        params: &GenerateParams,
    ) -> Result<Self::Stream, Self::Error> {
        let call = self.start_call(params, true);
        match self.inner.stream(messages, params) {
            Ok(s) => Ok(InstrumentedStream::new(s, call)),
            Err(e) => {
                if let Some(call) = call {
                    call.fail(E::error_kind(&e), &e);
                }
                Err(e)
            }
        }
    }

    fn error_kind(error: &Self::Error) -> Cow<'static, str> {
        E::error_kind(error)
    }

    fn is_instrumented(&self) -> bool {
        true
    }
}

/// Ends a blocking call with the engine's result or error (of the kind `kind` says).
pub(crate) fn end_with_result<Err: std::error::Error>(
    mut call: Call,
    result: &Result<GenerateResult, Err>,
    kind: fn(&Err) -> Cow<'static, str>,
) {
    match result {
        Ok(r) => {
            call.apply_result(r);
            call.finish();
        }
        Err(e) => call.fail(kind(e), e),
    }
}
