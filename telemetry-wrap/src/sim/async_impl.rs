//! The simulated engine as an [`AsyncInferenceEngine`]: real-time delays use a timer thread, so
//! no executor's timer is needed.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use futures_core::Stream;

use crate::async_engine::AsyncInferenceEngine;
use crate::engine::InferenceEngine;
use crate::error::SimulatedError;
use crate::request::{GenerateParams, Message};
use crate::response::{GenerateResult, StreamChunk};

use super::{SimStream, SimTiming, SimulatedEngine};

/// Resolves at `deadline`; the first pending poll starts a thread that sleeps and wakes the task.
#[derive(Debug)]
struct Delay {
    deadline: Instant,
    waker: Option<Arc<Mutex<Waker>>>,
}

impl Delay {
    fn until(deadline: Instant) -> Self {
        Delay {
            deadline,
            waker: None,
        }
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            self.waker = None;
            return Poll::Ready(());
        }
        match &self.waker {
            Some(w) => *w.lock().unwrap_or_else(PoisonError::into_inner) = cx.waker().clone(),
            None => {
                let shared = Arc::new(Mutex::new(cx.waker().clone()));
                let deadline = self.deadline;
                let for_thread = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let now = Instant::now();
                    if deadline > now {
                        std::thread::sleep(deadline - now);
                    }
                    for_thread
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .wake_by_ref();
                });
                self.waker = Some(shared);
            }
        }
        Poll::Pending
    }
}

impl Future for Delay {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().poll_ready(cx)
    }
}

/// The simulated engine's async stream. In real-time mode each wait for a chunk uses one
/// short-lived timer thread (no executor timer needed); in instant mode nothing waits.
#[derive(Debug)]
pub struct SimAsyncStream {
    inner: SimStream,
    pending: Option<(StreamChunk, Delay)>,
}

impl Stream for SimAsyncStream {
    type Item = Result<StreamChunk, SimulatedError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.pending.is_none() {
            match this.inner.next_due() {
                Some((chunk, due)) => this.pending = Some((chunk, Delay::until(due))),
                None => return Poll::Ready(None),
            }
        }
        if let Some((_, delay)) = &mut this.pending
            && delay.poll_ready(cx).is_pending()
        {
            return Poll::Pending;
        }
        Poll::Ready(this.pending.take().map(|(chunk, _)| Ok(chunk)))
    }
}

impl AsyncInferenceEngine for SimulatedEngine {
    type Error = SimulatedError;
    type Stream = SimAsyncStream;

    fn engine_id(&self) -> &str {
        &self.engine_id
    }

    fn generate(
        &self,
        messages: &[Message],
        params: &GenerateParams,
    ) -> impl Future<Output = Result<GenerateResult, Self::Error>> + Send {
        let started = Instant::now();
        let planned = self
            .plan(messages, params)
            .map(|plan| self.generate_planned(plan));
        let realtime = self.timing == SimTiming::RealTime;
        async move {
            let (result, total) = planned?;
            if realtime {
                Delay::until(started + total).await;
            }
            Ok(result)
        }
    }

    fn stream(
        &self,
        messages: &[Message],
        params: &GenerateParams,
    ) -> impl Future<Output = Result<Self::Stream, Self::Error>> + Send {
        let stream = <Self as InferenceEngine>::stream(self, messages, params);
        async move {
            Ok(SimAsyncStream {
                inner: stream?,
                pending: None,
            })
        }
    }

    fn error_kind(error: &SimulatedError) -> Cow<'static, str> {
        <Self as InferenceEngine>::error_kind(error)
    }
}
