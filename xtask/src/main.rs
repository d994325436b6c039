//! Developer automation for the workspace, run as `cargo xtask <task>`.
//!
//! - `ci`: everything CI checks (format, clippy with warnings denied, tests for the feature sets
//!   that matter, doctests, every criterion bench run once in criterion's test mode). `.ci/run` calls it.
//! - `bench`: the full criterion benches (set `TELEMETRY_BENCH_FULL=1` for the 10 M-row figures).
//! - `gpu-check`: builds the NVML measurement example in release mode and runs it.
//! - `gpu-bundle`: builds every GPU check into `target/gpu-bundle/` with `run.sh`, to carry to a
//!   GPU machine that has no Rust toolchain.
//! - `browser`: the demo's `telemetry report` rendered by headless Chromium (installed with apt
//!   when missing), screenshot kept in `target/browser/report.png`.
//! - `prometheus`: `telemetry serve` checked by `promtool check metrics` and scraped by a real
//!   Prometheus (installed with apt when missing), answering PromQL over the demo's calls.
//! - `otel`: `telemetry demo --otlp` received by a real OpenTelemetry collector (rotel, installed
//!   from PyPI under `target/otel/` when missing), whose debug output must show every call.
//! - `llama`: installs llama.cpp's server and a small model under `target/llama/`, starts it, and
//!   runs the real-server tests and the recording-overhead measurement (see `llama.rs`).
//! - `proxy-llama`: the official OpenAI Python client through `telemetry proxy` to that server;
//!   the proxy's records must equal the server's usage (see `proxy_llama.rs`).
//! - `proxy-tls`: `telemetry proxy` over https (nginx terminating TLS with a certificate made at
//!   run time, `--upstream-ca`) to that server; records equal the server's usage (see
//!   `proxy_tls.rs`).
//! - `storage`: a file of 1 M records pruned in two halves must give back at least 75 % of the
//!   space of each (see `storage.rs`).
//! - `proxy-bench`: `telemetry proxy` against nginx (and direct) in front of the same nginx
//!   upstream under the same `wrk` load, interleaved: throughput, latency, CPU time per request
//!   (see `proxy_bench.rs`).

mod browser;
mod llama;
mod llama_build;
mod manifests;
mod modules;
mod nginx;
mod otel;
mod prometheus;
mod proxy_bench;
mod proxy_llama;
mod proxy_tls;
mod storage;
mod tasks;
mod util;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => tasks::ci(&args[1..]),
        Some("bench") => tasks::bench(&args[1..]),
        Some("gpu-check") => tasks::gpu_check(&args[1..]),
        Some("gpu-bundle") => tasks::gpu_bundle(&args[1..]),
        Some("browser") => browser::run(&args[1..]),
        Some("prometheus") => prometheus::run(&args[1..]),
        Some("otel") => otel::run(&args[1..]),
        Some("llama") => llama::run(&args[1..]),
        Some("proxy-llama") => proxy_llama::run(&args[1..]),
        Some("proxy-bench") => proxy_bench::run(&args[1..]),
        Some("proxy-tls") => proxy_tls::run(&args[1..]),
        Some("storage") => storage::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\ntasks:\n  ci [--no-bench]   format, clippy, tests (all feature sets), doctests, each bench run once\n  bench             full criterion benches\n  gpu-check         build and run the NVML measurement example (needs an NVIDIA GPU)\n  gpu-bundle        build every GPU check into target/gpu-bundle with run.sh, for a GPU machine without Rust\n  browser           render the demo's HTML report in headless Chromium (screenshot in target/browser)\n  prometheus        check `telemetry serve` with promtool and a real Prometheus scraping it\n  otel              check `telemetry demo --otlp` with a real OTLP collector (rotel, from PyPI)\n  llama             install and start a real llama.cpp server, run the tests and measurements that need it\n  proxy-llama       the OpenAI Python client through `telemetry proxy` to a real llama.cpp server: records equal the server's usage\n  proxy-tls         telemetry proxy over https (nginx TLS front, private CA) to llama.cpp: records equal the server's usage\n  storage [N]       prune a file of N (1 000 000) records in two halves: at least 75 % of the space of each must come back\n  proxy-bench       telemetry proxy against nginx in front of the same upstream, same wrk load: throughput, latency, CPU per request"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
