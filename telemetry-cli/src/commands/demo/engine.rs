//! [`DemoEngine`]: the simulated engine, advancing the mock GPU's virtual clock in instant mode.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use telemetry_gpu::{GpuSampler, MockClock, Timestamp};
use telemetry_wrap::{
    GenerateParams, GenerateResult, InferenceEngine, Message, SimStream, SimulatedEngine,
    SimulatedError, StreamChunk,
};

/// Simulated time a failed call takes. Instant failures report no duration; a window of zero
/// length starting at the newest sample also trips a panic in telemetry-gpu's
/// `EnergyCurve::method_between` (clamp with min > max), so every call takes at least this.
const FAILED_CALL_TIME: Duration = Duration::from_millis(1);

/// The mock GPU's virtual clock and its sampler (instant mode with `--gpu mock|auto`).
#[derive(Debug, Clone)]
pub struct VirtualGpu {
    clock: MockClock,
    sampler: Arc<GpuSampler>,
    /// When the next sample is due on the virtual clock.
    next_sample: Arc<Mutex<Timestamp>>,
}

impl VirtualGpu {
    /// A virtual GPU whose sampler has just taken its first sample at the clock's origin.
    pub fn new(clock: MockClock, sampler: Arc<GpuSampler>) -> Self {
        let first = sampler.now() + sampler.config().interval;
        VirtualGpu {
            clock,
            sampler,
            next_sample: Arc::new(Mutex::new(first)),
        }
    }

    /// Simulated time passes: move the clock by `by`, sampling at every sampler interval on the
    /// way, as the real sampler thread would; each sample also completes the calls whose
    /// windows the timeline now covers.
    fn advance(&self, by: Duration) {
        let interval = self.sampler.config().interval;
        let end = self.sampler.now() + by;
        let mut next = self
            .next_sample
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *next <= end {
            self.clock.set(*next);
            self.sampler.sample_now();
            *next = *next + interval;
        }
        self.clock.set(end);
    }
}

/// [`SimulatedEngine`] that, in instant mode, moves the mock GPU's clock by each call's
/// synthetic duration, so the GPU window of a call is as long as its simulated latency.
#[derive(Debug)]
pub struct DemoEngine {
    /// The simulated engine.
    pub inner: SimulatedEngine,
    /// The virtual GPU clock, when energy follows simulated time.
    pub virtual_gpu: Option<VirtualGpu>,
}

impl InferenceEngine for DemoEngine {
    type Error = SimulatedError;
    type Stream = DemoStream;

    fn engine_id(&self) -> &str {
        self.inner.engine_id()
    }

    fn generate(
        &self,
        messages: &[Message],
        params: &GenerateParams,
    ) -> Result<GenerateResult, SimulatedError> {
        let result = self.inner.generate(messages, params);
        if let Some(gpu) = &self.virtual_gpu {
            let took = match &result {
                Ok(r) => r.timings.total.unwrap_or(FAILED_CALL_TIME),
                Err(_) => FAILED_CALL_TIME,
            };
            gpu.advance(took.max(FAILED_CALL_TIME));
        }
        result
    }

    fn stream(
        &self,
        messages: &[Message],
        params: &GenerateParams,
    ) -> Result<DemoStream, SimulatedError> {
        let inner = self.inner.stream(messages, params).inspect_err(|_| {
            if let Some(gpu) = &self.virtual_gpu {
                gpu.advance(FAILED_CALL_TIME);
            }
        })?;
        Ok(DemoStream {
            inner,
            virtual_gpu: self.virtual_gpu.clone(),
            last: Duration::ZERO,
        })
    }

    fn error_kind(error: &SimulatedError) -> Cow<'static, str> {
        SimulatedEngine::error_kind(error)
    }
}

/// The simulated stream; moves the virtual clock by each chunk's synthetic offset.
#[derive(Debug)]
pub struct DemoStream {
    inner: SimStream,
    virtual_gpu: Option<VirtualGpu>,
    last: Duration,
}

impl Iterator for DemoStream {
    type Item = Result<StreamChunk, SimulatedError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.next();
        if let Some(gpu) = &self.virtual_gpu {
            match &item {
                Some(Ok(StreamChunk {
                    elapsed: Some(at), ..
                })) => {
                    gpu.advance(at.saturating_sub(self.last));
                    self.last = self.last.max(*at);
                }
                Some(Ok(_)) => {}
                Some(Err(_)) => gpu.advance(FAILED_CALL_TIME),
                None if self.last.is_zero() => gpu.advance(FAILED_CALL_TIME),
                None => {}
            }
        }
        item
    }
}
