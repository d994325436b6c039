//! The proxy's own answers (health, `/metrics`, a 502) and the one-line error text they carry.
//! A leaf: it names no other module of the crate, so every room may use it. The body type is the
//! caller's (anything built from [`Bytes`]).

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

/// An OpenAI-style error body (`{"error": {"message", "type", "code"}}`), which OpenAI clients
/// show to their caller.
pub(crate) fn error_response<B: From<Bytes>>(
    status: StatusCode,
    kind: &str,
    message: &str,
) -> Response<B> {
    let body = serde_json::json!({
        "error": { "message": message, "type": kind, "code": status.as_u16() }
    });
    json_response(status, &body)
}

/// A JSON response of the proxy's own.
pub(crate) fn json_response<B: From<Bytes>>(
    status: StatusCode,
    body: &serde_json::Value,
) -> Response<B> {
    let mut response = Response::new(B::from(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An error and its sources in one line ("client error (Connect): tcp connect error: ...").
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_joins_sources_once() {
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        assert_eq!(chain(&e), "outer: refused");
    }

    #[test]
    fn error_bodies_are_openai_style_json() {
        let r: Response<Bytes> =
            error_response(StatusCode::BAD_GATEWAY, "upstream_unreachable", "x");
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let v: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"message": "x", "type": "upstream_unreachable", "code": 502}})
        );
    }
}
