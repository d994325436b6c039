//! Reading one `telemetry` row back into a [`TelemetryRecord`], with a typed error naming the row
//! and column of any value that does not fit. Which column holds which field, and how each is
//! decoded, comes from core's field table ([`TelemetryRecord::set_field`]).

use rusqlite::{Connection, OptionalExtension, Row, params};
use telemetry_core::schema::RECORD_COLUMNS;
use telemetry_core::{FIELD_COUNT, STRING_BY_ID_SQL, StoredValue, StringCache, TelemetryRecord};
use telemetry_sqlite::stored_value;

use crate::error::AggError;

/// Reads `id` followed by the [`RECORD_COLUMNS`] of a row read on `conn` into a record (texts
/// stored once looked up through `cache`).
pub(crate) fn read_record(
    conn: &Connection,
    cache: &mut StringCache,
    row: &Row<'_>,
    id: i64,
) -> Result<TelemetryRecord, AggError> {
    let mut record = TelemetryRecord::default();
    for i in 0..FIELD_COUNT {
        let value = row
            .get_ref(i + 1)
            .map_err(|e| bad_row(id, i, e.to_string()))?;
        set_field(conn, cache, &mut record, id, i, stored_value(value))?;
    }
    Ok(record)
}

fn bad_row(row_id: i64, field: usize, detail: String) -> AggError {
    AggError::BadRow {
        row_id,
        column: RECORD_COLUMNS.get(field).copied().unwrap_or("?"),
        detail,
    }
}

/// Sets field `field` of `record` (row `row_id`) from a cell read on `conn`: the text of an id
/// stored once is looked up (through `cache`).
pub(crate) fn set_field(
    conn: &Connection,
    cache: &mut StringCache,
    record: &mut TelemetryRecord,
    row_id: i64,
    field: usize,
    value: StoredValue<'_>,
) -> Result<(), AggError> {
    let value = cache.resolve(field, value, |text_id| {
        conn.prepare_cached(STRING_BY_ID_SQL)
            .and_then(|mut s| s.query_row(params![text_id], |r| r.get(0)).optional())
            .map_err(|e| AggError::sqlite("reading telemetry_strings", e))?
            .ok_or_else(|| {
                bad_row(
                    row_id,
                    field,
                    format!("text id {text_id} is not in telemetry_strings"),
                )
            })
    })?;
    record
        .set_field(field, value)
        .map_err(|e| bad_row(row_id, field, e.detail))
}
