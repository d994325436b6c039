//! Errors of `telemetry-core`.

/// Why a [`TelemetryRecord`](crate::TelemetryRecord) was refused by
/// [`validate`](crate::TelemetryRecord::validate). Each variant names the field and the value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// A number is NaN or infinite.
    #[error("field `{field}` must be a finite number, got {value}")]
    NotFinite {
        /// The field.
        field: &'static str,
        /// The value.
        value: f64,
    },
    /// A duration, energy, power, cost or rate is negative.
    #[error("field `{field}` must not be negative, got {value}")]
    Negative {
        /// The field.
        field: &'static str,
        /// The value.
        value: f64,
    },
    /// A bounded number (percentage, temperature) is outside its range.
    #[error("field `{field}` must be within {min}..={max}, got {value}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value.
        value: f64,
        /// Smallest accepted value.
        min: f64,
        /// Largest accepted value.
        max: f64,
    },
    /// `timestamp` is not within 2000-01-01..=2100-01-01 (unix seconds expected).
    #[error(
        "field `timestamp` must be unix seconds between 2000-01-01 and 2100-01-01, got {value}"
    )]
    TimestampOutOfWindow {
        /// The value.
        value: f64,
    },
    /// A required text field is empty.
    #[error("field `{field}` must not be empty")]
    Empty {
        /// The field.
        field: &'static str,
    },
    /// A text field is longer than its limit.
    #[error("field `{field}` is {len} bytes long, more than the limit of {max}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A token count is larger than [`MAX_TOKENS`](crate::MAX_TOKENS).
    #[error("field `{field}` is {value}, more than the limit of {max}")]
    TooManyTokens {
        /// The field.
        field: &'static str,
        /// The value.
        value: u64,
        /// The limit.
        max: u64,
    },
    /// `total_tokens` is not `prompt_tokens + completion_tokens`.
    #[error(
        "field `total_tokens` is {total}, but prompt_tokens ({prompt}) + completion_tokens ({completion}) differ from it"
    )]
    TokenTotalMismatch {
        /// `total_tokens`.
        total: u64,
        /// `prompt_tokens`.
        prompt: u64,
        /// `completion_tokens`.
        completion: u64,
    },
    /// `prompt_tokens_cached` is larger than `prompt_tokens`.
    #[error("field `prompt_tokens_cached` is {cached}, more than prompt_tokens ({prompt})")]
    CachedExceedsPrompt {
        /// `prompt_tokens_cached`.
        cached: u64,
        /// `prompt_tokens`.
        prompt: u64,
    },
    /// `prompt_tokens_cached + prompt_tokens_cache_write` is larger than `prompt_tokens`.
    #[error(
        "field `prompt_tokens_cache_write` is {cache_write}, more than prompt_tokens ({prompt}) less prompt_tokens_cached ({cached})"
    )]
    CacheWriteExceedsPrompt {
        /// `prompt_tokens_cache_write`.
        cache_write: u64,
        /// `prompt_tokens_cached`.
        cached: u64,
        /// `prompt_tokens`.
        prompt: u64,
    },
    /// `reasoning_tokens` is larger than `completion_tokens`.
    #[error("field `reasoning_tokens` is {reasoning}, more than completion_tokens ({completion})")]
    ReasoningExceedsCompletion {
        /// `reasoning_tokens`.
        reasoning: u64,
        /// `completion_tokens`.
        completion: u64,
    },
    /// A name field (`api`, `operation`) is neither empty nor a name.
    #[error(
        "field `{field}` must be empty or at most {max} bytes of a-z, 0-9, `_` and `.`, got {value:?}"
    )]
    NotAName {
        /// The field.
        field: &'static str,
        /// The value, cut to 64 bytes.
        value: String,
        /// The most bytes a name has.
        max: usize,
    },
    /// `output_chunks` is not 0 although the call did not stream.
    #[error("field `output_chunks` is {chunks}, but is_streaming is false")]
    ChunksWithoutStream {
        /// `output_chunks`.
        chunks: u64,
    },
    /// `ttft` is larger than `latency_seconds`.
    #[error("field `ttft` is {ttft} s, more than latency_seconds ({latency} s)")]
    TtftExceedsLatency {
        /// `ttft`.
        ttft: f64,
        /// `latency_seconds`.
        latency: f64,
    },
    /// `error_kind` is set although the outcome is `ok`.
    #[error("field `error_kind` is set ({error_kind_len} bytes) but outcome is `ok`")]
    ErrorKindOnSuccess {
        /// Length of the error kind.
        error_kind_len: usize,
    },
    /// `metadata` is not a JSON object.
    #[error("field `metadata` must be a JSON object, got {kind}")]
    MetadataNotObject {
        /// What it was instead.
        kind: &'static str,
    },
    /// `metadata` serializes to more than [`MAX_METADATA_BYTES`](crate::MAX_METADATA_BYTES).
    #[error("field `metadata` is over {max} bytes of JSON (counted at least {len})")]
    MetadataTooLarge {
        /// Bytes counted before stopping.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl ValidationError {
    /// Name of the offending field, as in [`TelemetryRecord`](crate::TelemetryRecord).
    pub fn field(&self) -> &'static str {
        match self {
            ValidationError::NotFinite { field, .. }
            | ValidationError::Negative { field, .. }
            | ValidationError::OutOfRange { field, .. }
            | ValidationError::Empty { field }
            | ValidationError::TooLong { field, .. }
            | ValidationError::NotAName { field, .. }
            | ValidationError::TooManyTokens { field, .. } => field,
            ValidationError::CacheWriteExceedsPrompt { .. } => "prompt_tokens_cache_write",
            ValidationError::ReasoningExceedsCompletion { .. } => "reasoning_tokens",
            ValidationError::ChunksWithoutStream { .. } => "output_chunks",
            ValidationError::TimestampOutOfWindow { .. } => "timestamp",
            ValidationError::TokenTotalMismatch { .. } => "total_tokens",
            ValidationError::CachedExceedsPrompt { .. } => "prompt_tokens_cached",
            ValidationError::TtftExceedsLatency { .. } => "ttft",
            ValidationError::ErrorKindOnSuccess { .. } => "error_kind",
            ValidationError::MetadataNotObject { .. }
            | ValidationError::MetadataTooLarge { .. } => "metadata",
        }
    }
}

/// Why a [`TimeRange`](crate::TimeRange) could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeRangeError {
    /// `since` is after `until`.
    #[error("time range is empty: since ({since}) is after until ({until})")]
    SinceAfterUntil {
        /// Lower bound, unix seconds.
        since: f64,
        /// Upper bound, unix seconds.
        until: f64,
    },
    /// A bound is NaN or infinite.
    #[error("time range bound `{bound}` must be a finite number of unix seconds, got {value}")]
    NotFinite {
        /// `since` or `until`.
        bound: &'static str,
        /// The value.
        value: f64,
    },
}

/// Why bytes could not be decoded as a [`QuantileSketch`](crate::QuantileSketch).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SketchDecodeError {
    /// The bytes end early.
    #[error("quantile sketch bytes end early")]
    Truncated,
    /// The encoding version is not one this crate knows.
    #[error("quantile sketch encoding version {0} is unknown")]
    UnknownVersion(u8),
    /// The bytes decode to something inconsistent.
    #[error("quantile sketch bytes are malformed: {0}")]
    Malformed(&'static str),
}
