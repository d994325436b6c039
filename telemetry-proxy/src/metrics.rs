//! `GET /metrics` on the proxy's port, when the proxy is given a [`MetricsSource`] (the CLI
//! gives it the Prometheus exposition of the database it records into). Without a source,
//! `/metrics` is forwarded like any other path.
//!
//! The scraper's `Accept` header goes to the source, which picks the format (the CLI's answers
//! OpenMetrics to a scraper that prefers it, as `telemetry serve` does), and the answer says
//! `Vary: accept`. Rendering runs on tokio's blocking pool, at most [`MAX_CONCURRENT_RENDERS`]
//! at once: more scrapes wait for a turn, so a burst of scrapes never takes more threads (or
//! database connections) than that.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use tokio::sync::Semaphore;

use crate::body::ResponseBody;
use crate::fields::Fields;
use crate::reply::error_response;

/// The path answered with the source's text.
pub const METRICS_PATH: &str = "/metrics";

/// Most renders of `/metrics` running at once (as `telemetry serve`).
pub const MAX_CONCURRENT_RENDERS: usize = 4;

/// One rendering of the exposition: its `Content-Type` and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposition {
    /// The response's `Content-Type` (for Prometheus: `text/plain; version=0.0.4;
    /// charset=utf-8`; for OpenMetrics: `application/openmetrics-text; version=1.0.0;
    /// charset=utf-8`).
    pub content_type: &'static str,
    /// The text.
    pub text: String,
}

/// Renders the text served at [`METRICS_PATH`]. Rendering runs on tokio's blocking pool (at
/// most [`MAX_CONCURRENT_RENDERS`] at once), so it may read files or databases.
pub trait MetricsSource: Send + Sync + 'static {
    /// The exposition for a scrape whose `Accept` header is `accept` (`None` without one, or
    /// when it is not text), or why it cannot be had (answered as a 500 with the reason).
    fn render(&self, accept: Option<&str>) -> Result<Exposition, String>;
}

/// A source and the turns of its renders.
pub(crate) struct MetricsEndpoint {
    source: Arc<dyn MetricsSource>,
    turns: Arc<Semaphore>,
}

impl std::fmt::Debug for MetricsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsEndpoint")
            .field("turns_free", &self.turns.available_permits())
            .finish_non_exhaustive()
    }
}

impl MetricsEndpoint {
    pub(crate) fn new(source: Arc<dyn MetricsSource>) -> MetricsEndpoint {
        MetricsEndpoint {
            source,
            turns: Arc::new(Semaphore::new(MAX_CONCURRENT_RENDERS)),
        }
    }

    /// Answers `/metrics`.
    pub(crate) async fn respond(
        &self,
        method: &Method,
        headers: &Fields,
    ) -> Response<ResponseBody> {
        if method != Method::GET && method != Method::HEAD {
            return error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "/metrics answers GET only",
            );
        }
        let accept = headers
            .get("accept")
            .and_then(crate::fields::to_str)
            .map(str::to_owned);
        let rendered = match Arc::clone(&self.turns).acquire_owned().await {
            Ok(turn) => {
                let source = Arc::clone(&self.source);
                // The render holds the turn, so that a scrape whose client left (the blocking
                // task runs to its end all the same) still counts until it is done.
                tokio::task::spawn_blocking(move || {
                    let rendered = source.render(accept.as_deref());
                    drop(turn);
                    rendered
                })
                .await
            }
            // The semaphore is never closed.
            Err(_) => Ok(Err("the metrics endpoint is closed".to_owned())),
        };
        let (status, content_type, text) = match rendered {
            Ok(Ok(e)) => (StatusCode::OK, e.content_type, e.text),
            Ok(Err(why)) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                format!("rendering /metrics failed: {why}\n"),
            ),
            Err(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                "rendering /metrics failed\n".to_owned(),
            ),
        };
        let mut response = Response::new(if method == Method::HEAD {
            ResponseBody::Local(None)
        } else {
            ResponseBody::local(text)
        });
        *response.status_mut() = status;
        let headers = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(content_type) {
            headers.insert(header::CONTENT_TYPE, v);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::VARY, HeaderValue::from_static("accept"));
        response
    }
}
