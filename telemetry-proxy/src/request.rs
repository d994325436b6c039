//! Which requests are calls ([`Endpoint`]) and what the proxy learns from a call's request body
//! ([`RequestInfo`]), from the scan of its top level.
//!
//! A request is a call when it is a `POST` whose path, read as the upstreams read it, is one of
//! an [`Api`]'s paths. The rule, from how the servers route (see the crate docs): the path is
//! percent-decoded once (cpp-httplib in llama.cpp and uvicorn under vLLM's FastAPI both decode
//! before routing, so `/v1/chat/%63ompletions` *is* `/v1/chat/completions` to them), repeated
//! slashes are one (nginx, in front of many servers, merges them by default), trailing slashes
//! are dropped, and letters compare without case (gateways that ignore case exist). Recognising a
//! spelling the upstream then refuses costs a record of a failed call (`http_404`), which is
//! true; not recognising one it serves would let calls through unrecorded.

use http::Method;
use telemetry_openai::protocol::Api;

use crate::inject::UsagePlan;
use crate::scan::BodyScan;

/// The calls the proxy records: one API each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Endpoint(pub Api);

/// The longest path considered (a longer one is no API's).
const MAX_PATH: usize = 64;

impl Endpoint {
    /// The endpoint a request is for, if it is one the proxy records.
    pub fn of(method: &Method, path: &str) -> Option<Endpoint> {
        if method != Method::POST || path.len() > 3 * MAX_PATH {
            return None;
        }
        // A path as the APIs spell it (what clients send) is its own normal form.
        if let Some(api) = Api::ALL.into_iter().find(|api| api.paths().contains(&path)) {
            return Some(Endpoint(api));
        }
        let mut normal = [0u8; MAX_PATH];
        let len = normalise(path.as_bytes(), &mut normal)?;
        let normal = &normal[..len];
        Api::ALL
            .into_iter()
            .find(|api| api.paths().iter().any(|p| p.as_bytes() == normal))
            .map(Endpoint)
    }

    /// The record's `api` and `operation` of a call to this endpoint.
    pub fn names(self) -> (&'static str, &'static str) {
        (self.0.name(), self.0.operation())
    }
}

/// Writes `path` percent-decoded once, with repeated slashes merged, trailing slashes dropped
/// and ASCII letters lower-cased into `out`; `None` when it does not fit.
fn normalise(path: &[u8], out: &mut [u8; MAX_PATH]) -> Option<usize> {
    let mut len = 0;
    let mut i = 0;
    while i < path.len() {
        let mut b = path[i];
        i += 1;
        if b == b'%'
            && let (Some(h), Some(l)) = (
                path.get(i).and_then(|c| hex(*c)),
                path.get(i + 1).and_then(|c| hex(*c)),
            )
        {
            b = h << 4 | l;
            i += 2;
        }
        if b == b'/' && len > 0 && out[len - 1] == b'/' {
            continue;
        }
        *out.get_mut(len)? = b.to_ascii_lowercase();
        len += 1;
    }
    while len > 1 && out[len - 1] == b'/' {
        len -= 1;
    }
    Some(len)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// What the proxy learnt from a call's request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestInfo {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The request's `model` (non-empty).
    pub model: Option<String>,
    /// Whether the request asked for a stream (`"stream": true`); the response decides.
    pub stream: bool,
    /// Whether the body was read whole and parsed as a JSON object.
    pub parsed: bool,
    /// What to do about the stream's usage.
    pub usage: UsagePlan,
}

impl RequestInfo {
    /// What a scan of the request body found (its model is taken out of it); `parsed` when
    /// it read the whole top-level object.
    pub fn from_scan(endpoint: Endpoint, scan: &mut BodyScan, parsed: bool) -> RequestInfo {
        RequestInfo {
            endpoint,
            model: scan.take_model(),
            stream: scan.stream(),
            parsed,
            usage: UsagePlan::NotAStream,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(path: &str) -> Option<Api> {
        Endpoint::of(&Method::POST, path).map(|e| e.0)
    }

    #[test]
    fn every_api_is_recognised_at_its_paths() {
        assert_eq!(api("/v1/chat/completions"), Some(Api::ChatCompletions));
        assert_eq!(api("/chat/completions"), Some(Api::ChatCompletions));
        assert_eq!(api("/v1/completions/"), Some(Api::Completions));
        assert_eq!(api("/v1/responses"), Some(Api::Responses));
        assert_eq!(api("/responses"), Some(Api::Responses));
        assert_eq!(api("/v1/messages"), Some(Api::Messages));
        assert_eq!(api("/v1/embeddings"), Some(Api::Embeddings));
        assert_eq!(Endpoint::of(&Method::GET, "/v1/chat/completions"), None);
        for other in [
            "/v1/models",
            "/v1/messages/count_tokens",
            "/completions",
            "/embeddings",
            "/v1/chat/completions/control",
            "/",
            "",
        ] {
            assert_eq!(api(other), None, "{other}");
        }
    }

    #[test]
    fn spellings_an_upstream_may_route_the_same_are_the_same() {
        for path in [
            "/V1/Chat/Completions",
            "//v1/chat/completions",
            "/v1//chat///completions//",
            "/v1/chat/%63ompletions",
            "/v1/chat%2Fcompletions",
            "/%76%31/chat/completions",
        ] {
            assert_eq!(api(path), Some(Api::ChatCompletions), "{path}");
        }
        // Not an escape: kept as it is.
        assert_eq!(api("/v1/chat/%6completions"), None);
        assert_eq!(api(&format!("/v1/{}", "x".repeat(500))), None);
    }

    proptest::proptest! {
        /// The shortcut for paths spelt as the APIs spell them gives what normalising gives.
        #[test]
        fn the_exact_path_shortcut_agrees_with_normalising(
            path in proptest::sample::select(vec![
                "/v1/chat/completions", "/chat/completions", "/v1/completions", "/v1/responses",
                "/responses", "/v1/messages", "/v1/embeddings", "/v1/models", "/", "",
            ]),
            extra in "[/A-Za-z%0-9]{0,3}",
        ) {
            for candidate in [path.to_owned(), format!("{path}{extra}"), format!("{extra}{path}")] {
                let mut normal = [0u8; MAX_PATH];
                let slow = normalise(candidate.as_bytes(), &mut normal).and_then(|len| {
                    Api::ALL
                        .into_iter()
                        .find(|api| api.paths().iter().any(|p| p.as_bytes() == &normal[..len]))
                });
                proptest::prop_assert_eq!(api(&candidate), slow, "{}", candidate);
            }
        }
    }

    #[test]
    fn request_fields_come_from_the_scan() {
        let chat = Endpoint(Api::ChatCompletions);
        let mut scan = BodyScan::default();
        scan.feed(br#"{"model":"m\u00e9","messages":[],"stream":true,"x":1}"#);
        let info = RequestInfo::from_scan(chat, &mut scan, true);
        assert_eq!(info.model.as_deref(), Some("m\u{e9}"));
        assert!(info.stream && info.parsed);
        let mut scan = BodyScan::default();
        scan.feed(br#"{"model":""}"#);
        let info = RequestInfo::from_scan(Endpoint(Api::Completions), &mut scan, true);
        assert!(info.parsed && info.model.is_none() && !info.stream);
        // A stream flag that is not a boolean does not hide the model.
        let mut scan = BodyScan::default();
        scan.feed(br#"{"model":"m","stream":"yes"}"#);
        let info = RequestInfo::from_scan(chat, &mut scan, true);
        assert!(!info.stream);
        assert_eq!(info.model.as_deref(), Some("m"));
    }
}
