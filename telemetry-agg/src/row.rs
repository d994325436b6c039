//! Reading one `telemetry` row back into a [`TelemetryRecord`], with a typed error naming the row
//! and column of any value that does not fit.

use rusqlite::Row;
use rusqlite::types::ValueRef;
use serde_json::Value;
use telemetry_core::schema::RECORD_COLUMNS;
use telemetry_core::{EnergyMethod, Outcome, TelemetryRecord};

use crate::error::AggError;

/// Reads `id` followed by the [`RECORD_COLUMNS`] into a record.
pub(crate) fn read_record(row: &Row<'_>, id: i64) -> Result<TelemetryRecord, AggError> {
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
        server_prefill_ms: opt_real(38)?,
        server_decode_ms: opt_real(39)?,
    })
}
