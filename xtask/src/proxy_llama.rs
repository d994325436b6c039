//! `cargo xtask proxy-llama`: the official OpenAI Python client (`pip install openai`) through
//! `telemetry proxy` to a real llama.cpp server.
//!
//! Starts llama.cpp's server as `cargo xtask llama` does ([`crate::llama`], same cache), installs
//! the `openai` package into a venv under `target/proxy-client/` (idempotent, retried), builds
//! `telemetry` and starts `telemetry proxy` in front of the server. The client then makes a
//! blocking call, a stream with `stream_options.include_usage`, a stream without it and an invalid
//! request through the proxy, each with its own `X-Telemetry-Agent`, and 50 blocking calls direct
//! and 50 through the proxy, interleaved (median latency of each). After SIGTERM to the proxy the
//! records in its database must equal what the client saw: the server's usage, the response's
//! model, counted content chunks when the server sent no usage, `http_400` for the invalid
//! request, one record per call. The transcript (client output, checks, `telemetry stats`) is
//! written to `target/proxy-llama/transcript.txt`.
//!
//! Without Python or a server that runs here, one line says what was skipped — unless `CI=true`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::llama::{self, MODEL_ALIAS, Unavailable};
use crate::util::{build_telemetry, on_ci, target_dir, workspace_root};

/// The client script, written next to its venv.
const CLIENT: &str = include_str!("proxy_llama/client.py");
/// Calls direct and through the proxy for the latency comparison.
const LATENCY_CALLS: &str = "50";

/// `cargo xtask proxy-llama`.
pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        return Err(format!("proxy-llama takes no arguments (got `{arg}`)"));
    }
    let root = workspace_root()?;
    match check(&root) {
        Ok(transcript) => {
            eprintln!("xtask proxy-llama: transcript in {}", transcript.display());
            Ok(())
        }
        Err(Unavailable::Missing(why) | Unavailable::IllegalInstruction(why)) if !on_ci() => {
            eprintln!(
                "xtask proxy-llama: skipped the OpenAI client through the proxy to llama.cpp: {why}"
            );
            Ok(())
        }
        Err(
            Unavailable::Missing(why)
            | Unavailable::Failed(why)
            | Unavailable::IllegalInstruction(why),
        ) => Err(why),
    }
}

fn check(root: &Path) -> Result<PathBuf, Unavailable> {
    let failed = Unavailable::Failed;
    let target = target_dir(root);
    let work = target.join("proxy-llama");
    std::fs::create_dir_all(&work)
        .map_err(|e| failed(format!("creating {}: {e}", work.display())))?;
    let cache = llama::cache_dir(root);
    let mut installed = llama::install(&cache)?;
    let python = client_venv(&target)?;
    let script = work.join("client.py");
    std::fs::write(&script, CLIENT)
        .map_err(|e| failed(format!("writing {}: {e}", script.display())))?;
    let telemetry = build_telemetry(&target).map_err(failed)?;
    let server = llama::start(&mut installed, &cache, &[])?;
    let direct = format!("http://127.0.0.1:{}", server.port);
    eprintln!("xtask proxy-llama: llama-server ready at {direct}");

    let db = work.join("proxy.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let mut proxy = ProxyChild::start(&telemetry, &db, &direct)?;
    let mut transcript = format!(
        "$ telemetry --db {} proxy --listen 127.0.0.1:0 --upstream {direct} --engine-name llama.cpp --gpu off\n{}\n",
        db.display(),
        proxy.banner.trim_end()
    );
    let proxy_url = format!("http://{}", proxy.addr);
    transcript.push_str(&format!(
        "\n$ python client.py calls {proxy_url} {direct} {MODEL_ALIAS}   # official openai package\n"
    ));
    let seen = work.join("seen.json");
    transcript.push_str(&python_step(
        &python,
        &script,
        &["calls", &proxy_url, &direct, MODEL_ALIAS],
        &[seen.to_str().unwrap_or_default(), LATENCY_CALLS],
    )?);
    let stopped = proxy.terminate()?;
    transcript.push_str(&format!("\n$ kill -TERM <proxy>\n{}\n", stopped.trim_end()));
    drop(server);

    transcript.push_str(
        "\n$ python client.py verify proxy.db seen.json   # records vs what the client saw\n",
    );
    let verified = python_step(
        &python,
        &script,
        &["verify", db.to_str().unwrap_or_default()],
        &[seen.to_str().unwrap_or_default()],
    );
    let verified_ok = verified.is_ok();
    transcript.push_str(&verified.unwrap_or_else(|e| match e {
        Unavailable::Missing(s) | Unavailable::Failed(s) | Unavailable::IllegalInstruction(s) => s,
    }));

    let stats = Command::new(&telemetry)
        .arg("--db")
        .arg(&db)
        .arg("stats")
        .env("TELEMETRY_NO_PROGRESS", "1")
        .output()
        .map_err(|e| failed(format!("running telemetry stats: {e}")))?;
    transcript.push_str(&format!(
        "\n$ telemetry --db {} stats\n{}",
        db.display(),
        String::from_utf8_lossy(&stats.stdout)
    ));
    let path = work.join("transcript.txt");
    std::fs::write(&path, &transcript)
        .map_err(|e| failed(format!("writing {}: {e}", path.display())))?;
    print!("{transcript}");
    if !verified_ok {
        return Err(failed(
            "the proxy's records do not match what the OpenAI client saw (see above)".into(),
        ));
    }
    if !stats.status.success() {
        return Err(failed(format!("telemetry stats failed ({})", stats.status)));
    }
    Ok(path)
}

/// A venv under `target/proxy-client/` with the `openai` package; its python.
fn client_venv(target: &Path) -> Result<PathBuf, Unavailable> {
    let venv = target.join("proxy-client/venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let system = llama::which_python().ok_or_else(|| {
            Unavailable::Missing("no python3 on PATH for the OpenAI client".into())
        })?;
        llama::run_retried("creating the client venv", || {
            Command::new(&system)
                .arg("-m")
                .arg("venv")
                .arg(&venv)
                .status()
        })?;
    }
    let has_openai = Command::new(&python)
        .args(["-c", "import openai"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_openai {
        llama::run_retried("pip install openai", || {
            Command::new(&python)
                .args(["-m", "pip", "install", "-q", "openai"])
                .status()
        })?;
    }
    Ok(python)
}

/// Runs the client script; its output (printed as it comes, and returned) or why it failed.
fn python_step(
    python: &Path,
    script: &Path,
    args: &[&str],
    more: &[&str],
) -> Result<String, Unavailable> {
    let output = Command::new(python)
        .arg(script)
        .args(args)
        .args(more)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Unavailable::Failed(format!("running the client: {e}")))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    eprint!("{text}");
    if output.status.success() {
        Ok(text)
    } else {
        Err(Unavailable::Failed(format!(
            "{text}the OpenAI client step `{}` failed ({})",
            args.first().copied().unwrap_or_default(),
            output.status
        )))
    }
}

/// `telemetry proxy` as a child, killed and reaped when dropped.
struct ProxyChild {
    child: Child,
    addr: String,
    banner: String,
}

impl ProxyChild {
    fn start(telemetry: &Path, db: &Path, upstream: &str) -> Result<ProxyChild, Unavailable> {
        let mut child = Command::new(telemetry)
            .arg("--db")
            .arg(db)
            .args(["proxy", "--listen", "127.0.0.1:0", "--upstream", upstream])
            .args(["--engine-name", "llama.cpp", "--gpu", "off"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Unavailable::Failed(format!("starting telemetry proxy: {e}")))?;
        let mut stdout = BufReader::new(
            child
                .stdout
                .take()
                .ok_or_else(|| Unavailable::Failed("telemetry proxy has no stdout".into()))?,
        );
        let mut banner = String::new();
        for _ in 0..3 {
            let _ = stdout.read_line(&mut banner);
        }
        // "proxy listening on http://127.0.0.1:PORT (OpenAI base URL ...), forwarding to ..."
        let addr = banner
            .strip_prefix("proxy listening on http://")
            .and_then(|rest| rest.split_once(' '))
            .map(|(addr, _)| addr.to_owned())
            .ok_or_else(|| {
                Unavailable::Failed(format!(
                    "telemetry proxy did not say where it listens: {banner:?}"
                ))
            })?;
        child.stdout = Some(stdout.into_inner());
        Ok(ProxyChild {
            child,
            addr,
            banner,
        })
    }

    /// SIGTERM, then its last words (the shutdown summary) once it has exited 0.
    fn terminate(&mut self) -> Result<String, Unavailable> {
        crate::util::status(
            Command::new("kill").args(["-TERM", &self.child.id().to_string()]),
            "kill -TERM telemetry proxy",
        )
        .map_err(Unavailable::Failed)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status;
            }
            if Instant::now() > deadline {
                return Err(Unavailable::Failed(
                    "telemetry proxy ignored SIGTERM for 60 s".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut rest = String::new();
        if let Some(out) = self.child.stdout.as_mut() {
            let _ = out.read_to_string(&mut rest);
        }
        if status.success() {
            Ok(rest)
        } else {
            Err(Unavailable::Failed(format!(
                "telemetry proxy exited {status}: {rest}"
            )))
        }
    }
}

impl Drop for ProxyChild {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
