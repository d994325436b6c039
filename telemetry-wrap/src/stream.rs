//! [`InstrumentedStream`]: a blocking stream that measures TTFT and inter-token latency as the
//! caller pulls chunks, and records the call when it ends, fails or is dropped early.

use crate::call::Call;
use crate::engine::InferenceEngine;
use crate::response::StreamChunk;

/// The stream of an [`InstrumentedEngine`](crate::InstrumentedEngine): yields the inner engine's
/// chunks and errors unchanged.
///
/// The call is recorded when the inner stream ends (`ok`), yields an error (`error`; later items
/// pass through unrecorded) or when this stream is dropped before either (`cancelled`, with what
/// was measured so far).
pub struct InstrumentedStream<E: InferenceEngine> {
    inner: E::Stream,
    call: Option<Call>,
    /// Text chunks seen, kept once the call has ended.
    chunks: u64,
}

impl<E: InferenceEngine> InstrumentedStream<E> {
    pub(crate) fn new(inner: E::Stream, call: Option<Call>) -> Self {
        InstrumentedStream {
            inner,
            call: opened(call),
            chunks: 0,
        }
    }

    /// Text chunks seen so far.
    pub fn chunks_seen(&self) -> u64 {
        self.call.as_ref().map_or(self.chunks, Call::output_chunks)
    }
}

/// The call of a stream that opened: without usage, its text chunks are counted.
pub(crate) fn opened(mut call: Option<Call>) -> Option<Call> {
    if let Some(call) = &mut call {
        call.stream_opened();
    }
    call
}

/// Passes one item of an instrumented stream to its call: a chunk is observed, an error or the
/// end ends the call. `chunks` keeps the count of text chunks once the call has ended.
#[inline]
pub(crate) fn observe<Err: std::error::Error>(
    call: &mut Option<Call>,
    chunks: &mut u64,
    item: Option<&Result<StreamChunk, Err>>,
    kind: impl FnOnce(&Err) -> std::borrow::Cow<'static, str>,
) {
    let Some(c) = call else { return };
    match item {
        Some(Ok(chunk)) => c.on_chunk(chunk),
        Some(Err(e)) => {
            *chunks = c.output_chunks();
            if let Some(c) = call.take() {
                c.fail(kind(e), e);
            }
        }
        None => {
            *chunks = c.output_chunks();
            if let Some(c) = call.take() {
                c.finish();
            }
        }
    }
}

impl<E: InferenceEngine> std::fmt::Debug for InstrumentedStream<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstrumentedStream")
            .field("call", &self.call)
            .finish_non_exhaustive()
    }
}

impl<E: InferenceEngine> Iterator for InstrumentedStream<E> {
    type Item = Result<StreamChunk, E::Error>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.next();
        observe(
            &mut self.call,
            &mut self.chunks,
            item.as_ref(),
            E::error_kind,
        );
        item
    }
}
