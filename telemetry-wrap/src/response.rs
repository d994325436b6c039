//! What an engine returns: [`GenerateResult`] for a whole call, [`StreamChunk`]s for a stream.

use std::time::Duration;

/// Token counts reported by an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Input tokens.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub completion_tokens: u64,
    /// Input plus output tokens as the engine reported them (the record recomputes the sum).
    pub total_tokens: u64,
    /// Input tokens served from a prompt cache (a subset of `prompt_tokens`).
    pub cached_tokens: u64,
    /// Input tokens written to a prompt cache (Anthropic `cache_creation_input_tokens`; a
    /// subset of `prompt_tokens`, apart from the cached ones).
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// Output tokens spent on reasoning (a subset of `completion_tokens`).
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Usage with `prompt` input and `completion` output tokens, none cached.
    pub fn new(prompt: u64, completion: u64) -> Self {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt.saturating_add(completion),
            cached_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
        }
    }

    /// Sets the cached input tokens.
    #[must_use]
    pub fn with_cached(mut self, cached: u64) -> Self {
        self.cached_tokens = cached;
        self
    }

    /// Sets the input tokens written to a prompt cache.
    #[must_use]
    pub fn with_cache_write(mut self, cache_write: u64) -> Self {
        self.cache_write_tokens = cache_write;
        self
    }

    /// Sets the output tokens spent on reasoning.
    #[must_use]
    pub fn with_reasoning(mut self, reasoning: u64) -> Self {
        self.reasoning_tokens = reasoning;
        self
    }
}

/// Why generation stopped.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural stop or a stop sequence.
    #[default]
    Stop,
    /// The token limit was reached.
    Length,
    /// The model called a tool.
    ToolCalls,
    /// A content filter stopped the output.
    ContentFilter,
    /// The engine did not say.
    Unknown,
}

/// Timings an engine measured itself (server-side, or synthetic in a simulation).
///
/// The wrapper uses `ttft` for blocking calls, where it cannot see the first token. Latency is
/// always measured on the caller's monotonic clock, except that a reported `total` longer than the
/// measurement wins: that only happens with synthetic timings (the
/// [`SimulatedEngine`](crate::SimulatedEngine) in instant mode), which then look real in records.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct EngineTimings {
    /// Time to first token.
    pub ttft: Option<Duration>,
    /// Whole call.
    pub total: Option<Duration>,
    /// The server's own prefill (prompt processing) time, as it reports it (llama.cpp
    /// `timings.prompt_ms`, Ollama `prompt_eval_duration`).
    pub server_prefill: Option<Duration>,
    /// The server's own decode (generation) time (llama.cpp `timings.predicted_ms`, Ollama
    /// `eval_duration`).
    pub server_decode: Option<Duration>,
}

/// The result of a blocking `generate` call.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct GenerateResult {
    /// The generated text.
    pub content: String,
    /// Token counts.
    pub usage: Usage,
    /// Cost in US dollars when the engine reports it (it then wins over a price table).
    pub cost_usd: Option<f64>,
    /// Timings the engine knows.
    pub timings: EngineTimings,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
}

impl GenerateResult {
    /// A result with `content` and `usage`, finish reason `stop`.
    pub fn new(content: impl Into<String>, usage: Usage) -> Self {
        GenerateResult {
            content: content.into(),
            usage,
            ..Self::default()
        }
    }
}

/// One piece of a streamed answer.
///
/// A chunk with non-empty `text` counts as one token when the engine sends no usage. An engine
/// that knows the final counts sends them in a chunk's `usage` (typically the last, with empty
/// text); the record then uses them. `elapsed` is an engine-reported offset from the start of the
/// call; when present it replaces the wrapper's clock for this chunk (synthetic streams).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct StreamChunk {
    /// Text of this chunk (may be empty for a usage-only chunk).
    pub text: String,
    /// Final token counts, when the engine sends them.
    pub usage: Option<Usage>,
    /// Set on the last chunk when the engine says why it stopped.
    pub finish_reason: Option<FinishReason>,
    /// Engine-reported time of this chunk since the call started.
    pub elapsed: Option<Duration>,
    /// Timings the engine reports with this chunk (typically the server's own prefill and
    /// decode times, on the last chunk).
    pub timings: Option<EngineTimings>,
}

impl StreamChunk {
    /// A chunk of text.
    pub fn text(text: impl Into<String>) -> Self {
        StreamChunk {
            text: text.into(),
            ..Self::default()
        }
    }

    /// A usage-only chunk (empty text), as engines send at the end of a stream.
    pub fn usage(usage: Usage) -> Self {
        StreamChunk {
            usage: Some(usage),
            ..Self::default()
        }
    }

    /// Sets the engine-reported offset from the start of the call.
    #[must_use]
    pub fn at(mut self, elapsed: Duration) -> Self {
        self.elapsed = Some(elapsed);
        self
    }

    /// Whether this chunk carries text (and so counts as a token).
    pub fn has_text(&self) -> bool {
        !self.text.is_empty()
    }
}

impl From<GenerateResult> for StreamChunk {
    /// The whole result as one chunk, for engines that do not stream.
    fn from(result: GenerateResult) -> Self {
        StreamChunk {
            text: result.content,
            usage: Some(result.usage),
            finish_reason: Some(result.finish_reason),
            elapsed: None,
            timings: Some(result.timings),
        }
    }
}
