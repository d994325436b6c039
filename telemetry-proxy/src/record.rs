//! Recording side: which requests are calls ([`Endpoint`]) and one call's [`Exchange`], fed
//! the response's bytes on the side. Nothing here can fail or delay a request.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

use crate::stats::Counters;

/// The completion endpoints the proxy records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/completions`.
    Completions,
}

impl Endpoint {
    /// The endpoint a request is for, if it is one the proxy records.
    pub fn of(method: &Method, path: &str) -> Option<Endpoint> {
        if method != Method::POST {
            return None;
        }
        match path.trim_end_matches('/') {
            "/v1/chat/completions" => Some(Endpoint::Chat),
            "/v1/completions" => Some(Endpoint::Completions),
            _ => None,
        }
    }
}

/// What the proxy learnt from a completion request's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestInfo {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The request's `model`.
    pub model: Option<String>,
    /// Whether the request asked for a stream.
    pub stream: bool,
    /// Whether the body was read whole and parsed as a JSON object.
    pub parsed: bool,
}

/// The few request fields the proxy reads; the rest is forwarded without being looked at.
#[derive(serde::Deserialize)]
struct RequestFields<'a> {
    #[serde(borrow, default)]
    model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
}

impl RequestInfo {
    /// Reads a request body (`None`: larger than the read-ahead limit).
    pub fn parse(endpoint: Endpoint, body: Option<&Bytes>) -> RequestInfo {
        let fields = body.and_then(|b| serde_json::from_slice::<RequestFields<'_>>(b).ok());
        RequestInfo {
            endpoint,
            parsed: fields.is_some(),
            model: fields
                .as_ref()
                .and_then(|f| f.model.as_deref())
                .filter(|m| !m.is_empty())
                .map(str::to_owned),
            stream: fields.and_then(|f| f.stream).unwrap_or(false),
        }
    }
}

/// Starts the record of each completion call.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    counters: Arc<Counters>,
}

impl Recorder {
    pub fn new(counters: Arc<Counters>) -> Recorder {
        Recorder { counters }
    }

    /// The telemetry part of `/telemetry/health`, and whether it is healthy.
    pub fn health(&self) -> (serde_json::Value, bool) {
        (serde_json::json!({ "store": null }), true)
    }

    /// A call described by `info` begins.
    pub fn begin(&self, info: RequestInfo, _agent: Option<&str>) -> Exchange {
        if !info.parsed {
            Counters::bump(&self.counters.requests_unparsed);
        }
        Exchange {
            counters: Arc::clone(&self.counters),
            status: None,
            ended: false,
        }
    }
}

/// One completion call between the proxy and its upstream.
#[derive(Debug)]
pub(crate) struct Exchange {
    counters: Arc<Counters>,
    status: Option<StatusCode>,
    ended: bool,
}

impl Exchange {
    /// The upstream answered with `status` and `headers`.
    pub fn response(&mut self, status: StatusCode, _headers: &HeaderMap) {
        self.status = Some(status);
    }

    /// Part of the response body went by.
    pub fn data(&mut self, _data: &Bytes) {}

    /// The response body ended normally.
    pub fn complete(mut self) {
        let failed = self.status.is_some_and(|s| !s.is_success());
        self.end(if failed { End::Failed } else { End::Ok });
    }

    /// The upstream could not be reached.
    pub fn unreachable(mut self, _message: &str) {
        self.end(End::Failed);
    }

    /// The upstream's body broke off.
    pub fn upstream_body_failed(mut self, _error: &hyper::Error) {
        self.end(End::Failed);
    }

    /// The client went away before the response ended.
    pub fn client_gone(mut self) {
        self.end(End::Cancelled);
    }

    fn end(&mut self, end: End) {
        self.ended = true;
        Counters::bump(&self.counters.calls_recorded);
        match end {
            End::Ok => {}
            End::Failed => Counters::bump(&self.counters.calls_failed),
            End::Cancelled => Counters::bump(&self.counters.calls_cancelled),
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        // Dropped unended: the client went away before the upstream answered.
        if !self.ended {
            self.end(End::Cancelled);
        }
    }
}

enum End {
    Ok,
    Failed,
    Cancelled,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_completion_posts_are_recorded() {
        assert_eq!(
            Endpoint::of(&Method::POST, "/v1/chat/completions"),
            Some(Endpoint::Chat)
        );
        assert_eq!(
            Endpoint::of(&Method::POST, "/v1/completions/"),
            Some(Endpoint::Completions)
        );
        assert_eq!(Endpoint::of(&Method::GET, "/v1/chat/completions"), None);
        assert_eq!(Endpoint::of(&Method::POST, "/v1/embeddings"), None);
    }

    #[test]
    fn request_fields_are_read_when_present() {
        let body = Bytes::from_static(br#"{"model":"m\u00e9","messages":[],"stream":true,"x":1}"#);
        let info = RequestInfo::parse(Endpoint::Chat, Some(&body));
        assert_eq!(info.model.as_deref(), Some("m\u{e9}"));
        assert!(info.stream && info.parsed);
        let info = RequestInfo::parse(Endpoint::Chat, Some(&Bytes::from_static(b"not json")));
        assert!(!info.parsed && info.model.is_none() && !info.stream);
        let info = RequestInfo::parse(Endpoint::Completions, None);
        assert!(!info.parsed);
    }
}
