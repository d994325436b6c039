//! Records to and from `telemetry` rows: the insert statements and the one binding of the
//! 40 record fields, in [`RECORD_COLUMNS`] order.

use std::sync::LazyLock;

use rusqlite::{Row, Statement};
use telemetry_core::schema::RECORD_COLUMNS;
use telemetry_core::{Outcome, TelemetryRecord};

use crate::error::{StoreError, to_i64, to_u64};

/// `INSERT INTO telemetry (<record columns>) VALUES (?1, ..)`.
pub(crate) static INSERT_SQL: LazyLock<String> = LazyLock::new(|| insert_sql(false));

/// The parameter index of `import_key` in [`IMPORT_SQL`]: right after the record columns.
pub(crate) const IMPORT_KEY_PARAM: usize = RECORD_COLUMNS.len() + 1;

/// The same with `import_key` last, ignoring rows whose key is already stored.
pub(crate) static IMPORT_SQL: LazyLock<String> = LazyLock::new(|| insert_sql(true));

fn insert_sql(with_key: bool) -> String {
    let mut columns = RECORD_COLUMNS.join(", ");
    let mut n = RECORD_COLUMNS.len();
    if with_key {
        columns.push_str(", import_key");
        n += 1;
    }
    let params: Vec<String> = (1..=n).map(|i| format!("?{i}")).collect();
    let verb = if with_key {
        "INSERT OR IGNORE"
    } else {
        "INSERT"
    };
    format!(
        "{verb} INTO telemetry ({columns}) VALUES ({})",
        params.join(", ")
    )
}

/// Binds `r` to the first 40 parameters of an insert statement.
/// `buf` is reused for the metadata JSON, so a batch allocates it once.
pub(crate) fn bind_record(
    stmt: &mut Statement<'_>,
    r: &TelemetryRecord,
    buf: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let encode = |detail: String| StoreError::Decode {
        column: "metadata",
        detail,
    };
    buf.clear();
    serde_json::to_writer(&mut *buf, &r.metadata).map_err(|e| encode(e.to_string()))?;
    let metadata = std::str::from_utf8(buf).map_err(|e| encode(e.to_string()))?;
    let bind = |e| StoreError::sqlite("binding a record", e);
    macro_rules! b {
        ($i:expr, $v:expr) => {
            stmt.raw_bind_parameter($i, $v).map_err(bind)?
        };
    }
    b!(1, r.timestamp);
    b!(2, r.model_id.as_str());
    b!(3, r.engine.as_str());
    b!(4, r.agent.as_str());
    b!(5, to_i64("prompt_tokens", r.prompt_tokens)?);
    b!(6, to_i64("completion_tokens", r.completion_tokens)?);
    b!(7, to_i64("total_tokens", r.total_tokens)?);
    b!(8, to_i64("prompt_tokens_cached", r.prompt_tokens_cached)?);
    b!(9, r.latency_seconds);
    b!(10, r.ttft);
    b!(11, r.cost_usd);
    b!(12, r.energy_joules);
    b!(13, r.power_watts);
    b!(14, r.gpu_utilization_pct);
    b!(15, r.gpu_memory_used_gb);
    b!(16, r.gpu_temperature_c);
    b!(17, r.throughput_tok_per_sec);
    b!(18, r.prefill_latency_seconds);
    b!(19, r.decode_latency_seconds);
    b!(20, i64::from(r.is_streaming));
    b!(21, r.mean_itl_ms);
    b!(22, r.median_itl_ms);
    b!(23, r.p90_itl_ms);
    b!(24, r.p95_itl_ms);
    b!(25, r.p99_itl_ms);
    b!(26, r.std_itl_ms);
    b!(27, r.prefill_energy_joules);
    b!(28, r.decode_energy_joules);
    b!(29, r.energy_method.as_str());
    b!(30, r.energy_vendor.as_str());
    b!(31, r.batch_id.as_str());
    b!(32, i64::from(r.is_warmup));
    b!(33, r.outcome.as_str());
    b!(34, r.error_kind.as_str());
    b!(35, r.error_message.as_str());
    b!(36, i64::from(r.tokens_counted));
    b!(37, i64::from(r.cost_unknown));
    b!(38, metadata);
    b!(39, r.server_prefill_ms);
    b!(40, r.server_decode_ms);
    Ok(())
}

/// Columns that [`telemetry_core::Rollup::add`] reads, for recomputing summaries from raw rows.
pub(crate) const ROLLUP_INPUT_COLUMNS: &str = "timestamp, model_id, engine, agent, \
     prompt_tokens, completion_tokens, total_tokens, latency_seconds, cost_usd, ttft, \
     energy_joules, prefill_energy_joules, decode_energy_joules, gpu_utilization_pct, \
     throughput_tok_per_sec, mean_itl_ms, outcome";

/// A record holding the [`ROLLUP_INPUT_COLUMNS`] of `row` (other fields default).
pub(crate) fn rollup_input(row: &Row<'_>) -> Result<TelemetryRecord, StoreError> {
    let sql = |e| StoreError::sqlite("reading telemetry rows", e);
    let int = |i: usize, column: &'static str| -> Result<u64, StoreError> {
        to_u64(column, row.get::<_, i64>(i).map_err(sql)?)
    };
    let outcome: String = row.get(16).map_err(sql)?;
    Ok(TelemetryRecord {
        timestamp: row.get(0).map_err(sql)?,
        model_id: row.get(1).map_err(sql)?,
        engine: row.get(2).map_err(sql)?,
        agent: row.get(3).map_err(sql)?,
        prompt_tokens: int(4, "prompt_tokens")?,
        completion_tokens: int(5, "completion_tokens")?,
        total_tokens: int(6, "total_tokens")?,
        latency_seconds: row.get(7).map_err(sql)?,
        cost_usd: row.get(8).map_err(sql)?,
        ttft: row.get(9).map_err(sql)?,
        energy_joules: row.get(10).map_err(sql)?,
        prefill_energy_joules: row.get(11).map_err(sql)?,
        decode_energy_joules: row.get(12).map_err(sql)?,
        gpu_utilization_pct: row.get(13).map_err(sql)?,
        throughput_tok_per_sec: row.get(14).map_err(sql)?,
        mean_itl_ms: row.get(15).map_err(sql)?,
        outcome: Outcome::parse(&outcome).ok_or_else(|| StoreError::Decode {
            column: "outcome",
            detail: format!("unknown outcome {outcome:?}"),
        })?,
        ..TelemetryRecord::default()
    })
}
