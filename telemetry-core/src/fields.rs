//! The one description of [`TelemetryRecord`]'s fields: [`RECORD_FIELDS`].
//!
//! Every mapping of a record derives from the table below, so that a field cannot be forgotten or
//! shifted in one of them: the `telemetry` column list ([`RECORD_COLUMNS`](crate::schema::RECORD_COLUMNS)),
//! the store's insert and its binding ([`TelemetryRecord::field_values`]), the readers' row
//! decoding ([`TelemetryRecord::set_field`]), the CLI's CSV header and cells, and the JSON keys
//! (serde writes the struct's fields in declaration order, which a test checks against the table).
//!
//! Adding a field means: the field in the struct, its name in the table, and a new migration in
//! [`schema`](crate::schema) (the tests check that the migrated columns match the table). Its SQL
//! type, how it is bound, decoded and written to CSV follow from its Rust type ([`FieldKind`]).

use serde_json::Value;

use crate::metadata::Metadata;
use crate::record::{EnergyMethod, Outcome, TelemetryRecord};

/// How a field is stored, written and read; follows from the field's Rust type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldKind {
    /// `f64`: `REAL NOT NULL`.
    Real,
    /// `Option<f64>`: `REAL`, `NULL` for `None` (not measured).
    OptReal,
    /// `u64` count: `INTEGER NOT NULL` (at most `i64::MAX` can be stored).
    Count,
    /// `bool`: `INTEGER NOT NULL`, 0 or 1.
    Flag,
    /// A string, or an enum stored as its string ([`EnergyMethod`], [`Outcome`]): `TEXT NOT NULL`.
    Text,
    /// A JSON object, stored as its compact text: `TEXT NOT NULL`.
    Json,
}

impl FieldKind {
    /// The SQLite column type (`REAL`, `INTEGER` or `TEXT`).
    pub const fn sql_type(self) -> &'static str {
        match self {
            FieldKind::Real | FieldKind::OptReal => "REAL",
            FieldKind::Count | FieldKind::Flag => "INTEGER",
            FieldKind::Text | FieldKind::Json => "TEXT",
        }
    }

    /// Whether a stored value of `value`'s storage class can be read into a field of this kind.
    /// `NULL` counts as taken: what it means is the reader's rule (our own rows hold it only in
    /// `Option` fields, and [`TelemetryRecord::set_field`] refuses it elsewhere; an import keeps
    /// the field's default).
    pub fn takes(self, value: StoredValue<'_>) -> bool {
        match value {
            StoredValue::Null => true,
            StoredValue::Integer(_) => !matches!(self, FieldKind::Text | FieldKind::Json),
            StoredValue::Real(_) => matches!(self, FieldKind::Real | FieldKind::OptReal),
            StoredValue::Text(_) => matches!(self, FieldKind::Text | FieldKind::Json),
            StoredValue::Blob(_) => false,
        }
    }

    /// Whether the column may hold `NULL` (only for `Option` fields).
    pub const fn nullable(self) -> bool {
        matches!(self, FieldKind::OptReal)
    }
}

/// One entry of [`RECORD_FIELDS`]: a field of [`TelemetryRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordField {
    /// The field's name: also its `telemetry` column, CSV header and JSON key.
    pub name: &'static str,
    /// How it is stored and written.
    pub kind: FieldKind,
}

/// The value of one field, borrowed from a record ([`TelemetryRecord::field_values`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue<'a> {
    /// A [`FieldKind::Real`] field.
    Real(f64),
    /// A [`FieldKind::OptReal`] field.
    OptReal(Option<f64>),
    /// A [`FieldKind::Count`] field.
    Count(u64),
    /// A [`FieldKind::Flag`] field.
    Flag(bool),
    /// A [`FieldKind::Text`] field (an enum as its stored string).
    Text(&'a str),
    /// A [`FieldKind::Json`] field.
    Json(&'a Value),
}

/// A value as SQLite stores it (its five storage classes), for [`TelemetryRecord::set_field`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StoredValue<'a> {
    /// `NULL`.
    Null,
    /// An integer.
    Integer(i64),
    /// A float.
    Real(f64),
    /// Text, as bytes (checked to be UTF-8 when read).
    Text(&'a [u8]),
    /// A blob (no field takes one).
    Blob(&'a [u8]),
}

impl StoredValue<'_> {
    /// The storage class's name, as rusqlite's `Type` prints it (`Null`, `Integer`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            StoredValue::Null => "Null",
            StoredValue::Integer(_) => "Integer",
            StoredValue::Real(_) => "Real",
            StoredValue::Text(_) => "Text",
            StoredValue::Blob(_) => "Blob",
        }
    }
}

/// A stored value that its field cannot take ([`TelemetryRecord::set_field`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {detail}")]
pub struct FieldDecodeError {
    /// The field (and column) it was meant for; `"?"` for an index beyond the table.
    pub field: &'static str,
    /// What was wrong with the value (`expected a number, found Text`, `negative count -1`, ...).
    pub detail: String,
}

/// How one Rust type of a record field is bound, decoded and written; sealed to the types the
/// record uses.
trait FieldType {
    const KIND: FieldKind;
    fn value(&self) -> FieldValue<'_>;
    fn set(&mut self, stored: StoredValue<'_>) -> Result<(), String>;
}

fn expected(what: &str, found: StoredValue<'_>) -> String {
    format!("expected {what}, found {}", found.type_name())
}

fn text(stored: StoredValue<'_>) -> Result<&str, String> {
    match stored {
        StoredValue::Text(t) => std::str::from_utf8(t).map_err(|e| e.to_string()),
        other => Err(expected("text", other)),
    }
}

impl FieldType for f64 {
    const KIND: FieldKind = FieldKind::Real;
    fn value(&self) -> FieldValue<'_> {
        FieldValue::Real(*self)
    }
    fn set(&mut self, stored: StoredValue<'_>) -> Result<(), String> {
        *self = match stored {
            StoredValue::Real(v) => v,
            StoredValue::Integer(v) => v as f64,
            other => return Err(expected("a number", other)),
        };
        Ok(())
    }
}

impl FieldType for Option<f64> {
    const KIND: FieldKind = FieldKind::OptReal;
    fn value(&self) -> FieldValue<'_> {
        FieldValue::OptReal(*self)
    }
    fn set(&mut self, stored: StoredValue<'_>) -> Result<(), String> {
        *self = match stored {
            StoredValue::Null => None,
            other => {
                let mut v = 0.0;
                v.set(other)?;
                Some(v)
            }
        };
        Ok(())
    }
}

fn integer(stored: StoredValue<'_>) -> Result<i64, String> {
    match stored {
        StoredValue::Integer(v) => Ok(v),
        other => Err(expected("an integer", other)),
    }
}

impl FieldType for u64 {
    const KIND: FieldKind = FieldKind::Count;
    fn value(&self) -> FieldValue<'_> {
        FieldValue::Count(*self)
    }
    fn set(&mut self, stored: StoredValue<'_>) -> Result<(), String> {
        let v = integer(stored)?;
        *self = u64::try_from(v).map_err(|_| format!("negative count {v}"))?;
        Ok(())
    }
}

impl FieldType for bool {
    const KIND: FieldKind = FieldKind::Flag;
    fn value(&self) -> FieldValue<'_> {
        FieldValue::Flag(*self)
    }
    fn set(&mut self, stored: StoredValue<'_>) -> Result<(), String> {
        *self = integer(stored)? != 0;
        Ok(())
    }
}

impl FieldType for String {
    const KIND: FieldKind = FieldKind::Text;
    fn value(&self) -> FieldValue<'_> {
        FieldValue::Text(self)
    }
    fn set(&mut self, stored: StoredValue<'_>) -> Result<(), String> {
        let t = text(stored)?;
        self.clear();
        self.push_str(t);
        Ok(())
    }
}

impl FieldType for EnergyMethod {
    const KIND: FieldKind = FieldKind::Text;
    fn value(&self) -> FieldValue<'_> {
        FieldValue::Text(self.as_str())
    }
    fn set(&mut self, stored: StoredValue<'_>) -> Result<(), String> {
        let t = text(stored)?;
        *self = EnergyMethod::parse(t).ok_or_else(|| format!("unknown energy method {t:?}"))?;
        Ok(())
    }
}

impl FieldType for Outcome {
    const KIND: FieldKind = FieldKind::Text;
    fn value(&self) -> FieldValue<'_> {
        FieldValue::Text(self.as_str())
    }
    fn set(&mut self, stored: StoredValue<'_>) -> Result<(), String> {
        let t = text(stored)?;
        *self = Outcome::parse(t).ok_or_else(|| format!("unknown outcome {t:?}"))?;
        Ok(())
    }
}

impl FieldType for Metadata {
    const KIND: FieldKind = FieldKind::Json;
    fn value(&self) -> FieldValue<'_> {
        FieldValue::Json(self.value())
    }
    fn set(&mut self, stored: StoredValue<'_>) -> Result<(), String> {
        *self = match text(stored)? {
            "{}" => Metadata::new(),
            s => match serde_json::from_str::<Value>(s) {
                Ok(v @ Value::Object(_)) => Metadata::from(v),
                Ok(_) => return Err("not a JSON object".to_owned()),
                Err(e) => return Err(format!("invalid JSON: {e}")),
            },
        };
        Ok(())
    }
}

/// The kind of the field that `get` reads; lets the table name fields without repeating types.
const fn kind_of<T: FieldType>(_get: fn(&TelemetryRecord) -> &T) -> FieldKind {
    T::KIND
}

type Setter = fn(&mut TelemetryRecord, StoredValue<'_>) -> Result<(), String>;

/// Builds the table, the column names, [`TelemetryRecord::field_values`] and the setters from
/// one list of field names, in column order.
macro_rules! record_fields {
    ($($name:ident),+ $(,)?) => {
        /// Every field of [`TelemetryRecord`], in `telemetry` column (and JSON key) order.
        pub const RECORD_FIELDS: [RecordField; FIELD_COUNT] = [$(
            RecordField {
                name: stringify!($name),
                kind: kind_of(|r| &r.$name),
            },
        )+];

        /// The names of [`RECORD_FIELDS`], in order: the `telemetry` columns holding record
        /// fields (all but `id` and `import_key`), the CSV header, the JSON keys.
        pub const RECORD_COLUMNS: [&str; FIELD_COUNT] = [$(stringify!($name)),+];

        /// Number of fields of [`TelemetryRecord`].
        pub const FIELD_COUNT: usize = [$(stringify!($name)),+].len();

        const SETTERS: [Setter; FIELD_COUNT] = [$(|r, v| FieldType::set(&mut r.$name, v)),+];

        impl TelemetryRecord {
            /// Every field's value, in [`RECORD_FIELDS`] order. Allocates nothing: this is the
            /// store's bind path.
            #[inline]
            pub fn field_values(&self) -> [FieldValue<'_>; FIELD_COUNT] {
                [$(FieldType::value(&self.$name)),+]
            }
        }
    };
}

record_fields![
    timestamp,
    model_id,
    engine,
    agent,
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
    energy_method,
    energy_vendor,
    batch_id,
    is_warmup,
    outcome,
    error_kind,
    error_message,
    tokens_counted,
    cost_unknown,
    metadata,
    server_prefill_ms,
    server_decode_ms,
    api,
    operation,
    reasoning_tokens,
    prompt_tokens_cache_write,
    output_chunks,
];

/// The position of field `name` in [`RECORD_FIELDS`]; `None` for a name that is no field.
/// A `const fn`, so column subsets can be resolved at compile time.
pub const fn field_index(name: &str) -> Option<usize> {
    let mut i = 0;
    while i < FIELD_COUNT {
        if const_eq(RECORD_COLUMNS[i].as_bytes(), name.as_bytes()) {
            return Some(i);
        }
        i += 1;
    }
    None
}

const fn const_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

impl TelemetryRecord {
    /// Sets field `index` (of [`RECORD_FIELDS`]) from a stored value: how every reader decodes a
    /// `telemetry` row. The error names the field and says what was wrong (a value of the wrong
    /// storage class, a negative count, an unknown enum string, metadata that is not a JSON
    /// object); the record is then left unchanged in that field.
    pub fn set_field(
        &mut self,
        index: usize,
        stored: StoredValue<'_>,
    ) -> Result<(), FieldDecodeError> {
        let Some(set) = SETTERS.get(index) else {
            return Err(FieldDecodeError {
                field: "?",
                detail: format!("no field at index {index} (there are {FIELD_COUNT})"),
            });
        };
        set(self, stored).map_err(|detail| FieldDecodeError {
            field: RECORD_COLUMNS[index],
            detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_rust_types() {
        let kind = |name| RECORD_FIELDS[field_index(name).unwrap_or(usize::MAX)].kind;
        assert_eq!(kind("timestamp"), FieldKind::Real);
        assert_eq!(kind("ttft"), FieldKind::OptReal);
        assert_eq!(kind("prompt_tokens"), FieldKind::Count);
        assert_eq!(kind("is_streaming"), FieldKind::Flag);
        assert_eq!(kind("model_id"), FieldKind::Text);
        assert_eq!(kind("outcome"), FieldKind::Text);
        assert_eq!(kind("metadata"), FieldKind::Json);
        assert_eq!(field_index("no_such_field"), None);
    }

    #[test]
    fn values_set_back_give_the_same_record() {
        let mut r = TelemetryRecord::builder("m", 1_764_300_000.0)
            .tokens(3, 4)
            .ttft(0.5)
            .energy(2.0, EnergyMethod::Counter)
            .error("timeout", "slow")
            .metadata(serde_json::json!({"a": [1, 2]}))
            .build();
        r.is_warmup = true;
        let mut back = TelemetryRecord::default();
        for (i, v) in r.field_values().iter().enumerate() {
            let json;
            let stored = match *v {
                FieldValue::Real(v) => StoredValue::Real(v),
                FieldValue::OptReal(v) => v.map_or(StoredValue::Null, StoredValue::Real),
                FieldValue::Count(v) => StoredValue::Integer(v as i64),
                FieldValue::Flag(v) => StoredValue::Integer(i64::from(v)),
                FieldValue::Text(s) => StoredValue::Text(s.as_bytes()),
                FieldValue::Json(v) => {
                    json = v.to_string();
                    StoredValue::Text(json.as_bytes())
                }
            };
            back.set_field(i, stored).unwrap();
        }
        assert_eq!(back, r);
    }

    #[test]
    fn bad_values_name_the_field_and_the_problem() {
        let mut r = TelemetryRecord::default();
        let err = |r: &mut TelemetryRecord, name, v| {
            r.set_field(field_index(name).unwrap(), v).unwrap_err()
        };
        let e = err(&mut r, "latency_seconds", StoredValue::Text(b"x"));
        assert_eq!(e.field, "latency_seconds");
        assert_eq!(e.detail, "expected a number, found Text");
        let e = err(&mut r, "prompt_tokens", StoredValue::Integer(-2));
        assert_eq!(e.detail, "negative count -2");
        let e = err(&mut r, "outcome", StoredValue::Text(b"maybe"));
        assert_eq!(e.detail, "unknown outcome \"maybe\"");
        let e = err(&mut r, "energy_method", StoredValue::Text(b"guess"));
        assert_eq!(e.detail, "unknown energy method \"guess\"");
        let e = err(&mut r, "metadata", StoredValue::Text(b"[1]"));
        assert_eq!(e.detail, "not a JSON object");
        let e = err(&mut r, "metadata", StoredValue::Text(b"{"));
        assert!(e.detail.starts_with("invalid JSON: "), "{e}");
        let e = err(&mut r, "is_warmup", StoredValue::Real(1.0));
        assert_eq!(e.detail, "expected an integer, found Real");
        let e = err(&mut r, "model_id", StoredValue::Null);
        assert_eq!(e.detail, "expected text, found Null");
        let e = r.set_field(FIELD_COUNT, StoredValue::Null).unwrap_err();
        assert_eq!(e.field, "?");
        assert_eq!(r, TelemetryRecord::default());
    }

    /// Every field of the struct has exactly one entry in the table, in declaration order (which
    /// is serde's key order): a field added to the struct but not to the table fails here.
    #[cfg(feature = "serde")]
    #[test]
    fn every_record_field_has_exactly_one_column_in_json_order() {
        let Ok(Value::Object(json)) = serde_json::to_value(TelemetryRecord::default()) else {
            panic!("a record serializes to an object");
        };
        let keys: Vec<&str> = json.keys().map(String::as_str).collect();
        let mut sorted = RECORD_COLUMNS.to_vec();
        sorted.sort_unstable();
        let mut sorted_keys = keys.clone();
        sorted_keys.sort_unstable();
        assert_eq!(sorted_keys, sorted, "struct fields and table differ");
        let mut unique = sorted.clone();
        unique.dedup();
        assert_eq!(unique.len(), FIELD_COUNT, "a field is listed twice");
    }

    /// JSON writes the fields in table order (what CSV and the columns use).
    #[cfg(feature = "serde")]
    #[test]
    fn json_keys_come_in_table_order() {
        let text = serde_json::to_string(&TelemetryRecord::default()).unwrap_or_default();
        let positions: Vec<usize> = RECORD_COLUMNS
            .iter()
            .map(|c| text.find(&format!("\"{c}\":")).unwrap_or(usize::MAX))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    }
}
