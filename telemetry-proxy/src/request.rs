//! Which requests are calls ([`Endpoint`]) and what the proxy learns from a call's request body
//! ([`RequestInfo`]), read with telemetry-openai's [`RequestSummary`].

use http::Method;

use crate::scan::BodyScan;

/// The completion endpoints the proxy records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/completions`.
    Completions,
}

impl Endpoint {
    /// The record's `api` and `operation` of a call to this endpoint.
    pub fn names(self) -> (&'static str, &'static str) {
        use telemetry_core::{api, operation};
        match self {
            Endpoint::Chat => (api::OPENAI_CHAT, operation::CHAT),
            Endpoint::Completions => (api::OPENAI_COMPLETIONS, operation::TEXT_COMPLETION),
        }
    }

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
    /// The request's `model` (non-empty).
    pub model: Option<String>,
    /// Whether the request asked for a stream.
    pub stream: bool,
    /// Whether the body was read whole and parsed as a JSON object.
    pub parsed: bool,
}

impl RequestInfo {
    /// What a scan of the request body found; `parsed` when it read the whole top-level
    /// object.
    pub fn from_scan(endpoint: Endpoint, scan: &BodyScan, parsed: bool) -> RequestInfo {
        RequestInfo {
            endpoint,
            model: scan.model().map(str::to_owned),
            stream: scan.stream(),
            parsed,
        }
    }
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
    fn request_fields_come_from_the_scan() {
        let mut scan = BodyScan::default();
        scan.feed(br#"{"model":"m\u00e9","messages":[],"stream":true,"x":1}"#);
        let info = RequestInfo::from_scan(Endpoint::Chat, &scan, true);
        assert_eq!(info.model.as_deref(), Some("m\u{e9}"));
        assert!(info.stream && info.parsed);
        let mut scan = BodyScan::default();
        scan.feed(br#"{"model":""}"#);
        let info = RequestInfo::from_scan(Endpoint::Completions, &scan, true);
        assert!(info.parsed && info.model.is_none() && !info.stream);
    }
}
