//! `telemetry serve`: the Prometheus endpoint of a database. Every scrape of `/metrics` opens the
//! file read-only and renders it from the stored rollups (`telemetry_prometheus::render`), so
//! records written meanwhile by another process (`demo`, `run`, the proxy) are counted, nothing
//! is cached, and the database is never written or locked for writing by a scrape. With
//! `--retain`, a store of the process's own (its own connection and writer thread) deletes old
//! records in the background, in short transactions; scrapes do not wait for it (WAL readers
//! never wait for a writer).
//!
//! The server is HTTP/1 on hyper over a single-threaded tokio runtime: connections are tasks, a
//! scrape's SQLite reads run on a small blocking pool so scrapes proceed side by side, a
//! malformed request gets hyper's 400 and never reaches this code, and a client that sends no
//! headers is dropped after [`HEADER_READ_TIMEOUT`]. SIGINT or SIGTERM stops accepting and lets
//! responses in flight finish for up to [`SHUTDOWN_GRACE`].

use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use telemetry_agg::TelemetryAggregator;
use telemetry_prometheus::{Format, RenderError, RenderOptions, render};
use telemetry_store::{Retention, TelemetryStore};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::cli::ServeArgs;
use crate::dbpath::DbPath;
use crate::emit::emit;
use crate::error::{CliError, ServerError};
use crate::listen::shutdown_signal;
use crate::output::escape_controls;
use crate::read::open_aggregator;
use crate::recording::retention_line;

/// How long a connection may take to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long responses in flight may take to finish after SIGINT/SIGTERM.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Open connections at most; further clients wait in the listen backlog.
const MAX_CONNECTIONS: usize = 256;
/// Scrapes rendered at once at most (each reads the rollups on its own connection).
const MAX_RENDERS: usize = 4;
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Runs `serve` until SIGINT or SIGTERM.
pub fn run(db: &DbPath, args: &ServeArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let listen_failed = |source| {
        CliError::Serve(ServerError::Listen {
            addr: args.listen,
            source,
        })
    };
    // A file that is not a telemetry database fails now, not at the first scrape; one being
    // created by another process is waited for, as by the other readers.
    let path = db.require_existing()?.to_path_buf();
    render(&open_aggregator(db)?, &RenderOptions::default()).map_err(render_error)?;
    // `--retain`: a writer of this process's own deletes old records in the background, on its
    // own connection and thread; a scrape reads on its own read-only connection, which in WAL
    // mode never waits for a writer.
    let retention = match args.retention.retain {
        Some(window) => Some(
            TelemetryStore::builder(&path)
                .retention(Retention::new(window))
                .open()?,
        ),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(MAX_RENDERS)
        .build()
        .map_err(|e| CliError::Serve(ServerError::Runtime(e)))?;
    runtime.block_on(async {
        // Handlers first: a signal that arrives once the address is printed must stop cleanly.
        let stop = shutdown_signal().map_err(CliError::Serve)?;
        let listener = TcpListener::bind(args.listen)
            .await
            .map_err(listen_failed)?;
        let addr = listener.local_addr().map_err(listen_failed)?;
        emit(
            out,
            &format!(
                "serving http://{addr}/metrics from {} (Ctrl-C to stop)\n",
                escape_controls(&path.display().to_string())
            ),
        )?;
        serve(
            listener,
            Arc::new(Source {
                path,
                series_limit: args.series_limit,
            }),
            stop,
        )
        .await;
        Ok::<_, CliError>(())
    })?;
    if let Some(store) = retention {
        let stats = store.stats();
        store.close()?;
        if let Some(line) = retention_line(&stats) {
            emit(out, &line)?;
        }
    }
    Ok(())
}

/// What a scrape reads: the database, and the label sets it exposes at most.
#[derive(Debug)]
struct Source {
    path: PathBuf,
    series_limit: usize,
}

/// The exposition text of the database of `source` in `format`, read now.
fn scrape(source: &Source, format: Format) -> Result<String, RenderError> {
    render(
        &TelemetryAggregator::open(&source.path)?,
        &RenderOptions::new()
            .with_format(format)
            .with_series_limit(source.series_limit),
    )
}

fn render_error(e: RenderError) -> CliError {
    match e {
        RenderError::Query(e) => CliError::Agg(e),
        other => CliError::Serve(ServerError::Render(other)),
    }
}

/// Accepts connections until `stop` completes, then drains them for up to [`SHUTDOWN_GRACE`].
async fn serve(listener: TcpListener, db: Arc<Source>, stop: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut stop = pin!(stop);
    loop {
        let permit = tokio::select! {
            biased;
            () = &mut stop => break,
            permit = Arc::clone(&limit).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            biased;
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let db = Arc::clone(&db);
        let service = service_fn(move |request| handle(Arc::clone(&db), request));
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A client that goes away or sends garbage ends its own connection, nothing else.
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
}

async fn handle(
    db: Arc<Source>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok(respond(
        db,
        request.method(),
        request.uri().path(),
        accept.as_deref(),
    )
    .await)
}

/// The response to `method path`: `/` and `/metrics` answer GET (and HEAD), anything else is
/// 404, other methods 405. `/metrics` is OpenMetrics when `accept` prefers it
/// ([`Format::negotiate`]), the Prometheus text format otherwise.
async fn respond(
    db: Arc<Source>,
    method: &Method,
    path: &str,
    accept: Option<&str>,
) -> Response<Full<Bytes>> {
    let metrics = match path {
        "/" => false,
        "/metrics" => true,
        _ => return reply(StatusCode::NOT_FOUND, TEXT, "not found; try /metrics\n"),
    };
    if method != Method::GET && method != Method::HEAD {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "method not allowed; use GET\n",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if !metrics {
        return reply(StatusCode::OK, HTML, INDEX_HTML);
    }
    let format = Format::negotiate(accept);
    match tokio::task::spawn_blocking(move || scrape(&db, format)).await {
        Ok(Ok(text)) => {
            let mut r = reply(StatusCode::OK, format.content_type(), text);
            r.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("accept"));
            r
        }
        Ok(Err(e)) => {
            let message = escape_controls(&e.to_string()).into_owned();
            eprintln!("telemetry: scrape failed: {message}");
            reply(StatusCode::INTERNAL_SERVER_ERROR, TEXT, message + "\n")
        }
        Err(_) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            TEXT,
            "internal error while rendering /metrics\n",
        ),
    }
}

const TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// The index page: static, so nothing from the database reaches HTML.
const INDEX_HTML: &str = "<!DOCTYPE html>
<html lang=\"en\">
<head><meta charset=\"utf-8\"><title>telemetry serve</title></head>
<body>
<h1>Inference telemetry</h1>
<p><a href=\"/metrics\">/metrics</a>: Prometheus text format (OpenMetrics to a scraper that asks for it), computed from the telemetry database at each scrape.</p>
</body>
</html>
";

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use telemetry_prometheus::CONTENT_TYPE;

    #[test]
    fn content_types_are_valid_header_values() {
        for ct in [TEXT, HTML, CONTENT_TYPE, Format::OpenMetrics.content_type()] {
            assert!(HeaderValue::from_str(ct).is_ok(), "{ct}");
        }
        assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    }

    #[test]
    fn routes_answer_with_the_right_status() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let db = Arc::new(Source {
            path: PathBuf::from("/nonexistent/t.db"),
            series_limit: 10,
        });
        let status = |method: Method, path: &str| {
            rt.block_on(respond(Arc::clone(&db), &method, path, None))
                .status()
        };
        assert_eq!(status(Method::GET, "/"), StatusCode::OK);
        assert_eq!(status(Method::HEAD, "/"), StatusCode::OK);
        assert_eq!(status(Method::GET, "/nope"), StatusCode::NOT_FOUND);
        assert_eq!(status(Method::POST, "/nope"), StatusCode::NOT_FOUND);
        assert_eq!(
            status(Method::POST, "/metrics"),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(status(Method::DELETE, "/"), StatusCode::METHOD_NOT_ALLOWED);
        // The database vanished: the scrape says so instead of panicking.
        assert_eq!(
            status(Method::GET, "/metrics"),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
