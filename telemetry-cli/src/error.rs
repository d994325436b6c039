//! [`CliError`]: everything a command can fail with, and its exit code.

use std::path::PathBuf;

use crate::dbpath::DbOrigin;

/// Exit code for usage errors, a missing database, and deletions refused without `--yes`
/// (clap's own usage errors use it too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code for runtime failures and an unhealthy `check`.
pub const EXIT_FAILURE: u8 = 1;

/// Why a command failed. `main` prints it as one line on stderr and exits with
/// [`exit_code`](CliError::exit_code).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A read command was pointed at a database that does not exist; nothing was created.
    #[error(
        "no telemetry database at {} ({}); record some calls first (e.g. `telemetry demo`) or pass --db PATH",
        path.display(),
        origin.describe()
    )]
    MissingDatabase {
        /// The path looked at.
        path: PathBuf,
        /// Where that path came from.
        origin: DbOrigin,
    },
    /// The database path cannot be a database file: it is a directory, or one of its parents is
    /// not a directory.
    #[error("{} cannot be a telemetry database ({}): {reason}", path.display(), origin.describe())]
    BadDatabasePath {
        /// The path.
        path: PathBuf,
        /// Where that path came from.
        origin: DbOrigin,
        /// What is wrong with it.
        reason: String,
    },
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
    /// Neither `--db`, `$TELEMETRY_DB`, `$XDG_DATA_HOME` nor `$HOME` says where the database is.
    #[error("cannot find a data directory: $HOME is not set; pass --db PATH or set $TELEMETRY_DB")]
    NoDataDir,
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
    Chart(String),
    /// The demo could not run (GPU or engine setup).
    #[error("demo failed: {0}")]
    Demo(String),
    /// `run` could not make a single successful call.
    #[error("run failed: {0}")]
    Run(String),
    /// `serve` could not start (address in use, no permission, signal handlers).
    #[error("serve: {0}")]
    Serve(String),
    /// `proxy` could not start (address in use, no permission, signal handlers, GPU).
    #[cfg(feature = "proxy")]
    #[error("proxy: {0}")]
    Proxy(String),
    /// OTLP export failed (backfill: the collector refused or could not be reached).
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    #[error("otlp: {0}")]
    Otlp(String),
}

impl CliError {
    /// The process exit code for this error: 2 for usage errors, a missing database or a refused
    /// deletion; 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::MissingDatabase { .. }
            | CliError::BadDatabasePath { .. }
            | CliError::NoDataDir
            | CliError::InputNotFound { .. }
            | CliError::NeedsConfirmation { .. }
            | CliError::OutputIsDatabase { .. }
            | CliError::Usage(_) => EXIT_USAGE,
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
        assert_eq!(CliError::NoDataDir.exit_code(), 2);
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
