//! Sustained ingest, records/s: a plain rusqlite loop (the raw limit, with SQLite's defaults and
//! with the store's pragmas: `raw_tuned`, the fair baseline) against `record`, `record_arc` and
//! the bus path, all into the same `telemetry` table in fresh files; records 10 ms apart (dense)
//! and one a minute over 69 days (spread: a backfill, few records per hour; before minute rows were
//! kept for busy hours only, nearly every record opened its own minute rollup row).
//!
//! `cargo bench -p telemetry-store --bench ingest` (100 000 rows per iteration);
//! `TELEMETRY_BENCH_FULL=1` uses 1 000 000. CI runs each benchmark once (criterion's test mode). After criterion, the
//! paths are run alternately and the median per-round ratio to raw is printed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, ToSql, params_from_iter};
use serde_json::json;
use telemetry_core::schema::{MIGRATIONS, RECORD_COLUMNS};
use telemetry_core::{EnergyMethod, Event, EventBus, FieldValue, TelemetryRecord};
use telemetry_store::TelemetryStore;

fn rows() -> usize {
    if std::env::var_os("TELEMETRY_BENCH_FULL").is_some() {
        1_000_000
    } else {
        100_000
    }
}

/// How far apart the records are in time.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Spread {
    /// 10 ms apart: a live stream, many records per minute rollup row.
    Dense,
    /// One a minute (100 000 rows span 69 days): a backfill or import, 60 records an hour
    /// (sparse hours: hour and day rows only).
    Spread,
}

/// Realistic records: a few models and agents, most optional fields set, small metadata.
fn records(n: usize, spread: Spread) -> Vec<Arc<TelemetryRecord>> {
    let gap = match spread {
        Spread::Dense => 0.01,
        Spread::Spread => 60.0,
    };
    (0..n)
        .map(|i| {
            let mut r = TelemetryRecord::builder(
                ["llama-3.1-8b", "qwen2.5-7b", "mistral-7b"][i % 3],
                1_764_300_000.0 - 86_400.0 * 100.0 + i as f64 * gap,
            )
            .engine("vllm")
            .agent(["planner", "coder"][i % 2])
            .tokens(200 + (i % 100) as u64, 64 + (i % 50) as u64)
            .latency_seconds(0.5 + (i % 1000) as f64 * 1e-3)
            .ttft(0.05)
            .cost_usd(1e-4)
            .energy(42.0 + (i % 10) as f64, EnergyMethod::Counter)
            .metadata(json!({ "request": i, "user": "bench" }))
            .build();
            r.gpu_utilization_pct = Some(80.0);
            r.throughput_tok_per_sec = Some(120.0);
            r.mean_itl_ms = Some(8.0 + (i % 7) as f64);
            Arc::new(r)
        })
        .collect()
}

/// The raw limit: prepared insert, 10 000-row transactions, WAL, `synchronous=NORMAL`.
/// `tuned` adds the store's cache and checkpoint pragmas, to show the store's own overhead.
fn raw_insert(path: &Path, records: &[Arc<TelemetryRecord>], tuned: bool) -> Duration {
    let mut conn = Connection::open(path).unwrap();
    conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
        .unwrap();
    conn.execute_batch("PRAGMA synchronous = NORMAL").unwrap();
    if tuned {
        conn.execute_batch("PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 8000")
            .unwrap();
    }
    for (_, sql) in MIGRATIONS {
        conn.execute_batch(sql).unwrap();
    }
    let placeholders: Vec<String> = (1..=RECORD_COLUMNS.len())
        .map(|i| format!("?{i}"))
        .collect();
    let sql = format!(
        "INSERT INTO telemetry ({}) VALUES ({})",
        RECORD_COLUMNS.join(", "),
        placeholders.join(", ")
    );
    let start = Instant::now();
    for chunk in records.chunks(10_000) {
        let tx = conn.transaction().unwrap();
        {
            let mut stmt = tx.prepare_cached(&sql).unwrap();
            for r in chunk {
                stmt.execute(params_from_iter(r.field_values().map(Param)))
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    start.elapsed()
}

/// A field value as a plain rusqlite parameter (the metadata serialized per record, as a naive
/// loop would), so that the raw loop binds whatever fields the table has.
struct Param<'a>(FieldValue<'a>);

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            FieldValue::Real(v) => ToSqlOutput::Borrowed(ValueRef::Real(v)),
            FieldValue::OptReal(v) => v.map_or(ToSqlOutput::Borrowed(ValueRef::Null), |v| {
                ToSqlOutput::Borrowed(ValueRef::Real(v))
            }),
            FieldValue::Count(v) => ToSqlOutput::Borrowed(ValueRef::Integer(v as i64)),
            FieldValue::Flag(v) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(v))),
            FieldValue::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            FieldValue::Json(v) => {
                ToSqlOutput::Owned(Value::Text(serde_json::to_string(v).unwrap()))
            }
        })
    }
}

#[derive(Clone, Copy)]
enum Path_ {
    Record,
    RecordArc,
    Bus,
}

/// Everything from the first `record` to the end of the final `flush`.
fn store_insert(path: &Path, records: &[Arc<TelemetryRecord>], how: Path_) -> Duration {
    let store = TelemetryStore::open(path).unwrap();
    let bus = EventBus::new();
    store.subscribe_to_bus(&bus);
    let start = Instant::now();
    match how {
        Path_::Record => records.iter().for_each(|r| store.record(r).unwrap()),
        Path_::RecordArc => records
            .iter()
            .for_each(|r| store.record_arc(Arc::clone(r)).unwrap()),
        Path_::Bus => records
            .iter()
            .for_each(|r| bus.publish(Event::TelemetryRecord(Arc::clone(r)))),
    }
    store.flush().unwrap();
    let elapsed = start.elapsed();
    assert_eq!(store.stats().written, records.len() as u64);
    drop(bus);
    store.close().unwrap();
    elapsed
}

fn ingest(c: &mut Criterion) {
    let n = rows();
    let records_dense = records(n, Spread::Dense);
    let spread = records(n, Spread::Spread);
    let records = &records_dense;
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(if n > 100_000 { 60 } else { 10 }));
    let dir = tempfile::tempdir().unwrap();
    let mut run = 0;
    let mut fresh = move || {
        run += 1;
        dir.path().join(format!("bench-{run}.db"))
    };
    // Each iteration writes a fresh file and deletes it afterwards, so that dirty pages of
    // earlier iterations (and benches) do not throttle later ones.
    let mut timed = |f: &mut dyn FnMut(&Path) -> Duration, iters: u64| {
        (0..iters)
            .map(|_| {
                let path = fresh();
                let elapsed = f(&path);
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
                elapsed
            })
            .sum::<Duration>()
    };
    group.bench_function("raw_rusqlite_10k_tx", |b| {
        b.iter_custom(|iters| timed(&mut |p| raw_insert(p, records, false), iters))
    });
    group.bench_function("raw_tuned_10k_tx", |b| {
        b.iter_custom(|iters| timed(&mut |p| raw_insert(p, records, true), iters))
    });
    group.bench_function("raw_tuned_spread", |b| {
        b.iter_custom(|iters| timed(&mut |p| raw_insert(p, &spread, true), iters))
    });
    group.bench_function("store_record_arc_spread", |b| {
        b.iter_custom(|iters| timed(&mut |p| store_insert(p, &spread, Path_::RecordArc), iters))
    });
    group.bench_function("store_record", |b| {
        b.iter_custom(|iters| timed(&mut |p| store_insert(p, records, Path_::Record), iters))
    });
    group.bench_function("store_record_arc", |b| {
        b.iter_custom(|iters| timed(&mut |p| store_insert(p, records, Path_::RecordArc), iters))
    });
    group.bench_function("store_bus", |b| {
        b.iter_custom(|iters| timed(&mut |p| store_insert(p, records, Path_::Bus), iters))
    });
    group.finish();
}

/// Criterion measures the paths one after another, so a change in the machine's load between
/// them (this machine is shared) skews their ratio. Here the paths alternate, round after round,
/// and the ratio is taken per round: the figure the ≥ 0.8 × raw target is checked against.
fn interleaved(rounds: usize) {
    let n = rows();
    let dense = records(n, Spread::Dense);
    let spread = records(n, Spread::Spread);
    let dir = tempfile::tempdir().unwrap();
    // (name, index of the baseline its ratio is taken against)
    let names = [
        ("raw", 0),
        ("raw_tuned", 0),
        ("record", 1),
        ("record_arc", 1),
        ("bus", 1),
        ("raw_tuned_spread", 5),
        ("record_arc_spread", 5),
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for round in 0..rounds {
        for (k, rate) in rates.iter_mut().enumerate() {
            let path = dir.path().join(format!("r{round}-{k}.db"));
            let elapsed = match k {
                0 => raw_insert(&path, &dense, false),
                1 => raw_insert(&path, &dense, true),
                2 => store_insert(&path, &dense, Path_::Record),
                3 => store_insert(&path, &dense, Path_::RecordArc),
                4 => store_insert(&path, &dense, Path_::Bus),
                5 => raw_insert(&path, &spread, true),
                _ => store_insert(&path, &spread, Path_::RecordArc),
            };
            rate.push(n as f64 / elapsed.as_secs_f64());
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("interleaved ingest, {rounds} rounds of {n} rows each, median rows/s:");
    println!("  (raw_tuned = raw plus the store's cache_size and wal_autocheckpoint pragmas;");
    println!(
        "   *_spread = one record a minute; store paths compared with raw_tuned of the same data)"
    );
    for (k, (name, base)) in names.iter().enumerate() {
        let ratio = |b: usize| -> f64 {
            let ratios: Vec<f64> = rates[k].iter().zip(&rates[b]).map(|(s, r)| s / r).collect();
            median(&ratios)
        };
        println!(
            "  {name:>17}: {:>9.0} rows/s   ratio to raw: {:.2}   to {}: {:.2}",
            median(&rates[k]),
            ratio(0),
            names[*base].0,
            ratio(*base)
        );
    }
}

criterion_group!(benches, ingest);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let args: Vec<String> = std::env::args().collect();
    // Not under `cargo test` (which runs benches once, without `--bench`).
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--list") {
        interleaved(if args.iter().any(|a| a == "--quick") {
            3
        } else {
            7
        });
    }
}
