//! [`RecordIter`]: streaming every record of a range back out, in constant memory.

use std::collections::VecDeque;
use std::sync::LazyLock;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row, params};
use serde_json::Value;
use telemetry_core::schema::RECORD_COLUMNS;
use telemetry_core::{EnergyMethod, Outcome, TelemetryRecord, TimeRange};

use crate::error::AggError;

/// Rows fetched per query.
const PAGE: i64 = 10_000;

static FIRST_PAGE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT id, {} FROM telemetry WHERE timestamp >= ?1 AND timestamp <= ?2 \
         ORDER BY timestamp, id LIMIT ?3",
        RECORD_COLUMNS.join(", ")
    )
});

/// Keyset pagination: rows after `(timestamp, id) = (?1, ?3)`.
static NEXT_PAGE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT id, {} FROM telemetry WHERE timestamp >= ?1 AND timestamp <= ?2 \
         AND (timestamp > ?1 OR id > ?3) ORDER BY timestamp, id LIMIT ?4",
        RECORD_COLUMNS.join(", ")
    )
});

/// The records of a range, ordered by timestamp then insertion, read a page (10 000 rows) at a
/// time with keyset pagination, so memory stays flat however many rows there are. Made by
/// [`TelemetryAggregator::export_records`](crate::TelemetryAggregator::export_records).
///
/// Each page is a consistent snapshot; rows committed by a writer during the export appear if they
/// sort after the rows already returned. A row whose stored value cannot be read back yields an
/// [`AggError::BadRow`] naming its id and column, and the export goes on with the next row; a
/// SQLite error ends the iteration after it is yielded.
#[derive(Debug)]
pub struct RecordIter<'conn> {
    conn: &'conn Connection,
    since: f64,
    until: f64,
    cursor: Option<(f64, i64)>,
    page: VecDeque<Result<TelemetryRecord, AggError>>,
    done: bool,
}

impl<'conn> RecordIter<'conn> {
    pub(crate) fn new(conn: &'conn Connection, range: &TimeRange) -> Self {
        RecordIter {
            conn,
            since: range.since_bound().unwrap_or(f64::MIN),
            until: range.until_bound().unwrap_or(f64::MAX),
            cursor: None,
            page: VecDeque::with_capacity(PAGE as usize),
            done: false,
        }
    }

    fn fetch(&mut self) -> Result<(), AggError> {
        let sql = |e| AggError::sqlite("exporting telemetry rows", e);
        let mut rows_read = 0;
        let mut stmt;
        let conn = self.conn;
        let mut rows = match self.cursor {
            None => {
                stmt = conn.prepare_cached(&FIRST_PAGE).map_err(sql)?;
                stmt.query(params![self.since, self.until, PAGE])
            }
            Some((ts, id)) => {
                stmt = conn.prepare_cached(&NEXT_PAGE).map_err(sql)?;
                stmt.query(params![ts, self.until, id, PAGE])
            }
        }
        .map_err(sql)?;
        while let Some(row) = rows.next().map_err(sql)? {
            rows_read += 1;
            let id: i64 = row.get(0).map_err(sql)?;
            let ts: f64 = row.get(1).map_err(sql)?;
            self.cursor = Some((ts, id));
            self.page.push_back(read_record(row, id));
        }
        if rows_read < PAGE {
            self.done = true;
        }
        Ok(())
    }
}

impl Iterator for RecordIter<'_> {
    type Item = Result<TelemetryRecord, AggError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty()
            && !self.done
            && let Err(e) = self.fetch()
        {
            self.done = true;
            self.page.clear();
            return Some(Err(e));
        }
        self.page.pop_front()
    }
}

/// Reads `id` followed by the [`RECORD_COLUMNS`] into a record.
fn read_record(row: &Row<'_>, id: i64) -> Result<TelemetryRecord, AggError> {
    let bad = |i: usize, detail: String| AggError::BadRow {
        row_id: id,
        column: RECORD_COLUMNS[i],
        detail,
    };
    let value = |i: usize| -> Result<ValueRef<'_>, AggError> {
        row.get_ref(i + 1).map_err(|e| bad(i, e.to_string()))
    };
    let real = |i: usize| -> Result<f64, AggError> {
        match value(i)? {
            ValueRef::Real(v) => Ok(v),
            ValueRef::Integer(v) => Ok(v as f64),
            other => Err(bad(
                i,
                format!("expected a number, found {:?}", other.data_type()),
            )),
        }
    };
    let opt_real = |i: usize| -> Result<Option<f64>, AggError> {
        match value(i)? {
            ValueRef::Null => Ok(None),
            _ => real(i).map(Some),
        }
    };
    let int = |i: usize| -> Result<i64, AggError> {
        match value(i)? {
            ValueRef::Integer(v) => Ok(v),
            other => Err(bad(
                i,
                format!("expected an integer, found {:?}", other.data_type()),
            )),
        }
    };
    let count = |i: usize| -> Result<u64, AggError> {
        let v = int(i)?;
        u64::try_from(v).map_err(|_| bad(i, format!("negative count {v}")))
    };
    let flag = |i: usize| -> Result<bool, AggError> { int(i).map(|v| v != 0) };
    let text = |i: usize| -> Result<&str, AggError> {
        match value(i)? {
            ValueRef::Text(t) => std::str::from_utf8(t).map_err(|e| bad(i, e.to_string())),
            other => Err(bad(
                i,
                format!("expected text, found {:?}", other.data_type()),
            )),
        }
    };
    let string = |i: usize| -> Result<String, AggError> { text(i).map(str::to_owned) };

    let energy_method = text(28)?;
    let outcome = text(32)?;
    let metadata = match text(37)? {
        "{}" => Value::Object(serde_json::Map::new()),
        s => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return Err(bad(37, "not a JSON object".to_owned())),
            Err(e) => return Err(bad(37, format!("invalid JSON: {e}"))),
        },
    };
    Ok(TelemetryRecord {
        timestamp: real(0)?,
        model_id: string(1)?,
        engine: string(2)?,
        agent: string(3)?,
        prompt_tokens: count(4)?,
        completion_tokens: count(5)?,
        total_tokens: count(6)?,
        prompt_tokens_cached: count(7)?,
        latency_seconds: real(8)?,
        ttft: opt_real(9)?,
        cost_usd: real(10)?,
        energy_joules: opt_real(11)?,
        power_watts: opt_real(12)?,
        gpu_utilization_pct: opt_real(13)?,
        gpu_memory_used_gb: opt_real(14)?,
        gpu_temperature_c: opt_real(15)?,
        throughput_tok_per_sec: opt_real(16)?,
        prefill_latency_seconds: opt_real(17)?,
        decode_latency_seconds: opt_real(18)?,
        is_streaming: flag(19)?,
        mean_itl_ms: opt_real(20)?,
        median_itl_ms: opt_real(21)?,
        p90_itl_ms: opt_real(22)?,
        p95_itl_ms: opt_real(23)?,
        p99_itl_ms: opt_real(24)?,
        std_itl_ms: opt_real(25)?,
        prefill_energy_joules: opt_real(26)?,
        decode_energy_joules: opt_real(27)?,
        energy_method: EnergyMethod::parse(energy_method)
            .ok_or_else(|| bad(28, format!("unknown energy method {energy_method:?}")))?,
        energy_vendor: string(29)?,
        batch_id: string(30)?,
        is_warmup: flag(31)?,
        outcome: Outcome::parse(outcome)
            .ok_or_else(|| bad(32, format!("unknown outcome {outcome:?}")))?,
        error_kind: string(33)?,
        error_message: string(34)?,
        tokens_counted: flag(35)?,
        cost_unknown: flag(36)?,
        metadata,
    })
}
