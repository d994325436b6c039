//! Helpers shared by the integration tests: a `telemetry` command isolated from the user's
//! environment (run to completion, or spawned as a long-running child such as `serve` or
//! `proxy`), and databases seeded through the real store.
// Every test file compiles this module as its own `mod common;` and uses only some of it, so
// the rest would warn as dead code in each of those test binaries.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;

#[cfg(feature = "proxy")]
pub mod proxy;
use telemetry_core::{EnergyMethod, TelemetryRecord};
use telemetry_store::TelemetryStore;

/// Unix seconds now.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The binary as a plain `std` command, with `$HOME` pointing at `home` and no `$TELEMETRY_DB`
/// or `$XDG_DATA_HOME`, so a test never touches the real user database. The one place that says
/// how the tests start the binary; [`telemetry`] and [`spawn`] build on it.
pub fn telemetry_std(home: &Path) -> std::process::Command {
    with_test_env(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("telemetry")),
        home,
    )
}

/// `cmd` with the environment every test run of the binary gets (see [`telemetry_std`]).
fn with_test_env(mut cmd: std::process::Command, home: &Path) -> std::process::Command {
    cmd.env_remove("TELEMETRY_DB")
        .env_remove("XDG_DATA_HOME")
        .env("HOME", home)
        .env("TELEMETRY_NO_PROGRESS", "1");
    cmd
}

/// Where the permission tests look for `setpriv`.
pub const SETPRIV: &str = "/usr/bin/setpriv";

/// Whether the tests run as root (who ignores permission bits).
pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// [`telemetry`] as a user the permission bits apply to: as root, through [`SETPRIV`] as
/// `nobody` where it exists; otherwise (not root, or no `setpriv`) the binary itself.
pub fn telemetry_unprivileged(home: &Path) -> Command {
    let bin = assert_cmd::cargo::cargo_bin("telemetry");
    let cmd = if is_root() && Path::new(SETPRIV).exists() {
        let mut c = std::process::Command::new(SETPRIV);
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin);
        c
    } else {
        std::process::Command::new(bin)
    };
    Command::from_std(with_test_env(cmd, home))
}

/// Whether [`telemetry_unprivileged`] drops root: `setpriv` exists and `nobody` can run the
/// binary through it (it must be able to reach the binary).
pub fn can_run_as_nobody(home: &Path) -> bool {
    Path::new(SETPRIV).exists()
        && telemetry_unprivileged(home)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

/// [`telemetry_std`] as an `assert_cmd` command, for runs that end on their own.
pub fn telemetry(home: &Path) -> Command {
    Command::from_std(telemetry_std(home))
}

/// `telemetry --db DB`, the start of most test commands.
pub fn on_db(home: &Path, db: &Path) -> Command {
    let mut cmd = telemetry(home);
    cmd.args(["--db", db.to_str().unwrap()]);
    cmd
}

/// The records in `db`, read back through `telemetry export --format ndjson`.
pub fn exported(home: &Path, db: &Path) -> Vec<TelemetryRecord> {
    let out = stdout_of(on_db(home, db).args(["export", "--format", "ndjson"]));
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A long-running `telemetry` child (`serve`, `proxy`) started by [`spawn`]; killed and reaped
/// when dropped, so a failing test leaves nothing running.
pub struct Running {
    /// The process.
    pub child: Child,
    /// Its stdout after the first line.
    pub stdout: BufReader<ChildStdout>,
    /// The first line it printed (where it listens), newline included.
    pub first_line: String,
}

/// Starts `cmd` (from [`telemetry_std`]) with stdout piped and waits for its first line.
/// Stderr is as `cmd` says (inherited unless set).
pub fn spawn(cmd: &mut std::process::Command) -> Running {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first_line = String::new();
    stdout.read_line(&mut first_line).unwrap();
    Running {
        child,
        stdout,
        first_line,
    }
}

impl Running {
    /// The address in the first line between `prefix` and the next `end`, e.g.
    /// `("serving http://", "/metrics")`; panics on any other first line.
    pub fn addr_between(&self, prefix: &str, end: &str) -> SocketAddr {
        let line = &self.first_line;
        line.strip_prefix(prefix)
            .and_then(|rest| rest.split_once(end))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .0
            .parse()
            .unwrap()
    }

    /// Sends SIGTERM (through `kill`, which must succeed).
    pub fn sigterm(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; panics, saying `what`, if it has not within `within`.
    pub fn wait_exit(&mut self, within: Duration, what: &str) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The rest of stdout, up to its end (call once the process has exited).
    pub fn rest_of_stdout(&mut self) -> String {
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        rest
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a recording command (`cmd` from [`telemetry_std`], recording into `db`), deletes
/// `db` as soon as the command printed its first line (once its store is open), and waits up to
/// 60 s for it to exit: (exit status, first line, rest of stdout, stderr).
pub fn delete_db_while_recording(
    cmd: &mut std::process::Command,
    db: &Path,
) -> (ExitStatus, String, String, String) {
    let mut run = spawn(cmd.stderr(Stdio::piped()));
    std::fs::remove_file(db).unwrap();
    let status = run.wait_exit(Duration::from_secs(60), "not finished within 60 s");
    let stdout = run.rest_of_stdout();
    let mut stderr = String::new();
    run.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, run.first_line.clone(), stdout, stderr)
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

/// Runs `cmd`, asserts that it exits with `code`, and returns its stdout as a string.
pub fn stdout_on_exit(cmd: &mut Command, code: i32) -> String {
    let out = cmd.assert().code(code).get_output().stdout.clone();
    String::from_utf8(out).unwrap()
}

/// Runs `cmd`, asserts that it exits with `code`, and returns its stderr as a string.
pub fn stderr_on_exit(cmd: &mut Command, code: i32) -> String {
    let out = cmd.assert().code(code).get_output().stderr.clone();
    String::from_utf8(out).unwrap()
}
