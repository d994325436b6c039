//! The one description of [`Rollup`]'s aggregates: [`ROLLUP_FIELDS`], the summary rows' table
//! beside the record's ([`RECORD_FIELDS`](crate::RECORD_FIELDS)).
//!
//! Each aggregate is named once below, with its column, its kind and how it is built from a
//! record; how it is merged, encoded (the store's write, [`Rollup::values`]) and decoded (the
//! store's and the readers' [`Rollup::merge_stored`]) follows from its kind ([`RollupKind`]). The
//! `telemetry_rollup` column list ([`ROLLUP_COLUMNS`](crate::schema::ROLLUP_COLUMNS)) derives
//! from the table, and [`ROLLUP_INPUTS`] lists the record fields the aggregates read, for readers
//! that rebuild rollups from raw rows.
//!
//! Adding an aggregate means: one line in the table (and its input field in [`ROLLUP_INPUTS`] if
//! new), and a migration in [`schema`](crate::schema) that adds its column and fills it for the
//! stored rollups. Readers then show it where they choose to.

use crate::fields::{FIELD_COUNT, StoredValue, field_index};
use crate::record::TelemetryRecord;
use crate::sketch::QuantileSketch;

/// How an aggregate is stored and merged; follows from its Rust type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RollupKind {
    /// `u64` count or token sum, saturating at [`Rollup::COUNT_MAX`]: `INTEGER NOT NULL`.
    Count,
    /// `f64` sum: `REAL NOT NULL`.
    Sum,
    /// [`QuantileSketch`], merged by bucket counts: a `BLOB NOT NULL` of
    /// [`QuantileSketch::to_bytes`].
    Sketch,
}

impl RollupKind {
    /// The SQLite column type (`INTEGER`, `REAL` or `BLOB`).
    pub const fn sql_type(self) -> &'static str {
        match self {
            RollupKind::Count => "INTEGER",
            RollupKind::Sum => "REAL",
            RollupKind::Sketch => "BLOB",
        }
    }
}

/// One entry of [`ROLLUP_FIELDS`]: an aggregate of [`Rollup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollupField {
    /// Its `telemetry_rollup` column.
    pub name: &'static str,
    /// How it is stored and merged.
    pub kind: RollupKind,
}

/// The value of one aggregate, borrowed from a rollup ([`Rollup::values`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RollupValue<'a> {
    /// A [`RollupKind::Count`] aggregate.
    Count(u64),
    /// A [`RollupKind::Sum`] aggregate.
    Sum(f64),
    /// A [`RollupKind::Sketch`] aggregate.
    Sketch(&'a QuantileSketch),
}

/// A stored value that its aggregate cannot take ([`Rollup::merge_stored`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column `{column}`: {detail}")]
pub struct RollupDecodeError {
    /// The column; `"?"` for an index beyond the table.
    pub column: &'static str,
    /// What was wrong (`negative count -1`, `expected a blob, found Integer`, ...).
    pub detail: String,
}

/// `*sum += add`, stopping at [`Rollup::COUNT_MAX`].
pub(crate) fn sat(sum: &mut u64, add: u64) {
    *sum = sum.saturating_add(add).min(Rollup::COUNT_MAX);
}

fn expected(what: &str, found: StoredValue<'_>) -> String {
    format!("expected {what}, found {}", found.type_name())
}

fn merge_count(into: &mut u64, stored: StoredValue<'_>) -> Result<(), String> {
    let v = match stored {
        StoredValue::Integer(v) => v,
        other => return Err(expected("an integer", other)),
    };
    sat(
        into,
        u64::try_from(v).map_err(|_| format!("negative count {v}"))?,
    );
    Ok(())
}

fn merge_sum(into: &mut f64, stored: StoredValue<'_>) -> Result<(), String> {
    *into += match stored {
        StoredValue::Real(v) => v,
        StoredValue::Integer(v) => v as f64,
        other => return Err(expected("a number", other)),
    };
    Ok(())
}

fn merge_sketch(into: &mut QuantileSketch, stored: StoredValue<'_>) -> Result<(), String> {
    let StoredValue::Blob(bytes) = stored else {
        return Err(expected("a blob", stored));
    };
    let sketch = QuantileSketch::from_bytes(bytes).map_err(|e| e.to_string())?;
    if into.is_empty() {
        // Decoding into a fresh rollup keeps the stored sketch as it is.
        *into = sketch;
    } else {
        into.merge(&sketch);
    }
    Ok(())
}

macro_rules! rollup_type {
    (Count) => {
        u64
    };
    (Sum) => {
        f64
    };
    (Sketch) => {
        QuantileSketch
    };
}

macro_rules! rollup_column {
    ($name:ident) => {
        stringify!($name)
    };
    ($name:ident $column:literal) => {
        $column
    };
}

macro_rules! rollup_add {
    (Count, $into:expr, $v:expr) => {
        sat(&mut $into, $v)
    };
    (Sum, $into:expr, $v:expr) => {
        $into += $v
    };
    (Sketch, $into:expr, $v:expr) => {
        if let Some(v) = $v {
            $into.add(v);
        }
    };
}

macro_rules! rollup_merge {
    (Count, $into:expr, $other:expr) => {
        sat(&mut $into, $other)
    };
    (Sum, $into:expr, $other:expr) => {
        $into += $other
    };
    (Sketch, $into:expr, $other:expr) => {
        $into.merge(&$other)
    };
}

macro_rules! rollup_value {
    (Count, $v:expr) => {
        RollupValue::Count($v)
    };
    (Sum, $v:expr) => {
        RollupValue::Sum($v)
    };
    (Sketch, $v:expr) => {
        RollupValue::Sketch(&$v)
    };
}

macro_rules! rollup_merge_stored {
    (Count) => {
        |r, v| merge_count(r, v)
    };
    (Sum) => {
        |r, v| merge_sum(r, v)
    };
    (Sketch) => {
        |r, v| merge_sketch(r, v)
    };
}

/// Declares [`Rollup`], [`ROLLUP_FIELDS`] and everything that follows from them, from one list:
/// `name: Kind ["column" if not the name] = |record| value;` where the value is what one record
/// adds (`u64` for a count, `f64` for a sum, `Option<f64>` for a sketch).
macro_rules! rollup_fields {
    ($( $(#[$doc:meta])* $name:ident : $kind:ident $($column:literal)? = |$r:ident| $from:expr ; )*) => {
        /// Sums, counts and sketches of a set of records. Every field merges by addition, so
        /// rollups of disjoint sets combine into the rollup of their union.
        ///
        /// Means are over the records that have the value: `ttft_sum / ttft_count`, and so on.
        /// Ratios are ratios of sums: energy per output token is
        /// `energy_sum / energy_completion_tokens`, over the records that have an energy
        /// measurement. Each field is described once, in [`ROLLUP_FIELDS`].
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct Rollup {
            $( $(#[$doc])* pub $name: rollup_type!($kind), )*
        }

        /// The aggregates of [`Rollup`], in field order: their `telemetry_rollup` columns (after
        /// the key columns `level`, `bucket_start`, `model_id`, `engine`, `agent`) and kinds.
        pub const ROLLUP_FIELDS: &[RollupField] = &[
            $( RollupField { name: rollup_column!($name $($column)?), kind: RollupKind::$kind }, )*
        ];

        /// Aggregates in [`Rollup`] (the length of [`ROLLUP_FIELDS`]).
        pub const ROLLUP_FIELD_COUNT: usize = [$(stringify!($name)),*].len();

        /// How each aggregate takes a stored value, in [`ROLLUP_FIELDS`] order.
        const MERGE_STORED: &[fn(&mut Rollup, StoredValue<'_>) -> Result<(), String>] = &[
            $( |r, v| (rollup_merge_stored!($kind))(&mut r.$name, v), )*
        ];

        impl Rollup {
            /// Adds one (validated) record. Counts saturate at [`Rollup::COUNT_MAX`] rather than
            /// wrap.
            pub fn add(&mut self, record: &TelemetryRecord) {
                $( {
                    let $r = record;
                    rollup_add!($kind, self.$name, $from);
                } )*
            }

            /// Adds everything in `other` (counts saturate at [`Rollup::COUNT_MAX`]).
            pub fn merge(&mut self, other: &Rollup) {
                $( rollup_merge!($kind, self.$name, other.$name); )*
            }

            /// The aggregates' values, in [`ROLLUP_FIELDS`] order (what the store writes).
            pub fn values(&self) -> [RollupValue<'_>; ROLLUP_FIELD_COUNT] {
                [ $( rollup_value!($kind, self.$name), )* ]
            }
        }
    };
}

rollup_fields! {
    /// Records.
    call_count: Count = |_r| 1;
    /// Records with outcome `error`.
    error_count: Count = |r| u64::from(r.is_error());
    /// Σ prompt tokens.
    prompt_tokens: Count = |r| r.prompt_tokens;
    /// Σ completion tokens.
    completion_tokens: Count = |r| r.completion_tokens;
    /// Σ total tokens.
    total_tokens: Count = |r| r.total_tokens;
    /// Σ latency, seconds.
    total_latency: Sum = |r| r.latency_seconds;
    /// Σ cost, USD.
    total_cost: Sum = |r| r.cost_usd;
    /// Σ TTFT over records that have one.
    ttft_sum: Sum = |r| r.ttft.unwrap_or(0.0);
    /// Records with a TTFT.
    ttft_count: Count = |r| u64::from(r.ttft.is_some());
    /// Σ energy, joules, over records that have one.
    energy_sum: Sum = |r| r.energy_joules.unwrap_or(0.0);
    /// Records with an energy measurement.
    energy_count: Count = |r| u64::from(r.energy_joules.is_some());
    /// Σ completion tokens over records with an energy measurement.
    energy_completion_tokens: Count =
        |r| if r.energy_joules.is_some() { r.completion_tokens } else { 0 };
    /// Σ prefill energy, joules.
    prefill_energy_sum: Sum = |r| r.prefill_energy_joules.unwrap_or(0.0);
    /// Σ decode energy, joules.
    decode_energy_sum: Sum = |r| r.decode_energy_joules.unwrap_or(0.0);
    /// Σ GPU utilization over records that have one.
    gpu_util_sum: Sum = |r| r.gpu_utilization_pct.unwrap_or(0.0);
    /// Records with a GPU utilization.
    gpu_util_count: Count = |r| u64::from(r.gpu_utilization_pct.is_some());
    /// Σ throughput over records that have one.
    throughput_sum: Sum = |r| r.throughput_tok_per_sec.unwrap_or(0.0);
    /// Records with a throughput.
    throughput_count: Count = |r| u64::from(r.throughput_tok_per_sec.is_some());
    /// Latency, seconds.
    latency: Sketch "latency_sketch" = |r| Some(r.latency_seconds);
    /// TTFT, seconds.
    ttft: Sketch "ttft_sketch" = |r| r.ttft;
    /// Per-call mean inter-token latency, milliseconds.
    itl: Sketch "itl_sketch" = |r| r.mean_itl_ms;
    /// Σ the server's own prefill time (llama.cpp `timings`), milliseconds, over records that
    /// have it.
    server_prefill_ms_sum: Sum = |r| r.server_prefill_ms.unwrap_or(0.0);
    /// Σ the server's own decode time, milliseconds, over records that have it.
    server_decode_ms_sum: Sum = |r| r.server_decode_ms.unwrap_or(0.0);
}

impl Rollup {
    /// Largest value a count or token sum holds: `i64::MAX`, so that every sum fits an SQLite
    /// INTEGER. Sums stop there rather than wrap or fail (with validated records, at most
    /// [`MAX_TOKENS`](crate::MAX_TOKENS) tokens each, that takes over 9 × 10^9 calls in one bucket).
    pub const COUNT_MAX: u64 = i64::MAX as u64;

    /// Adds the stored value of aggregate `index` (of [`ROLLUP_FIELDS`]) to this rollup: decoding
    /// a stored row is merging its columns into [`Rollup::default`]. A value of the wrong
    /// storage class, a negative count or a sketch that does not decode is an error naming the
    /// column.
    pub fn merge_stored(
        &mut self,
        index: usize,
        stored: StoredValue<'_>,
    ) -> Result<(), RollupDecodeError> {
        let Some(merge) = MERGE_STORED.get(index) else {
            return Err(RollupDecodeError {
                column: "?",
                detail: format!("no aggregate at index {index} (there are {ROLLUP_FIELD_COUNT})"),
            });
        };
        merge(self, stored).map_err(|detail| RollupDecodeError {
            column: ROLLUP_FIELDS[index].name,
            detail,
        })
    }
}

/// The record fields that [`Rollup::add`] and a rollup's key ([`RollupKey`](crate::RollupKey))
/// read, in [`RECORD_FIELDS`](crate::RECORD_FIELDS) order: what a reader selects from raw rows to
/// rebuild rollups (a test checks that a record holding only these fields adds up the same).
pub const ROLLUP_INPUTS: &[&str] = &[
    "timestamp",
    "model_id",
    "engine",
    "agent",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "latency_seconds",
    "ttft",
    "cost_usd",
    "energy_joules",
    "gpu_utilization_pct",
    "throughput_tok_per_sec",
    "mean_itl_ms",
    "prefill_energy_joules",
    "decode_energy_joules",
    "outcome",
    "server_prefill_ms",
    "server_decode_ms",
];

/// Where each of [`ROLLUP_INPUTS`] is in [`RECORD_FIELDS`](crate::RECORD_FIELDS), for
/// [`TelemetryRecord::set_field`]; resolved at compile time (a name that is no field does not
/// compile).
pub const ROLLUP_INPUT_FIELDS: [usize; ROLLUP_INPUTS.len()] = {
    let mut out = [0; ROLLUP_INPUTS.len()];
    let mut i = 0;
    while i < ROLLUP_INPUTS.len() {
        out[i] = match field_index(ROLLUP_INPUTS[i]) {
            Some(f) => f,
            None => panic!("a rollup input is not a record field"),
        };
        assert!(
            i == 0 || out[i] > out[i - 1],
            "rollup inputs out of field order"
        );
        i += 1;
    }
    assert!(out[ROLLUP_INPUTS.len() - 1] < FIELD_COUNT);
    out
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::FieldValue;
    use crate::record::EnergyMethod;

    fn stored(v: FieldValue<'_>) -> StoredValue<'_> {
        match v {
            FieldValue::Real(x) => StoredValue::Real(x),
            FieldValue::OptReal(x) => x.map_or(StoredValue::Null, StoredValue::Real),
            FieldValue::Count(x) => StoredValue::Integer(x as i64),
            FieldValue::Flag(x) => StoredValue::Integer(i64::from(x)),
            FieldValue::Text(t) => StoredValue::Text(t.as_bytes()),
            FieldValue::Json(_) => StoredValue::Text(b"{}"),
        }
    }

    fn full_record() -> TelemetryRecord {
        let mut r = TelemetryRecord::builder("m", 1.7e9)
            .engine("e")
            .agent("a")
            .tokens(11, 22)
            .latency_seconds(1.5)
            .ttft(0.25)
            .cost_usd(0.01)
            .energy(40.0, EnergyMethod::Counter)
            .server_timings(12.0, 34.0)
            .error("timeout", "slow")
            .build();
        r.gpu_utilization_pct = Some(55.0);
        r.throughput_tok_per_sec = Some(14.0);
        r.mean_itl_ms = Some(9.0);
        r.prefill_energy_joules = Some(10.0);
        r.decode_energy_joules = Some(30.0);
        r
    }

    #[test]
    fn the_inputs_are_all_that_add_reads() {
        let full = full_record();
        let values = full.field_values();
        let mut only_inputs = TelemetryRecord::default();
        for f in ROLLUP_INPUT_FIELDS {
            only_inputs.set_field(f, stored(values[f])).unwrap();
        }
        let (mut a, mut b) = (Rollup::default(), Rollup::default());
        a.add(&full);
        b.add(&only_inputs);
        assert_eq!(a, b);
        assert_eq!(a.error_count, 1);
    }

    #[test]
    fn stored_values_decode_to_the_same_rollup() {
        let mut r = Rollup::default();
        r.add(&full_record());
        r.add(&TelemetryRecord::builder("m", 1.7e9).build());
        let bytes: Vec<Vec<u8>> = r
            .values()
            .iter()
            .map(|v| match v {
                RollupValue::Sketch(s) => s.to_bytes(),
                _ => Vec::new(),
            })
            .collect();
        let mut back = Rollup::default();
        for (i, v) in r.values().iter().enumerate() {
            let stored = match *v {
                RollupValue::Count(c) => StoredValue::Integer(c as i64),
                RollupValue::Sum(s) => StoredValue::Real(s),
                RollupValue::Sketch(_) => StoredValue::Blob(&bytes[i]),
            };
            back.merge_stored(i, stored).unwrap();
        }
        assert_eq!(back, r);
    }

    #[test]
    fn bad_stored_values_name_their_column() {
        let mut r = Rollup::default();
        let e = r.merge_stored(0, StoredValue::Integer(-1)).unwrap_err();
        assert_eq!(
            (e.column, e.detail.as_str()),
            ("call_count", "negative count -1")
        );
        let latency = ROLLUP_FIELDS
            .iter()
            .position(|f| f.name == "latency_sketch")
            .unwrap();
        let e = r
            .merge_stored(latency, StoredValue::Integer(3))
            .unwrap_err();
        assert_eq!(e.detail, "expected a blob, found Integer");
        assert_eq!(
            r.merge_stored(99, StoredValue::Null).unwrap_err().column,
            "?"
        );
    }

    #[test]
    fn columns_are_unique_and_sketches_are_blobs() {
        let mut names: Vec<&str> = ROLLUP_FIELDS.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ROLLUP_FIELD_COUNT);
        for f in ROLLUP_FIELDS {
            assert_eq!(
                f.kind == RollupKind::Sketch,
                f.name.ends_with("_sketch"),
                "{}",
                f.name
            );
        }
    }
}
