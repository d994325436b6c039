//! One [`TelemetryRecord`] as a CSV line, columns in `telemetry` table order.
//!
//! Written field by field from core's field table ([`TelemetryRecord::field_values`]) rather than
//! through serde: CSV cannot hold the nested metadata object, and going through
//! `serde_json::Value` costs about four times as much per record. The tests check the values
//! against the record's JSON, column by column.
//!
//! By default the text cells are made safe for spreadsheets ([`spreadsheet_safe`]); `--raw`
//! keeps them exact.

use std::borrow::Cow;

#[cfg(test)]
use telemetry_core::schema::RECORD_COLUMNS;
use telemetry_core::{FieldValue, TelemetryRecord};

/// Appends `record` to `line` as one CSV line (newline included): numbers in Rust's shortest
/// round-trip form, `None` as an empty field, booleans `true`/`false`, enums as their stored
/// strings, metadata as JSON text, RFC 4180 quoting. Unless `raw`, text cells go through
/// [`spreadsheet_safe`].
pub fn write_record(line: &mut String, r: &TelemetryRecord, raw: bool) {
    let mut w = Fields {
        line,
        first: true,
        raw,
    };
    for value in r.field_values() {
        match value {
            FieldValue::Real(v) => w.num(v),
            FieldValue::OptReal(v) => w.opt(v),
            FieldValue::Count(v) => w.int(v),
            FieldValue::Flag(v) => w.flag(v),
            FieldValue::Text(v) => w.text(v),
            FieldValue::Json(v) => w.text(&v.to_string()),
        }
    }
    w.line.push('\n');
}

/// Appends a header line of `names`.
pub fn write_header<'a>(line: &mut String, names: impl IntoIterator<Item = &'a str>) {
    let mut w = Fields {
        line,
        first: true,
        raw: true,
    };
    for name in names {
        w.text(name);
    }
    w.line.push('\n');
}

/// A CSV cell that a spreadsheet will show as text rather than evaluate, following the OWASP rule
/// for CSV injection: a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a
/// leading `'` (`=HYPERLINK(...)` becomes `'=HYPERLINK(...)`). Other cells are returned as is.
pub fn spreadsheet_safe(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

struct Fields<'a> {
    line: &'a mut String,
    first: bool,
    /// Text cells exactly as stored (no [`spreadsheet_safe`]).
    raw: bool,
}

impl Fields<'_> {
    fn sep(&mut self) {
        if !self.first {
            self.line.push(',');
        }
        self.first = false;
    }

    fn text(&mut self, s: &str) {
        self.sep();
        let s = if self.raw {
            Cow::Borrowed(s)
        } else {
            spreadsheet_safe(s)
        };
        if s.contains([',', '"', '\n', '\r']) {
            self.line.push('"');
            self.line.push_str(&s.replace('"', "\"\""));
            self.line.push('"');
        } else {
            self.line.push_str(&s);
        }
    }

    fn num(&mut self, v: f64) {
        use std::fmt::Write as _;
        self.sep();
        let _ = write!(self.line, "{v}");
    }

    fn opt(&mut self, v: Option<f64>) {
        match v {
            Some(v) => self.num(v),
            None => self.sep(),
        }
    }

    fn int(&mut self, v: u64) {
        use std::fmt::Write as _;
        self.sep();
        let _ = write!(self.line, "{v}");
    }

    fn flag(&mut self, v: bool) {
        self.sep();
        self.line.push_str(if v { "true" } else { "false" });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use telemetry_core::EnergyMethod;

    fn parse(line: &str) -> Vec<String> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(line.as_bytes());
        let row = reader.records().next().unwrap().unwrap();
        row.iter().map(str::to_string).collect()
    }

    fn sample() -> TelemetryRecord {
        let mut r = TelemetryRecord::builder("m,\"1\"", 1_764_300_000.5)
            .engine("vllm")
            .agent("line\nbreak")
            .tokens(3, 4)
            .latency_seconds(0.1 + 0.2)
            .ttft(0.05)
            .energy(12.25, EnergyMethod::Counter)
            .error("timeout", "took, too long")
            .metadata(serde_json::json!({"k": "v", "n": [1, 2]}))
            .build();
        r.is_streaming = true;
        r.p99_itl_ms = Some(1e-7);
        r.server_prefill_ms = Some(41.5);
        r
    }

    #[test]
    fn every_column_matches_the_records_json() {
        let record = sample();
        let mut line = String::new();
        write_record(&mut line, &record, true);
        let fields = parse(&line);
        assert_eq!(fields.len(), RECORD_COLUMNS.len());
        let Value::Object(json) = serde_json::to_value(&record).unwrap() else {
            panic!("record is not an object")
        };
        for (column, field) in RECORD_COLUMNS.iter().zip(&fields) {
            match &json[*column] {
                Value::Null => assert_eq!(field, "", "{column}"),
                Value::String(s) => assert_eq!(field, s, "{column}"),
                Value::Number(n) => {
                    assert_eq!(field.parse::<f64>().ok(), n.as_f64(), "{column}: {field}")
                }
                Value::Bool(b) => assert_eq!(field, &b.to_string(), "{column}"),
                other => assert_eq!(
                    serde_json::from_str::<Value>(field).unwrap(),
                    *other,
                    "{column}"
                ),
            }
        }
    }

    #[test]
    fn formula_cells_are_prefixed_unless_raw() {
        for (cell, safe) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("llama-3", "llama-3"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(spreadsheet_safe(cell), safe, "{cell:?}");
        }
        let record = TelemetryRecord::builder("=1+2", 1_764_300_000.0)
            .engine("@SUM(A1)")
            .agent("-x")
            .build();
        let fields = |raw: bool| {
            let mut line = String::new();
            write_record(&mut line, &record, raw);
            parse(&line)
        };
        assert_eq!(fields(false)[1..4], ["'=1+2", "'@SUM(A1)", "'-x"]);
        assert_eq!(fields(true)[1..4], ["=1+2", "@SUM(A1)", "-x"]);
        // Numbers are never prefixed: they are numbers, not formulas.
        assert_eq!(fields(false)[0], "1764300000");
    }

    #[test]
    fn header_quotes_like_fields() {
        let mut line = String::new();
        write_header(&mut line, ["a", "b,c", "say \"hi\""]);
        assert_eq!(line, "a,\"b,c\",\"say \"\"hi\"\"\"\n");
    }
}
