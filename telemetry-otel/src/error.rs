//! Errors, one enum per operation: configuring, exporting, shutting down.

use std::time::Duration;

/// A configuration value that cannot be used; says which setting and which value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An endpoint that is not a plain `http://host[:port][/path]` URL.
    #[error("{setting}: {value:?} is not a usable OTLP endpoint: {reason}")]
    InvalidEndpoint {
        /// The environment variable or builder method.
        setting: String,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A protocol this build cannot speak: `http/json` never, `grpc` only with the crate's
    /// `grpc` feature; or different protocols for traces and metrics.
    #[error("{setting}: protocol {value:?} is not supported by this build ({supported})")]
    UnsupportedProtocol {
        /// The environment variable.
        setting: String,
        /// The value given.
        value: String,
        /// What this build supports.
        supported: &'static str,
    },
    /// A `key=value,...` list (headers, resource attributes) with a malformed entry.
    #[error("{setting}: entry {entry:?} is not key=value")]
    InvalidList {
        /// The environment variable.
        setting: String,
        /// The malformed entry.
        entry: String,
    },
    /// A number (milliseconds, sizes) that does not parse or is out of range.
    #[error("{setting}: {value:?} is not {expected}")]
    InvalidNumber {
        /// The environment variable or builder method.
        setting: String,
        /// The value given.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

/// Why one export request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Nothing answered at the endpoint (refused, unreachable, unknown host).
    #[error("could not connect to the OTLP endpoint {url}: {message}")]
    Connect {
        /// The endpoint.
        url: String,
        /// The system's message.
        message: String,
    },
    /// The collector did not answer in time.
    #[error("the OTLP endpoint {url} did not answer within {after:?}")]
    Timeout {
        /// The endpoint.
        url: String,
        /// The time allowed.
        after: Duration,
    },
    /// The collector answered with an error status.
    #[error("the OTLP endpoint {url} answered HTTP {status}: {message}")]
    Status {
        /// The endpoint.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the response body.
        message: String,
    },
    /// The collector answered a gRPC call with a non-zero `grpc-status` (feature `grpc`).
    #[error("the OTLP endpoint {url} answered gRPC status {code}: {message}")]
    GrpcStatus {
        /// The method's URL.
        url: String,
        /// The gRPC status code (e.g. 14 unavailable, 8 resource exhausted).
        code: u32,
        /// Its `grpc-message`.
        message: String,
    },
    /// The connection failed mid-request, or the answer was not HTTP.
    #[error("OTLP request to {url} failed: {message}")]
    Transport {
        /// The endpoint.
        url: String,
        /// What happened.
        message: String,
    },
}

/// Why [`OtlpExporter`](crate::OtlpExporter) could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The export thread could not be spawned.
    #[error("could not start the OTLP export thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// Why a flush or a shutdown did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlushError {
    /// The deadline passed first; `pending` records were still queued or being sent.
    #[error("OTLP export did not finish within {deadline:?} ({pending} records still pending)")]
    Timeout {
        /// The deadline given.
        deadline: Duration,
        /// Records not yet handed to the collector.
        pending: u64,
    },
    /// The exporter was already shut down.
    #[error("the OTLP exporter is shut down")]
    Closed,
}
