//! The SQLite schema, defined here once: `telemetry-store` applies these migrations (through
//! refinery) and `telemetry-agg` refuses a database whose version is not [`SCHEMA_VERSION`].
//!
//! - `telemetry`: one row per record, one column per [`TelemetryRecord`](crate::TelemetryRecord)
//!   field, named as the field ([`RECORD_COLUMNS`]); `metadata` is JSON text, booleans are 0/1,
//!   `None` is `NULL`, enums are their strings. `import_key` is set only on rows imported from
//!   another database, to make imports idempotent.
//!   From V5 a text or JSON cell may hold instead the id of its text in `telemetry_strings`,
//!   as a blob of its decimal digits (a text met more than once is stored there once; see
//!   [`StringCache`](crate::StringCache)); the view `telemetry_records` shows every row with its
//!   texts.
//! - `telemetry_rollup`: one [`Rollup`](crate::Rollup) per (level, bucket_start, model_id,
//!   engine, agent) for each level of [`ROLLUP_LEVELS`](crate::ROLLUP_LEVELS), written in the same
//!   transaction as the rows ([`ROLLUP_COLUMNS`]; sketches are
//!   [`QuantileSketch::to_bytes`](crate::QuantileSketch::to_bytes) blobs).
//!
//! This module holds SQL text only; it performs no I/O.

/// Version of the newest migration; a database at another version is refused by readers.
pub const SCHEMA_VERSION: i32 = 5;

/// The migrations, in order: (refinery name, SQL).
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("V1__initial", V1_INITIAL),
    ("V2__server_timings", V2_SERVER_TIMINGS),
    ("V3__api_fields", V3_API_FIELDS),
    ("V4__server_timing_sums", V4_SERVER_TIMING_SUMS),
    ("V5__strings_stored_once", V5_STRINGS_STORED_ONCE),
];

/// Columns of `telemetry` holding record fields, in [`TelemetryRecord`](crate::TelemetryRecord)
/// field order (excluding `id` and `import_key`): the names of
/// [`RECORD_FIELDS`](crate::RECORD_FIELDS), where each field is described once.
pub use crate::fields::RECORD_COLUMNS;
use crate::rollup_fields::{ROLLUP_FIELD_COUNT, ROLLUP_FIELDS};

/// Columns of `telemetry_rollup` after the key columns (`level`, `bucket_start`, `model_id`,
/// `engine`, `agent`), in [`Rollup`](crate::Rollup) field order: the names of
/// [`ROLLUP_FIELDS`], where each aggregate is described once.
pub const ROLLUP_COLUMNS: [&str; ROLLUP_FIELD_COUNT] = {
    let mut out = [""; ROLLUP_FIELD_COUNT];
    let mut i = 0;
    while i < ROLLUP_FIELD_COUNT {
        out[i] = ROLLUP_FIELDS[i].name;
        i += 1;
    }
    out
};

const V1_INITIAL: &str = r#"
CREATE TABLE telemetry (
    id                      INTEGER PRIMARY KEY,
    timestamp               REAL    NOT NULL,
    model_id                TEXT    NOT NULL,
    engine                  TEXT    NOT NULL DEFAULT '',
    agent                   TEXT    NOT NULL DEFAULT '',
    prompt_tokens           INTEGER NOT NULL DEFAULT 0,
    completion_tokens       INTEGER NOT NULL DEFAULT 0,
    total_tokens            INTEGER NOT NULL DEFAULT 0,
    prompt_tokens_cached    INTEGER NOT NULL DEFAULT 0,
    latency_seconds         REAL    NOT NULL DEFAULT 0,
    ttft                    REAL,
    cost_usd                REAL    NOT NULL DEFAULT 0,
    energy_joules           REAL,
    power_watts             REAL,
    gpu_utilization_pct     REAL,
    gpu_memory_used_gb      REAL,
    gpu_temperature_c       REAL,
    throughput_tok_per_sec  REAL,
    prefill_latency_seconds REAL,
    decode_latency_seconds  REAL,
    is_streaming            INTEGER NOT NULL DEFAULT 0,
    mean_itl_ms             REAL,
    median_itl_ms           REAL,
    p90_itl_ms              REAL,
    p95_itl_ms              REAL,
    p99_itl_ms              REAL,
    std_itl_ms              REAL,
    prefill_energy_joules   REAL,
    decode_energy_joules    REAL,
    energy_method           TEXT    NOT NULL DEFAULT '',
    energy_vendor           TEXT    NOT NULL DEFAULT '',
    batch_id                TEXT    NOT NULL DEFAULT '',
    is_warmup               INTEGER NOT NULL DEFAULT 0,
    outcome                 TEXT    NOT NULL DEFAULT 'ok',
    error_kind              TEXT    NOT NULL DEFAULT '',
    error_message           TEXT    NOT NULL DEFAULT '',
    tokens_counted          INTEGER NOT NULL DEFAULT 0,
    cost_unknown            INTEGER NOT NULL DEFAULT 0,
    metadata                TEXT    NOT NULL DEFAULT '{}',
    import_key              TEXT
);
CREATE INDEX telemetry_by_timestamp ON telemetry (timestamp);
CREATE UNIQUE INDEX telemetry_by_import_key ON telemetry (import_key) WHERE import_key IS NOT NULL;

CREATE TABLE telemetry_rollup (
    level                    INTEGER NOT NULL,
    bucket_start             INTEGER NOT NULL,
    model_id                 TEXT    NOT NULL,
    engine                   TEXT    NOT NULL,
    agent                    TEXT    NOT NULL,
    call_count               INTEGER NOT NULL,
    error_count              INTEGER NOT NULL,
    prompt_tokens            INTEGER NOT NULL,
    completion_tokens        INTEGER NOT NULL,
    total_tokens             INTEGER NOT NULL,
    total_latency            REAL    NOT NULL,
    total_cost               REAL    NOT NULL,
    ttft_sum                 REAL    NOT NULL,
    ttft_count               INTEGER NOT NULL,
    energy_sum               REAL    NOT NULL,
    energy_count             INTEGER NOT NULL,
    energy_completion_tokens INTEGER NOT NULL,
    prefill_energy_sum       REAL    NOT NULL,
    decode_energy_sum        REAL    NOT NULL,
    gpu_util_sum             REAL    NOT NULL,
    gpu_util_count           INTEGER NOT NULL,
    throughput_sum           REAL    NOT NULL,
    throughput_count         INTEGER NOT NULL,
    latency_sketch           BLOB    NOT NULL,
    ttft_sketch              BLOB    NOT NULL,
    itl_sketch               BLOB    NOT NULL,
    PRIMARY KEY (level, bucket_start, model_id, engine, agent)
) WITHOUT ROWID;
"#;

/// The server's own prefill/decode times (llama.cpp `timings`); rows written before have `NULL`.
const V2_SERVER_TIMINGS: &str = r#"
ALTER TABLE telemetry ADD COLUMN server_prefill_ms REAL;
ALTER TABLE telemetry ADD COLUMN server_decode_ms REAL;
"#;

/// What the APIs report beyond prompt and completion tokens, and which API and operation a call
/// was; rows written before have empty names and zero counts.
const V3_API_FIELDS: &str = r#"
ALTER TABLE telemetry ADD COLUMN api TEXT NOT NULL DEFAULT '';
ALTER TABLE telemetry ADD COLUMN operation TEXT NOT NULL DEFAULT '';
ALTER TABLE telemetry ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE telemetry ADD COLUMN prompt_tokens_cache_write INTEGER NOT NULL DEFAULT 0;
ALTER TABLE telemetry ADD COLUMN output_chunks INTEGER NOT NULL DEFAULT 0;
"#;

/// The sums of the server's prefill and decode times in the summaries, back-filled from the
/// rows for the summaries already stored (each record counts in the bucket of each level that
/// holds it: `bucket_start = floor(timestamp / level) * level`, timestamps being positive).
const V4_SERVER_TIMING_SUMS: &str = r#"
ALTER TABLE telemetry_rollup ADD COLUMN server_prefill_ms_sum REAL NOT NULL DEFAULT 0;
ALTER TABLE telemetry_rollup ADD COLUMN server_decode_ms_sum REAL NOT NULL DEFAULT 0;
UPDATE telemetry_rollup AS r
SET server_prefill_ms_sum = s.prefill, server_decode_ms_sum = s.decode
FROM (
    SELECT l.level AS level,
           (CAST(t.timestamp AS INTEGER) / l.level) * l.level AS bucket_start,
           t.model_id AS model_id, t.engine AS engine, t.agent AS agent,
           TOTAL(t.server_prefill_ms) AS prefill, TOTAL(t.server_decode_ms) AS decode
    FROM telemetry AS t, (SELECT 60 AS level UNION ALL SELECT 3600 UNION ALL SELECT 86400) AS l
    WHERE t.server_prefill_ms IS NOT NULL OR t.server_decode_ms IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5
) AS s
WHERE r.level = s.level AND r.bucket_start = s.bucket_start AND r.model_id = s.model_id
  AND r.engine = s.engine AND r.agent = s.agent;
"#;

/// Texts stored once (see [`StringCache`](crate::StringCache)): a text or JSON cell of `telemetry`
/// may hold the id of its text in `telemetry_strings`, as a blob of the id's decimal digits (an
/// integer would be turned into text by the columns' `TEXT` affinity; no text or JSON field is
/// ever stored as a blob otherwise); rows written before keep their texts, and
/// every reader takes both. `telemetry_records` shows the rows with their texts, for SQL users
/// (a migration that adds a record column recreates it).
const V5_STRINGS_STORED_ONCE: &str = r#"
CREATE TABLE telemetry_strings (
    id   INTEGER PRIMARY KEY,
    text TEXT NOT NULL UNIQUE
);
CREATE VIEW telemetry_records AS SELECT
    id,
    timestamp,
    CASE WHEN typeof(model_id) = 'blob' THEN (SELECT text FROM telemetry_strings WHERE id = CAST(CAST(model_id AS TEXT) AS INTEGER)) ELSE model_id END AS model_id,
    CASE WHEN typeof(engine) = 'blob' THEN (SELECT text FROM telemetry_strings WHERE id = CAST(CAST(engine AS TEXT) AS INTEGER)) ELSE engine END AS engine,
    CASE WHEN typeof(agent) = 'blob' THEN (SELECT text FROM telemetry_strings WHERE id = CAST(CAST(agent AS TEXT) AS INTEGER)) ELSE agent END AS agent,
    prompt_tokens,
    completion_tokens,
    total_tokens,
    prompt_tokens_cached,
    latency_seconds,
    ttft,
    cost_usd,
    energy_joules,
    power_watts,
    gpu_utilization_pct,
    gpu_memory_used_gb,
    gpu_temperature_c,
    throughput_tok_per_sec,
    prefill_latency_seconds,
    decode_latency_seconds,
    is_streaming,
    mean_itl_ms,
    median_itl_ms,
    p90_itl_ms,
    p95_itl_ms,
    p99_itl_ms,
    std_itl_ms,
    prefill_energy_joules,
    decode_energy_joules,
    CASE WHEN typeof(energy_method) = 'blob' THEN (SELECT text FROM telemetry_strings WHERE id = CAST(CAST(energy_method AS TEXT) AS INTEGER)) ELSE energy_method END AS energy_method,
    CASE WHEN typeof(energy_vendor) = 'blob' THEN (SELECT text FROM telemetry_strings WHERE id = CAST(CAST(energy_vendor AS TEXT) AS INTEGER)) ELSE energy_vendor END AS energy_vendor,
    CASE WHEN typeof(batch_id) = 'blob' THEN (SELECT text FROM telemetry_strings WHERE id = CAST(CAST(batch_id AS TEXT) AS INTEGER)) ELSE batch_id END AS batch_id,
    is_warmup,
    CASE WHEN typeof(outcome) = 'blob' THEN (SELECT text FROM telemetry_strings WHERE id = CAST(CAST(outcome AS TEXT) AS INTEGER)) ELSE outcome END AS outcome,
    CASE WHEN typeof(error_kind) = 'blob' THEN (SELECT text FROM telemetry_strings WHERE id = CAST(CAST(error_kind AS TEXT) AS INTEGER)) ELSE error_kind END AS error_kind,
    CASE WHEN typeof(error_message) = 'blob' THEN (SELECT text FROM telemetry_strings WHERE id = CAST(CAST(error_message AS TEXT) AS INTEGER)) ELSE error_message END AS error_message,
    tokens_counted,
    cost_unknown,
    CASE WHEN typeof(metadata) = 'blob' THEN (SELECT text FROM telemetry_strings WHERE id = CAST(CAST(metadata AS TEXT) AS INTEGER)) ELSE metadata END AS metadata,
    server_prefill_ms,
    server_decode_ms,
    CASE WHEN typeof(api) = 'blob' THEN (SELECT text FROM telemetry_strings WHERE id = CAST(CAST(api AS TEXT) AS INTEGER)) ELSE api END AS api,
    CASE WHEN typeof(operation) = 'blob' THEN (SELECT text FROM telemetry_strings WHERE id = CAST(CAST(operation AS TEXT) AS INTEGER)) ELSE operation END AS operation,
    reasoning_tokens,
    prompt_tokens_cache_write,
    output_chunks,
    import_key
FROM telemetry;
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_column_is_in_the_migration() {
        let all: String = MIGRATIONS.iter().map(|(_, sql)| *sql).collect();
        for c in RECORD_COLUMNS.iter().chain(ROLLUP_COLUMNS.iter()) {
            assert!(
                all.contains(&format!("    {c} ")) || all.contains(&format!("ADD COLUMN {c} ")),
                "{c} missing"
            );
        }
    }

    /// The view shows every record column, texts stored once resolved (a column added to the
    /// table but not to the view fails here).
    #[test]
    fn the_records_view_has_every_column() {
        for f in crate::RECORD_FIELDS.iter() {
            let c = f.name;
            let plain = format!("\n    {c},\n");
            let resolved = format!(
                "CASE WHEN typeof({c}) = 'blob' THEN (SELECT text FROM telemetry_strings \
                 WHERE id = CAST(CAST({c} AS TEXT) AS INTEGER)) ELSE {c} END AS {c},"
            );
            let found = if f.kind.stored_once() {
                V5_STRINGS_STORED_ONCE.contains(&resolved)
            } else {
                V5_STRINGS_STORED_ONCE.contains(&plain)
            };
            assert!(found, "{c} missing from telemetry_records");
        }
    }

    #[test]
    fn version_matches_last_migration() {
        let last = MIGRATIONS.last().map(|(name, _)| *name).unwrap_or_default();
        assert!(last.starts_with(&format!("V{SCHEMA_VERSION}__")));
    }
}
