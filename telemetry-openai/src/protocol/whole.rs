//! One reading of a whole (non-streamed) Chat Completions or Completions response body for all
//! a recorder takes from it: the server's `usage`, llama.cpp's `timings`, Ollama's native
//! counts and durations, and the top-level `model`.
//!
//! These were two parses of the same body ([`ServerReport::from_body`], then
//! [`model_of`](crate::protocol::model_of)), and `usage` and `timings` were read into
//! [`ApiUsage`] and [`ServerTimings`](crate::protocol::usage::ServerTimings), whose
//! `flatten`ed maps of the other fields made serde buffer each object before reading it: about
//! 15 K instructions for a 370-byte llama.cpp answer. Here one pass reads the known fields of both objects and skips the rest. What it
//! finds is what the two readings found: the same report, errors included (a `usage`, `timings`
//! or Ollama field given twice is an error, as before), and the model `model_of` gave (`None`
//! for one that is not a string, or given twice), which never fails the report. The one
//! differences: fields of `usage` and `timings` the report does not use are skipped, not kept,
//! and a body that is a JSON array is not read (serde read a struct from an array by position).
//!
//! That serde reading ([`read_chat_body_serde`]) is now the reference behind the [`Scanner`]
//! (as for stream chunks, with the chunks' `usage` and `timings` readers): [`scan_chat_body`]
//! reads the same fields and declines wherever it is not sure, errors included
//! (`protocol::oracle` checks it against serde): 8.7 K -> 5.4 K instructions for a 370-byte
//! llama.cpp answer. Then 5.3 K -> 3.7 K for the proxy bench's 390-byte one: the keys it reads
//! taken by comparing bytes ([`Scanner::object_keyed`]), `choices` skipped in one loop, the
//! timings' decimals read in one pass, and the report folded from the scanned counts without
//! building [`ApiUsage`] and `ServerTimings`.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};

use crate::protocol::chunk::{ScannedTimings, ScannedUsage, scan_timings, scan_usage};
use crate::protocol::error::ProtocolError;
use crate::protocol::scanner::{Key, Keys, Scanner};
use crate::protocol::usage::{
    ApiUsage, CompletionTokensDetails, PromptTokensDetails, ReportParts, ReportProbe, ServerReport,
};

/// Reads a whole Chat Completions or Completions response body: the server's report and the
/// response's model (non-empty). With the [`Scanner`] where it is sure, else with serde
/// ([`read_chat_body_serde`], the reference; `protocol::oracle` checks they agree).
pub(crate) fn read_chat_body(body: &[u8]) -> Result<(ServerReport, Option<String>), ProtocolError> {
    match scan_chat_body(body) {
        Some(read) => Ok(read),
        None => read_chat_body_serde(body),
    }
}

/// Reads a whole Chat Completions or Completions body as [`read_chat_body_serde`] does, with
/// the [`Scanner`]; `None` where it is not sure (an error included: serde then says which).
pub(crate) fn scan_chat_body(body: &[u8]) -> Option<(ServerReport, Option<String>)> {
    let mut s = Scanner::new(body);
    let mut keys = Keys::default();
    let mut probe = ReportParts::default();
    // `model` as `model_of` read it: its one string (or `null`); given twice, or not a string
    // or `null`, none.
    let mut model = Model::Absent;
    s.object_keyed(
        &[
            b"\"usage\"",
            b"\"timings\"",
            b"\"model\"",
            b"\"prompt_eval_count\"",
            b"\"eval_count\"",
            b"\"prompt_eval_duration\"",
            b"\"eval_duration\"",
        ],
        true,
        |s, key| {
            let count = match key {
                Key::Known(0) => {
                    keys.once(0)?;
                    probe.usage = s.opt(|s| s.apart(scan_usage))?.map(ScannedUsage::counts);
                    return Some(());
                }
                Key::Known(1) => {
                    keys.once(1)?;
                    probe.phases = s
                        .opt(|s| s.apart(scan_timings))?
                        .map(ScannedTimings::phases);
                    return Some(());
                }
                Key::Known(2) => {
                    let value = match s.peek_value()? {
                        b'"' | b'n' => s.opt_string()?,
                        _ => {
                            // Read as any value: its numbers too (a skip would not check them).
                            s.skip_checked()?;
                            model = Model::Unusable;
                            return Some(());
                        }
                    };
                    let value = match value {
                        Some(m) => Some(m.decode()?),
                        None => None,
                    };
                    model = match model {
                        Model::Absent => Model::One(value),
                        _ => Model::Unusable,
                    };
                    return Some(());
                }
                Key::Known(3) => (2, &mut probe.prompt_eval_count),
                Key::Known(4) => (3, &mut probe.eval_count),
                Key::Known(5) => (4, &mut probe.prompt_eval_duration),
                Key::Known(6) => (5, &mut probe.eval_duration),
                _ => return s.skip(),
            };
            keys.once(count.0)?;
            *count.1 = s.opt_u64()?;
            Some(())
        },
    )?;
    s.end()?;
    let model = match model {
        Model::One(Some(m)) if !m.is_empty() => Some(m.into_owned()),
        _ => None,
    };
    Some((probe.report(), model))
}

/// Reads a whole Chat Completions or Completions response body with serde.
pub(crate) fn read_chat_body_serde(
    body: &[u8],
) -> Result<(ServerReport, Option<String>), ProtocolError> {
    let probe: WholeProbe<'_> = crate::protocol::parse_json(body)
        .map_err(|e| ProtocolError::json("response body", body, &e))?;
    let model = match probe.model {
        Model::One(Some(m)) if !m.is_empty() => Some(m.into_owned()),
        _ => None,
    };
    Ok((probe.server.report(), model))
}

/// The top-level `model` as `model_of` read it.
enum Model<'a> {
    /// No `model` key.
    Absent,
    /// One `model`: a string, or `null`.
    One(Option<Cow<'a, str>>),
    /// Not a string or `null`, or given twice: `model_of` found none.
    Unusable,
}

struct WholeProbe<'a> {
    /// What [`ServerReport::from_body`] reads.
    server: ReportProbe,
    model: Model<'a>,
}

/// The top-level keys read; the rest are skipped.
enum Field {
    Usage,
    Timings,
    PromptEvalCount,
    EvalCount,
    PromptEvalDuration,
    EvalDuration,
    Model,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl Visitor<'_> for Visit {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "usage" => Field::Usage,
                    "timings" => Field::Timings,
                    "prompt_eval_count" => Field::PromptEvalCount,
                    "eval_count" => Field::EvalCount,
                    "prompt_eval_duration" => Field::PromptEvalDuration,
                    "eval_duration" => Field::EvalDuration,
                    "model" => Field::Model,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_identifier(Visit)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for WholeProbe<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = WholeProbe<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a response object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WholeProbe<'de>, A::Error> {
                fn once<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
                    map: &mut A,
                    slot: &mut Option<Option<T>>,
                    name: &'static str,
                ) -> Result<(), A::Error> {
                    if slot.is_some() {
                        return Err(de::Error::duplicate_field(name));
                    }
                    *slot = Some(map.next_value()?);
                    Ok(())
                }
                let mut usage: Option<Option<LeanUsage>> = None;
                let mut timings: Option<Option<ScannedTimings>> = None;
                let mut counts: [Option<Option<u64>>; 4] = [None; 4];
                let mut model = Model::Absent;
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::Usage => once(&mut map, &mut usage, "usage")?,
                        Field::Timings => once(&mut map, &mut timings, "timings")?,
                        Field::PromptEvalCount => {
                            once(&mut map, &mut counts[0], "prompt_eval_count")?;
                        }
                        Field::EvalCount => once(&mut map, &mut counts[1], "eval_count")?,
                        Field::PromptEvalDuration => {
                            once(&mut map, &mut counts[2], "prompt_eval_duration")?;
                        }
                        Field::EvalDuration => once(&mut map, &mut counts[3], "eval_duration")?,
                        Field::Model => {
                            let value = map.next_value::<AnyModel<'de>>()?;
                            model = match (model, value) {
                                (Model::Absent, AnyModel(Some(m))) => Model::One(m),
                                _ => Model::Unusable,
                            };
                        }
                        Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let [
                    prompt_eval_count,
                    eval_count,
                    prompt_eval_duration,
                    eval_duration,
                ] = counts.map(Option::flatten);
                Ok(WholeProbe {
                    server: ReportProbe {
                        usage: usage.flatten().map(LeanUsage::into_api),
                        timings: timings.flatten().map(ScannedTimings::api),
                        prompt_eval_count,
                        eval_count,
                        prompt_eval_duration,
                        eval_duration,
                    },
                    model,
                })
            }
        }
        d.deserialize_map(Visit)
    }
}

/// Any JSON value in `model`'s place: `Some(Some(text))` for a string, `Some(None)` for
/// `null`, `None` for anything else (read and dropped).
struct AnyModel<'a>(Option<Option<Cow<'a, str>>>);

impl<'de: 'a, 'a> Deserialize<'de> for AnyModel<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = AnyModel<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(AnyModel(Some(Some(Cow::Borrowed(v)))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(AnyModel(Some(Some(Cow::Owned(v.to_owned())))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(AnyModel(Some(Some(Cow::Owned(v)))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(AnyModel(Some(None)))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(AnyModel(Some(None)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(AnyModel(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(AnyModel(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(AnyModel(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(AnyModel(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(AnyModel(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AnyModel(None))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// [`ApiUsage`]'s fields, without keeping the others.
#[derive(Deserialize)]
struct LeanUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    total_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<LeanPromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<LeanCompletionDetails>,
}

#[derive(Deserialize)]
struct LeanPromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct LeanCompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl LeanUsage {
    fn into_api(self) -> ApiUsage {
        ApiUsage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            total_tokens: self.total_tokens,
            prompt_tokens_details: self.prompt_tokens_details.map(|d| PromptTokensDetails {
                cached_tokens: d.cached_tokens,
                extra: Default::default(),
            }),
            completion_tokens_details: self.completion_tokens_details.map(|d| {
                CompletionTokensDetails {
                    reasoning_tokens: d.reasoning_tokens,
                    extra: Default::default(),
                }
            }),
            extra: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::model_of;

    /// The two readings this one replaces.
    /// (A failed reading records no tokens and no model: which error it was does not matter.)
    fn both(body: &[u8]) -> Option<(ServerReport, Option<String>)> {
        Some((ServerReport::from_body(body).ok()?, model_of(body)))
    }

    fn one(body: &[u8]) -> Option<(ServerReport, Option<String>)> {
        read_chat_body(body).ok()
    }

    #[test]
    fn one_reading_finds_what_the_two_found() {
        let bodies: &[&[u8]] = &[
            br#"{"id":"c","object":"chat.completion","created":1,"model":"bench","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"Hello!"}}],"usage":{"prompt_tokens":9,"completion_tokens":16,"total_tokens":25},"timings":{"prompt_n":9,"prompt_ms":12.5,"predicted_n":16,"predicted_ms":40.0,"cache_n":0,"prompt_per_second":720.0}}"#,
            br#"{"usage":{"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,"prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":256,"x":[1,{"y":null}]}},"model":"m\u00e9"}"#,
            br#"{"usage":{"prompt_tokens":5,"total_tokens":12,"completion_tokens":7,"prompt_tokens_details":null},"model":null}"#,
            br#"{"model":"llama3.2","done":true,"prompt_eval_count":26,"prompt_eval_duration":383809000,"eval_count":298,"eval_duration":4799921000}"#,
            br#"{"timings":{"cache_n":32,"prompt_n":4,"prompt_ms":1.0,"predicted_n":24,"predicted_ms":-9.0}}"#,
            br#"{"model":42,"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
            br#"{"model":{"name":"m"},"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
            br#"{"model":"a","model":"a","usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
            br#"{"model":"","choices":[]}"#,
            br#"{"usage":{"prompt_tokens":1},"usage":{"prompt_tokens":2}}"#,
            br#"{"timings":{},"timings":null}"#,
            br#"{"usage":{"prompt_tokens":-1}}"#,
            br#"{"usage":"none","model":"m"}"#,
            b"{\"model\":\"caf\xc3\xa9\",\"usage\":null}",
            b"{\"id\":\"\xff\",\"model\":\"m\"}",
            b"{\"usage\": [1,",
            b"not json",
            b"",
            b"{}",
            b"{} x",
        ];
        for body in bodies {
            assert_eq!(one(body), both(body), "{}", String::from_utf8_lossy(body));
        }
    }
}
