//! [`InferenceEngine`]: the blocking engine abstraction users implement.

use std::borrow::Cow;
use std::sync::Arc;

use crate::request::{GenerateParams, Message};
use crate::response::{GenerateResult, StreamChunk};

/// A blocking inference engine: anything that turns messages into text.
///
/// Implement `engine_id`, `generate` and `stream`; an engine that cannot stream can return its
/// whole result as one chunk (see [`SingleChunk`]):
///
/// ```
/// use telemetry_wrap::{
///     GenerateParams, GenerateResult, InferenceEngine, Message, SingleChunk, StreamChunk, Usage,
/// };
///
/// struct Echo;
///
/// impl InferenceEngine for Echo {
///     type Error = std::io::Error;
///     type Stream = SingleChunk<std::io::Error>;
///
///     fn engine_id(&self) -> &str {
///         "echo"
///     }
///
///     fn generate(&self, messages: &[Message], _: &GenerateParams) -> Result<GenerateResult, Self::Error> {
///         let text = messages.last().map(|m| m.content.clone()).unwrap_or_default();
///         Ok(GenerateResult::new(text, Usage::new(1, 1)))
///     }
///
///     fn stream(&self, messages: &[Message], params: &GenerateParams) -> Result<Self::Stream, Self::Error> {
///         Ok(Some(Ok(StreamChunk::from(self.generate(messages, params)?))).into_iter())
///     }
/// }
/// # assert_eq!(Echo.generate(&[Message::user("hi")], &GenerateParams::new("m")).unwrap().content, "hi");
/// ```
pub trait InferenceEngine {
    /// The engine's own error; the instrumented wrapper returns it unchanged.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The iterator of chunks returned by [`stream`](Self::stream).
    type Stream: Iterator<Item = Result<StreamChunk, Self::Error>>;

    /// Short name of the engine or server (`vllm`, `ollama`, `openai`, ...); the record's `engine`.
    fn engine_id(&self) -> &str;

    /// Generates a whole answer.
    fn generate(
        &self,
        messages: &[Message],
        params: &GenerateParams,
    ) -> Result<GenerateResult, Self::Error>;

    /// Starts a streamed answer; the error is for failures before the first chunk.
    fn stream(
        &self,
        messages: &[Message],
        params: &GenerateParams,
    ) -> Result<Self::Stream, Self::Error>;

    /// Short machine-readable kind of an error, stored as the record's `error_kind`
    /// (`timeout`, `http_500`, ...). The default is the error type's name.
    fn error_kind(error: &Self::Error) -> Cow<'static, str>
    where
        Self: Sized,
    {
        let _ = error;
        Cow::Borrowed(default_error_kind::<Self::Error>())
    }

    /// Whether this engine already publishes telemetry (true for
    /// [`InstrumentedEngine`](crate::InstrumentedEngine)); a wrapper around such an engine passes
    /// calls through without recording them twice. Decorators should forward it.
    fn is_instrumented(&self) -> bool {
        false
    }
}

/// The stream type of an engine that answers in one chunk: `Some(Ok(chunk)).into_iter()`.
pub type SingleChunk<E> = std::option::IntoIter<Result<StreamChunk, E>>;

/// The last path segment of `T`'s type name, without generic arguments (`IoError` for
/// `my_crate::IoError<u8>`).
pub fn default_error_kind<T: ?Sized>() -> &'static str {
    let name = std::any::type_name::<T>();
    let base = name.split('<').next().unwrap_or(name);
    base.rsplit("::").next().unwrap_or(base)
}

macro_rules! forward_engine {
    ($($ty:ty),*) => {$(
        impl<E: InferenceEngine> InferenceEngine for $ty {
            type Error = E::Error;
            type Stream = E::Stream;

            fn engine_id(&self) -> &str {
                (**self).engine_id()
            }

            fn generate(
                &self,
                messages: &[Message],
                params: &GenerateParams,
            ) -> Result<GenerateResult, Self::Error> {
                (**self).generate(messages, params)
            }

            fn stream(
                &self,
                messages: &[Message],
                params: &GenerateParams,
            ) -> Result<Self::Stream, Self::Error> {
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

forward_engine!(&E, Box<E>, Arc<E>);

#[cfg(test)]
mod tests {
    use super::*;

    struct MyError<T>(T);

    #[test]
    fn default_error_kind_is_the_bare_type_name() {
        assert_eq!(default_error_kind::<std::io::Error>(), "Error");
        assert_eq!(default_error_kind::<MyError<u8>>(), "MyError");
        assert_eq!(default_error_kind::<u32>(), "u32");
    }
}
