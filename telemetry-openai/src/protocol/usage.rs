//! Token counts and server-side timings, as each server reports them.
//!
//! - OpenAI, vLLM, SGLang, Ollama (`/v1`), llama.cpp: `usage` with `prompt_tokens`,
//!   `completion_tokens`, `total_tokens` and (OpenAI, recent llama.cpp and vLLM)
//!   `prompt_tokens_details.cached_tokens`. In a stream it comes in a final chunk with
//!   `choices: []` when the request set `stream_options.include_usage`.
//! - llama.cpp: a `timings` object (`prompt_n`, `prompt_ms`, `predicted_n`, `predicted_ms`,
//!   `cache_n`, ...): the server's own prefill and decode times. In a stream it rides on the
//!   finish chunk and on the usage chunk.
//! - Ollama's native API (`/api/chat`, `/api/generate`): `prompt_eval_count`, `eval_count` and
//!   durations in nanoseconds (`prompt_eval_duration`, `eval_duration`).
//!
//! [`ServerReport`] folds all of these into one small `Copy` value.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use telemetry_wrap::Usage;

use crate::protocol::error::ProtocolError;

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Prompt tokens served from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    /// Other fields (`audio_tokens`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `usage.completion_tokens_details` (and the Responses API's `output_tokens_details`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CompletionTokensDetails {
    /// Output tokens spent on reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    /// Other fields (`audio_tokens`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `usage` object of a response or final stream chunk.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ApiUsage {
    /// Input tokens (cached ones included).
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Input plus output.
    #[serde(default)]
    pub total_tokens: u64,
    /// Details of the input tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// Details of the output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ApiUsage {
    /// The record's token counts: prompt, completion, cached (`cached_tokens`) and reasoning
    /// (`reasoning_tokens`), 0 where absent.
    pub fn to_usage(&self) -> Usage {
        self.counts().usage
    }

    /// Whether `prompt_tokens_details.cached_tokens` is present.
    pub fn reports_cached(&self) -> bool {
        self.counts().reports_cached
    }

    /// What a report takes of it.
    pub(crate) fn counts(&self) -> UsageCounts {
        UsageCounts::new(
            self.prompt_tokens,
            self.completion_tokens,
            self.prompt_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens),
            self.completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens),
        )
    }
}

/// What a [`ServerReport`] takes of a `usage` object: its counts, and whether it gave
/// `prompt_tokens_details.cached_tokens`. Read from an [`ApiUsage`] or, without building one,
/// from what the scanner read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct UsageCounts {
    pub usage: Usage,
    pub reports_cached: bool,
}

impl UsageCounts {
    /// The counts of a `usage` with these fields (`cached` and `reasoning` as present in its
    /// details, 0 where absent).
    #[inline]
    pub fn new(
        prompt: u64,
        completion: u64,
        cached: Option<u64>,
        reasoning: Option<u64>,
    ) -> UsageCounts {
        UsageCounts {
            usage: Usage::new(prompt, completion)
                .with_cached(cached.unwrap_or(0))
                .with_reasoning(reasoning.unwrap_or(0)),
            reports_cached: cached.is_some(),
        }
    }
}

/// llama.cpp's `timings` object: what the server measured itself.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServerTimings {
    /// Prompt tokens taken from the prompt cache (not computed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_n: Option<i64>,
    /// Prompt tokens computed (prefill).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_n: Option<i64>,
    /// Prefill time, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_ms: Option<f64>,
    /// Tokens generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_n: Option<i64>,
    /// Decode time, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_ms: Option<f64>,
    /// Other fields (`prompt_per_second`, `predicted_per_token_ms`, `draft_n`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ServerTimings {
    /// The phases in a `Copy` form (negative or non-finite values dropped).
    pub fn phases(&self) -> ServerPhases {
        ServerPhases::of_timings(
            self.cache_n,
            self.prompt_n,
            self.prompt_ms,
            self.predicted_n,
            self.predicted_ms,
        )
    }
}

/// Server-measured phases of one call (llama.cpp `timings`, Ollama durations).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ServerPhases {
    /// Prefill (prompt processing) time, milliseconds.
    pub prefill_ms: Option<f64>,
    /// Decode (generation) time, milliseconds.
    pub decode_ms: Option<f64>,
    /// Prompt tokens computed.
    pub prompt_n: Option<u64>,
    /// Tokens generated.
    pub predicted_n: Option<u64>,
    /// Prompt tokens taken from the cache.
    pub cache_n: Option<u64>,
}

impl ServerPhases {
    /// The phases of a llama.cpp `timings` object with these fields (negative or non-finite
    /// values dropped).
    #[inline]
    pub(crate) fn of_timings(
        cache_n: Option<i64>,
        prompt_n: Option<i64>,
        prompt_ms: Option<f64>,
        predicted_n: Option<i64>,
        predicted_ms: Option<f64>,
    ) -> ServerPhases {
        ServerPhases {
            prefill_ms: prompt_ms.filter(|m| m.is_finite() && *m >= 0.0),
            decode_ms: predicted_ms.filter(|m| m.is_finite() && *m >= 0.0),
            prompt_n: prompt_n.and_then(|n| u64::try_from(n).ok()),
            predicted_n: predicted_n.and_then(|n| u64::try_from(n).ok()),
            cache_n: cache_n.and_then(|n| u64::try_from(n).ok()),
        }
    }

    /// [`prefill_ms`](Self::prefill_ms) as a [`Duration`]; `None` when absent or not a duration.
    pub fn prefill(&self) -> Option<Duration> {
        self.prefill_ms.and_then(ms_duration)
    }

    /// [`decode_ms`](Self::decode_ms) as a [`Duration`]; `None` when absent or not a duration.
    pub fn decode(&self) -> Option<Duration> {
        self.decode_ms.and_then(ms_duration)
    }
}

/// Milliseconds as a [`Duration`]; `None` for a negative, infinite or NaN value.
fn ms_duration(ms: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(ms / 1e3).ok()
}

/// What a server reported about one call: token counts and its own timings.
///
/// ```
/// use telemetry_openai::protocol::ServerReport;
///
/// let body = br#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":8,"total_tokens":20},
///   "timings":{"cache_n":4,"prompt_n":8,"prompt_ms":21.5,"predicted_n":8,"predicted_ms":96.0}}"#;
/// let report = ServerReport::from_body(body).unwrap();
/// let usage = report.usage.unwrap();
/// assert_eq!((usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens), (12, 8, 4));
/// assert_eq!(report.phases.unwrap().prefill_ms, Some(21.5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ServerReport {
    /// Token counts, when the server sent them.
    pub usage: Option<Usage>,
    /// Server-side timings, when the server sent them.
    pub phases: Option<ServerPhases>,
    /// `usage` was taken from llama.cpp's `timings` (a later `usage` replaces it).
    pub(crate) usage_from_timings: bool,
}

/// The fields of any response body that carry counts or timings; the rest is skipped.
#[derive(Deserialize)]
pub(crate) struct ReportProbe {
    #[serde(default)]
    pub(crate) usage: Option<ApiUsage>,
    #[serde(default)]
    pub(crate) timings: Option<ServerTimings>,
    // Ollama's native API.
    #[serde(default)]
    pub(crate) prompt_eval_count: Option<u64>,
    #[serde(default)]
    pub(crate) eval_count: Option<u64>,
    /// Nanoseconds.
    #[serde(default)]
    pub(crate) prompt_eval_duration: Option<u64>,
    /// Nanoseconds.
    #[serde(default)]
    pub(crate) eval_duration: Option<u64>,
}

impl ReportProbe {
    /// The report of one whole body: its `usage` and `timings`, for which Ollama's native
    /// counts and durations stand in when they are missing.
    pub(crate) fn report(&self) -> ServerReport {
        ReportParts {
            usage: self.usage.as_ref().map(ApiUsage::counts),
            phases: self.timings.as_ref().map(ServerTimings::phases),
            prompt_eval_count: self.prompt_eval_count,
            eval_count: self.eval_count,
            prompt_eval_duration: self.prompt_eval_duration,
            eval_duration: self.eval_duration,
        }
        .report()
    }
}

/// What a whole body's report is made of: [`ReportProbe`]'s fields as a report reads them
/// (a reader that did not build an [`ApiUsage`] or [`ServerTimings`] gives these directly).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReportParts {
    pub usage: Option<UsageCounts>,
    pub phases: Option<ServerPhases>,
    pub prompt_eval_count: Option<u64>,
    pub eval_count: Option<u64>,
    pub prompt_eval_duration: Option<u64>,
    pub eval_duration: Option<u64>,
}

impl ReportParts {
    /// The report of one whole body: its `usage` and `timings`, for which Ollama's native
    /// counts and durations stand in when they are missing.
    pub(crate) fn report(&self) -> ServerReport {
        let mut report = ServerReport::default();
        report.add_counts(self.usage, self.phases);
        if self.usage.is_none() && (self.prompt_eval_count.is_some() || self.eval_count.is_some()) {
            report.usage = Some(Usage::new(
                self.prompt_eval_count.unwrap_or(0),
                self.eval_count.unwrap_or(0),
            ));
        }
        if self.phases.is_none()
            && (self.prompt_eval_duration.is_some() || self.eval_duration.is_some())
        {
            let ms = |ns: u64| ns as f64 / 1e6;
            report.phases = Some(ServerPhases {
                prefill_ms: self.prompt_eval_duration.map(ms),
                decode_ms: self.eval_duration.map(ms),
                prompt_n: self.prompt_eval_count,
                predicted_n: self.eval_count,
                cache_n: None,
            });
        }
        report
    }
}

impl ServerReport {
    /// Reads counts and timings from a whole (non-streamed) response body, or from one line of
    /// Ollama's native NDJSON stream.
    pub fn from_body(body: &[u8]) -> Result<Self, ProtocolError> {
        let probe: ReportProbe = crate::protocol::parse_json(body)
            .map_err(|e| ProtocolError::json("response body", body, &e))?;
        Ok(probe.report())
    }

    /// Folds in a `usage` and a `timings` object (a later one replaces an earlier one). When
    /// `usage` has no `cached_tokens`, llama.cpp's `timings.cache_n` stands in for it.
    ///
    /// Until a `usage` comes, llama.cpp's `timings` stand in for it: `prompt_n + cache_n` prompt
    /// tokens (`cache_n` of them cached) and `predicted_n` completion tokens are the server's own
    /// counts (a Chat stream without `include_usage` has them on its finish chunk).
    pub fn add(&mut self, usage: Option<&ApiUsage>, timings: Option<&ServerTimings>) {
        self.add_counts(
            usage.map(ApiUsage::counts),
            timings.map(ServerTimings::phases),
        );
    }

    /// [`add`](Self::add), from what the report takes of the `usage` and of the `timings`.
    pub(crate) fn add_counts(&mut self, usage: Option<UsageCounts>, phases: Option<ServerPhases>) {
        if let Some(phases) = phases {
            self.phases = Some(phases);
            if usage.is_none()
                && (self.usage.is_none() || self.usage_from_timings)
                && let (Some(prompt), Some(predicted)) = (phases.prompt_n, phases.predicted_n)
            {
                let cached = phases.cache_n.unwrap_or(0);
                self.usage =
                    Some(Usage::new(prompt.saturating_add(cached), predicted).with_cached(cached));
                self.usage_from_timings = true;
                return;
            }
        }
        if usage.is_some() {
            self.usage_from_timings = false;
        }
        if let Some(u) = usage {
            let mut usage = u.usage;
            if !u.reports_cached
                && let Some(cached) = self.phases.and_then(|p| p.cache_n)
            {
                usage.cached_tokens = cached.min(usage.prompt_tokens);
            }
            self.usage = Some(usage);
        } else if let (Some(usage), Some(cached)) =
            (&mut self.usage, self.phases.and_then(|p| p.cache_n))
            && usage.cached_tokens == 0
        {
            usage.cached_tokens = cached.min(usage.prompt_tokens);
        }
    }

    /// Server prefill time, milliseconds.
    pub fn prefill_ms(&self) -> Option<f64> {
        self.phases.and_then(|p| p.prefill_ms)
    }

    /// Server decode time, milliseconds.
    pub fn decode_ms(&self) -> Option<f64> {
        self.phases.and_then(|p| p.decode_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_usage_with_cached_tokens() {
        let r = ServerReport::from_body(
            br#"{"usage":{"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,
                "prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},
                "completion_tokens_details":{"reasoning_tokens":0}}}"#,
        )
        .unwrap();
        assert_eq!(r.usage, Some(Usage::new(2006, 300).with_cached(1920)));
        assert_eq!(r.phases, None);
        let r = ServerReport::from_body(
            br#"{"usage":{"prompt_tokens":9,"completion_tokens":300,"total_tokens":309,
                "completion_tokens_details":{"reasoning_tokens":256}}}"#,
        )
        .unwrap();
        assert_eq!(r.usage, Some(Usage::new(9, 300).with_reasoning(256)));
    }

    #[test]
    fn vllm_usage_with_null_details() {
        let r = ServerReport::from_body(
            br#"{"usage":{"prompt_tokens":5,"total_tokens":12,"completion_tokens":7,"prompt_tokens_details":null}}"#,
        )
        .unwrap();
        assert_eq!(r.usage, Some(Usage::new(5, 7)));
    }

    #[test]
    fn ollama_native_counts_and_durations() {
        let r = ServerReport::from_body(
            br#"{"model":"llama3.2","done":true,"total_duration":5191566416,"load_duration":2154458,
                "prompt_eval_count":26,"prompt_eval_duration":383809000,"eval_count":298,"eval_duration":4799921000}"#,
        )
        .unwrap();
        assert_eq!(r.usage, Some(Usage::new(26, 298)));
        assert_eq!(r.prefill_ms(), Some(383.809));
        assert_eq!(r.decode_ms(), Some(4799.921));
    }

    #[test]
    fn llama_cache_n_stands_in_for_missing_cached_tokens() {
        let mut r = ServerReport::default();
        let timings: ServerTimings = serde_json::from_str(
            r#"{"cache_n":3,"prompt_n":5,"prompt_ms":1.5,"predicted_n":2,"predicted_ms":-1}"#,
        )
        .unwrap();
        r.add(None, Some(&timings));
        let usage: ApiUsage =
            serde_json::from_str(r#"{"prompt_tokens":8,"completion_tokens":2,"total_tokens":10}"#)
                .unwrap();
        r.add(Some(&usage), None);
        assert_eq!(r.usage, Some(Usage::new(8, 2).with_cached(3)));
        assert_eq!(r.decode_ms(), None, "a negative time is dropped");
        assert_eq!(r.phases.unwrap().prompt_n, Some(5));
    }

    #[test]
    fn llama_timings_are_the_servers_counts_until_a_usage_comes() {
        let timings: ServerTimings = serde_json::from_str(
            r#"{"cache_n":32,"prompt_n":4,"prompt_ms":1.0,"predicted_n":24,"predicted_ms":9.0}"#,
        )
        .unwrap();
        let mut r = ServerReport::default();
        r.add(None, Some(&timings));
        assert_eq!(r.usage, Some(Usage::new(36, 24).with_cached(32)));
        let usage: ApiUsage = serde_json::from_str(
            r#"{"prompt_tokens":36,"completion_tokens":25,"total_tokens":61}"#,
        )
        .unwrap();
        r.add(Some(&usage), None);
        assert_eq!(
            r.usage,
            Some(Usage::new(36, 25).with_cached(32)),
            "usage wins"
        );
        r.add(None, Some(&timings));
        assert_eq!(r.usage.map(|u| u.completion_tokens), Some(25), "and stays");
    }

    #[test]
    fn malformed_body_is_a_typed_error() {
        let err = ServerReport::from_body(b"{\"usage\": [1,").unwrap_err();
        assert!(
            matches!(
                err,
                ProtocolError::Json {
                    what: "response body",
                    line: 1,
                    ..
                }
            ),
            "{err}"
        );
    }
}
