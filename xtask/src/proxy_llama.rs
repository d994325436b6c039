//! `cargo xtask proxy-llama`: the official OpenAI and Anthropic Python SDKs through
//! `telemetry proxy` to real llama.cpp servers, every API and mode the proxy records.
//!
//! Starts llama.cpp's server as `cargo xtask llama` does ([`crate::llama`], same cache) twice,
//! both with `--metrics`: one for generation, one with `--embeddings --pooling mean` (SmolLM2 has
//! no pooling of its own, and `/v1/embeddings` refuses pooling `none`). Installs the pinned SDKs
//! ([`SDKS`]) into a venv under `target/proxy-client/` (idempotent, retried), builds `telemetry`
//! and starts `telemetry proxy` in front of the first server, routing the embeddings model to the
//! second (`--route`). The SDKs then make, through the proxy, one call per API × mode (Chat
//! Completions blocking, streamed with `stream_options.include_usage` and without it;
//! Completions blocking and streamed; Responses and Messages blocking and streamed; embeddings),
//! each with its own `X-Telemetry-Agent`, reading the servers' `/metrics` counters before and
//! after each; then an invalid request, and 50 blocking calls direct and 50 through the proxy,
//! interleaved (median latency of each).
//!
//! After SIGTERM to the proxy, each record must equal the usage the SDK returned (prompt,
//! completion, cached, cache-write and reasoning tokens), or the server's counters where the
//! client asked for no usage (the proxy asks the server for it: `tokens_counted` must be 0), and
//! the server's counters in any case; the Chat stream without `include_usage` must reach the SDK
//! without usage (no usage-only chunk) and with the chunks (keys, deltas, finish reasons) the SDK
//! gets from llama.cpp directly; the sum of the recorded
//! output tokens must equal the delta of `llamacpp:tokens_predicted_total`; the invalid request
//! is `http_400` with the server's message; one record per call. Rows outside [`ASSERTED`]
//! (modes whose exact recording has not landed yet) are shown but do not fail the step;
//! `TELEMETRY_PROXY_LLAMA_ASSERT=all` (or a comma-separated list of APIs / agents) asserts them.
//! The transcript (SDK output, checks, table, `telemetry stats`) is written to
//! `target/proxy-llama/transcript.txt`, the table API × mode (recorded tokens, SDK usage, server
//! counter delta) to `target/proxy-llama/table.txt`.
//!
//! Without Python or a server that runs here, one line says what was skipped — unless `CI=true`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::llama::{self, MODEL_ALIAS, Unavailable};
use crate::util::{build_telemetry, target_dir, workspace_root};

/// The client script, written next to its venv.
const CLIENT: &str = include_str!("proxy_llama/client.py");
/// Calls direct and through the proxy for the latency comparison.
const LATENCY_CALLS: &str = "50";
/// The SDKs the client uses, pinned (the versions the issue names).
pub const SDKS: [(&str, &str); 2] = [("openai", "3.51.0"), ("anthropic", "2.10.0")];
/// The model name the proxy routes to the embeddings server.
const EMBED_MODEL: &str = "smollm2-135m-embed";
/// The rows (record `api` names, or single agents of client.py) whose checks fail the step:
/// every API client.py calls (a row left out is shown in the table only).
const ASSERTED: &[&str] = &[
    "openai_chat",
    "openai_completions",
    "openai_responses",
    "anthropic_messages",
    "openai_embeddings",
];
/// Overrides [`ASSERTED`]: `all`, or a comma-separated list of APIs and agents.
const ASSERT_ENV: &str = "TELEMETRY_PROXY_LLAMA_ASSERT";

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
        Err(e) => e.skip_off_ci(
            "proxy-llama",
            "the Python SDKs through the proxy to llama.cpp",
        ),
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
    let server = llama::start(&mut installed, &cache, &["--metrics"])?;
    let direct = format!("http://127.0.0.1:{}", server.port);
    eprintln!("xtask proxy-llama: llama-server ready at {direct}");
    let embed_server = llama::start(
        &mut installed,
        &cache,
        &["--metrics", "--embeddings", "--pooling", "mean"],
    )?;
    let embed = format!("http://127.0.0.1:{}", embed_server.port);
    eprintln!("xtask proxy-llama: llama-server --embeddings ready at {embed}");
    let route = format!("{EMBED_MODEL}={embed}");

    let db = work.join("proxy.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let mut proxy = ProxyChild::start(&telemetry, &db, &direct, &route)?;
    let mut transcript = format!(
        "$ telemetry --db {} proxy --listen 127.0.0.1:0 --upstream {direct} --route {route} --engine-name llama.cpp --gpu off\n{}\n",
        db.display(),
        proxy.banner.trim_end()
    );
    let proxy_url = format!("http://{}", proxy.addr);
    let sdks: Vec<String> = SDKS.iter().map(|(p, v)| format!("{p}=={v}")).collect();
    transcript.push_str(&format!(
        "\n$ python client.py calls {proxy_url} {direct} {embed} {MODEL_ALIAS} {EMBED_MODEL}   # {}\n",
        sdks.join(" ")
    ));
    let seen = work.join("seen.json");
    transcript.push_str(&python_step(
        &python,
        &script,
        &[
            "calls",
            &proxy_url,
            &direct,
            &embed,
            MODEL_ALIAS,
            EMBED_MODEL,
        ],
        &[seen.to_str().unwrap_or_default(), LATENCY_CALLS],
    )?);
    let stopped = proxy.terminate()?;
    transcript.push_str(&format!("\n$ kill -TERM <proxy>\n{}\n", stopped.trim_end()));
    drop(server);
    drop(embed_server);

    let asserted = std::env::var(ASSERT_ENV).unwrap_or_else(|_| ASSERTED.join(","));
    let table = work.join("table.txt");
    transcript.push_str(&format!(
        "\n$ python client.py verify proxy.db seen.json table.txt {asserted}   # records vs SDK usage vs server counters\n"
    ));
    let verified = python_step(
        &python,
        &script,
        &["verify", db.to_str().unwrap_or_default()],
        &[
            seen.to_str().unwrap_or_default(),
            table.to_str().unwrap_or_default(),
            &asserted,
        ],
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
            "the proxy's records do not match the SDKs' usage or the servers' counters (see the table above)".into(),
        ));
    }
    if !stats.status.success() {
        return Err(failed(format!("telemetry stats failed ({})", stats.status)));
    }
    Ok(path)
}

/// A venv under `target/proxy-client/` with the pinned [`SDKS`]; its python.
fn client_venv(target: &Path) -> Result<PathBuf, Unavailable> {
    let venv = target.join("proxy-client/venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let system = llama::which_python()
            .ok_or_else(|| Unavailable::Missing("no python3 on PATH for the SDKs".into()))?;
        llama::run_retried("creating the client venv", || {
            Command::new(&system)
                .arg("-m")
                .arg("venv")
                .arg(&venv)
                .status()
        })?;
    }
    // Exits 0 only when every pinned version is the one installed.
    let probe = SDKS
        .iter()
        .map(|(package, version)| {
            format!("__import__('importlib.metadata').metadata.version('{package}') == '{version}'")
        })
        .collect::<Vec<_>>()
        .join(" and ");
    let installed = Command::new(&python)
        .args(["-c", &format!("import sys; sys.exit(0 if {probe} else 1)")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        let pins: Vec<String> = SDKS.iter().map(|(p, v)| format!("{p}=={v}")).collect();
        llama::run_retried(&format!("pip install {}", pins.join(" ")), || {
            Command::new(&python)
                .args(["-m", "pip", "install", "-q"])
                .args(&pins)
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
            "{text}the SDK client step `{}` failed ({})",
            args.first().copied().unwrap_or_default(),
            output.status
        )))
    }
}

/// `telemetry proxy` as a child, killed and reaped when dropped.
pub(crate) struct ProxyChild {
    child: Child,
    /// Where it listens, `127.0.0.1:PORT`.
    pub(crate) addr: String,
    banner: String,
}

impl ProxyChild {
    fn start(
        telemetry: &Path,
        db: &Path,
        upstream: &str,
        route: &str,
    ) -> Result<ProxyChild, Unavailable> {
        ProxyChild::start_with(telemetry, db, &["--upstream", upstream, "--route", route])
    }

    /// `telemetry --db DB proxy --listen 127.0.0.1:0 --engine-name llama.cpp --gpu off` plus
    /// `args` (the upstream at least).
    pub(crate) fn start_with(
        telemetry: &Path,
        db: &Path,
        args: &[&str],
    ) -> Result<ProxyChild, Unavailable> {
        let mut child = Command::new(telemetry)
            .arg("--db")
            .arg(db)
            .args(["proxy", "--listen", "127.0.0.1:0"])
            .args(args)
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
    pub(crate) fn terminate(&mut self) -> Result<String, Unavailable> {
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
