//! # telemetry
//!
//! The `telemetry` command: record simulated inference calls (`demo`), read them back (`stats`,
//! `series`, `export`, `check`), manage retention (`prune`, `clear`) and import an OpenJarvis
//! database (`import-openjarvis`), and serve Prometheus metrics (`serve`). `telemetry --help`
//! lists the commands with examples, and `docs/cli.md` documents the output formats.
//!
//! - The database is `--db PATH`, else `$TELEMETRY_DB`, else
//!   `$XDG_DATA_HOME/telemetry/telemetry.db` (or `~/.local/share/telemetry/telemetry.db`).
//! - Errors are one line on stderr. Exit codes: 0 ok; 1 runtime failure or unhealthy `check`;
//!   2 usage error, missing database, or a deletion refused without `--yes`.
//! - Progress bars draw on stderr only when it is a terminal; output contains no colours.
//!
//! ```text
//! $ telemetry demo --calls 500
//! $ telemetry stats --since 1h --by engine --format json
//! $ telemetry export --format ndjson -o calls.ndjson
//! ```
//!
//! ## Feature flags
//!
//! - `nvml` (default): `demo --gpu nvml|auto` can read real GPU energy through NVML. Without it,
//!   `--gpu nvml` is an error and `auto` uses the mock backend.

mod cli;
mod commands;
mod confirm;
mod csv_record;
mod dbpath;
mod emit;
mod error;
mod help;
mod listen;
mod outfile;
mod output;
mod present;
mod progress;
mod read;
mod recording;
mod timearg;

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use crate::cli::Cli;
use crate::error::EXIT_USAGE;
use crate::output::escape_controls;

/// mimalloc: the proxy allocates per request and per stream chunk, and glibc's malloc and free
/// were ~7 % of its worker thread's instructions (callgrind); mimalloc's are a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // A bug must still read as one line, not a backtrace (exit code 101 says it was one).
    std::panic::set_hook(Box::new(|info| {
        let info = info.to_string();
        eprintln!(
            "telemetry: internal error (please report): {}",
            escape_controls(&info)
        );
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(&e),
    };
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            // Errors echo paths and names: one line, nothing a terminal would act on.
            eprintln!("telemetry: error: {}", escape_controls(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

/// Help and version print as clap renders them; usage errors become one line on stderr.
fn clap_exit(e: &clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(EXIT_USAGE)
        }
        _ => {
            let line = one_line(&e.render().to_string());
            eprintln!("telemetry: {}", escape_controls(&line));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Joins clap's multi-line message into one line, dropping its "try --help" footer.
fn one_line(text: &str) -> String {
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .collect();
    format!("{} (see --help)", parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_messages_fold_into_one_line() {
        let text = "error: invalid value 'xml' for '--format <FORMAT>'\n  [possible values: json, csv]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(text),
            "error: invalid value 'xml' for '--format <FORMAT>' [possible values: json, csv] (see --help)"
        );
    }
}
