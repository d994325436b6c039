//! Errors of `telemetry-wrap`.
//!
//! The wrapper never invents errors on the call path: an engine's own error is returned to the
//! caller unchanged. The errors here come from configuration (price tables, metadata) and from the
//! simulated engine.

use std::path::PathBuf;

/// Why a [`PriceTable`](crate::PriceTable) could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PriceTableError {
    /// The file could not be read.
    #[error("cannot read price table {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file name does not end in `.toml` or `.json`, so its format is unknown.
    #[error("price table {path} must end in .toml or .json")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The file's format needs a feature of `telemetry-wrap` that this build lacks.
    #[error("price table {path} needs telemetry-wrap's `{feature}` feature")]
    FeatureDisabled {
        /// The file.
        path: PathBuf,
        /// The feature (`toml`).
        feature: &'static str,
    },
    /// The TOML text is malformed or has an unexpected field.
    #[error("price table TOML, line {line}: {message}")]
    Toml {
        /// 1-based line of the error (0 when unknown).
        line: usize,
        /// What the parser said.
        message: String,
    },
    /// The JSON text is malformed or has an unexpected field.
    #[error("price table JSON, line {line} column {column}: {message}")]
    Json {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// A price is negative, NaN or infinite.
    #[error(
        "price table: model `{model}` field `{field}` must be a finite, non-negative number, got {value}"
    )]
    InvalidPrice {
        /// The model.
        model: String,
        /// The field (`input_per_mtok`, `usd_per_second`, ...).
        field: &'static str,
        /// The value.
        value: f64,
    },
    /// A model entry gives the same price twice (per token and per 1M tokens) or mixes per-token
    /// and per-second pricing.
    #[error("price table: model `{model}` sets both `{first}` and `{second}`; keep one")]
    Conflicting {
        /// The model.
        model: String,
        /// One field.
        first: &'static str,
        /// The other field.
        second: &'static str,
    },
    /// A model entry has neither an `input`/`output` price nor `usd_per_second`.
    #[error(
        "price table: model `{model}` needs `input` and `output` (or `*_per_mtok`) prices, or `usd_per_second`; missing `{field}`"
    )]
    Missing {
        /// The model.
        model: String,
        /// The first missing field.
        field: &'static str,
    },
}

/// Why an [`InstrumentedEngine`](crate::InstrumentedEngine) option was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The metadata would make every record fail validation (not an object, or too large).
    #[error("metadata refused: {0}")]
    InvalidMetadata(#[source] telemetry_core::ValidationError),
}

/// Errors of the [`SimulatedEngine`](crate::SimulatedEngine).
#[cfg(feature = "sim")]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimulatedError {
    /// The requested model is not one of [`SimulatedEngine::models`](crate::SimulatedEngine::models).
    #[error("simulated engine has no model `{model}` (known: {known})")]
    UnknownModel {
        /// The model requested.
        model: String,
        /// The known model ids, comma separated.
        known: String,
    },
    /// A failure injected by the configured error rate.
    #[error("simulated {kind} on model `{model}` (call {call})")]
    Injected {
        /// Short kind (`overloaded`, `timeout`); also the record's `error_kind`.
        kind: &'static str,
        /// The model.
        model: String,
        /// Sequence number of the call in this engine.
        call: u64,
    },
}
