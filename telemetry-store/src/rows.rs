//! Records to and from `telemetry` rows: the insert statements and the binding of the record
//! fields, in [`RECORD_COLUMNS`] order, both derived from core's field table.

use std::sync::LazyLock;

use rusqlite::{Row, Statement};
use telemetry_core::schema::RECORD_COLUMNS;
use telemetry_core::{FieldValue, ROLLUP_INPUT_FIELDS, ROLLUP_INPUTS, TelemetryRecord};
use telemetry_sqlite::stored_value;

use crate::error::{StoreError, to_i64};

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

/// Binds `r` to the first [`FIELD_COUNT`] parameters of an insert statement, in
/// [`RECORD_COLUMNS`] order (from [`TelemetryRecord::field_values`]).
/// `buf` is reused for the metadata JSON, so a batch allocates it once.
///
/// `bound` is the record whose values the statement holds now (bound by the previous call and
/// executed since; SQLite keeps a statement's parameters across executions until they are
/// cleared, which rusqlite does when the statement goes back to its cache): parameters whose
/// value is the same in `r` are left as they are. Labels, unset options and constant settings
/// mostly repeat from one record to the next, and a bind costs as much as comparing dozens of
/// values. Pass `None` for a statement whose parameters are not known.
pub(crate) fn bind_record(
    stmt: &mut Statement<'_>,
    r: &TelemetryRecord,
    bound: Option<&TelemetryRecord>,
    buf: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let bind = |e| StoreError::sqlite("binding a record", e);
    let before = bound.map(TelemetryRecord::field_values);
    for (i, value) in r.field_values().into_iter().enumerate() {
        if before.as_ref().is_some_and(|b| same(&b[i], &value)) {
            continue;
        }
        let param = i + 1;
        match value {
            FieldValue::Real(v) => stmt.raw_bind_parameter(param, v),
            FieldValue::OptReal(v) => stmt.raw_bind_parameter(param, v),
            FieldValue::Count(v) => stmt.raw_bind_parameter(param, to_i64(RECORD_COLUMNS[i], v)?),
            FieldValue::Flag(v) => stmt.raw_bind_parameter(param, i64::from(v)),
            FieldValue::Text(v) => stmt.raw_bind_parameter(param, v),
            FieldValue::Json(v) => {
                let encode = |detail: String| StoreError::Decode {
                    column: RECORD_COLUMNS[i],
                    detail,
                };
                buf.clear();
                serde_json::to_writer(&mut *buf, v).map_err(|e| encode(e.to_string()))?;
                let text = std::str::from_utf8(buf).map_err(|e| encode(e.to_string()))?;
                stmt.raw_bind_parameter(param, text)
            }
        }
        .map_err(bind)?;
    }
    Ok(())
}

/// Whether binding `b` where `a` is bound would change nothing: the same variant and the same
/// value, bit for bit. JSON is never taken as the same (comparing it costs about as much as
/// serializing it).
fn same(a: &FieldValue<'_>, b: &FieldValue<'_>) -> bool {
    match (a, b) {
        (FieldValue::Real(x), FieldValue::Real(y)) => x.to_bits() == y.to_bits(),
        (FieldValue::OptReal(x), FieldValue::OptReal(y)) => {
            x.map(f64::to_bits) == y.map(f64::to_bits)
        }
        (FieldValue::Count(x), FieldValue::Count(y)) => x == y,
        (FieldValue::Flag(x), FieldValue::Flag(y)) => x == y,
        (FieldValue::Text(x), FieldValue::Text(y)) => x == y,
        _ => false,
    }
}

/// [`ROLLUP_INPUTS`] as a select list.
pub(crate) static ROLLUP_INPUT_COLUMNS: LazyLock<String> =
    LazyLock::new(|| ROLLUP_INPUTS.join(", "));

/// A record holding the [`ROLLUP_INPUT_COLUMNS`] of `row` (other fields default).
pub(crate) fn rollup_input(row: &Row<'_>) -> Result<TelemetryRecord, StoreError> {
    let mut r = TelemetryRecord::default();
    for (i, field) in ROLLUP_INPUT_FIELDS.into_iter().enumerate() {
        let value = row
            .get_ref(i)
            .map_err(|e| StoreError::sqlite("reading telemetry rows", e))?;
        r.set_field(field, stored_value(value))
            .map_err(|e| StoreError::Decode {
                column: e.field,
                detail: e.detail,
            })?;
    }
    Ok(r)
}
