//! [`CliError`]: everything a command can fail with, and its exit code.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::commands::report::ChartError;
use crate::dbpath::DbPathError;
use crate::output::count;

/// Exit code for usage errors, a missing database, and deletions refused without `--yes`
/// (clap's own usage errors use it too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code for runtime failures and an unhealthy `check`.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a command stopped by SIGINT (128 + the signal's number, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Why a command failed. `main` prints it as one line on stderr and exits with
/// [`exit_code`](CliError::exit_code).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The database path is missing, cannot be a database, or cannot be found.
    #[error(transparent)]
    DbPath(#[from] DbPathError),
    /// The database file is empty: another process is creating it (and did not finish within a
    /// couple of seconds), or its creation was cut short.
    #[error(
        "{} is empty: a telemetry database is being created there, or its creation was cut short; try again in a moment",
        path.display()
    )]
    BeingCreated {
        /// The file.
        path: PathBuf,
    },
    /// A file to read does not exist.
    #[error("{what} {} does not exist", path.display())]
    InputNotFound {
        /// What the file was for.
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// A deletion was asked for without `--yes` while stdin is not a terminal.
    #[error("refusing to {action} without --yes: stdin is not a terminal, so nobody can confirm")]
    NeedsConfirmation {
        /// What would have been done.
        action: String,
    },
    /// The user answered "no" at the confirmation prompt.
    #[error("cancelled: did not {action}")]
    Declined {
        /// What was not done.
        action: String,
    },
    /// Arguments that parse but do not make sense together.
    #[error("{0}")]
    Usage(String),
    /// The store failed (opening, writing, pruning, importing).
    #[error("{0}")]
    Store(#[from] telemetry_store::StoreError),
    /// A recording command (`demo`, `run`, `proxy`) ended with records its store could not
    /// write (a full disk, the database deleted or replaced while recording).
    #[error(
        "{source}; {} records written, {} dropped ({} of them accepted but never written)",
        count(*written),
        count(*dropped),
        count(*lost)
    )]
    RecordingIncomplete {
        /// The store's error at the final flush or close.
        source: telemetry_store::StoreError,
        /// Records written.
        written: u64,
        /// Records dropped or refused (including the lost ones).
        dropped: u64,
        /// Records accepted and never written.
        lost: u64,
    },
    /// Reading the database failed (not a telemetry database, unknown schema, bad row).
    #[error("{0}")]
    Agg(#[from] telemetry_agg::AggError),
    /// A file operation failed.
    #[error("{action} {} failed: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `--output` names the database or one of its side files; nothing was written.
    #[error(
        "refusing to write to {}: it is {what} {}; choose another file",
        output.display(),
        db.display()
    )]
    OutputIsDatabase {
        /// The output path given.
        output: PathBuf,
        /// The database.
        db: PathBuf,
        /// Which of the database's files it is.
        what: String,
    },
    /// Writing the output (stdout or `--output`) failed.
    #[error("writing {target} failed: {source}")]
    Output {
        /// `stdout` or the output file.
        target: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Encoding a record or stats as JSON failed.
    #[error("encoding JSON failed: {0}")]
    Json(#[from] serde_json::Error),
    /// Encoding CSV failed.
    #[error("encoding CSV failed: {0}")]
    Csv(#[from] csv::Error),
    /// `check` found problems.
    #[error("{} is unhealthy: {}", path.display(), problems.join("; "))]
    Unhealthy {
        /// The database.
        path: PathBuf,
        /// What is wrong.
        problems: Vec<String>,
    },
    /// `report` could not draw a chart.
    #[error("report: {0}")]
    Chart(#[from] ChartError),
    /// The GPU energy source could not be started (`--gpu`).
    #[error("GPU energy source: {0}")]
    Gpu(#[from] GpuSetupError),
    /// `run`: every call failed (each was recorded).
    #[error("run failed: all {} calls failed (recorded): {}", count(*calls), first_failure.as_deref().unwrap_or_default())]
    AllCallsFailed {
        /// The calls made.
        calls: u64,
        /// The first failure: the error and its `error_kind`.
        first_failure: Option<String>,
    },
    /// `run` was interrupted (SIGINT); what ran is recorded and its table printed.
    #[error("run interrupted after {} calls (what ran is recorded)", count(*calls))]
    Interrupted {
        /// The calls started.
        calls: u64,
    },
    /// `serve` could not start (address in use, no permission, signal handlers).
    #[error("serve: {0}")]
    Serve(#[source] ServerError),
    /// `proxy` could not start (address in use, no permission, signal handlers).
    #[cfg(feature = "proxy")]
    #[error("proxy: {0}")]
    Proxy(#[source] ServerError),
    /// The live OTLP export (`--otlp`) could not start.
    #[cfg(feature = "otlp")]
    #[error("otlp: --otlp: {0}")]
    OtlpStart(#[source] telemetry_otel::StartError),
    /// OTLP backfill failed (the collector refused or could not be reached).
    #[cfg(feature = "otlp")]
    #[error("otlp: {0}")]
    Otlp(#[source] telemetry_otel::ExportError),
}

/// Why a command that listens (`serve`, `proxy`) could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The tokio runtime could not be built.
    #[error("starting the server runtime failed: {0}")]
    Runtime(#[source] std::io::Error),
    /// Binding or reading the listening address failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The SIGINT/SIGTERM handlers could not be installed.
    #[error("installing a signal handler: {0}")]
    Signal(#[source] std::io::Error),
    /// The exposition could not be rendered (other than a failed query).
    #[error("{0}")]
    Render(#[source] telemetry_prometheus::RenderError),
    /// The proxy could not bind or start.
    #[cfg(feature = "proxy")]
    #[error("{0}")]
    Proxy(#[source] telemetry_proxy::ProxyError),
}

/// Why the GPU energy source (`--gpu`) could not be started.
#[derive(Debug, thiserror::Error)]
pub enum GpuSetupError {
    /// `--gpu nvml` without `--realtime` in `demo`.
    #[error(
        "--gpu nvml needs --realtime: instant calls take no real time, so a real GPU has nothing to measure"
    )]
    NvmlNeedsRealTime,
    /// NVML could not be loaded or read.
    #[cfg_attr(not(feature = "nvml"), allow(dead_code))]
    #[error("{0}")]
    Nvml(#[source] telemetry_gpu::GpuError),
    /// This build has no NVML support.
    #[cfg_attr(feature = "nvml", allow(dead_code))]
    #[error("this build has no NVML support (feature `nvml` is off)")]
    NoNvmlSupport,
    /// The mock GPU's sampler could not start.
    #[error("starting the mock GPU: {0}")]
    Mock(#[source] telemetry_gpu::GpuError),
}

impl CliError {
    /// The process exit code for this error: 2 for usage errors, a missing database or a refused
    /// deletion; 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::DbPath(_)
            | CliError::Gpu(GpuSetupError::NvmlNeedsRealTime)
            | CliError::InputNotFound { .. }
            | CliError::NeedsConfirmation { .. }
            | CliError::OutputIsDatabase { .. }
            | CliError::Usage(_) => EXIT_USAGE,
            CliError::Interrupted { .. } => EXIT_INTERRUPTED,
            _ => EXIT_FAILURE,
        }
    }

    /// Whether this is a write to a closed pipe (`telemetry export | head`), which is not an error
    /// worth reporting.
    pub fn is_broken_pipe(&self) -> bool {
        let kind = match self {
            CliError::Output { source, .. } | CliError::Io { source, .. } => Some(source.kind()),
            CliError::Json(e) => e.io_error_kind(),
            _ => None,
        };
        kind == Some(std::io::ErrorKind::BrokenPipe)
    }

    /// Wraps a stdout write error.
    pub fn stdout(source: std::io::Error) -> Self {
        CliError::Output {
            target: "stdout".to_string(),
            source,
        }
    }
}

impl From<telemetry_core::TimeRangeError> for CliError {
    fn from(e: telemetry_core::TimeRangeError) -> Self {
        CliError::Usage(format!("--since/--until: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_policy() {
        assert_eq!(CliError::from(DbPathError::NoDataDir).exit_code(), 2);
        let refused = CliError::NeedsConfirmation {
            action: "clear".into(),
        };
        assert_eq!(refused.exit_code(), 2);
        let unhealthy = CliError::Unhealthy {
            path: "/x.db".into(),
            problems: vec!["bad page".into()],
        };
        assert_eq!(unhealthy.exit_code(), 1);
        assert!(unhealthy.to_string().contains("bad page"));
    }

    #[test]
    fn broken_pipe_is_recognised() {
        let e = CliError::stdout(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(e.is_broken_pipe());
        let e = CliError::stdout(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(!e.is_broken_pipe());
    }
}
