//! [`AsyncInferenceEngine`]: the runtime-agnostic async engine abstraction, and its
//! instrumented implementation.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use telemetry_core::EventBus;

use crate::call::Call;
use crate::engine::default_error_kind;
use crate::instrumented::{InstrumentedEngine, end_with_result};
use crate::request::{GenerateParams, Message};
use crate::response::{GenerateResult, StreamChunk};
use crate::stream::{observe, opened};

#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
impl<E: AsyncInferenceEngine> InstrumentedEngine<E> {
    /// Wraps an async engine; records go to `bus` (an `EventBus` or an `Arc` of one).
    pub fn new_async(engine: E, bus: impl Into<Arc<EventBus>>) -> Self {
        let passthrough = engine.is_instrumented();
        let id = engine.engine_id().to_owned();
        Self::with_parts(engine, bus.into(), &id, passthrough)
    }
}

/// An async inference engine: the same shape as [`InferenceEngine`](crate::InferenceEngine),
/// with futures and [`futures_core::Stream`]s, usable from any executor.
///
/// A type may implement both traits ([`SimulatedEngine`](crate::SimulatedEngine) and
/// [`InstrumentedEngine`] do); with both in scope, name the one you mean:
/// `AsyncInferenceEngine::generate(&engine, &messages, &params)`. Dropping an instrumented
/// `generate` future before it completes records the call as cancelled.
///
/// ```
/// use std::future::Future;
/// use telemetry_wrap::{AsyncInferenceEngine, GenerateParams, GenerateResult, Message, StreamChunk, Usage};
///
/// struct Fixed;
///
/// impl AsyncInferenceEngine for Fixed {
///     type Error = std::io::Error;
///     type Stream = futures::stream::Iter<std::vec::IntoIter<Result<StreamChunk, std::io::Error>>>;
///
///     fn engine_id(&self) -> &str {
///         "fixed"
///     }
///
///     fn generate(&self, _: &[Message], _: &GenerateParams)
///         -> impl Future<Output = Result<GenerateResult, Self::Error>> + Send {
///         async { Ok(GenerateResult::new("ok", Usage::new(2, 1))) }
///     }
///
///     fn stream(&self, _: &[Message], _: &GenerateParams)
///         -> impl Future<Output = Result<Self::Stream, Self::Error>> + Send {
///         async { Ok(futures::stream::iter(vec![Ok(StreamChunk::text("ok"))])) }
///     }
/// }
///
/// let out = futures::executor::block_on(Fixed.generate(&[], &GenerateParams::new("m"))).unwrap();
/// assert_eq!(out.content, "ok");
/// ```
pub trait AsyncInferenceEngine: Send + Sync {
    /// The engine's own error; the instrumented wrapper returns it unchanged.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The stream of chunks produced by [`stream`](Self::stream).
    type Stream: Stream<Item = Result<StreamChunk, Self::Error>> + Send;

    /// Short name of the engine or server; the record's `engine`.
    fn engine_id(&self) -> &str;

    /// Generates a whole answer.
    fn generate(
        &self,
        messages: &[Message],
        params: &GenerateParams,
    ) -> impl Future<Output = Result<GenerateResult, Self::Error>> + Send;

    /// Starts a streamed answer; the error is for failures before the first chunk.
    fn stream(
        &self,
        messages: &[Message],
        params: &GenerateParams,
    ) -> impl Future<Output = Result<Self::Stream, Self::Error>> + Send;

    /// Short machine-readable kind of an error (the record's `error_kind`); default: the error
    /// type's name.
    fn error_kind(error: &Self::Error) -> Cow<'static, str>
    where
        Self: Sized,
    {
        let _ = error;
        Cow::Borrowed(default_error_kind::<Self::Error>())
    }

    /// Whether this engine already publishes telemetry; see
    /// [`InferenceEngine::is_instrumented`](crate::InferenceEngine::is_instrumented).
    fn is_instrumented(&self) -> bool {
        false
    }
}

macro_rules! forward_async_engine {
    ($($ty:ty),*) => {$(
        impl<E: AsyncInferenceEngine> AsyncInferenceEngine for $ty {
            type Error = E::Error;
            type Stream = E::Stream;

            fn engine_id(&self) -> &str {
                (**self).engine_id()
            }

            fn generate(
                &self,
                messages: &[Message],
                params: &GenerateParams,
            ) -> impl Future<Output = Result<GenerateResult, Self::Error>> + Send {
                (**self).generate(messages, params)
            }

            fn stream(
                &self,
                messages: &[Message],
                params: &GenerateParams,
            ) -> impl Future<Output = Result<Self::Stream, Self::Error>> + Send {
                (**self).stream(messages, params)
            }

            fn error_kind(error: &Self::Error) -> Cow<'static, str> {
                E::error_kind(error)
            }

            fn is_instrumented(&self) -> bool {
                (**self).is_instrumented()
            }
        }
    )*};
}

forward_async_engine!(&E, Box<E>, Arc<E>);

impl<E: AsyncInferenceEngine> AsyncInferenceEngine for InstrumentedEngine<E> {
    type Error = E::Error;
    type Stream = InstrumentedAsyncStream<E>;

    fn engine_id(&self) -> &str {
        InstrumentedEngine::engine_id(self)
    }

    // The call starts when the future is first polled, as the engine's own work does; dropping
    // the future before it completes drops the call, which records it as cancelled.
    async fn generate(
        &self,
        messages: &[Message],
        params: &GenerateParams,
    ) -> Result<GenerateResult, Self::Error> {
        let Some(call) = self.start_call(params, false) else {
            return self.inner().generate(messages, params).await;
        };
        let result = self.inner().generate(messages, params).await;
        end_with_result(call, &result, E::error_kind);
        result
    }

    async fn stream(
        &self,
        messages: &[Message],
        params: &GenerateParams,
    ) -> Result<Self::Stream, Self::Error> {
        let call = self.start_call(params, true);
        match self.inner().stream(messages, params).await {
            Ok(s) => Ok(InstrumentedAsyncStream {
                inner: Box::pin(s),
                call: opened(call),
                chunks: 0,
            }),
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

/// The stream of an instrumented async engine; see
/// [`InstrumentedStream`](crate::InstrumentedStream) for what is recorded and when.
pub struct InstrumentedAsyncStream<E: AsyncInferenceEngine> {
    inner: Pin<Box<E::Stream>>,
    call: Option<Call>,
    /// Text chunks seen, kept once the call has ended.
    chunks: u64,
}

impl<E: AsyncInferenceEngine> InstrumentedAsyncStream<E> {
    /// Text chunks seen so far.
    pub fn chunks_seen(&self) -> u64 {
        self.call.as_ref().map_or(self.chunks, Call::output_chunks)
    }
}

impl<E: AsyncInferenceEngine> std::fmt::Debug for InstrumentedAsyncStream<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstrumentedAsyncStream")
            .field("call", &self.call)
            .finish_non_exhaustive()
    }
}

impl<E: AsyncInferenceEngine> Stream for InstrumentedAsyncStream<E> {
    type Item = Result<StreamChunk, E::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Poll::Ready(item) = this.inner.as_mut().poll_next(cx) else {
            return Poll::Pending;
        };
        observe(
            &mut this.call,
            &mut this.chunks,
            item.as_ref(),
            E::error_kind,
        );
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}
