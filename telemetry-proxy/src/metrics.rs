//! `GET /metrics` on the proxy's port, when the proxy is given a [`MetricsSource`] (the CLI
//! gives it the Prometheus exposition of the database it records into). Without a source,
//! `/metrics` is forwarded like any other path.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};

use crate::body::ResponseBody;
use crate::reply::error_response;

/// The path answered with the source's text.
pub const METRICS_PATH: &str = "/metrics";

/// Renders the text served at [`METRICS_PATH`]. Rendering runs on tokio's blocking pool, so it
/// may read files or databases.
pub trait MetricsSource: Send + Sync + 'static {
    /// The response's `Content-Type` (for Prometheus: `text/plain; version=0.0.4;
    /// charset=utf-8`).
    fn content_type(&self) -> &'static str;

    /// The exposition text now, or why it cannot be had (answered as a 500 with the reason).
    fn render(&self) -> Result<String, String>;
}

/// Answers `/metrics` from `source`.
pub(crate) async fn respond(
    source: &Arc<dyn MetricsSource>,
    method: &Method,
) -> Response<ResponseBody> {
    if method != Method::GET && method != Method::HEAD {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "/metrics answers GET only",
        );
    }
    let rendering = Arc::clone(source);
    let rendered = tokio::task::spawn_blocking(move || rendering.render()).await;
    let (status, content_type, text) = match rendered {
        Ok(Ok(text)) => (StatusCode::OK, source.content_type(), text),
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
    if let Ok(v) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
