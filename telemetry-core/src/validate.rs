//! Validation of [`TelemetryRecord`]s: what a store refuses, and why.

use crate::error::ValidationError;
use crate::record::{Outcome, TelemetryRecord};

pub use crate::metadata::MAX_METADATA_BYTES;
/// Largest accepted `model_id`, `engine`, `agent`, `batch_id`, `energy_vendor` or `error_kind`, bytes.
pub const MAX_LABEL_BYTES: usize = 512;
/// Largest accepted `error_message`, bytes.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 16 * 1024;
/// Longest accepted name (`api`, `operation`), bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Earliest accepted timestamp: 2000-01-01T00:00:00Z.
pub const MIN_TIMESTAMP: f64 = 946_684_800.0;
/// Latest accepted timestamp: 2100-01-01T00:00:00Z.
pub const MAX_TIMESTAMP: f64 = 4_102_444_800.0;
/// Largest accepted token count per field: 10^9, far above any real call (the longest context
/// windows are ~10^7 tokens) and small enough that no realistic number of calls can overflow the
/// store's per-bucket sums (which saturate anyway, see [`Rollup`](crate::Rollup)).
pub const MAX_TOKENS: u64 = 1_000_000_000;

/// Slack allowed when comparing TTFT with latency (clocks read at slightly different instants).
const TTFT_SLACK: f64 = 1e-6;

impl TelemetryRecord {
    /// Checks the record; the error names the first offending field and its value.
    ///
    /// Rules: every number finite; durations, energies, powers and cost not negative; percentages
    /// within 0–100; `timestamp` within [`MIN_TIMESTAMP`]..=[`MAX_TIMESTAMP`]; token counts at most
    /// [`MAX_TOKENS`], `total_tokens == prompt_tokens + completion_tokens`, cached tokens at most the
    /// prompt tokens, and with the cache-write tokens too (`prompt_tokens_cached +
    /// prompt_tokens_cache_write <= prompt_tokens`); reasoning tokens at most the completion
    /// tokens; `output_chunks` at most [`MAX_TOKENS`] and 0 unless `is_streaming`; `api` and
    /// `operation` empty or names (at most [`MAX_NAME_BYTES`] of `a-z`, `0-9`, `_`, `.`); `ttft`
    /// not above `latency_seconds`; `model_id` not empty; labels at most
    /// [`MAX_LABEL_BYTES`]; `metadata` a JSON object of at most [`MAX_METADATA_BYTES`]; an `ok`
    /// outcome carries no error kind.
    ///
    /// Allocates nothing, so stores can call it on the caller's thread.
    ///
    /// ```
    /// use telemetry_core::{TelemetryRecord, ValidationError};
    ///
    /// let mut record = TelemetryRecord::builder("m", 1_764_300_000.0).latency_seconds(1.0).build();
    /// record.latency_seconds = f64::NAN;
    /// let err = record.validate().unwrap_err();
    /// assert_eq!(err.field(), "latency_seconds");
    /// ```
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.plainly_valid() {
            // Every rule before the metadata's holds: the walk below would reach its check.
            return self.metadata.check();
        }
        self.first_fault()
    }

    /// Whether every rule but the metadata's holds, asked without naming fields: the common
    /// case of a valid record costs one pass of comparisons (on the caller's thread, for
    /// every call). `true` means [`first_fault`](Self::first_fault) would find no fault before
    /// the metadata; `false` may be spurious (a model id that starts with a space or non-ASCII
    /// text, a `-0.0`), and `first_fault` then decides. A test compares the two on varied records.
    fn plainly_valid(&self) -> bool {
        let r = self;
        // A float is finite and not negative when its bits, read as an integer, are below
        // those of +infinity (no sign bit, exponent not all ones; -0.0 falls to the walk): the
        // largest of the fields' bits says it for all of them at once.
        const POSITIVE_INFINITY_BITS: u64 = 0x7ff0_0000_0000_0000;
        let labels = r.model_id.len() <= MAX_LABEL_BYTES
            && r.engine.len() <= MAX_LABEL_BYTES
            && r.agent.len() <= MAX_LABEL_BYTES
            && r.energy_vendor.len() <= MAX_LABEL_BYTES
            && r.batch_id.len() <= MAX_LABEL_BYTES
            && r.error_kind.len() <= MAX_LABEL_BYTES
            && r.error_message.len() <= MAX_ERROR_MESSAGE_BYTES
            // A first byte that is visible ASCII: not blank (others are left to the walk).
            && r.model_id.as_bytes().first().is_some_and(u8::is_ascii_graphic)
            && (r.api.is_empty() || is_name(&r.api))
            && (r.operation.is_empty() || is_name(&r.operation));
        // Each count at most MAX_TOKENS first, so the sum and difference cannot overflow.
        let tokens = r.prompt_tokens <= MAX_TOKENS
            && r.completion_tokens <= MAX_TOKENS
            && r.total_tokens <= MAX_TOKENS
            && r.total_tokens == r.prompt_tokens + r.completion_tokens
            && r.prompt_tokens_cached <= r.prompt_tokens
            && r.prompt_tokens_cache_write <= r.prompt_tokens - r.prompt_tokens_cached
            && r.reasoning_tokens <= r.completion_tokens
            && r.output_chunks <= MAX_TOKENS
            && (r.output_chunks == 0 || r.is_streaming);
        let numbers = (MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&r.timestamp)
            && [
                r.ttft.map_or(0, f64::to_bits),
                r.energy_joules.map_or(0, f64::to_bits),
                r.power_watts.map_or(0, f64::to_bits),
                r.gpu_memory_used_gb.map_or(0, f64::to_bits),
                r.throughput_tok_per_sec.map_or(0, f64::to_bits),
                r.prefill_latency_seconds.map_or(0, f64::to_bits),
                r.decode_latency_seconds.map_or(0, f64::to_bits),
                r.mean_itl_ms.map_or(0, f64::to_bits),
                r.median_itl_ms.map_or(0, f64::to_bits),
                r.p90_itl_ms.map_or(0, f64::to_bits),
                r.p95_itl_ms.map_or(0, f64::to_bits),
                r.p99_itl_ms.map_or(0, f64::to_bits),
                r.std_itl_ms.map_or(0, f64::to_bits),
                r.prefill_energy_joules.map_or(0, f64::to_bits),
                r.decode_energy_joules.map_or(0, f64::to_bits),
                r.server_prefill_ms.map_or(0, f64::to_bits),
                r.server_decode_ms.map_or(0, f64::to_bits),
            ]
            .into_iter()
            .fold(
                r.latency_seconds.to_bits().max(r.cost_usd.to_bits()),
                u64::max,
            ) < POSITIVE_INFINITY_BITS
            && r.gpu_utilization_pct
                .is_none_or(|v| (0.0..=100.0).contains(&v))
            && r.gpu_temperature_c
                .is_none_or(|v| (-273.15..=1000.0).contains(&v))
            && r.ttft
                .is_none_or(|ttft| ttft <= r.latency_seconds + TTFT_SLACK);
        labels && tokens && numbers && (r.outcome != Outcome::Ok || r.error_kind.is_empty())
    }

    /// The rules one by one, in the documented order: the first fault, named. Kept out of
    /// line, so that the quick check's registers are its own.
    #[cold]
    #[inline(never)]
    fn first_fault(&self) -> Result<(), ValidationError> {
        let r = self;
        finite("timestamp", r.timestamp)?;
        if !(MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&r.timestamp) {
            return Err(ValidationError::TimestampOutOfWindow { value: r.timestamp });
        }
        label("model_id", &r.model_id, MAX_LABEL_BYTES)?;
        if r.model_id.trim().is_empty() {
            return Err(ValidationError::Empty { field: "model_id" });
        }
        label("engine", &r.engine, MAX_LABEL_BYTES)?;
        label("agent", &r.agent, MAX_LABEL_BYTES)?;
        label("energy_vendor", &r.energy_vendor, MAX_LABEL_BYTES)?;
        label("batch_id", &r.batch_id, MAX_LABEL_BYTES)?;
        label("error_kind", &r.error_kind, MAX_LABEL_BYTES)?;
        label("error_message", &r.error_message, MAX_ERROR_MESSAGE_BYTES)?;
        name("api", &r.api)?;
        name("operation", &r.operation)?;

        tokens("prompt_tokens", r.prompt_tokens)?;
        tokens("completion_tokens", r.completion_tokens)?;
        tokens("total_tokens", r.total_tokens)?;
        tokens("prompt_tokens_cached", r.prompt_tokens_cached)?;
        if r.prompt_tokens.checked_add(r.completion_tokens) != Some(r.total_tokens) {
            return Err(ValidationError::TokenTotalMismatch {
                total: r.total_tokens,
                prompt: r.prompt_tokens,
                completion: r.completion_tokens,
            });
        }
        if r.prompt_tokens_cached > r.prompt_tokens {
            return Err(ValidationError::CachedExceedsPrompt {
                cached: r.prompt_tokens_cached,
                prompt: r.prompt_tokens,
            });
        }
        tokens("prompt_tokens_cache_write", r.prompt_tokens_cache_write)?;
        if r.prompt_tokens_cache_write > r.prompt_tokens - r.prompt_tokens_cached {
            return Err(ValidationError::CacheWriteExceedsPrompt {
                cache_write: r.prompt_tokens_cache_write,
                cached: r.prompt_tokens_cached,
                prompt: r.prompt_tokens,
            });
        }
        tokens("reasoning_tokens", r.reasoning_tokens)?;
        if r.reasoning_tokens > r.completion_tokens {
            return Err(ValidationError::ReasoningExceedsCompletion {
                reasoning: r.reasoning_tokens,
                completion: r.completion_tokens,
            });
        }
        tokens("output_chunks", r.output_chunks)?;
        if r.output_chunks > 0 && !r.is_streaming {
            return Err(ValidationError::ChunksWithoutStream {
                chunks: r.output_chunks,
            });
        }

        // Written out rather than derived from the field table: a loop over the table cost this
        // (caller-thread) check about twice its time. A test checks every number field of the
        // table is here.
        non_negative("latency_seconds", r.latency_seconds)?;
        non_negative("cost_usd", r.cost_usd)?;
        let optional_non_negative = [
            ("ttft", r.ttft),
            ("energy_joules", r.energy_joules),
            ("power_watts", r.power_watts),
            ("gpu_memory_used_gb", r.gpu_memory_used_gb),
            ("throughput_tok_per_sec", r.throughput_tok_per_sec),
            ("prefill_latency_seconds", r.prefill_latency_seconds),
            ("decode_latency_seconds", r.decode_latency_seconds),
            ("mean_itl_ms", r.mean_itl_ms),
            ("median_itl_ms", r.median_itl_ms),
            ("p90_itl_ms", r.p90_itl_ms),
            ("p95_itl_ms", r.p95_itl_ms),
            ("p99_itl_ms", r.p99_itl_ms),
            ("std_itl_ms", r.std_itl_ms),
            ("prefill_energy_joules", r.prefill_energy_joules),
            ("decode_energy_joules", r.decode_energy_joules),
            ("server_prefill_ms", r.server_prefill_ms),
            ("server_decode_ms", r.server_decode_ms),
        ];
        for (field, value) in optional_non_negative {
            if let Some(v) = value {
                non_negative(field, v)?;
            }
        }
        if let Some(v) = r.gpu_utilization_pct {
            in_range("gpu_utilization_pct", v, 0.0, 100.0)?;
        }
        if let Some(v) = r.gpu_temperature_c {
            in_range("gpu_temperature_c", v, -273.15, 1000.0)?;
        }
        if let Some(ttft) = r.ttft
            && ttft > r.latency_seconds + TTFT_SLACK
        {
            return Err(ValidationError::TtftExceedsLatency {
                ttft,
                latency: r.latency_seconds,
            });
        }
        if r.outcome == Outcome::Ok && !r.error_kind.is_empty() {
            return Err(ValidationError::ErrorKindOnSuccess {
                error_kind_len: r.error_kind.len(),
            });
        }
        r.metadata.check()
    }
}

fn finite(field: &'static str, value: f64) -> Result<(), ValidationError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(ValidationError::NotFinite { field, value })
    }
}

fn non_negative(field: &'static str, value: f64) -> Result<(), ValidationError> {
    finite(field, value)?;
    if value < 0.0 {
        Err(ValidationError::Negative { field, value })
    } else {
        Ok(())
    }
}

fn in_range(field: &'static str, value: f64, min: f64, max: f64) -> Result<(), ValidationError> {
    finite(field, value)?;
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ValidationError::OutOfRange {
            field,
            value,
            min,
            max,
        })
    }
}

fn tokens(field: &'static str, value: u64) -> Result<(), ValidationError> {
    if value > MAX_TOKENS {
        Err(ValidationError::TooManyTokens {
            field,
            value,
            max: MAX_TOKENS,
        })
    } else {
        Ok(())
    }
}

fn label(field: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.len() > max {
        Err(ValidationError::TooLong {
            field,
            len: value.len(),
            max,
        })
    } else {
        Ok(())
    }
}

/// Whether `value` is a name, as the record's `api` and `operation` take one: 1 to
/// [`MAX_NAME_BYTES`] bytes of `a-z`, `0-9`, `_` and `.`.
///
/// ```
/// assert!(telemetry_core::is_name("text_completion"));
/// assert!(!telemetry_core::is_name("Text Completion"));
/// ```
pub fn is_name(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_NAME_BYTES && value.bytes().all(name_byte)
}

/// Whether a name takes each byte (`a-z`, `0-9`, `_`, `.`).
static NAME_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.';
        i += 1;
    }
    table
};

/// Whether a name takes byte `b`: one load rather than four comparisons.
fn name_byte(b: u8) -> bool {
    NAME_BYTES[usize::from(b)]
}

fn name(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() || is_name(value) {
        return Ok(());
    }
    let mut end = value.len().min(MAX_NAME_BYTES);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    Err(ValidationError::NotAName {
        field,
        value: value[..end].to_owned(),
        max: MAX_NAME_BYTES,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::EnergyMethod;
    use serde_json::json;

    fn valid() -> TelemetryRecord {
        TelemetryRecord::builder("llama", 1_764_300_000.0)
            .engine("vllm")
            .tokens(10, 5)
            .latency_seconds(1.0)
            .ttft(0.2)
            .energy(3.0, EnergyMethod::Counter)
            .build()
    }

    fn field_of(r: &TelemetryRecord) -> &'static str {
        r.validate().expect_err("should be rejected").field()
    }

    #[test]
    fn valid_record_passes() {
        assert_eq!(valid().validate(), Ok(()));
    }

    #[test]
    fn each_float_field_rejects_nan_infinity_and_negative() {
        type Setter = fn(&mut TelemetryRecord, f64);
        let setters: Vec<(&str, Setter)> = vec![
            ("latency_seconds", |r, v| r.latency_seconds = v),
            ("cost_usd", |r, v| r.cost_usd = v),
            ("ttft", |r, v| r.ttft = Some(v)),
            ("energy_joules", |r, v| r.energy_joules = Some(v)),
            ("power_watts", |r, v| r.power_watts = Some(v)),
            ("gpu_memory_used_gb", |r, v| r.gpu_memory_used_gb = Some(v)),
            ("throughput_tok_per_sec", |r, v| {
                r.throughput_tok_per_sec = Some(v)
            }),
            ("prefill_latency_seconds", |r, v| {
                r.prefill_latency_seconds = Some(v)
            }),
            ("decode_latency_seconds", |r, v| {
                r.decode_latency_seconds = Some(v)
            }),
            ("mean_itl_ms", |r, v| r.mean_itl_ms = Some(v)),
            ("median_itl_ms", |r, v| r.median_itl_ms = Some(v)),
            ("p90_itl_ms", |r, v| r.p90_itl_ms = Some(v)),
            ("p95_itl_ms", |r, v| r.p95_itl_ms = Some(v)),
            ("p99_itl_ms", |r, v| r.p99_itl_ms = Some(v)),
            ("std_itl_ms", |r, v| r.std_itl_ms = Some(v)),
            ("prefill_energy_joules", |r, v| {
                r.prefill_energy_joules = Some(v)
            }),
            ("decode_energy_joules", |r, v| {
                r.decode_energy_joules = Some(v)
            }),
            ("server_prefill_ms", |r, v| r.server_prefill_ms = Some(v)),
            ("server_decode_ms", |r, v| r.server_decode_ms = Some(v)),
            ("gpu_utilization_pct", |r, v| {
                r.gpu_utilization_pct = Some(v)
            }),
            ("gpu_temperature_c", |r, v| r.gpu_temperature_c = Some(v)),
        ];
        for (name, set) in setters {
            for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1000.0] {
                let mut r = valid();
                set(&mut r, bad);
                let err = r.validate().expect_err(name);
                assert_eq!(err.field(), name, "value {bad}: {err}");
                assert!(err.to_string().contains(name), "{err}");
            }
        }
    }

    /// Whatever number fields the table holds, NaN, infinity and negatives are refused, naming
    /// the field: a number field added to the table but not to `validate` fails here.
    #[test]
    fn every_number_field_of_the_table_is_checked() {
        use crate::fields::{FieldKind, RECORD_FIELDS, StoredValue};
        for (i, field) in RECORD_FIELDS.iter().enumerate() {
            if !matches!(field.kind, FieldKind::Real | FieldKind::OptReal) {
                continue;
            }
            for bad in [f64::NAN, f64::INFINITY, -1e6] {
                let mut r = valid();
                r.set_field(i, StoredValue::Real(bad)).expect("a number");
                assert_eq!(field_of(&r), field.name, "{bad}");
            }
        }
    }

    #[test]
    fn nan_timestamp_and_out_of_window_timestamps_are_rejected() {
        for bad in [
            f64::NAN,
            0.0,
            -5.0,
            MIN_TIMESTAMP - 1.0,
            MAX_TIMESTAMP + 1.0,
        ] {
            let mut r = valid();
            r.timestamp = bad;
            let err = r.validate().unwrap_err();
            assert_eq!(err.field(), "timestamp");
        }
        let mut r = valid();
        r.timestamp = 12.5;
        assert!(r.validate().unwrap_err().to_string().contains("12.5"));
    }

    #[test]
    fn utilization_above_100_is_out_of_range() {
        let mut r = valid();
        r.gpu_utilization_pct = Some(100.5);
        let err = r.validate().unwrap_err();
        assert!(matches!(err, ValidationError::OutOfRange { .. }));
        assert!(err.to_string().contains("100.5"));
    }

    #[test]
    fn empty_or_blank_model_is_rejected() {
        for m in ["", "   "] {
            let mut r = valid();
            r.model_id = m.into();
            assert_eq!(field_of(&r), "model_id");
        }
    }

    #[test]
    fn long_labels_are_rejected() {
        let long = "x".repeat(MAX_LABEL_BYTES + 1);
        type Setter = fn(&mut TelemetryRecord, String);
        let setters: [(&str, Setter); 6] = [
            ("model_id", |r, v| r.model_id = v),
            ("engine", |r, v| r.engine = v),
            ("agent", |r, v| r.agent = v),
            ("energy_vendor", |r, v| r.energy_vendor = v),
            ("batch_id", |r, v| r.batch_id = v),
            ("error_kind", |r, v| r.error_kind = v),
        ];
        for (name, set) in setters {
            let mut r = valid();
            r.outcome = Outcome::Error;
            set(&mut r, long.clone());
            assert_eq!(field_of(&r), name);
        }
        let mut r = valid();
        r.error_message = "e".repeat(MAX_ERROR_MESSAGE_BYTES + 1);
        assert_eq!(field_of(&r), "error_message");
    }

    #[test]
    fn token_rules() {
        let mut r = valid();
        r.total_tokens = 14;
        let err = r.validate().unwrap_err();
        assert_eq!(err.field(), "total_tokens");
        assert!(err.to_string().contains("14"), "{err}");

        let mut r = valid();
        r.prompt_tokens_cached = 11;
        assert_eq!(field_of(&r), "prompt_tokens_cached");

        let mut r = valid();
        r.prompt_tokens = MAX_TOKENS + 1;
        assert_eq!(field_of(&r), "prompt_tokens");

        let mut r = valid();
        r.prompt_tokens = u64::MAX;
        r.completion_tokens = u64::MAX;
        r.total_tokens = u64::MAX;
        assert!(r.validate().is_err());
    }

    #[test]
    fn api_token_rules() {
        let mut r = valid();
        r.prompt_tokens_cached = 4;
        r.prompt_tokens_cache_write = 6;
        assert_eq!(r.validate(), Ok(()));
        r.prompt_tokens_cache_write = 7;
        let err = r.validate().unwrap_err();
        assert_eq!(err.field(), "prompt_tokens_cache_write");
        assert!(err.to_string().contains('7'), "{err}");

        let mut r = valid();
        r.reasoning_tokens = 5;
        assert_eq!(r.validate(), Ok(()));
        r.reasoning_tokens = 6;
        assert_eq!(field_of(&r), "reasoning_tokens");

        let mut r = valid();
        r.output_chunks = 3;
        assert_eq!(
            field_of(&r),
            "output_chunks",
            "a call that did not stream has no chunks"
        );
        r.is_streaming = true;
        assert_eq!(r.validate(), Ok(()));
    }

    #[test]
    fn api_and_operation_are_names() {
        for good in ["", "chat", "openai_chat", "gen.v2_x"] {
            let mut r = valid();
            r.api = good.into();
            r.operation = good.into();
            assert_eq!(r.validate(), Ok(()), "{good:?}");
        }
        let long = "a".repeat(MAX_NAME_BYTES + 1);
        for bad in ["Chat", "chat ", "tèxt", "a/b", "x-y", long.as_str()] {
            let mut r = valid();
            r.api = bad.into();
            assert_eq!(field_of(&r), "api", "{bad:?}");
            let mut r = valid();
            r.operation = bad.into();
            let err = r.validate().unwrap_err();
            assert_eq!(err.field(), "operation", "{bad:?}");
            assert!(err.to_string().contains(&bad[..bad.len().min(8)]), "{err}");
        }
    }

    /// Whatever count fields the table holds, a count above [`MAX_TOKENS`] is refused, naming
    /// the field: a count added to the table but not to `validate` fails here.
    #[test]
    fn every_count_field_of_the_table_is_bounded() {
        use crate::fields::{FieldKind, RECORD_FIELDS, StoredValue};
        let mut checked = 0;
        for (i, field) in RECORD_FIELDS.iter().enumerate() {
            if field.kind != FieldKind::Count {
                continue;
            }
            let mut r = valid();
            r.is_streaming = true;
            r.set_field(i, StoredValue::Integer(MAX_TOKENS as i64 + 1))
                .expect("a count");
            assert_eq!(field_of(&r), field.name);
            checked += 1;
        }
        assert!(checked >= 7, "{checked}");
    }

    /// Whatever text fields the table holds, an over-long value is refused, naming the field:
    /// a text field added to the table but not to `validate` fails here (the enums, which
    /// take only their own strings, are checked by decoding).
    #[test]
    fn every_text_field_of_the_table_is_bounded() {
        use crate::fields::{FieldKind, RECORD_FIELDS, StoredValue};
        let long = "x".repeat(MAX_ERROR_MESSAGE_BYTES + 1);
        let mut checked = 0;
        for (i, field) in RECORD_FIELDS.iter().enumerate() {
            if field.kind != FieldKind::Text {
                continue;
            }
            let mut r = valid();
            r.outcome = Outcome::Error;
            if r.set_field(i, StoredValue::Text(long.as_bytes())).is_err() {
                continue;
            }
            assert_eq!(field_of(&r), field.name);
            checked += 1;
        }
        assert!(checked >= 9, "{checked}");
    }

    #[test]
    fn ttft_above_latency_is_rejected() {
        let mut r = valid();
        r.ttft = Some(1.5);
        assert_eq!(field_of(&r), "ttft");
    }

    #[test]
    fn error_kind_on_ok_outcome_is_rejected() {
        let mut r = valid();
        r.error_kind = "timeout".into();
        assert_eq!(field_of(&r), "error_kind");
        r.outcome = Outcome::Error;
        assert_eq!(r.validate(), Ok(()));
    }

    #[test]
    fn metadata_must_be_a_small_object() {
        for bad in [json!(null), json!([1, 2]), json!("s"), json!(3)] {
            let mut r = valid();
            r.metadata = bad.into();
            let err = r.validate().unwrap_err();
            assert_eq!(err.field(), "metadata");
            assert!(matches!(err, ValidationError::MetadataNotObject { .. }));
        }
        let mut r = valid();
        r.metadata = json!({ "blob": "x".repeat(MAX_METADATA_BYTES) }).into();
        let err = r.validate().unwrap_err();
        assert!(
            matches!(err, ValidationError::MetadataTooLarge { .. }),
            "{err}"
        );

        let mut r = valid();
        r.metadata = json!({ "user": "alice", "tags": [1, 2, 3] }).into();
        assert_eq!(r.validate(), Ok(()));
    }

    #[test]
    fn a_total_over_the_limit_is_refused_though_its_parts_are_within_it() {
        // The quick pass once let this through: each part at most MAX_TOKENS, their sum over it.
        let mut r = valid();
        r.prompt_tokens_cached = 0;
        r.prompt_tokens_cache_write = 0;
        r.reasoning_tokens = 0;
        r.prompt_tokens = MAX_TOKENS;
        r.completion_tokens = 1;
        r.total_tokens = MAX_TOKENS + 1;
        assert!(matches!(
            r.validate(),
            Err(ValidationError::TooManyTokens {
                field: "total_tokens",
                ..
            })
        ));
        assert_eq!(r.validate(), r.first_fault());
    }

    #[test]
    fn name_bytes_are_lowercase_letters_digits_underscore_and_dot() {
        for b in 0..=u8::MAX {
            let expected = b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.';
            assert_eq!(name_byte(b), expected, "{b}");
        }
    }

    /// A field of `RECORD_FIELDS` set to one of a few edge values of its kind; `false` when the
    /// value does not decode into that field.
    fn set_edge(r: &mut TelemetryRecord, field: usize, pick: usize) -> bool {
        use crate::fields::{FieldKind, RECORD_FIELDS, StoredValue};
        const REALS: [f64; 14] = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            -1.0,
            1e-7,
            1.5,
            100.0,
            100.5,
            -273.15,
            -300.0,
            2e9,
            1e300,
        ];
        const COUNTS: [i64; 7] = [0, 1, 5, 10, 15, 1_000_000_000, 1_000_000_001];
        let long_label = "x".repeat(MAX_LABEL_BYTES + 1);
        let long_message = "e".repeat(MAX_ERROR_MESSAGE_BYTES + 1);
        let long_name = "a".repeat(MAX_NAME_BYTES + 1);
        let texts: [&str; 14] = [
            "",
            " ",
            " m",
            "\u{a0}",
            "é",
            "chat",
            "openai_chat",
            "Chat",
            "a/b",
            "ok",
            "error",
            &long_label,
            &long_message,
            &long_name,
        ];
        let Some(f) = RECORD_FIELDS.get(field) else {
            return false;
        };
        let value = match f.kind {
            FieldKind::Real | FieldKind::OptReal if pick == REALS.len() => StoredValue::Null,
            FieldKind::Real | FieldKind::OptReal => StoredValue::Real(REALS[pick % REALS.len()]),
            FieldKind::Count => StoredValue::Integer(COUNTS[pick % COUNTS.len()]),
            FieldKind::Flag => StoredValue::Integer((pick % 2) as i64),
            FieldKind::Text => StoredValue::Text(texts[pick % texts.len()].as_bytes()),
            FieldKind::Json => return false,
        };
        r.set_field(field, value).is_ok()
    }

    /// The record a test starts from: `valid()` and three variants (a stream with names, an
    /// error with metadata, metadata that is not an object).
    fn base(which: usize) -> TelemetryRecord {
        let mut r = valid();
        match which {
            1 => {
                r.is_streaming = true;
                r.output_chunks = 5;
                r.api = crate::api::OPENAI_CHAT.into();
                r.operation = crate::operation::CHAT.into();
            }
            2 => {
                r.outcome = Outcome::Error;
                r.error_kind = "http_500".into();
                r.metadata = json!({ "server.port": 8080 }).into();
            }
            3 => r.metadata = json!([1]).into(),
            _ => {}
        }
        r
    }

    /// Every field of every base set to each of its edge values: the quick check and the walk
    /// give the same answer (compared as text: a NaN in an error is not equal to itself).
    #[test]
    fn the_quick_check_agrees_with_the_walk_on_each_single_edit() {
        for which in 0..4 {
            // Untouched, each base takes the quick way (the metadata is not its business).
            assert!(base(which).plainly_valid(), "base {which}");
            for field in 0..crate::fields::RECORD_FIELDS.len() {
                for pick in 0..16 {
                    let mut r = base(which);
                    set_edge(&mut r, field, pick);
                    assert_eq!(
                        format!("{:?}", r.validate()),
                        format!("{:?}", r.first_fault()),
                        "base {which}, field {field}, pick {pick}"
                    );
                }
            }
        }
    }

    proptest::proptest! {
        /// The same with a few fields edited at once (faults that mask or follow each other).
        #[test]
        fn the_quick_check_agrees_with_the_walk(
            which in 0usize..4,
            edits in proptest::collection::vec(
                (0usize..crate::fields::RECORD_FIELDS.len(), 0usize..16),
                0..4,
            ),
        ) {
            let mut r = base(which);
            let mut edited = false;
            for (field, pick) in edits {
                edited |= set_edge(&mut r, field, pick);
            }
            // Compared as text: a NaN in an error is not equal to itself.
            proptest::prop_assert_eq!(
                format!("{:?}", r.validate()),
                format!("{:?}", r.first_fault())
            );
            if !edited {
                proptest::prop_assert!(r.plainly_valid());
            }
        }
    }
}
