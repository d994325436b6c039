//! [`InstrumentedEngine`]: the decorator that records every call of the engine it wraps.

use std::sync::Arc;

use telemetry_core::{EventBus, MAX_LABEL_BYTES};

use crate::call::{Measurement, build_record};
use crate::context::{EngineContext, ModelCache};
use crate::engine::InferenceEngine;
use crate::error::ConfigError;
use crate::options::{CallOptions, truncate};
use crate::price::PriceTable;
use crate::request::{GenerateParams, Message};
use crate::response::GenerateResult;
use crate::stream::{InstrumentedStream, StreamRecorder};

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
    ctx: Arc<EngineContext>,
    models: ModelCache,
    passthrough: bool,
}

impl<E> InstrumentedEngine<E> {
    fn with_parts(inner: E, bus: Arc<EventBus>, engine_id: &str, passthrough: bool) -> Self {
        InstrumentedEngine {
            inner,
            ctx: Arc::new(EngineContext {
                bus,
                engine_id: Arc::from(truncate(engine_id, MAX_LABEL_BYTES)),
                options: CallOptions::new(),
                #[cfg(feature = "gpu")]
                gpu: None,
            }),
            models: ModelCache::default(),
            passthrough,
        }
    }

    fn options_mut(&mut self) -> &mut CallOptions {
        &mut Arc::make_mut(&mut self.ctx).options
    }

    /// Sets the agent recorded with every call (cut to 512 bytes).
    #[must_use]
    pub fn with_agent(mut self, agent: impl AsRef<str>) -> Self {
        let options = std::mem::take(self.options_mut());
        *self.options_mut() = options.with_agent(agent);
        self
    }

    /// Sets the metadata recorded with every call; refused unless it is a JSON object that a
    /// record can carry.
    pub fn with_metadata(mut self, metadata: serde_json::Value) -> Result<Self, ConfigError> {
        let options = std::mem::take(self.options_mut());
        *self.options_mut() = options.with_metadata(metadata)?;
        Ok(self)
    }

    /// Sets the price table used when the engine reports no cost.
    #[must_use]
    pub fn with_price_table(mut self, prices: impl Into<Arc<PriceTable>>) -> Self {
        let options = std::mem::take(self.options_mut());
        *self.options_mut() = options.with_price_table(prices);
        self
    }

    /// Replaces all caller options at once.
    #[must_use]
    pub fn with_options(mut self, options: CallOptions) -> Self {
        *self.options_mut() = options;
        self
    }

    /// The caller options.
    pub fn options(&self) -> &CallOptions {
        &self.ctx.options
    }

    /// The bus records are published on.
    pub fn bus(&self) -> &Arc<EventBus> {
        &self.ctx.bus
    }

    /// The engine id recorded with every call.
    pub fn engine_id(&self) -> &str {
        &self.ctx.engine_id
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
        #[cfg(feature = "gpu")]
        if let Some(gpu) = &self.ctx.gpu {
            gpu.flush();
        }
    }

    #[cfg(feature = "async")]
    pub(crate) fn parts(&self) -> (&E, &Arc<EngineContext>, &ModelCache, bool) {
        (&self.inner, &self.ctx, &self.models, self.passthrough)
    }

    #[cfg(feature = "gpu")]
    pub(crate) fn ctx(&self) -> &EngineContext {
        &self.ctx
    }

    #[cfg(feature = "gpu")]
    pub(crate) fn ctx_mut(&mut self) -> &mut EngineContext {
        Arc::make_mut(&mut self.ctx)
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

#[cfg(feature = "async")]
impl<E: crate::AsyncInferenceEngine> InstrumentedEngine<E> {
    /// Wraps an async engine; records go to `bus` (an `EventBus` or an `Arc` of one).
    pub fn new_async(engine: E, bus: impl Into<Arc<EventBus>>) -> Self {
        let passthrough = engine.is_instrumented();
        let id = engine.engine_id().to_owned();
        Self::with_parts(engine, bus.into(), &id, passthrough)
    }
}

impl<E: InferenceEngine> InferenceEngine for InstrumentedEngine<E> {
    type Error = E::Error;
    type Stream = InstrumentedStream<E>;

    fn engine_id(&self) -> &str {
        &self.ctx.engine_id
    }

    fn generate(
        &self,
        messages: &[Message],
        params: &GenerateParams,
    ) -> Result<GenerateResult, Self::Error> {
        if self.passthrough {
            return self.inner.generate(messages, params);
        }
        let call = self.ctx.begin(&self.models, &params.model, false);
        let result = self.inner.generate(messages, params);
        let elapsed = call.start.start.elapsed();
        let measured = match &result {
            Ok(r) => Measurement::blocking(elapsed, r),
            Err(e) => Measurement::failed(elapsed, E::error_kind(e), e),
        };
        let record = build_record(
            &call.start,
            &params.model,
            &self.ctx.engine_id,
            &self.ctx.options,
            measured,
        );
        self.ctx.deliver(call, record);
        result
    }

    fn stream(
        &self,
        messages: &[Message],
        params: &GenerateParams,
    ) -> Result<Self::Stream, Self::Error> {
        if self.passthrough {
            return self
                .inner
                .stream(messages, params)
                .map(|s| InstrumentedStream::new(s, None));
        }
        let call = self.ctx.begin(&self.models, &params.model, true);
        match self.inner.stream(messages, params) {
            Ok(s) => Ok(InstrumentedStream::new(
                s,
                Some(StreamRecorder::new(Arc::clone(&self.ctx), call, params)),
            )),
            Err(e) => {
                let m = Measurement {
                    is_streaming: true,
                    ..Measurement::failed(call.start.start.elapsed(), E::error_kind(&e), &e)
                };
                let record = build_record(
                    &call.start,
                    &params.model,
                    &self.ctx.engine_id,
                    &self.ctx.options,
                    m,
                );
                self.ctx.deliver(call, record);
                Err(e)
            }
        }
    }

    fn error_kind(error: &Self::Error) -> std::borrow::Cow<'static, str> {
        E::error_kind(error)
    }

    fn is_instrumented(&self) -> bool {
        true
    }
}
