//! Shared test helpers: a scripted engine and an event collector.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use telemetry_core::{Event, EventBus, EventType, TelemetryRecord};
use telemetry_wrap::{GenerateParams, GenerateResult, InferenceEngine, Message, StreamChunk};

/// The error of [`Scripted`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("scripted failure: {0}")]
pub struct ScriptedError(pub String);

/// An engine that answers from a script.
#[derive(Debug, Clone, Default)]
pub struct Scripted {
    pub result: Option<GenerateResult>,
    pub error: Option<ScriptedError>,
    pub chunks: Vec<Result<StreamChunk, ScriptedError>>,
    /// Sleep this long in `generate` (to make latency measurable).
    pub delay: Duration,
}

impl InferenceEngine for Scripted {
    type Error = ScriptedError;
    type Stream = std::vec::IntoIter<Result<StreamChunk, ScriptedError>>;

    fn engine_id(&self) -> &str {
        "scripted"
    }

    fn generate(&self, _: &[Message], _: &GenerateParams) -> Result<GenerateResult, ScriptedError> {
        std::thread::sleep(self.delay);
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(self.result.clone().unwrap_or_default()),
        }
    }

    fn stream(&self, _: &[Message], _: &GenerateParams) -> Result<Self::Stream, ScriptedError> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(self.chunks.clone().into_iter()),
        }
    }

    fn error_kind(error: &ScriptedError) -> std::borrow::Cow<'static, str> {
        if error.0.contains("timeout") {
            "timeout".into()
        } else {
            "scripted".into()
        }
    }
}

/// Collects every event of every type, in order.
#[derive(Clone, Default)]
pub struct Collector(pub Arc<Mutex<Vec<Event>>>);

impl Collector {
    pub fn attach(bus: &EventBus) -> Self {
        let c = Collector::default();
        for t in EventType::ALL {
            let sink = Arc::clone(&c.0);
            bus.subscribe(t, move |e| sink.lock().unwrap().push(e.clone()));
        }
        c
    }

    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }

    pub fn records(&self) -> Vec<Arc<TelemetryRecord>> {
        self.events()
            .iter()
            .filter_map(|e| e.as_record().cloned())
            .collect()
    }

    pub fn only_record(&self) -> Arc<TelemetryRecord> {
        let records = self.records();
        assert_eq!(records.len(), 1, "expected exactly one record: {records:?}");
        let r = records.into_iter().next().unwrap();
        assert_eq!(
            r.validate(),
            Ok(()),
            "published record must validate: {r:?}"
        );
        r
    }

    pub fn types(&self) -> Vec<EventType> {
        self.events().iter().map(Event::event_type).collect()
    }
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn messages() -> Vec<Message> {
    vec![Message::system("be brief"), Message::user("hello")]
}
