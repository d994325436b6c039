//! Records to and from `telemetry` rows: the insert statements and the binding of the record
//! fields, in [`RECORD_COLUMNS`] order, both derived from core's field table.

use std::sync::LazyLock;

use rusqlite::{Connection, Row, Statement};
use telemetry_core::schema::RECORD_COLUMNS;
use telemetry_core::{
    FIELD_COUNT, FieldValue, ROLLUP_INPUT_FIELDS, ROLLUP_INPUTS, StringCache, TelemetryRecord,
    stored_id,
};
use telemetry_sqlite::stored_value;

use crate::error::{StoreError, to_i64};
use crate::strings::{Interner, set_field_from_cell};

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

/// What a statement's parameters hold between the records of one batch, for [`bind_record`].
pub(crate) struct BindState {
    /// The metadata JSON of the record being bound, then of the record bound.
    json: Vec<u8>,
    last_json: Vec<u8>,
    /// Whether parameter `i + 1` holds the id of a stored text rather than the text.
    stored_once: [bool; FIELD_COUNT],
}

impl BindState {
    pub(crate) fn new() -> Self {
        BindState {
            json: Vec::with_capacity(256),
            last_json: Vec::with_capacity(256),
            stored_once: [false; FIELD_COUNT],
        }
    }
}

/// Binds `r` to the first [`FIELD_COUNT`] parameters of an insert statement, in
/// [`RECORD_COLUMNS`] order (from [`TelemetryRecord::field_values`]); a text or JSON field gets
/// the id of its text where the [`Interner`] stores the text once (in `tx`, the statement's
/// transaction).
///
/// `bound` is the record whose values the statement holds now (bound by the previous call and
/// executed since; SQLite keeps a statement's parameters across executions until they are
/// cleared, which rusqlite does when the statement goes back to its cache): parameters whose
/// value is the same in `r` are left as they are. Labels, unset options and constant settings
/// mostly repeat from one record to the next, and a bind costs as much as comparing dozens of
/// values. Pass `None` for a statement whose parameters are not known (and a fresh `state`).
pub(crate) fn bind_record(
    stmt: &mut Statement<'_>,
    r: &TelemetryRecord,
    bound: Option<&TelemetryRecord>,
    state: &mut BindState,
    interner: &mut Interner,
    tx: &Connection,
) -> Result<(), StoreError> {
    let bind = |e| StoreError::sqlite("binding a record", e);
    let before = bound.map(TelemetryRecord::field_values);
    for (i, value) in r.field_values().into_iter().enumerate() {
        let unchanged = before.as_ref().is_some_and(|b| same(&b[i], &value));
        let param = i + 1;
        match value {
            FieldValue::Text(v) => {
                let once = &mut state.stored_once[i];
                bind_text(stmt, param, v, unchanged, once, interner, tx)?;
                continue;
            }
            FieldValue::Json(v) => {
                let encode = |detail: String| StoreError::Decode {
                    column: RECORD_COLUMNS[i],
                    detail,
                };
                state.json.clear();
                serde_json::to_writer(&mut state.json, v).map_err(|e| encode(e.to_string()))?;
                let text = std::str::from_utf8(&state.json).map_err(|e| encode(e.to_string()))?;
                let unchanged = bound.is_some() && state.json == state.last_json;
                let once = &mut state.stored_once[i];
                bind_text(stmt, param, text, unchanged, once, interner, tx)?;
                std::mem::swap(&mut state.json, &mut state.last_json);
                continue;
            }
            _ if unchanged => continue,
            FieldValue::Real(v) => stmt.raw_bind_parameter(param, v),
            FieldValue::OptReal(v) => stmt.raw_bind_parameter(param, v),
            FieldValue::Count(v) => stmt.raw_bind_parameter(param, to_i64(RECORD_COLUMNS[i], v)?),
            FieldValue::Flag(v) => stmt.raw_bind_parameter(param, i64::from(v)),
        }
        .map_err(bind)?;
    }
    Ok(())
}

/// Binds a text, or the id it is stored once under. `unchanged`: the parameter holds this text
/// already (or its id, when `stored_once`), bound for the previous record.
fn bind_text(
    stmt: &mut Statement<'_>,
    param: usize,
    text: &str,
    unchanged: bool,
    stored_once: &mut bool,
    interner: &mut Interner,
    tx: &Connection,
) -> Result<(), StoreError> {
    if unchanged && *stored_once {
        return Ok(());
    }
    let id = interner.id(tx, text)?;
    let result = match id {
        Some(id) => {
            let mut digits = [0; 20];
            stmt.raw_bind_parameter(param, stored_id(id.unsigned_abs(), &mut digits))
        }
        // The text is bound already.
        None if unchanged => return Ok(()),
        None => stmt.raw_bind_parameter(param, text),
    };
    *stored_once = id.is_some();
    result.map_err(|e| StoreError::sqlite("binding a record", e))
}

/// Whether binding `b` where `a` is bound would change nothing: the same variant and the same
/// value, bit for bit. JSON is never taken as the same here (comparing it costs about as much as
/// serializing it; its text is compared instead).
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

/// A record holding the [`ROLLUP_INPUT_COLUMNS`] of `row` (other fields default), read on
/// `conn` (stored texts looked up through `cache`).
pub(crate) fn rollup_input(
    conn: &Connection,
    cache: &mut StringCache,
    row: &Row<'_>,
) -> Result<TelemetryRecord, StoreError> {
    let mut r = TelemetryRecord::default();
    for (i, field) in ROLLUP_INPUT_FIELDS.into_iter().enumerate() {
        let value = row
            .get_ref(i)
            .map_err(|e| StoreError::sqlite("reading telemetry rows", e))?;
        set_field_from_cell(conn, cache, &mut r, field, stored_value(value))?;
    }
    Ok(r)
}
