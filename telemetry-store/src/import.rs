//! Importing an OpenJarvis `telemetry.db` (its `store.py` schema, any version).
//!
//! Mapping: columns that exist are read, missing ones take the record defaults. The peer stores
//! `0.0` for "unknown" in `ttft`, the energy, power and GPU fields, throughput and the prefill and
//! decode latencies; those become `None` (a measured zero cannot be told apart, and treating it
//! as a measurement would skew every mean). `total_tokens` is set to prompt + completion when it
//! disagrees. Nothing else is changed: rows that still fail validation, or hold a cell of the
//! wrong type, are reported as rejected with their id and the reason, not imported. Each row's `import_key` is
//! `openjarvis:{id}:{timestamp bits}:{model_id}`, so importing the same file (or a copy) again
//! adds nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, Row};
use telemetry_core::{
    EnergyMethod, FieldKind, RECORD_FIELDS, StoredValue, TelemetryRecord, field_index,
};
use telemetry_sqlite::stored_value;

use crate::error::StoreError;

/// Rows sent to the writer per transaction.
pub(crate) const IMPORT_CHUNK: usize = 5_000;

/// A record to import and its idempotence key.
#[derive(Debug, Clone)]
pub(crate) struct ImportRow {
    pub(crate) key: String,
    pub(crate) record: TelemetryRecord,
}

/// What [`import_openjarvis`](crate::TelemetryStore::import_openjarvis) did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImportReport {
    /// Rows read from the file.
    pub read: u64,
    /// Rows appended to the store.
    pub imported: u64,
    /// Valid rows already imported before (same key), not appended again.
    pub skipped_duplicates: u64,
    /// Rows refused, each alone (the rest of the file is imported): a cell of a type its column
    /// cannot take (e.g. text in `prompt_tokens`), or a record failing validation. (The peer's
    /// `id`, the reason naming the column or field.)
    pub rejected: Vec<(i64, String)>,
}

/// How far an import has got, passed to the callback of
/// [`import_openjarvis_with_progress`](crate::TelemetryStore::import_openjarvis_with_progress)
/// after every 5 000 rows read and once at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportProgress {
    /// Rows read from the file so far (imported, duplicate or rejected).
    pub read: u64,
    /// Rows in the file's `telemetry` table when the import started. If the peer appends while
    /// the import runs, `read` can end above it.
    pub total: u64,
    /// Rows appended to the store so far (committed).
    pub imported: u64,
}

/// Reads every row of the peer's `telemetry` table, calling `sink` with chunks of valid rows and
/// the rows read so far out of the total: after every [`IMPORT_CHUNK`] rows read (the chunk may
/// then be partial or empty when rows were rejected) and once at the end.
pub(crate) fn read_openjarvis(
    path: &Path,
    report: &mut ImportReport,
    mut sink: impl FnMut(Vec<ImportRow>, u64, u64) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let refuse = |reason: String| StoreError::Import {
        path: path.to_path_buf(),
        reason,
    };
    if !path.is_file() {
        return Err(refuse("no such file".to_owned()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| refuse(e.to_string()))?;
    let columns = table_columns(&conn, path)?;
    for required in ["id", "timestamp", "model_id"] {
        if !columns.contains(required) {
            return Err(refuse(format!(
                "table `telemetry` has no `{required}` column (not an OpenJarvis database)"
            )));
        }
    }
    let present: Vec<&str> = PEER_COLUMNS
        .iter()
        .copied()
        .filter(|c| columns.contains(*c))
        .collect();
    let total: i64 = conn
        .query_row("SELECT count(*) FROM telemetry", [], |r| r.get(0))
        .map_err(|e| refuse(e.to_string()))?;
    let total = total.unsigned_abs();
    let select = format!("SELECT {} FROM telemetry ORDER BY id", present.join(", "));
    let mut stmt = conn.prepare(&select).map_err(|e| refuse(e.to_string()))?;
    let mut rows = stmt.query([]).map_err(|e| refuse(e.to_string()))?;
    let mut chunk = Vec::with_capacity(IMPORT_CHUNK);
    while let Some(row) = rows.next().map_err(|e| refuse(e.to_string()))? {
        report.read += 1;
        let parsed = peer_record(row, &present).and_then(|(id, record)| {
            record
                .validate()
                .map(|()| (id, record))
                .map_err(|e| (Some(id), e.to_string()))
        });
        match parsed {
            // A cell of the wrong type or an invalid record rejects its row only.
            Err((id, reason)) => {
                let id = id.unwrap_or_else(|| i64::try_from(report.read).unwrap_or(i64::MAX));
                report.rejected.push((id, reason));
            }
            Ok((id, record)) => {
                let key = format!(
                    "openjarvis:{id}:{:016x}:{}",
                    record.timestamp.to_bits(),
                    record.model_id
                );
                chunk.push(ImportRow { key, record });
            }
        }
        // Every IMPORT_CHUNK rows read: a full chunk when nothing was rejected, and a progress
        // report either way.
        if report.read.is_multiple_of(IMPORT_CHUNK as u64) {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(IMPORT_CHUNK));
            sink(full, report.read, total)?;
        }
    }
    sink(chunk, report.read, total)
}

fn table_columns(conn: &Connection, path: &Path) -> Result<HashSet<String>, StoreError> {
    let refuse = |reason: String| StoreError::Import {
        path: PathBuf::from(path),
        reason,
    };
    let columns: HashSet<String> = conn
        .prepare("SELECT name FROM pragma_table_info('telemetry')")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| refuse(e.to_string()))?;
    if columns.is_empty() {
        return Err(refuse("it has no `telemetry` table".to_owned()));
    }
    Ok(columns)
}

/// Every column of the peer's schema that maps to a record field.
const PEER_COLUMNS: &[&str] = &[
    "id",
    "timestamp",
    "model_id",
    "engine",
    "agent",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "latency_seconds",
    "ttft",
    "cost_usd",
    "energy_joules",
    "power_watts",
    "gpu_utilization_pct",
    "gpu_memory_used_gb",
    "gpu_temperature_c",
    "throughput_tok_per_sec",
    "prefill_latency_seconds",
    "decode_latency_seconds",
    "metadata",
    "prompt_tokens_cached",
    "is_streaming",
    "mean_itl_ms",
    "median_itl_ms",
    "p90_itl_ms",
    "p95_itl_ms",
    "p99_itl_ms",
    "std_itl_ms",
    "prefill_energy_joules",
    "decode_energy_joules",
    "energy_method",
    "energy_vendor",
    "batch_id",
    "is_warmup",
];

/// The peer's columns holding `0.0` for "not measured": read as `None`.
const UNKNOWN_IF_ZERO: &[&str] = &[
    "ttft",
    "energy_joules",
    "power_watts",
    "gpu_utilization_pct",
    "gpu_memory_used_gb",
    "gpu_temperature_c",
    "throughput_tok_per_sec",
    "prefill_latency_seconds",
    "decode_latency_seconds",
    "prefill_energy_joules",
    "decode_energy_joules",
];

/// One peer row as (id, record); or the id (when readable) and which cell could not be read.
/// An unreadable `id` is reported as the row's position in the file (1-based).
fn peer_record(
    row: &Row<'_>,
    present: &[&str],
) -> Result<(i64, TelemetryRecord), (Option<i64>, String)> {
    // `id` is the first of PEER_COLUMNS and required, so it is column 0.
    let id: Option<i64> = row.get(0).ok();
    peer_cells(row, present)
        .map_err(|(column, what)| {
            let whose = if id.is_none() {
                " (the id is unreadable; the number is the row's position)"
            } else {
                ""
            };
            (id, format!("column `{column}` {what}{whose}"))
        })
        .map(|r| (id.unwrap_or_default(), r))
}

/// The record fields of a peer row; on failure, the column that could not be read and why.
fn peer_cells(row: &Row<'_>, present: &[&str]) -> Result<TelemetryRecord, (&'static str, String)> {
    let mut r = TelemetryRecord::default();
    for (i, column) in present.iter().enumerate() {
        let column: &'static str = PEER_COLUMNS
            .iter()
            .copied()
            .find(|c| c == column)
            .unwrap_or("?");
        peer_cell(row, i, column, &mut r).map_err(|e| (column, e))?;
    }
    let sum = r.prompt_tokens.saturating_add(r.completion_tokens);
    if r.total_tokens != sum {
        r.total_tokens = sum;
    }
    Ok(r)
}

/// Reads cell `i` (peer column `column`, named as our field) into `r` through core's field
/// table, with the peer's conventions: `NULL` keeps the field's default, zeros in
/// [`UNKNOWN_IF_ZERO`] are `None`, a negative count becomes one that validation refuses,
/// metadata that is not JSON is kept as a string, an energy method we do not know is "not said".
fn peer_cell(row: &Row<'_>, i: usize, column: &str, r: &mut TelemetryRecord) -> Result<(), String> {
    let value = stored_value(row.get_ref(i).map_err(|e| e.to_string())?);
    let Some(field) = field_index(column) else {
        // `id`: must be an integer.
        return match value {
            StoredValue::Integer(_) => Ok(()),
            other => Err(cannot_take(other)),
        };
    };
    let kind = RECORD_FIELDS[field].kind;
    if !kind.takes(value) {
        return Err(cannot_take(value));
    }
    let value = match value {
        StoredValue::Null => return Ok(()),
        StoredValue::Real(v) if v == 0.0 && UNKNOWN_IF_ZERO.contains(&column) => return Ok(()),
        StoredValue::Integer(0) if UNKNOWN_IF_ZERO.contains(&column) => return Ok(()),
        StoredValue::Integer(v) if v < 0 && kind == FieldKind::Count => {
            StoredValue::Integer(i64::MAX)
        }
        StoredValue::Text(t) if kind == FieldKind::Json => {
            let raw = String::from_utf8_lossy(t);
            r.metadata =
                serde_json::from_str::<serde_json::Value>(if raw.is_empty() { "{}" } else { &raw })
                    .unwrap_or_else(|_| serde_json::json!({ "openjarvis_metadata": raw }))
                    .into();
            return Ok(());
        }
        other => other,
    };
    match r.set_field(field, value) {
        Err(_) if column == "energy_method" => {
            r.energy_method = EnergyMethod::None;
            Ok(())
        }
        other => other.map_err(|e| e.detail),
    }
}

fn cannot_take(value: StoredValue<'_>) -> String {
    format!(
        "holds a value of type {}, which that column cannot take",
        value.type_name()
    )
}
