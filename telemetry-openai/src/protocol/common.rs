//! What every API's reader shares ([`api`](super::api) and the per-API modules alike): the
//! facts of one stream event ([`EventFacts`]), the reading of a Responses or Messages event, a
//! model name as the record takes it, what a whole body gives, and a JSON value that says
//! something. A leaf: it names no API module, so they all can name it.

use serde::Deserialize;
use telemetry_wrap::Usage;

use crate::protocol::error::{OpenAiError, ProtocolError};
use crate::protocol::json::Text;
use crate::protocol::sse::SseEvent;
use crate::protocol::usage::ServerReport;

/// What one stream event was, for the caller's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventFacts {
    /// The event carries output of some kind (text, tool-call arguments, reasoning): a point
    /// for TTFT and ITL, and one output chunk.
    pub output: bool,
    /// The API's terminal event (`[DONE]`, `response.completed`, `message_stop`): the call is
    /// over whatever comes after.
    pub terminal: bool,
}

impl EventFacts {
    pub(crate) fn terminal() -> EventFacts {
        EventFacts {
            output: false,
            terminal: true,
        }
    }
}

pub(crate) type ModelText<'a> = Text<'a>;

/// A model name as the record takes it: non-empty.
pub(crate) fn model_text(model: Option<ModelText<'_>>) -> Option<String> {
    model.filter(|m| !m.0.is_empty()).map(|m| m.0.into_owned())
}

/// What a whole body gives a recorder: a report of its `usage` alone, and its model.
pub(crate) fn whole_body(
    usage: Option<Usage>,
    model: Option<ModelText<'_>>,
) -> (ServerReport, Option<String>) {
    let report = ServerReport {
        usage,
        ..ServerReport::default()
    };
    (report, model_text(model))
}

/// The data of one event of a Responses or Messages stream and what `scan` reads from it, or
/// where it is not sure, `decode`: `None` for `[DONE]` (which these APIs do not send), an error
/// event as [`OpenAiError::StreamError`].
#[inline]
pub(crate) fn read_event<'a, E>(
    event: SseEvent<'a>,
    scan: impl FnOnce(&'a [u8]) -> Option<E>,
    decode: impl FnOnce(&'a [u8]) -> Result<E, ProtocolError>,
) -> Result<Option<(&'a [u8], E)>, OpenAiError> {
    let data = match event {
        SseEvent::Data(data) => data,
        SseEvent::Error(payload) => return Err(OpenAiError::from_stream_error(payload)),
        SseEvent::Done => return Ok(None),
    };
    let event = match scan(data) {
        Some(event) => event,
        None => decode(data)?,
    };
    Ok(Some((data, event)))
}

/// The accessors of a Responses or Messages stream, whose fields `report`, `model` and
/// `terminal` hold what they give; the literals are their docs.
macro_rules! stream_accessors {
    (report: $report:literal, model: $model:literal, terminal: $terminal:literal $(,)?) => {
        #[doc = $report]
        pub fn report(&self) -> &ServerReport {
            &self.report
        }

        #[doc = $model]
        pub fn model(&self) -> Option<&str> {
            self.model.as_deref()
        }

        #[doc = $terminal]
        pub fn saw_terminal(&self) -> bool {
            self.terminal
        }
    };
}
pub(crate) use stream_accessors;

/// Whether a JSON value is present and says something: a non-empty string, or any value but
/// `null` and `""`.
pub(crate) struct NonEmpty(pub(crate) bool);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = NonEmpty;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any value")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<NonEmpty, E> {
                Ok(NonEmpty(!v.is_empty()))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<NonEmpty, E> {
                Ok(NonEmpty(false))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<NonEmpty, E> {
                Ok(NonEmpty(false))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<NonEmpty, E> {
                Ok(NonEmpty(true))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<NonEmpty, E> {
                Ok(NonEmpty(true))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<NonEmpty, E> {
                Ok(NonEmpty(true))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<NonEmpty, E> {
                Ok(NonEmpty(true))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<NonEmpty, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(NonEmpty(true))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<NonEmpty, A::Error> {
                while a
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(NonEmpty(true))
            }
        }
        d.deserialize_any(Visit)
    }
}
