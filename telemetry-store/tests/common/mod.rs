//! Helpers shared by the integration tests: sample records, raw-SQL readers and a naive rollup
//! oracle.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use rusqlite::Connection;
use serde_json::json;
use telemetry_core::schema::{RECORD_COLUMNS, ROLLUP_COLUMNS};
use telemetry_core::{
    EnergyMethod, Outcome, QuantileSketch, ROLLUP_LEVELS, Rollup, RollupKey, TelemetryRecord,
};

/// A valid record whose fields all depend on `i` (and `tag`, stored in `agent`).
pub fn sample(tag: &str, i: u64) -> TelemetryRecord {
    let latency = 0.25 * (1 + i % 16) as f64;
    let some = |v: f64| if i.is_multiple_of(3) { None } else { Some(v) };
    TelemetryRecord {
        timestamp: 1_764_300_000.0 + (i % 5_000) as f64 * 7.5,
        model_id: format!("model-{}", i % 3),
        engine: ["vllm", "llama.cpp"][(i % 2) as usize].to_owned(),
        agent: tag.to_owned(),
        prompt_tokens: 100 + i % 50,
        completion_tokens: 20 + i % 30,
        total_tokens: 120 + i % 50 + i % 30,
        prompt_tokens_cached: i % 10,
        latency_seconds: latency,
        ttft: some(0.125),
        cost_usd: 0.001 * (i % 7) as f64,
        energy_joules: some(10.0 + (i % 9) as f64),
        power_watts: some(300.0),
        gpu_utilization_pct: some(50.0 + (i % 40) as f64),
        gpu_memory_used_gb: some(12.5),
        gpu_temperature_c: some(61.0),
        throughput_tok_per_sec: some(40.0),
        prefill_latency_seconds: some(0.125),
        decode_latency_seconds: some(latency - 0.125),
        is_streaming: i.is_multiple_of(2),
        mean_itl_ms: some(20.0 + (i % 11) as f64),
        median_itl_ms: some(19.0),
        p90_itl_ms: some(30.0),
        p95_itl_ms: some(35.0),
        p99_itl_ms: some(50.0),
        std_itl_ms: some(3.5),
        prefill_energy_joules: some(2.0),
        decode_energy_joules: some(8.0),
        energy_method: if i.is_multiple_of(3) {
            EnergyMethod::None
        } else {
            EnergyMethod::Counter
        },
        energy_vendor: if i.is_multiple_of(3) { "" } else { "nvidia" }.to_owned(),
        batch_id: format!("b{}", i / 100),
        is_warmup: i.is_multiple_of(17),
        outcome: if i.is_multiple_of(13) {
            Outcome::Error
        } else {
            Outcome::Ok
        },
        error_kind: if i.is_multiple_of(13) { "timeout" } else { "" }.to_owned(),
        error_message: if i.is_multiple_of(13) {
            "took too long"
        } else {
            ""
        }
        .to_owned(),
        tokens_counted: i.is_multiple_of(5),
        cost_unknown: i.is_multiple_of(7),
        metadata: json!({ "id": i, "tag": tag, "nested": { "ok": true } }),
        server_prefill_ms: some(41.25 + (i % 4) as f64),
        server_decode_ms: some(180.5),
    }
}

/// Every row of `telemetry`, in id order, decoded with plain SQL.
pub fn read_all(conn: &Connection) -> Vec<TelemetryRecord> {
    let sql = format!(
        "SELECT {} FROM telemetry ORDER BY id",
        RECORD_COLUMNS.join(", ")
    );
    let mut stmt = conn.prepare(&sql).unwrap();
    stmt.query_map([], |r| {
        let u = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)? as u64) };
        let b = |i: usize| -> rusqlite::Result<bool> { Ok(r.get::<_, i64>(i)? != 0) };
        let metadata: String = r.get(37)?;
        let method: String = r.get(28)?;
        let outcome: String = r.get(32)?;
        Ok(TelemetryRecord {
            timestamp: r.get(0)?,
            model_id: r.get(1)?,
            engine: r.get(2)?,
            agent: r.get(3)?,
            prompt_tokens: u(4)?,
            completion_tokens: u(5)?,
            total_tokens: u(6)?,
            prompt_tokens_cached: u(7)?,
            latency_seconds: r.get(8)?,
            ttft: r.get(9)?,
            cost_usd: r.get(10)?,
            energy_joules: r.get(11)?,
            power_watts: r.get(12)?,
            gpu_utilization_pct: r.get(13)?,
            gpu_memory_used_gb: r.get(14)?,
            gpu_temperature_c: r.get(15)?,
            throughput_tok_per_sec: r.get(16)?,
            prefill_latency_seconds: r.get(17)?,
            decode_latency_seconds: r.get(18)?,
            is_streaming: b(19)?,
            mean_itl_ms: r.get(20)?,
            median_itl_ms: r.get(21)?,
            p90_itl_ms: r.get(22)?,
            p95_itl_ms: r.get(23)?,
            p99_itl_ms: r.get(24)?,
            std_itl_ms: r.get(25)?,
            prefill_energy_joules: r.get(26)?,
            decode_energy_joules: r.get(27)?,
            energy_method: EnergyMethod::parse(&method).unwrap(),
            energy_vendor: r.get(29)?,
            batch_id: r.get(30)?,
            is_warmup: b(31)?,
            outcome: Outcome::parse(&outcome).unwrap(),
            error_kind: r.get(33)?,
            error_message: r.get(34)?,
            tokens_counted: b(35)?,
            cost_unknown: b(36)?,
            metadata: serde_json::from_str(&metadata).unwrap(),
            server_prefill_ms: r.get(38)?,
            server_decode_ms: r.get(39)?,
        })
    })
    .unwrap()
    .collect::<rusqlite::Result<Vec<_>>>()
    .unwrap()
}

/// Opens a plain connection (not through the store).
pub fn connect(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

/// The stored `telemetry_rollup` rows.
pub fn read_rollups(conn: &Connection) -> BTreeMap<RollupKey, Rollup> {
    let sql = format!(
        "SELECT level, bucket_start, model_id, engine, agent, {} FROM telemetry_rollup",
        ROLLUP_COLUMNS.join(", ")
    );
    let mut stmt = conn.prepare(&sql).unwrap();
    stmt.query_map([], |r| {
        let u = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i + 5)? as u64) };
        let f = |i: usize| -> rusqlite::Result<f64> { r.get(i + 5) };
        let s = |i: usize| -> rusqlite::Result<QuantileSketch> {
            Ok(QuantileSketch::from_bytes(&r.get::<_, Vec<u8>>(i + 5)?).unwrap())
        };
        Ok((
            RollupKey {
                level: r.get(0)?,
                bucket_start: r.get(1)?,
                model_id: r.get(2)?,
                engine: r.get(3)?,
                agent: r.get(4)?,
            },
            Rollup {
                call_count: u(0)?,
                error_count: u(1)?,
                prompt_tokens: u(2)?,
                completion_tokens: u(3)?,
                total_tokens: u(4)?,
                total_latency: f(5)?,
                total_cost: f(6)?,
                ttft_sum: f(7)?,
                ttft_count: u(8)?,
                energy_sum: f(9)?,
                energy_count: u(10)?,
                energy_completion_tokens: u(11)?,
                prefill_energy_sum: f(12)?,
                decode_energy_sum: f(13)?,
                gpu_util_sum: f(14)?,
                gpu_util_count: u(15)?,
                throughput_sum: f(16)?,
                throughput_count: u(17)?,
                latency: s(18)?,
                ttft: s(19)?,
                itl: s(20)?,
            },
        ))
    })
    .unwrap()
    .collect::<rusqlite::Result<BTreeMap<_, _>>>()
    .unwrap()
}

/// The naive oracle: rollups of `records` built one record at a time.
pub fn rollups_of(records: &[TelemetryRecord]) -> BTreeMap<RollupKey, Rollup> {
    let mut out: BTreeMap<RollupKey, Rollup> = BTreeMap::new();
    for r in records {
        for level in ROLLUP_LEVELS {
            out.entry(RollupKey::of(r, level)).or_default().add(r);
        }
    }
    out
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Asserts two rollup tables are equal: counts and sketches exactly, sums to 1e-9 relative
/// (the store sums in batch order, the oracle in row order).
pub fn assert_rollups_eq(got: &BTreeMap<RollupKey, Rollup>, want: &BTreeMap<RollupKey, Rollup>) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "rollup keys differ"
    );
    for (key, g) in got {
        let w = &want[key];
        let ints = |r: &Rollup| {
            [
                r.call_count,
                r.error_count,
                r.prompt_tokens,
                r.completion_tokens,
                r.total_tokens,
                r.ttft_count,
                r.energy_count,
                r.energy_completion_tokens,
                r.gpu_util_count,
                r.throughput_count,
            ]
        };
        let floats = |r: &Rollup| {
            [
                r.total_latency,
                r.total_cost,
                r.ttft_sum,
                r.energy_sum,
                r.prefill_energy_sum,
                r.decode_energy_sum,
                r.gpu_util_sum,
                r.throughput_sum,
            ]
        };
        assert_eq!(ints(g), ints(w), "{key:?}");
        for (a, b) in floats(g).iter().zip(floats(w)) {
            assert!(close(*a, b), "{key:?}: {a} vs {b}");
        }
        assert_eq!(g.latency, w.latency, "{key:?} latency sketch");
        assert_eq!(g.ttft, w.ttft, "{key:?} ttft sketch");
        assert_eq!(g.itl, w.itl, "{key:?} itl sketch");
    }
}

/// This test binary, re-run to execute one `#[ignore]`d child-mode test.
pub fn child(test_name: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        test_name,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    cmd
}
