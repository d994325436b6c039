//! [`SimStream`]: the simulated engine's blocking stream.

use std::time::Instant;

use crate::error::SimulatedError;
use crate::response::StreamChunk;

use super::SimTiming;
use super::plan::Plan;

/// Chunks of a simulated answer: one word a token, then a usage chunk when enabled. In
/// real-time mode each `next` sleeps until the token is due; in instant mode chunks carry their
/// synthetic offsets.
#[derive(Debug)]
pub struct SimStream {
    plan: Plan,
    timing: SimTiming,
    usage_pending: bool,
    started: Instant,
}

impl SimStream {
    pub(crate) fn new(plan: Plan, timing: SimTiming, usage_chunk: bool) -> Self {
        SimStream {
            plan,
            timing,
            usage_pending: usage_chunk,
            started: Instant::now(),
        }
    }

    /// The next chunk and when it is due, without waiting.
    pub(crate) fn next_due(&mut self) -> Option<(StreamChunk, Instant)> {
        let chunk = match self.plan.next_chunk() {
            Some(c) => c,
            None if self.usage_pending => {
                self.usage_pending = false;
                self.plan.usage_chunk()
            }
            None => return None,
        };
        let due = self.started + self.plan.offset;
        Some(match self.timing {
            SimTiming::Instant => (chunk, self.started),
            SimTiming::RealTime => (
                StreamChunk {
                    elapsed: None,
                    ..chunk
                },
                due,
            ),
        })
    }
}

impl Iterator for SimStream {
    type Item = Result<StreamChunk, SimulatedError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (chunk, due) = self.next_due()?;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        Some(Ok(chunk))
    }
}
