//! `telemetry export`: streams records as JSON, NDJSON or CSV, in constant memory.

mod otlp;

use std::io::{BufWriter, Write};

use telemetry_core::TelemetryRecord;
use telemetry_core::schema::RECORD_COLUMNS;

use crate::cli::{ExportArgs, ExportFormat};
use crate::csv_record;
use crate::dbpath::DbPath;
use crate::emit::emit;
use crate::error::CliError;
use crate::outfile::OutputFile;
use crate::output::{self, count};
use crate::progress;
use crate::read::{open_aggregator, time_range};

/// Runs `export`.
pub fn run(db: &DbPath, args: &ExportArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if args.format == ExportFormat::Otlp {
        return otlp::backfill(db, args, out);
    }
    let agg = open_aggregator(db)?;
    let range = time_range(&args.range)?;
    let records = agg.export_records(&range)?;

    // The output file is checked and created before anything is read, and renamed into place
    // only once complete.
    let mut file = match &args.output {
        Some(path) => Some(OutputFile::create(&db.path, path)?),
        None => None,
    };
    let (mut sink, target): (Box<dyn Write + '_>, String) = match (&mut file, &args.output) {
        (Some(file), Some(path)) => (Box::new(BufWriter::new(file.file())), output::path(path)),
        _ => (Box::new(BufWriter::new(&mut *out)), "stdout".to_string()),
    };
    let show = args.output.is_some() && progress::enabled();
    let total = if show { agg.record_count(&range)? } else { 0 };
    let bar = progress::bar(total, "records", show);

    let write_err = |source| CliError::Output {
        target: target.clone(),
        source,
    };
    let mut written: u64 = 0;
    let mut encoder = Encoder::new(args.format, args.raw);
    encoder.begin(&mut sink).map_err(write_err)?;
    for record in records {
        let record = record?;
        encoder.write(&mut sink, &record).map_err(|e| match e {
            EncodeError::Io(source) => write_err(source),
            EncodeError::Json(e) => CliError::Json(e),
        })?;
        written += 1;
        bar.inc(1);
    }
    encoder.end(&mut sink).map_err(write_err)?;
    sink.flush().map_err(write_err)?;
    drop(sink);
    if let Some(file) = file {
        file.commit()?;
    }
    bar.finish_and_clear();

    match &args.output {
        Some(path) => emit(
            out,
            &format!(
                "wrote {} records to {}\n",
                count(written),
                output::path(path)
            ),
        ),
        // The data went to stdout: the count goes to stderr so it does not corrupt it.
        None => {
            eprintln!("telemetry: wrote {} records", count(written));
            Ok(())
        }
    }
}

/// Why encoding one record failed.
enum EncodeError {
    Io(std::io::Error),
    Json(serde_json::Error),
}

impl From<std::io::Error> for EncodeError {
    fn from(e: std::io::Error) -> Self {
        EncodeError::Io(e)
    }
}

impl From<serde_json::Error> for EncodeError {
    fn from(e: serde_json::Error) -> Self {
        match e.io_error_kind() {
            Some(kind) => EncodeError::Io(std::io::Error::new(kind, e)),
            None => EncodeError::Json(e),
        }
    }
}

/// Writes records one at a time in the chosen format.
struct Encoder {
    format: ExportFormat,
    /// CSV text cells exactly as stored (`--raw`).
    raw: bool,
    first: bool,
    /// Reused CSV line buffer.
    line: String,
}

impl Encoder {
    fn new(format: ExportFormat, raw: bool) -> Self {
        Encoder {
            format,
            raw,
            first: true,
            line: String::new(),
        }
    }

    fn begin(&mut self, w: &mut dyn Write) -> std::io::Result<()> {
        match self.format {
            ExportFormat::Json => w.write_all(b"["),
            ExportFormat::Ndjson | ExportFormat::Otlp => Ok(()),
            ExportFormat::Csv => {
                let mut header = String::new();
                csv_record::write_header(&mut header, RECORD_COLUMNS);
                w.write_all(header.as_bytes())
            }
        }
    }

    fn write(&mut self, w: &mut dyn Write, record: &TelemetryRecord) -> Result<(), EncodeError> {
        match self.format {
            ExportFormat::Json => {
                w.write_all(if self.first { b"\n" } else { b",\n" })?;
                serde_json::to_writer(&mut *w, record)?;
            }
            ExportFormat::Ndjson => {
                serde_json::to_writer(&mut *w, record)?;
                w.write_all(b"\n")?;
            }
            // Sent by `otlp::backfill`, never through this encoder.
            ExportFormat::Otlp => {}
            ExportFormat::Csv => {
                self.line.clear();
                csv_record::write_record(&mut self.line, record, self.raw);
                w.write_all(self.line.as_bytes())?;
            }
        }
        self.first = false;
        Ok(())
    }

    fn end(&mut self, w: &mut dyn Write) -> std::io::Result<()> {
        match self.format {
            ExportFormat::Json if self.first => w.write_all(b"]\n"),
            ExportFormat::Json => w.write_all(b"\n]\n"),
            ExportFormat::Ndjson | ExportFormat::Csv | ExportFormat::Otlp => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn json_array_is_valid_with_zero_one_and_two_records() {
        let record = TelemetryRecord::builder("m", 1_764_300_000.0).build();
        for n in 0..3 {
            let mut buf = Vec::new();
            let mut enc = Encoder::new(ExportFormat::Json, false);
            enc.begin(&mut buf).unwrap();
            for _ in 0..n {
                assert!(enc.write(&mut buf, &record).is_ok());
            }
            enc.end(&mut buf).unwrap();
            let parsed: Vec<Value> = serde_json::from_slice(&buf).unwrap();
            assert_eq!(parsed.len(), n);
        }
    }
}
