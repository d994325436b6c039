//! Reading one `telemetry` row back into a [`TelemetryRecord`], with a typed error naming the row
//! and column of any value that does not fit. Which column holds which field, and how each is
//! decoded, comes from core's field table ([`TelemetryRecord::set_field`]).

use rusqlite::Row;
use telemetry_core::schema::RECORD_COLUMNS;
use telemetry_core::{FIELD_COUNT, TelemetryRecord};
use telemetry_sqlite::stored_value;

use crate::error::AggError;

/// Reads `id` followed by the [`RECORD_COLUMNS`] into a record.
pub(crate) fn read_record(row: &Row<'_>, id: i64) -> Result<TelemetryRecord, AggError> {
    let bad = |i: usize, detail: String| AggError::BadRow {
        row_id: id,
        column: RECORD_COLUMNS[i],
        detail,
    };
    let mut record = TelemetryRecord::default();
    for i in 0..FIELD_COUNT {
        let value = row.get_ref(i + 1).map_err(|e| bad(i, e.to_string()))?;
        record
            .set_field(i, stored_value(value))
            .map_err(|e| bad(i, e.detail))?;
    }
    Ok(record)
}
