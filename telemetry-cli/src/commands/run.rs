//! `telemetry run`: real calls to an OpenAI-compatible server through the instrumented
//! `AsyncOpenAiEngine` (`--concurrency` tasks on one thread), recorded into the store, then the
//! stats of the run — a small benchmark client to point at any server. SIGINT stops it
//! cleanly: no new call, the calls in flight dropped (recorded as cancelled), the store
//! flushed, the table of what ran printed, exit 130; a second SIGINT exits at once.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_core::Stream;
use indicatif::ProgressBar;
use telemetry_openai::{AsyncOpenAiEngine, OpenAiConfig};
use telemetry_wrap::{AsyncInferenceEngine, GenerateParams, InstrumentedEngine, Message};

use crate::cli::RunArgs;
use crate::dbpath::DbPath;
use crate::emit::emit;
use crate::error::CliError;
use crate::output::{count, escape_controls};
use crate::progress;
use crate::recording::{RUN_ID_KEY, Recording};

/// The prompt when neither `--prompt` nor `--prompts` is given.
const DEFAULT_PROMPT: &str = "Explain in two sentences why the sky is blue.";

/// Runs `run`.
pub fn run(db: &DbPath, args: &RunArgs, out: &mut dyn Write) -> Result<(), CliError> {
    // A URL no call can reach is the user's mistake, said before anything is written.
    let (host, port) = server_of(&args.url).ok_or_else(|| {
        CliError::Usage(format!(
            "--url {:?}: expected http://HOST[:PORT][/PATH] (or https://), with a port from 1 to \
             65535, e.g. http://127.0.0.1:8080/v1",
            escape_controls(&args.url)
        ))
    })?;
    let prompts = load_prompts(args)?;
    let mut config = OpenAiConfig::new(&args.url)
        .without_api_key()
        .with_first_token_timeout(Some(Duration::from_secs_f64(args.timeout)))
        .with_idle_timeout(Some(Duration::from_secs_f64(args.idle_timeout)))
        .with_total_timeout(args.total_timeout.map(Duration::from_secs_f64));
    if let Some(key) = args.api_key.as_deref().filter(|k| !k.trim().is_empty()) {
        config = config.with_api_key(key);
    }
    if let Some(engine) = &args.engine {
        config = config.with_engine_id(engine);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Usage(format!("starting the run's runtime failed: {e}")))?;
    let engine = runtime
        .block_on(AsyncOpenAiEngine::detect(config))
        .map_err(|e| CliError::Usage(format!("--url: {e}")))?;

    let recording = Recording::builder(&db.path)
        .otlp(args.otlp.as_deref())
        .retain(args.retention.retain)
        .start()?;
    let mut engine =
        InstrumentedEngine::new_async(engine, Arc::clone(&recording.bus)).with_agent(&args.agent);
    // The server's address in every record (`server.address`/`server.port`, as OpenTelemetry
    // names them; OTLP spans carry them), and the run id that selects the run's own calls for
    // its table.
    engine = engine
        .with_metadata(serde_json::json!({
            "server.address": host,
            "server.port": port,
            RUN_ID_KEY: recording.run_id,
        }))
        .map_err(|e| CliError::Usage(format!("--url: {e}")))?;

    let mut params = GenerateParams::new(&args.model).with_max_tokens(args.max_tokens);
    if let Some(t) = args.temperature {
        params = params.with_temperature(t);
    }
    if args.no_cache_prompt {
        params = params.with_extra("cache_prompt", serde_json::Value::Bool(false));
    }
    emit(
        out,
        &format!(
            "run: {} {}calls to {} ({}), model {}, concurrency {}, {} prompt{}\n",
            count(args.calls),
            if args.stream { "streaming " } else { "" },
            escape_controls(&args.url),
            escape_controls(engine.engine_id()),
            escape_controls(&args.model),
            args.concurrency,
            prompts.len(),
            if prompts.len() == 1 { "" } else { "s" },
        ),
    )?;

    let shared = Arc::new(Shared {
        engine,
        prompts,
        params,
        stream: args.stream,
        calls: args.calls,
        next: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_error: Mutex::new(None),
        bar: progress::bar(args.calls, "calls", progress::enabled()),
    });
    let interrupted = runtime.block_on(drive(&shared, args.concurrency))?;
    shared.bar.finish_and_clear();
    shared.engine.flush();
    let mut finished = recording.finish();
    finished.store_result()?;
    let failed = shared.failed.load(Ordering::Relaxed);
    let sent = shared.next.load(Ordering::Relaxed).min(args.calls);

    let mut summary = finished.summary_line(failed, &db.path);
    if let Some(cancelled) = interrupted {
        summary.push_str(&format!(
            "interrupted: stopped after {} calls, {} in flight recorded as cancelled\n",
            count(sent),
            count(cancelled),
        ));
    }
    let first_error = shared
        .first_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(e) = &first_error {
        summary.push_str(&format!(
            "first failure: {}\n",
            escape_controls(&e.to_string())
        ));
    }
    if let Some(line) = &finished.otlp_line {
        summary.push_str(line);
    }
    if let Some(line) = finished.retention_line() {
        summary.push_str(&line);
    }
    summary.push('\n');
    emit(out, &summary)?;

    finished.print_stats(&db.path, out)?;
    if interrupted.is_some() {
        return Err(CliError::Interrupted { calls: sent });
    }
    if failed == args.calls {
        return Err(CliError::AllCallsFailed {
            calls: failed,
            first_failure: first_error,
        });
    }
    Ok(())
}

/// What the workers share.
struct Shared {
    engine: InstrumentedEngine<AsyncOpenAiEngine>,
    prompts: Vec<Vec<Message>>,
    params: GenerateParams,
    stream: bool,
    calls: u64,
    /// Calls started (may pass `calls`: each worker takes one more number before it stops).
    next: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    bar: ProgressBar,
}

/// Runs `concurrency` workers until every call is made or SIGINT comes. On SIGINT no call is
/// started any more and the calls in flight are dropped, which records each as cancelled;
/// `Some(calls in flight)` then. A second SIGINT exits at once.
async fn drive(shared: &Arc<Shared>, concurrency: u64) -> Result<Option<u64>, CliError> {
    let mut interrupt = interrupt_signal()?;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        workers.spawn(worker(Arc::clone(shared)));
    }
    let interrupted = tokio::select! {
        () = async { while workers.join_next().await.is_some() {} } => false,
        _ = interrupt.recv() => true,
    };
    if !interrupted {
        return Ok(None);
    }
    // A second SIGINT while the in-flight calls are recorded and the store flushed: leave now.
    tokio::spawn(async move {
        if interrupt.recv().await.is_some() {
            std::process::exit(130);
        }
    });
    workers.abort_all();
    let mut cancelled = 0;
    while let Some(joined) = workers.join_next().await {
        if joined.is_err_and(|e| e.is_cancelled()) {
            cancelled += 1;
        }
    }
    Ok(Some(cancelled))
}

/// SIGINT (Ctrl-C) as a stream of events.
fn interrupt_signal() -> Result<tokio::signal::unix::Signal, CliError> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| CliError::Usage(format!("installing the SIGINT handler: {e}")))
}

/// Takes call numbers until there are none left.
async fn worker(shared: Arc<Shared>) {
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        if i >= shared.calls {
            return;
        }
        let messages = &shared.prompts[(i % shared.prompts.len() as u64) as usize];
        if let Err(e) = call(&shared.engine, messages, &shared.params, shared.stream).await {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            shared
                .first_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert(format!("{e} ({})", e.error_kind()));
        }
        shared.bar.inc(1);
    }
}

/// One call, read to the end; the error is recorded by the instrumented engine either way
/// (and a call dropped before its end is recorded as cancelled).
async fn call(
    engine: &InstrumentedEngine<AsyncOpenAiEngine>,
    messages: &[Message],
    params: &GenerateParams,
    stream: bool,
) -> Result<(), telemetry_openai::protocol::OpenAiError> {
    if stream {
        let mut chunks = std::pin::pin!(engine.stream(messages, params).await?);
        while let Some(chunk) = std::future::poll_fn(|cx| chunks.as_mut().poll_next(cx)).await {
            chunk?;
        }
        Ok(())
    } else {
        engine.generate(messages, params).await.map(drop)
    }
}

/// The prompts: `--prompts` lines, else `--prompt`, else a default.
fn load_prompts(args: &RunArgs) -> Result<Vec<Vec<Message>>, CliError> {
    let Some(path) = &args.prompts else {
        let prompt = args.prompt.as_deref().unwrap_or(DEFAULT_PROMPT);
        return Ok(vec![vec![Message::user(prompt)]]);
    };
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CliError::InputNotFound {
            what: "prompts file",
            path: path.clone(),
        },
        _ => CliError::Io {
            action: "reading",
            path: path.clone(),
            source: e,
        },
    })?;
    let mut prompts = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        prompts.push(parse_prompt(line).map_err(|why| bad_line(path, n + 1, &why))?);
    }
    if prompts.is_empty() {
        return Err(CliError::Usage(format!(
            "{} holds no prompts",
            path.display()
        )));
    }
    Ok(prompts)
}

fn bad_line(path: &Path, line: usize, why: &str) -> CliError {
    CliError::Usage(format!("{} line {line}: {why}", path.display()))
}

/// One JSONL line: a string, `{"prompt": ...}` or `{"messages": [...]}`.
fn parse_prompt(line: &str) -> Result<Vec<Message>, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    match value {
        serde_json::Value::String(s) => Ok(vec![Message::user(s)]),
        serde_json::Value::Object(mut o) => {
            if let Some(serde_json::Value::String(p)) = o.remove("prompt") {
                return Ok(vec![Message::user(p)]);
            }
            match o.remove("messages") {
                Some(m) => {
                    let messages: Vec<Message> = serde_json::from_value(m).map_err(|e| {
                        format!("`messages` must be [{{\"role\", \"content\"}}]: {e}")
                    })?;
                    if messages.is_empty() {
                        Err("`messages` is empty".to_owned())
                    } else {
                        Ok(messages)
                    }
                }
                None => Err("expected a string, {\"prompt\": ...} or {\"messages\": [...]}".into()),
            }
        }
        _ => Err("expected a string, {\"prompt\": ...} or {\"messages\": [...]}".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_lines() {
        assert_eq!(parse_prompt(r#""hi""#).unwrap(), [Message::user("hi")]);
        assert_eq!(
            parse_prompt(r#"{"prompt":"p"}"#).unwrap(),
            [Message::user("p")]
        );
        let m = parse_prompt(
            r#"{"messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}]}"#,
        )
        .unwrap();
        assert_eq!(m, [Message::system("s"), Message::user("u")]);
        assert!(parse_prompt("{").unwrap_err().starts_with("not JSON"));
        assert!(parse_prompt(r#"{"messages":[]}"#).is_err());
        assert!(parse_prompt("3").is_err());
    }
}

/// Host and port of an `http(s)://host[:port][/path]` URL (the scheme's port when none is
/// given); `None` when the URL has another scheme, no host, or a port outside 1..=65535.
fn server_of(url: &str) -> Option<(String, u16)> {
    let (default, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (80, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (443, rest)
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').map(str::parse).transpose().ok()?;
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port.parse().ok()?)),
            None => (authority, None),
        }
    };
    let port = port.unwrap_or(default);
    (!host.is_empty() && port != 0).then(|| (host.to_owned(), port))
}

#[cfg(test)]
mod server_tests {
    use super::server_of;

    #[test]
    fn the_server_is_read_from_the_url() {
        let s = |h: &str, p: u16| Some((h.to_owned(), p));
        assert_eq!(server_of("http://127.0.0.1:8080"), s("127.0.0.1", 8080));
        assert_eq!(server_of("http://gpu-1:8000/v1"), s("gpu-1", 8000));
        assert_eq!(
            server_of("https://api.example.com/v1"),
            s("api.example.com", 443)
        );
        assert_eq!(server_of("http://[::1]:9000/"), s("::1", 9000));
        assert_eq!(server_of("http://[::1]"), s("::1", 80));
        assert_eq!(server_of("http://host:notaport"), None);
        assert_eq!(server_of("http:///v1"), None);
        assert_eq!(server_of("localhost:8080"), None);
        assert_eq!(server_of("http://x:0/v1"), None);
        assert_eq!(server_of("http://x:99999/v1"), None);
        assert_eq!(server_of("ftp://x/v1"), None);
    }
}
