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

/// `INSERT INTO telemetry (<record columns>) VALUES (?1, ..)`: one row.
pub(crate) static INSERT_SQL: LazyLock<String> = LazyLock::new(|| insert_sql(1, false));

/// Rows of [`INSERT_ROWS_SQL`]. One statement per row costs SQLite, besides the row, a cursor
/// opened and closed on the table and on each index, a seek from the root of the timestamp
/// index, and a statement halt: about a quarter of a row's cost. A statement inserting many
/// rows keeps its cursors open, and the timestamp index, appended to, is not sought again
/// (SQLite checks the cursor's last page first). Past 16 rows the gain is small and the
/// statement (and the batch's remainder, inserted row by row) grows.
pub(crate) const ROWS_PER_INSERT: usize = 8;

/// The insert of [`ROWS_PER_INSERT`] rows: `VALUES (?1, ..), (?{FIELD_COUNT + 1}, ..), ..`;
/// row `k`'s fields are parameters `k × FIELD_COUNT + 1 ..` (see [`bind_record`]).
pub(crate) static INSERT_ROWS_SQL: LazyLock<String> =
    LazyLock::new(|| insert_sql(ROWS_PER_INSERT, false));

/// The parameter index of `import_key` in [`IMPORT_SQL`]: right after the record columns.
pub(crate) const IMPORT_KEY_PARAM: usize = RECORD_COLUMNS.len() + 1;

/// The one-row insert with `import_key` last, ignoring rows whose key is already stored.
pub(crate) static IMPORT_SQL: LazyLock<String> = LazyLock::new(|| insert_sql(1, true));

fn insert_sql(rows: usize, with_key: bool) -> String {
    let mut columns = RECORD_COLUMNS.join(", ");
    let mut n = RECORD_COLUMNS.len();
    if with_key {
        columns.push_str(", import_key");
        n += 1;
    }
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let params: Vec<String> = (1..=n).map(|i| format!("?{}", row * n + i)).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    // FAIL rather than the default ABORT: a statement that may fail after some of its rows are
    // in needs, with ABORT, a statement journal (every page it changes copied first, to undo
    // those rows), which cost a row of a many-row statement more than its cursors saved. With
    // FAIL the rows before the failing one stay; the writer rolls the whole transaction back
    // on any error, so they are never committed.
    let verb = if with_key {
        "INSERT OR IGNORE"
    } else {
        "INSERT OR FAIL"
    };
    format!(
        "{verb} INTO telemetry ({columns}) VALUES {}",
        values.join(", ")
    )
}

/// What a statement's parameters hold between the records of one batch, for [`bind_record`]:
/// per row of the statement, the metadata JSON of the record bound there and which of its
/// parameters hold the id of a stored text rather than the text.
pub(crate) struct BindState<'a> {
    /// The JSON text of a JSON field other than the metadata (whose text it keeps itself).
    json: Vec<u8>,
    rows: Vec<RowState<'a>>,
}

struct RowState<'a> {
    /// The values of the record bound in this row (executed since), `None` while nothing is.
    bound: Option<[FieldValue<'a>; FIELD_COUNT]>,
    /// The metadata JSON of the record bound in this row.
    last_json: Vec<u8>,
    /// Whether parameter `i + 1` of the row holds the id of a stored text rather than the text.
    stored_once: [bool; FIELD_COUNT],
}

impl BindState<'_> {
    /// The state of a statement of `rows` rows whose parameters are not bound yet.
    pub(crate) fn new(rows: usize) -> Self {
        BindState {
            json: Vec::with_capacity(256),
            rows: (0..rows)
                .map(|_| RowState {
                    bound: None,
                    last_json: Vec::with_capacity(256),
                    stored_once: [false; FIELD_COUNT],
                })
                .collect(),
        }
    }
}

/// Binds `r` to row `row` of an insert statement (parameters `row × FIELD_COUNT + 1 ..`, in
/// [`RECORD_COLUMNS`] order, from [`TelemetryRecord::field_values`]); a text or JSON field gets
/// the id of its text where the [`Interner`] stores the text once (in `tx`, the statement's
/// transaction).
///
/// `state` holds the values of the record bound in that row of the statement before (and
/// executed since; SQLite keeps a statement's parameters across executions until they are
/// cleared, which rusqlite does when the statement goes back to its cache): parameters whose
/// value is the same in `r` are left as they are. Labels, unset options and constant settings
/// mostly repeat from one record to the next, and a bind costs as much as comparing dozens of
/// values. A fresh `state` is for a statement with no parameter bound (all NULL: fresh from
/// rusqlite's cache, which clears them).
pub(crate) fn bind_record<'a>(
    stmt: &mut Statement<'_>,
    row: usize,
    r: &'a TelemetryRecord,
    state: &mut BindState<'a>,
    interner: &mut Interner,
    tx: &Connection,
) -> Result<(), StoreError> {
    let bind = |e| StoreError::sqlite("binding a record", e);
    let first = row * FIELD_COUNT + 1;
    let Some(row) = state.rows.get_mut(row) else {
        return Err(StoreError::Decode {
            column: "telemetry",
            detail: format!("no row {row} in the insert statement"),
        });
    };
    let values = r.field_values();
    let before = row.bound.as_ref();
    for (i, &value) in values.iter().enumerate() {
        let unchanged = match before {
            Some(b) => same(&b[i], &value),
            // Nothing bound: the parameter is NULL.
            None => matches!(value, FieldValue::OptReal(None)),
        };
        let param = first + i;
        match value {
            FieldValue::Text(v) => {
                let once = &mut row.stored_once[i];
                bind_text(stmt, param, v, unchanged, once, interner, tx)?;
                continue;
            }
            FieldValue::Json(v) => {
                let encode = |detail: String| StoreError::Decode {
                    column: RECORD_COLUMNS[i],
                    detail,
                };
                // The bound record's value, or an equal one (records of one recorder mostly
                // share one metadata; comparing a small object costs a fraction of writing it):
                // its text is the one bound.
                let equal = before.is_some_and(
                    |b| matches!(b[i], FieldValue::Json(w) if std::ptr::eq(w, v) || w == v),
                );
                if equal {
                    let text =
                        std::str::from_utf8(&row.last_json).map_err(|e| encode(e.to_string()))?;
                    let once = &mut row.stored_once[i];
                    bind_text(stmt, param, text, true, once, interner, tx)?;
                    continue;
                }
                // The metadata's JSON is written once for all the records that share it.
                let text = if std::ptr::eq(v, r.metadata.value()) {
                    r.metadata.json()
                } else {
                    state.json.clear();
                    serde_json::to_writer(&mut state.json, v).map_err(|e| encode(e.to_string()))?;
                    std::str::from_utf8(&state.json).map_err(|e| encode(e.to_string()))?
                };
                let unchanged = before.is_some() && text.as_bytes() == row.last_json;
                let once = &mut row.stored_once[i];
                bind_text(stmt, param, text, unchanged, once, interner, tx)?;
                if !unchanged {
                    row.last_json.clear();
                    row.last_json.extend_from_slice(text.as_bytes());
                }
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
    row.bound = Some(values);
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
    // A text too short to be stored once is bound as it is: nothing to ask the interner.
    if unchanged && (*stored_once || !Interner::may_store(text)) {
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
/// value, bit for bit. JSON is never taken as the same here ([`bind_record`] compares JSON
/// values itself, keeping the text it bound).
fn same(a: &FieldValue<'_>, b: &FieldValue<'_>) -> bool {
    match (a, b) {
        (FieldValue::Real(x), FieldValue::Real(y)) => x.to_bits() == y.to_bits(),
        (FieldValue::OptReal(x), FieldValue::OptReal(y)) => {
            x.map(f64::to_bits) == y.map(f64::to_bits)
        }
        (FieldValue::Count(x), FieldValue::Count(y)) => x == y,
        (FieldValue::Flag(x), FieldValue::Flag(y)) => x == y,
        (FieldValue::Text(x), FieldValue::Text(y)) => same_text(x, y),
        _ => false,
    }
}

/// `a == b`, without asking `memcmp` about two empty texts.
///
/// An empty `String` points at no memory (a dangling address in the first page), and glibc's
/// AVX-512 `memcmp` reads up to 32 bytes under a mask, empty for length 0: a masked load from
/// an unmapped page costs the CPU a microcode assist of hundreds of cycles even with nothing
/// to read. A record has half a dozen empty texts, compared for each row: under load that was
/// a quarter of the writer's time (`perf`; callgrind, counting instructions, saw none of it).
pub(crate) fn same_text(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_texts_are_the_same_and_differ_from_any_other() {
        // An empty `String` points at no memory; `same_text` must not need it to.
        let (empty, other) = (String::new(), String::new());
        assert!(same_text(empty.as_str(), other.as_str()));
        assert!(same_text("", empty.as_str()));
        assert!(!same_text("", "a"));
        assert!(!same_text("a", empty.as_str()));
    }

    proptest! {
        #[test]
        fn same_text_is_equality(a in ".{0,40}", b in ".{0,40}", copy in any::<bool>()) {
            let b = if copy { a.clone() } else { b };
            prop_assert_eq!(same_text(&a, &b), a == b);
            let (x, y) = (FieldValue::Text(&a), FieldValue::Text(&b));
            prop_assert_eq!(same(&x, &y), a == b);
        }
    }
}
