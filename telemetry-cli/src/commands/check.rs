//! `telemetry check`: is this database healthy?

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use telemetry_core::TimeRange;
use telemetry_core::schema::SCHEMA_VERSION;

use crate::cli::{CheckArgs, CheckFormat};
use crate::commands::{emit, open_aggregator};
use crate::dbpath::DbPath;
use crate::error::CliError;
use crate::output::{bytes, count, escape_controls};

/// What `check` found, printed as text or JSON.
#[derive(Debug, serde::Serialize)]
struct Report {
    path: String,
    schema_version: i32,
    supported_schema_version: i32,
    records: u64,
    integrity: Vec<String>,
    file_bytes: u64,
    wal_bytes: u64,
    healthy: bool,
}

/// Runs `check`; exits 1 (after printing the report) when the database is unhealthy.
pub fn run(db: &DbPath, args: &CheckArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let path = db.require_existing()?;
    let agg = open_aggregator(db)?;
    let schema_version = agg.schema_version()?;
    let integrity = agg.integrity_check()?;
    let records = agg.record_count(&TimeRange::all())?;
    let mut problems = Vec::new();
    if schema_version != SCHEMA_VERSION {
        problems.push(format!(
            "schema version {schema_version}, expected {SCHEMA_VERSION}"
        ));
    }
    if integrity != ["ok"] {
        problems.push(format!("integrity check: {}", integrity.join(", ")));
    }
    let report = Report {
        path: path.display().to_string(),
        schema_version,
        supported_schema_version: SCHEMA_VERSION,
        records,
        integrity,
        file_bytes: file_size(path),
        wal_bytes: file_size(&wal_path(path)),
        healthy: problems.is_empty(),
    };
    let text = match args.format {
        CheckFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        CheckFormat::Text => render(&report),
    };
    emit(out, &text)?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CliError::Unhealthy {
            path: path.to_path_buf(),
            problems,
        })
    }
}

fn render(r: &Report) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "database   {}", escape_controls(&r.path));
    let _ = writeln!(
        text,
        "schema     version {} (this build reads {})",
        r.schema_version, r.supported_schema_version
    );
    let _ = writeln!(text, "records    {}", count(r.records));
    let _ = writeln!(
        text,
        "integrity  {}",
        escape_controls(&r.integrity.join(", "))
    );
    let _ = writeln!(
        text,
        "size       {} (+ {} write-ahead log)",
        bytes(r.file_bytes),
        bytes(r.wal_bytes)
    );
    let _ = writeln!(
        text,
        "status     {}",
        if r.healthy { "healthy" } else { "UNHEALTHY" }
    );
    text
}

fn wal_path(path: &Path) -> std::path::PathBuf {
    let mut os = path.as_os_str().to_owned();
    os.push("-wal");
    os.into()
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}
