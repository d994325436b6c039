//! [`FakeRequest`]: a request as the fake server received it.

use bytes::Bytes;
use http::{HeaderMap, Method, Uri};

/// A request the fake server received.
#[derive(Debug, Clone)]
pub struct FakeRequest {
    /// `GET`, `POST`, ...
    pub method: Method,
    /// Request target (path and query).
    pub uri: Uri,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl FakeRequest {
    /// The path, with the query.
    pub fn path(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }

    /// The value of header `name` (case-insensitive), if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// Whether the request asks for its stream's usage (`stream_options.include_usage: true`),
    /// as a server reads it.
    pub fn asks_for_usage(&self) -> bool {
        self.json().pointer("/stream_options/include_usage") == Some(&serde_json::Value::Bool(true))
    }
}
