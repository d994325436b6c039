//! [`Deadlines`]: which timeout of a streamed call ends it next. No I/O: the engines read with
//! the deadline it gives and report its error when it passes.

use std::time::{Duration, Instant};

use crate::config::Timeouts;
use crate::protocol::OpenAiError;

/// The deadlines of one streamed call: the first content chunk within `first_token` of the
/// request, each next one within `idle` of the previous, all of it within `total`. Only chunks
/// with content move them: keep-alive comments (`: ping`) and role-only chunks do not.
#[derive(Debug, Clone)]
pub(crate) struct Deadlines {
    started: Instant,
    timeouts: Timeouts,
    last_content: Option<Instant>,
    chunks: u64,
}

impl Deadlines {
    /// A call whose request was sent at `started`.
    pub(crate) fn new(started: Instant, timeouts: Timeouts) -> Self {
        Deadlines {
            started,
            timeouts,
            last_content: None,
            chunks: 0,
        }
    }

    /// The stream has had `chunks` content chunks in all, as of `now`.
    pub(crate) fn saw(&mut self, chunks: u64, now: Instant) {
        if chunks > self.chunks {
            self.chunks = chunks;
            self.last_content = Some(now);
        }
    }

    /// The earliest deadline still ahead of the call and the error it ends the call with;
    /// `None` when no timeout is set.
    pub(crate) fn next(&self) -> Option<(Instant, OpenAiError)> {
        let at = |from: Instant, d: Duration| from.checked_add(d);
        let step = match self.last_content {
            None => self.timeouts.first_token.and_then(|t| {
                Some((
                    at(self.started, t)?,
                    OpenAiError::TimeoutFirstToken { timeout: t },
                ))
            }),
            Some(last) => self.timeouts.idle.and_then(|t| {
                Some((
                    at(last, t)?,
                    OpenAiError::TimeoutIdle {
                        timeout: t,
                        chunks: self.chunks,
                    },
                ))
            }),
        };
        let total = self.timeouts.total.and_then(|t| {
            Some((
                at(self.started, t)?,
                OpenAiError::TimeoutTotal {
                    timeout: t,
                    chunks: self.chunks,
                },
            ))
        });
        match (step, total) {
            (Some(s), Some(t)) => Some(if t.0 < s.0 { t } else { s }),
            (s, t) => s.or(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts(first: u64, idle: u64, total: Option<u64>) -> Timeouts {
        Timeouts {
            connect: None,
            first_token: Some(Duration::from_secs(first)),
            idle: Some(Duration::from_secs(idle)),
            total: total.map(Duration::from_secs),
        }
    }

    #[test]
    fn first_token_then_between_chunks_then_total() {
        let t0 = Instant::now();
        let mut d = Deadlines::new(t0, timeouts(3, 1, Some(10)));
        let (at, e) = d.next().unwrap();
        assert_eq!(at, t0 + Duration::from_secs(3));
        assert_eq!(e.error_kind(), "timeout_first_token");
        // No content yet (a comment, a role-only chunk): nothing moves.
        d.saw(0, t0 + Duration::from_secs(2));
        assert_eq!(d.next().unwrap().0, t0 + Duration::from_secs(3));
        d.saw(1, t0 + Duration::from_secs(2));
        let (at, e) = d.next().unwrap();
        assert_eq!(at, t0 + Duration::from_secs(3));
        assert_eq!(e.error_kind(), "timeout_idle");
        d.saw(2, t0 + Duration::from_millis(9_500));
        let (at, e) = d.next().unwrap();
        assert_eq!(at, t0 + Duration::from_secs(10));
        assert_eq!(
            e,
            OpenAiError::TimeoutTotal {
                timeout: Duration::from_secs(10),
                chunks: 2
            }
        );
    }

    #[test]
    fn no_timeouts_no_deadline() {
        let none = Timeouts {
            connect: None,
            first_token: None,
            idle: None,
            total: None,
        };
        assert!(Deadlines::new(Instant::now(), none).next().is_none());
    }
}
