//! `telemetry check`: is this database healthy? Schema version, `PRAGMA integrity_check`, and
//! the summaries (`telemetry_rollup`) against `COUNT(*)` of the rows per day; `--repair`
//! rebuilds the summaries from the rows.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use telemetry_agg::{RollupCheck, RollupDrift, TelemetryAggregator};
use telemetry_core::schema::SCHEMA_VERSION;
use telemetry_store::TelemetryStore;

use crate::cli::{CheckArgs, CheckFormat};
use crate::dbpath::DbPath;
use crate::emit::emit;
use crate::error::CliError;
use crate::output::{bytes, count, escape_controls};
use crate::timearg::format_time;

/// What `check` found, printed as text or JSON.
#[derive(Debug, serde::Serialize)]
struct Report {
    path: String,
    /// `None` when it could not be read (damaged file).
    schema_version: Option<i32>,
    supported_schema_version: i32,
    /// `COUNT(*)` of the rows; `None` when they could not be counted.
    records: Option<u64>,
    /// Calls counted by the day summaries (what `stats` reports).
    rollup_records: Option<u64>,
    /// Days and levels whose summaries disagree with the rows.
    rollup_drift: Vec<Drift>,
    integrity: Vec<String>,
    file_bytes: u64,
    wal_bytes: u64,
    /// Bytes of free pages in the file; `None` when the page counts could not be read.
    free_bytes: Option<u64>,
    /// Whether prunes give freed pages back to the file system (files created since
    /// incremental auto-vacuum); else they are kept for reuse until `compact`.
    gives_space_back: Option<bool>,
    /// Rows the summaries were rebuilt from (`--repair`); `None` when nothing was rebuilt.
    repaired_from_rows: Option<u64>,
    problems: Vec<String>,
    healthy: bool,
}

/// One (day, level) of [`RollupDrift`], with the day spelt out.
#[derive(Debug, serde::Serialize)]
struct Drift {
    day: String,
    day_start: i64,
    level: i64,
    rows: u64,
    rollup_calls: u64,
}

impl Drift {
    fn of(d: &RollupDrift) -> Drift {
        let day = format_time(d.day_start as f64);
        Drift {
            day: day.split('T').next().unwrap_or(&day).to_owned(),
            day_start: d.day_start,
            level: d.level,
            rows: d.rows,
            rollup_calls: d.rollup_calls,
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} ({} summaries): {} rows, summaries count {}",
            self.day,
            level_name(self.level),
            self.rows,
            self.rollup_calls
        )
    }
}

fn level_name(level: i64) -> String {
    match level {
        60 => "minute".to_owned(),
        3_600 => "hour".to_owned(),
        86_400 => "day".to_owned(),
        other => format!("{other} s"),
    }
}

/// Runs `check`; exits 1 (after printing the report) when the database is unhealthy. A file
/// damaged in the middle gets a report listing what SQLite found, not a bare error.
pub fn run(db: &DbPath, args: &CheckArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let path = db.require_existing()?;
    let mut report = inspect(path)?;
    if args.repair && !report.rollup_drift.is_empty() {
        if report.integrity == ["ok"] && report.schema_version == Some(SCHEMA_VERSION) {
            let store = TelemetryStore::open(path)?;
            let rows = store.rebuild_rollups()?;
            store.close()?;
            report = inspect(path)?;
            report.repaired_from_rows = Some(rows);
        } else {
            report.problems.push(
                "not repairing the summaries of a file with integrity errors (restore a backup, \
                 or copy the rows out with `export` first)"
                    .to_owned(),
            );
        }
    }
    let text = match args.format {
        CheckFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        CheckFormat::Text => render(&report),
    };
    emit(out, &text)?;
    if report.healthy {
        Ok(())
    } else {
        Err(CliError::Unhealthy {
            path: path.to_path_buf(),
            problems: report.problems,
        })
    }
}

/// Reads everything `check` reports. Damage found on the way becomes a problem in the report;
/// only a file that is missing, not SQLite or not ours is an error.
fn inspect(path: &Path) -> Result<Report, CliError> {
    let mut problems = Vec::new();
    let mut report = Report {
        path: path.display().to_string(),
        schema_version: None,
        supported_schema_version: SCHEMA_VERSION,
        records: None,
        rollup_records: None,
        rollup_drift: Vec::new(),
        integrity: Vec::new(),
        file_bytes: file_size(path),
        wal_bytes: file_size(&wal_path(path)),
        free_bytes: None,
        gives_space_back: None,
        repaired_from_rows: None,
        problems: Vec::new(),
        healthy: false,
    };
    let agg = match TelemetryAggregator::open(path) {
        Ok(agg) => Some(agg),
        Err(e) if e.is_corruption() => {
            report.integrity.push(e.to_string());
            problems.push(format!("cannot read the schema: {e}"));
            None
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(agg) = agg {
        // A file the aggregator opened is ours: reading its page counts creates nothing new.
        if let Ok(space) = TelemetryStore::file_space(path) {
            report.free_bytes = Some(space.free_bytes());
            report.gives_space_back = Some(space.incremental);
        }
        match agg.schema_version() {
            Ok(v) => {
                report.schema_version = Some(v);
                if v != SCHEMA_VERSION {
                    problems.push(format!("schema version {v}, expected {SCHEMA_VERSION}"));
                }
            }
            Err(e) => problems.push(format!("cannot read the schema version: {e}")),
        }
        match agg.integrity_check() {
            Ok(lines) => {
                if lines != ["ok"] {
                    problems.push(format!("integrity check: {}", lines.join(", ")));
                }
                report.integrity = lines;
            }
            Err(e) => {
                report.integrity.push(e.to_string());
                problems.push(format!("integrity check failed: {e}"));
            }
        }
        match agg.check_rollups() {
            Ok(RollupCheck {
                rows,
                rollup_calls,
                drift,
            }) => {
                report.records = Some(rows);
                report.rollup_records = Some(rollup_calls);
                report.rollup_drift = drift.iter().map(Drift::of).collect();
                if !drift.is_empty() {
                    let mut days: Vec<&str> =
                        report.rollup_drift.iter().map(|d| d.day.as_str()).collect();
                    days.dedup();
                    problems.push(format!(
                        "summaries disagree with the rows on {} day(s): {} (run `telemetry check \
                         --repair`)",
                        days.len(),
                        days.join(", ")
                    ));
                }
            }
            Err(e) => problems.push(format!("cannot compare the summaries with the rows: {e}")),
        }
    }
    report.healthy = problems.is_empty();
    report.problems = problems;
    Ok(report)
}

fn render(r: &Report) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "database   {}", escape_controls(&r.path));
    let _ = writeln!(
        text,
        "schema     version {} (this build reads {})",
        r.schema_version
            .map_or_else(|| "unreadable".to_owned(), |v| v.to_string()),
        r.supported_schema_version
    );
    let _ = writeln!(
        text,
        "records    {}",
        r.records.map_or_else(|| "unreadable".to_owned(), count)
    );
    match (r.records, r.rollup_records) {
        (_, None) => {}
        (Some(_), Some(_)) if r.rollup_drift.is_empty() => {
            let _ = writeln!(text, "summaries  agree with the rows");
        }
        (_, Some(calls)) => {
            let _ = writeln!(
                text,
                "summaries  DISAGREE with the rows ({} calls in the day summaries):",
                count(calls)
            );
            for d in &r.rollup_drift {
                let _ = writeln!(text, "           {}", d.describe());
            }
        }
    }
    if let Some(rows) = r.repaired_from_rows {
        let _ = writeln!(
            text,
            "repaired   summaries rebuilt from {} rows",
            count(rows)
        );
    }
    let _ = writeln!(
        text,
        "integrity  {}",
        escape_controls(&r.integrity.join(", "))
    );
    let space = match (r.free_bytes, r.gives_space_back) {
        (Some(free), Some(true)) => format!("; {} free, given back by prunes", bytes(free)),
        (Some(free), Some(false)) => format!(
            "; {} free, kept for reuse (an earlier version's file: `telemetry compact` once makes \
             prunes give space back)",
            bytes(free)
        ),
        _ => String::new(),
    };
    let _ = writeln!(
        text,
        "size       {} (+ {} write-ahead log){space}",
        bytes(r.file_bytes),
        bytes(r.wal_bytes)
    );
    let _ = writeln!(
        text,
        "status     {}",
        if r.healthy { "healthy" } else { "UNHEALTHY" }
    );
    for p in &r.problems {
        let _ = writeln!(text, "problem    {}", escape_controls(p));
    }
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
