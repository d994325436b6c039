//! Records to and from `telemetry` rows: the insert statements and the binding of the record
//! fields, in [`RECORD_COLUMNS`] order, both derived from core's field table.
//!
//! A record's insert names only the columns whose value differs from the column's default in
//! the schema (its [`Shape`]; the [`Defaults`] are read from the database): most records leave
//! most fields unset (no GPU, no stream timings, no error), and a column left out costs SQLite
//! far less per row than a parameter bound, copied and checked.

use std::collections::HashMap;
use std::sync::LazyLock;

use rusqlite::{Connection, Row, Statement};
use telemetry_core::schema::RECORD_COLUMNS;
use telemetry_core::{
    FIELD_COUNT, FieldKind, FieldValue, RECORD_FIELDS, ROLLUP_INPUT_FIELDS, ROLLUP_INPUTS,
    StringCache, TelemetryRecord, stored_id,
};
use telemetry_sqlite::stored_value;

use crate::error::{StoreError, to_i64};
use crate::strings::{Interner, set_field_from_cell};

/// Rows of a batch's inserts (a shaped insert, see [`InsertSql`]). One statement per row costs
/// SQLite, besides the row, a cursor opened and closed on the table and on each index, a seek
/// from the root of the timestamp index, and a statement halt: about a quarter of a row's cost.
/// A statement inserting many rows keeps its cursors open, and the timestamp index, appended
/// to, is not sought again (SQLite checks the cursor's last page first). Past 16 rows the gain
/// is small and the statement (and the batch's remainder, inserted row by row) grows.
pub(crate) const ROWS_PER_INSERT: usize = 8;

/// The parameter index of `import_key` in [`IMPORT_SQL`]: right after the record columns.
pub(crate) const IMPORT_KEY_PARAM: usize = RECORD_COLUMNS.len() + 1;

/// The one-row insert with `import_key` last, ignoring rows whose key is already stored.
pub(crate) static IMPORT_SQL: LazyLock<String> = LazyLock::new(|| insert_sql(1, true));

fn insert_sql(rows: usize, with_key: bool) -> String {
    shaped_insert_sql(Shape::ALL, rows, with_key)
}

/// The insert of `rows` rows of the columns of `shape` (and `import_key` last if `with_key`):
/// `VALUES (?1, ..), (?{n + 1}, ..), ..` with `n` parameters a row, row `k`'s being
/// `k × n + 1 ..` (see [`bind_record`]).
pub(crate) fn shaped_insert_sql(shape: Shape, rows: usize, with_key: bool) -> String {
    let mut columns = (0..FIELD_COUNT)
        .filter(|&i| shape.has(i))
        .map(|i| RECORD_COLUMNS[i])
        .collect::<Vec<_>>()
        .join(", ");
    let mut n = shape.len();
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

/// Which record fields an insert binds: bit `i` for field `i` ([`RECORD_COLUMNS`] order). The
/// columns it leaves out take their default in the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Shape(u64);

const _: () = assert!(FIELD_COUNT < 64, "a Shape has one bit per record field");

impl Shape {
    /// No field.
    pub(crate) const NONE: Shape = Shape(0);
    /// Every field.
    pub(crate) const ALL: Shape = Shape((1 << FIELD_COUNT) - 1);

    /// Whether field `i` is bound.
    pub(crate) fn has(self, i: usize) -> bool {
        i < FIELD_COUNT && self.0 >> i & 1 == 1
    }

    /// How many fields are bound: the parameters of one row.
    pub(crate) fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The fields bound by either.
    pub(crate) fn union(self, other: Shape) -> Shape {
        Shape(self.0 | other.0)
    }

    /// The position of field `i` among the bound fields (its parameter in a row, from 0).
    fn rank(self, i: usize) -> usize {
        (self.0 & ((1 << i) - 1)).count_ones() as usize
    }
}

/// What a record column holds when an insert leaves it out, as far as the writer can tell a
/// field's value equal to it.
#[derive(Debug, Clone, PartialEq)]
enum ColumnDefault {
    /// Always bound: `NOT NULL` without a default, or a default that is not a plain literal.
    Bound,
    /// `NULL`.
    Null,
    /// An integer literal.
    Integer(i64),
    /// A string literal.
    Text(String),
}

impl ColumnDefault {
    /// From `PRAGMA table_info`'s `notnull` and `dflt_value` (the default's SQL text).
    fn parse(not_null: bool, sql: Option<&str>) -> ColumnDefault {
        let Some(sql) = sql.map(str::trim) else {
            return if not_null {
                ColumnDefault::Bound
            } else {
                ColumnDefault::Null
            };
        };
        if sql.eq_ignore_ascii_case("NULL") {
            return ColumnDefault::Null;
        }
        if let Ok(n) = sql.parse::<i64>() {
            return ColumnDefault::Integer(n);
        }
        if let Some(inner) = sql.strip_prefix('\'').and_then(|s| s.strip_suffix('\''))
            && !inner.replace("''", "").contains('\'')
        {
            return ColumnDefault::Text(inner.replace("''", "'"));
        }
        ColumnDefault::Bound
    }
}

/// The value a field holds when its column, left out of an insert, would read back the same as
/// the field bound: what [`Defaults::shape_of`] compares each field with.
#[derive(Debug, Clone, PartialEq)]
enum Unset {
    /// None: the field is always bound.
    Never,
    /// An unset option (the default is `NULL`).
    Null,
    /// A real, bit for bit (so -0.0 is bound where the default is 0).
    Real(u64),
    /// A count.
    Count(u64),
    /// A flag.
    Flag(bool),
    /// A text.
    Text(Box<str>),
    /// A JSON value written as this text.
    Json(Box<str>),
}

impl Unset {
    /// For a field of `kind` whose column has `default`.
    fn new(kind: FieldKind, default: &ColumnDefault) -> Unset {
        // An integer a double holds exactly (SQLite stores a REAL column's integer default as
        // that double).
        let exact = |d: i64| (d.unsigned_abs() <= 1 << f64::MANTISSA_DIGITS).then_some(d as f64);
        match (kind, default) {
            (FieldKind::OptReal, ColumnDefault::Null) => Unset::Null,
            (FieldKind::Real, &ColumnDefault::Integer(d)) => {
                exact(d).map_or(Unset::Never, |f| Unset::Real(f.to_bits()))
            }
            (FieldKind::Count, &ColumnDefault::Integer(d)) => {
                u64::try_from(d).map_or(Unset::Never, Unset::Count)
            }
            (FieldKind::Flag, &ColumnDefault::Integer(d @ (0 | 1))) => Unset::Flag(d == 1),
            (FieldKind::Text, ColumnDefault::Text(d)) => Unset::Text(d.as_str().into()),
            (FieldKind::Json, ColumnDefault::Text(d)) => Unset::Json(d.as_str().into()),
            _ => Unset::Never,
        }
    }

    /// Whether `value`, a field of `r`, is this one (a JSON value: the record's metadata,
    /// written as this text).
    #[inline]
    fn holds(&self, value: &FieldValue<'_>, r: &TelemetryRecord) -> bool {
        match (self, value) {
            (Unset::Null, FieldValue::OptReal(v)) => v.is_none(),
            (Unset::Real(bits), FieldValue::Real(v)) => v.to_bits() == *bits,
            (Unset::Count(d), FieldValue::Count(v)) => v == d,
            (Unset::Flag(d), FieldValue::Flag(v)) => v == d,
            (Unset::Text(d), FieldValue::Text(v)) => same_text(d, v),
            (Unset::Json(d), FieldValue::Json(v)) => {
                std::ptr::eq(*v, r.metadata.value()) && same_text(d, r.metadata.json())
            }
            _ => false,
        }
    }
}

/// The defaults of the record columns of a database's `telemetry` table, as the value each
/// record field holds when it equals its column's default.
#[derive(Debug, Clone)]
pub(crate) struct Defaults(Vec<Unset>);

impl Defaults {
    /// Reads them from `conn` (`PRAGMA table_info`). A record column missing from the table
    /// is an error (the schema is not the one this build writes).
    pub(crate) fn read(conn: &Connection) -> Result<Defaults, StoreError> {
        let read = |e| StoreError::sqlite("reading the telemetry columns' defaults", e);
        let mut stmt = conn
            .prepare("SELECT name, \"notnull\", dflt_value FROM pragma_table_info('telemetry')")
            .map_err(read)?;
        let mut found: HashMap<String, ColumnDefault> = HashMap::new();
        let mut rows = stmt.query([]).map_err(read)?;
        while let Some(row) = rows.next().map_err(read)? {
            let name: String = row.get(0).map_err(read)?;
            let not_null: bool = row.get(1).map_err(read)?;
            let sql: Option<String> = row.get(2).map_err(read)?;
            found.insert(name, ColumnDefault::parse(not_null, sql.as_deref()));
        }
        let defaults = RECORD_FIELDS
            .iter()
            .map(|field| {
                let column = field.name;
                let default = found.remove(column).ok_or_else(|| StoreError::Decode {
                    column,
                    detail: "no such column in the telemetry table".to_owned(),
                })?;
                Ok::<_, StoreError>(Unset::new(field.kind, &default))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Defaults(defaults))
    }

    /// Whether an insert of `shape` can take `r` (whose values are `values`): every field of
    /// `r` that it leaves out holds its column's default.
    pub(crate) fn fits(
        &self,
        r: &TelemetryRecord,
        values: &[FieldValue<'_>],
        shape: Shape,
    ) -> bool {
        self.off_default(r, values, Shape::ALL.0 & !shape.0) == 0
    }

    /// The fields of `r` (whose values are `values`) that an insert must bind: those not equal
    /// to their column's default.
    pub(crate) fn shape_of(&self, r: &TelemetryRecord, values: &[FieldValue<'_>]) -> Shape {
        Shape(self.off_default(r, values, Shape::ALL.0))
    }

    /// Of the fields whose bits are set in `among`, those not equal to their column's default.
    fn off_default(&self, r: &TelemetryRecord, values: &[FieldValue<'_>], among: u64) -> u64 {
        let mut off = 0;
        let mut todo = among;
        while todo != 0 {
            let i = todo.trailing_zeros() as usize;
            todo &= todo - 1;
            if let (Some(value), Some(unset)) = (values.get(i), self.0.get(i))
                && !unset.holds(value, r)
            {
                off |= 1 << i;
            }
        }
        off
    }
}

/// What the writer keeps to build its inserts: the record columns' defaults, read again when
/// the schema changes (another process may migrate the file), and the inserts' texts.
#[derive(Debug, Default)]
pub(crate) struct Inserts {
    /// The defaults, and the `schema_version` they were read at.
    defaults: Option<(i64, Defaults)>,
    sql: InsertSql,
}

impl Inserts {
    /// The defaults of the schema `tx` sees, and the inserts' texts.
    pub(crate) fn for_schema(
        &mut self,
        tx: &Connection,
    ) -> Result<(&Defaults, &mut InsertSql), StoreError> {
        let version: i64 = tx
            .prepare_cached("PRAGMA schema_version")
            .and_then(|mut s| s.query_row([], |row| row.get(0)))
            .map_err(|e| StoreError::sqlite("reading the schema version", e))?;
        let defaults = match self.defaults.take() {
            Some((v, defaults)) if v == version => defaults,
            _ => Defaults::read(tx)?,
        };
        let (_, defaults) = self.defaults.insert((version, defaults));
        Ok((defaults, &mut self.sql))
    }

    /// The `schema_version` the defaults were read at.
    #[cfg(test)]
    pub(crate) fn schema_version(&self) -> Option<i64> {
        self.defaults.as_ref().map(|(v, _)| *v)
    }
}

/// Most distinct inserts [`InsertSql`] keeps the text of.
const MAX_SHAPES: usize = 256;

/// The text of the inserts of each shape and row count met, built once.
#[derive(Debug, Default)]
pub(crate) struct InsertSql(HashMap<(Shape, usize), String>);

impl InsertSql {
    /// The insert of `rows` rows shaped `shape`.
    pub(crate) fn get(&mut self, shape: Shape, rows: usize) -> &str {
        if self.0.len() >= MAX_SHAPES && !self.0.contains_key(&(shape, rows)) {
            self.0.clear();
        }
        self.0
            .entry((shape, rows))
            .or_insert_with(|| shaped_insert_sql(shape, rows, false))
    }
}

/// What a statement's parameters hold between the records of one batch, for [`bind_record`]:
/// per row of the statement, the metadata JSON of the record bound there and which of its
/// parameters hold the id of a stored text rather than the text.
pub(crate) struct BindState<'a> {
    /// The fields the statement binds.
    shape: Shape,
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
    /// The rows of the statement.
    pub(crate) fn rows(&self) -> usize {
        self.rows.len()
    }

    /// The state of a statement of `rows` rows binding the fields of `shape`, whose parameters
    /// are not bound yet.
    pub(crate) fn new(rows: usize, shape: Shape) -> Self {
        BindState {
            shape,
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

/// Binds `r`, whose [`TelemetryRecord::field_values`] are `values`, to row `row` of an insert
/// statement of the shape of `state` (parameters `row × shape.len() + 1 ..`, the shape's fields
/// in [`RECORD_COLUMNS`] order; the others are left to their column's default, which the caller
/// checked they hold); a text or JSON field gets the id of its text where the [`Interner`]
/// stores the text once (in `tx`, the statement's transaction).
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
    values: &[FieldValue<'a>; FIELD_COUNT],
    state: &mut BindState<'a>,
    interner: &mut Interner,
    tx: &Connection,
) -> Result<(), StoreError> {
    let bind = |e| StoreError::sqlite("binding a record", e);
    let shape = state.shape;
    let first = row * shape.len() + 1;
    let Some(row) = state.rows.get_mut(row) else {
        return Err(StoreError::Decode {
            column: "telemetry",
            detail: format!("no row {row} in the insert statement"),
        });
    };
    let before = row.bound.as_ref();
    for (i, &value) in values.iter().enumerate() {
        if !shape.has(i) {
            continue;
        }
        let unchanged = match before {
            Some(b) => same(&b[i], &value),
            // Nothing bound: the parameter is NULL.
            None => matches!(value, FieldValue::OptReal(None)),
        };
        let param = first + shape.rank(i);
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
    row.bound = Some(*values);
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

    #[test]
    fn column_defaults_are_read_from_their_sql() {
        use ColumnDefault::*;
        assert_eq!(ColumnDefault::parse(true, None), Bound);
        assert_eq!(ColumnDefault::parse(false, None), Null);
        assert_eq!(ColumnDefault::parse(false, Some("NULL")), Null);
        assert_eq!(ColumnDefault::parse(true, Some("0")), Integer(0));
        assert_eq!(ColumnDefault::parse(true, Some(" -3 ")), Integer(-3));
        assert_eq!(ColumnDefault::parse(true, Some("''")), Text(String::new()));
        assert_eq!(
            ColumnDefault::parse(true, Some("'it''s'")),
            Text("it's".into())
        );
        // Not a literal the writer can match: always bound.
        for sql in [
            "0.5",
            "'a'b'",
            "'a",
            "(1 + 1)",
            "CURRENT_TIMESTAMP",
            "x'00'",
        ] {
            assert_eq!(ColumnDefault::parse(true, Some(sql)), Bound, "{sql}");
        }
    }

    #[test]
    fn a_field_is_unset_only_when_its_column_reads_back_the_same() {
        use ColumnDefault::*;
        let r = TelemetryRecord::default();
        let unset = |kind, default: ColumnDefault| Unset::new(kind, &default);
        let real = unset(FieldKind::Real, Integer(0));
        assert!(real.holds(&FieldValue::Real(0.0), &r));
        assert!(!real.holds(&FieldValue::Real(-0.0), &r));
        // An integer a double cannot hold exactly: never taken as unset.
        assert_eq!(unset(FieldKind::Real, Integer(i64::MAX)), Unset::Never);
        let count = unset(FieldKind::Count, Integer(0));
        assert!(count.holds(&FieldValue::Count(0), &r));
        assert!(!count.holds(&FieldValue::Count(u64::MAX), &r));
        assert_eq!(unset(FieldKind::Count, Integer(-1)), Unset::Never);
        let flag = unset(FieldKind::Flag, Integer(0));
        assert!(flag.holds(&FieldValue::Flag(false), &r));
        assert!(!flag.holds(&FieldValue::Flag(true), &r));
        assert_eq!(unset(FieldKind::Flag, Integer(2)), Unset::Never);
        let opt = unset(FieldKind::OptReal, Null);
        assert!(opt.holds(&FieldValue::OptReal(None), &r));
        assert!(!opt.holds(&FieldValue::OptReal(Some(0.0)), &r));
        let text = unset(FieldKind::Text, Text("ok".into()));
        assert!(text.holds(&FieldValue::Text("ok"), &r));
        assert!(!text.holds(&FieldValue::Text("OK"), &r));
        // The metadata, written as the default's text, is unset; another JSON value is bound.
        let json = unset(FieldKind::Json, Text(r.metadata.json().into()));
        assert!(json.holds(&FieldValue::Json(r.metadata.value()), &r));
        let other = serde_json::json!({});
        assert!(!json.holds(&FieldValue::Json(&other), &r));
        assert!(!unset(FieldKind::Real, Bound).holds(&FieldValue::Real(0.0), &r));
        // A default of the wrong kind for the field: always bound.
        assert_eq!(unset(FieldKind::Text, Integer(0)), Unset::Never);
    }

    #[test]
    fn shapes_count_and_rank_their_fields() {
        let s = Shape(0b1011);
        assert_eq!(s.len(), 3);
        assert!(s.has(0) && s.has(1) && !s.has(2) && s.has(3));
        assert!(!s.has(FIELD_COUNT) && !Shape::ALL.has(64));
        assert_eq!((s.rank(0), s.rank(1), s.rank(3)), (0, 1, 2));
        assert_eq!(Shape::ALL.len(), FIELD_COUNT);
        assert_eq!(Shape::NONE.union(s), s);
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
