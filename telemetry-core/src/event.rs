//! Events published on the [`EventBus`](crate::EventBus): typed payloads, shared by `Arc`.

use std::sync::Arc;

use crate::record::{Outcome, TelemetryRecord};

/// The kinds of [`Event`]; subscriptions are per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum EventType {
    /// An inference call started.
    InferenceStart,
    /// An inference call returned (successfully or not) to its caller.
    InferenceEnd,
    /// A finished [`TelemetryRecord`] (energy included when measured) is ready to store.
    TelemetryRecord,
    /// A streamed chunk arrived.
    StreamToken,
    /// A batch of calls started.
    BatchStart,
    /// A batch of calls ended.
    BatchEnd,
}

impl EventType {
    /// Every kind, in declaration order.
    pub const ALL: [EventType; 6] = [
        EventType::InferenceStart,
        EventType::InferenceEnd,
        EventType::TelemetryRecord,
        EventType::StreamToken,
        EventType::BatchStart,
        EventType::BatchEnd,
    ];

    /// Dense index of the kind, `0..ALL.len()`.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Identifies one inference call across its events (unique within a process).
pub type CallId = u64;

/// Payload of [`Event::InferenceStart`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct InferenceStart {
    /// The call.
    pub call_id: CallId,
    /// Wall-clock start, unix seconds.
    pub timestamp: f64,
    /// Model requested.
    pub model_id: Arc<str>,
    /// Engine that runs the call.
    pub engine: Arc<str>,
    /// Agent making the call; empty when not set.
    pub agent: Arc<str>,
    /// Whether the call streams.
    pub is_streaming: bool,
}

/// Payload of [`Event::InferenceEnd`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct InferenceEnd {
    /// The call.
    pub call_id: CallId,
    /// Wall time of the call, seconds (monotonic clock).
    pub latency_seconds: f64,
    /// How the call ended.
    pub outcome: Outcome,
    /// Output tokens known when the call returned.
    pub completion_tokens: u64,
}

/// Payload of [`Event::StreamToken`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StreamToken {
    /// The call.
    pub call_id: CallId,
    /// Zero-based index of the chunk in the stream.
    pub index: u64,
    /// Seconds since the call started (monotonic clock).
    pub elapsed_seconds: f64,
}

/// Payload of [`Event::BatchStart`] and [`Event::BatchEnd`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct BatchInfo {
    /// The batch, as in [`TelemetryRecord::batch_id`].
    pub batch_id: Arc<str>,
    /// Wall-clock time of the event, unix seconds.
    pub timestamp: f64,
    /// Number of calls in the batch, when known.
    pub size: Option<u64>,
}

/// An event on the bus. Payloads are typed; large ones are behind `Arc`, so cloning an event (for
/// each subscriber, or for the bus history) is a reference-count increment.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// See [`EventType::InferenceStart`].
    InferenceStart(Arc<InferenceStart>),
    /// See [`EventType::InferenceEnd`].
    InferenceEnd(Arc<InferenceEnd>),
    /// See [`EventType::TelemetryRecord`].
    TelemetryRecord(Arc<TelemetryRecord>),
    /// See [`EventType::StreamToken`].
    StreamToken(StreamToken),
    /// See [`EventType::BatchStart`].
    BatchStart(Arc<BatchInfo>),
    /// See [`EventType::BatchEnd`].
    BatchEnd(Arc<BatchInfo>),
}

impl Event {
    /// The kind of this event.
    pub fn event_type(&self) -> EventType {
        match self {
            Event::InferenceStart(_) => EventType::InferenceStart,
            Event::InferenceEnd(_) => EventType::InferenceEnd,
            Event::TelemetryRecord(_) => EventType::TelemetryRecord,
            Event::StreamToken(_) => EventType::StreamToken,
            Event::BatchStart(_) => EventType::BatchStart,
            Event::BatchEnd(_) => EventType::BatchEnd,
        }
    }

    /// The record, for a [`Event::TelemetryRecord`].
    pub fn as_record(&self) -> Option<&Arc<TelemetryRecord>> {
        match self {
            Event::TelemetryRecord(r) => Some(r),
            _ => None,
        }
    }
}

impl From<TelemetryRecord> for Event {
    fn from(record: TelemetryRecord) -> Self {
        Event::TelemetryRecord(Arc::new(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_all_order() {
        for (i, t) in EventType::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
        }
    }

    #[test]
    fn event_type_and_record_accessor() {
        let e = Event::from(TelemetryRecord::default());
        assert_eq!(e.event_type(), EventType::TelemetryRecord);
        assert!(e.as_record().is_some());
        let s = Event::StreamToken(StreamToken {
            call_id: 1,
            index: 0,
            elapsed_seconds: 0.1,
        });
        assert_eq!(s.event_type(), EventType::StreamToken);
        assert!(s.as_record().is_none());
    }
}
