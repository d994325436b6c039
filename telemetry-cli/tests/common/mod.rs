//! Helpers shared by the integration tests: a `telemetry` command isolated from the user's
//! environment, and databases seeded through the real store.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use telemetry_core::{EnergyMethod, TelemetryRecord};
use telemetry_store::TelemetryStore;

/// Unix seconds now.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The binary, with `$HOME`/`$XDG_DATA_HOME` pointing into `home` and no `$TELEMETRY_DB`, so a
/// test never touches the real user database.
pub fn telemetry(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("telemetry").unwrap();
    cmd.env_remove("TELEMETRY_DB")
        .env_remove("XDG_DATA_HOME")
        .env("HOME", home)
        .env("TELEMETRY_NO_PROGRESS", "1");
    cmd
}

/// A record of `model` on `engine` by `agent`, `age_s` seconds ago.
pub fn record(model: &str, engine: &str, agent: &str, age_s: f64, i: u64) -> TelemetryRecord {
    let mut r = TelemetryRecord::builder(model, now() - age_s)
        .engine(engine)
        .agent(agent)
        .tokens(100 + i % 50, 20 + i % 30)
        .latency_seconds(0.5 + (i % 10) as f64 * 0.1)
        .ttft(0.05 + (i % 5) as f64 * 0.01)
        .cost_usd(0.001)
        .energy(10.0 + (i % 7) as f64, EnergyMethod::Counter)
        .build();
    r.throughput_tok_per_sec = Some(40.0);
    r
}

/// Writes `records` into a new database at `path` through the real store.
pub fn seed(path: &Path, records: &[TelemetryRecord]) {
    let store = TelemetryStore::open(path).unwrap();
    for r in records {
        store.record(r).unwrap();
    }
    store.flush().unwrap();
    store.close().unwrap();
}

/// A temp dir with a database path inside (not created).
pub fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    (dir, path)
}

/// 30 records: 10 of `llama` (vllm, agent a) an hour old, 20 of `qwen` (ollama, agent b) recent,
/// 2 of them failed.
pub fn standard_records() -> Vec<TelemetryRecord> {
    let mut out = Vec::new();
    for i in 0..10 {
        out.push(record("llama", "vllm", "a", 3_600.0 + i as f64, i));
    }
    for i in 0..20 {
        let mut r = record("qwen", "ollama", "b", 60.0 + i as f64, i);
        if i < 2 {
            r = TelemetryRecord::builder("qwen", r.timestamp)
                .engine("ollama")
                .agent("b")
                .latency_seconds(0.2)
                .error("timeout", "took too long")
                .build();
        }
        out.push(r);
    }
    out
}

/// stdout of a successful run, as a string.
pub fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.assert().success().get_output().stdout.clone();
    String::from_utf8(out).unwrap()
}
