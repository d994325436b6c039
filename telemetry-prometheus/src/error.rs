//! [`RenderError`]: why a scrape could not be rendered.

use telemetry_agg::AggError;

/// Why [`render`](crate::render) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// Reading the rollups from the database failed.
    #[error("reading the telemetry rollups for /metrics: {0}")]
    Query(#[from] AggError),
    /// Writing the exposition text failed (only a formatter error, which a `String` never
    /// returns in practice).
    #[error("writing the Prometheus exposition text failed")]
    Encode(#[from] std::fmt::Error),
    /// The namespace is not a valid Prometheus metric name prefix.
    #[error(
        "invalid metric namespace {0:?}: it must match [a-zA-Z_:][a-zA-Z0-9_:]* (no unit, no suffix)"
    )]
    BadNamespace(String),
}
