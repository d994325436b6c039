//! [`Upstream`]: a server the proxy forwards to, and [`Routes`]: which upstream serves which
//! model.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use http::Uri;
use http::header::HeaderValue;
use http::uri::{Authority, PathAndQuery, Scheme};

use crate::error::ProxyError;

/// An upstream server: `http://host:port` or `https://host:port`, with an optional path prefix
/// (`http://host/llm` forwards `/v1/models` to `/llm/v1/models`). `https://` upstreams are
/// reached over TLS (rustls), their name sent as SNI and their certificate checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    scheme: Scheme,
    authority: Authority,
    /// The path prefix without a trailing slash; empty for none.
    prefix: String,
    /// The URL as given, for messages and `/telemetry/health`.
    url: String,
}

impl Upstream {
    /// Parses `http://host[:port][/prefix]` or `https://...`. Query strings, fragments, user
    /// info (an API key belongs in a request header, not in the proxy's configuration) and other
    /// schemes are refused.
    pub fn parse(url: &str) -> Result<Upstream, ProxyError> {
        let bad = |reason| ProxyError::InvalidUpstream {
            url: url.to_owned(),
            reason,
        };
        let uri: Uri = url
            .parse()
            .map_err(|_| bad("not a URL (expected http://host:port or https://host)"))?;
        let scheme = match uri.scheme() {
            Some(s) if *s == Scheme::HTTP || *s == Scheme::HTTPS => s.clone(),
            _ => return Err(bad("the scheme must be http:// or https://")),
        };
        let authority = uri.authority().cloned().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("user info is not supported"));
        }
        if authority.host().is_empty() {
            return Err(bad("no host"));
        }
        if uri.query().is_some() || url.contains('#') {
            return Err(bad("an upstream URL takes no query or fragment"));
        }
        let prefix = uri.path().trim_end_matches('/').to_owned();
        Ok(Upstream {
            scheme,
            authority,
            prefix,
            url: url.to_owned(),
        })
    }

    /// The URL as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `host:port` of the upstream.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Whether the upstream is reached over TLS.
    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    /// `host` and port (80, or 443 for `https://`, when the URL names none), for a
    /// reachability probe.
    pub(crate) fn host_port(&self) -> (&str, u16) {
        let host = self.authority.host();
        // An IPv6 literal keeps its brackets in `host()`.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let default_port = if self.is_https() { 443 } else { 80 };
        (host, self.authority.port_u16().unwrap_or(default_port))
    }

    /// The request target (origin-form: `/path?query`, after the URL's prefix) for a request
    /// the client sent to `uri`; `uri` itself when it needs no change.
    pub(crate) fn target_for(&self, uri: Uri) -> Result<Uri, http::Error> {
        if self.prefix.is_empty() && uri.scheme().is_none() && uri.authority().is_none() {
            return Ok(uri);
        }
        let pq = uri.path_and_query().map_or("/", PathAndQuery::as_str);
        let builder = Uri::builder();
        if self.prefix.is_empty() {
            builder.path_and_query(pq).build()
        } else {
            builder
                .path_and_query(format!("{}{}", self.prefix, pq))
                .build()
        }
    }

    /// `scheme://authority/`: where a connection to the upstream is made.
    pub(crate) fn connect_uri(&self) -> Uri {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(PathAndQuery::from_static("/"));
        // Scheme, authority and path are each valid: the parts always make a URI.
        Uri::from_parts(parts).unwrap_or_default()
    }

    /// The `Host` header of requests to the upstream: its host, with the port when the URL
    /// names one other than the scheme's default.
    pub(crate) fn host_header(&self) -> HeaderValue {
        let default_port = if self.is_https() { 443 } else { 80 };
        let host = match self.authority.port_u16() {
            Some(port) if port != default_port => self.authority.as_str(),
            _ => self.authority.host(),
        };
        // An authority is made of characters a header value may hold.
        HeaderValue::from_str(host).unwrap_or_else(|_| HeaderValue::from_static("localhost"))
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// Which upstream serves a request: the one routed for its model, else the default.
#[derive(Debug, Clone)]
pub struct Routes {
    default: Arc<Upstream>,
    by_model: HashMap<String, Arc<Upstream>>,
}

impl Routes {
    /// Every request goes to `default`.
    pub fn new(default: Upstream) -> Routes {
        Routes {
            default: Arc::new(default),
            by_model: HashMap::new(),
        }
    }

    /// Requests for `model` go to `upstream`. A model routed twice is an error.
    pub fn route(
        mut self,
        model: impl Into<String>,
        upstream: Upstream,
    ) -> Result<Routes, ProxyError> {
        let model = model.into();
        if self.by_model.contains_key(&model) {
            return Err(ProxyError::DuplicateRoute { model });
        }
        self.by_model.insert(model, Arc::new(upstream));
        Ok(self)
    }

    /// Adds a route written `MODEL=URL` (as `--route` takes it).
    pub fn route_spec(self, spec: &str) -> Result<Routes, ProxyError> {
        let (model, url) = spec
            .split_once('=')
            .filter(|(m, u)| !m.trim().is_empty() && !u.trim().is_empty())
            .ok_or_else(|| ProxyError::InvalidRoute {
                route: spec.to_owned(),
            })?;
        let upstream = Upstream::parse(url.trim())?;
        self.route(model.trim(), upstream)
    }

    /// Whether any model has its own upstream (then a completion request's body is read before
    /// it is forwarded, to learn its model).
    pub fn has_model_routes(&self) -> bool {
        !self.by_model.is_empty()
    }

    /// The upstream for a request naming `model` (or none).
    pub fn pick(&self, model: Option<&str>) -> &Arc<Upstream> {
        model
            .and_then(|m| self.by_model.get(m))
            .unwrap_or(&self.default)
    }

    /// The default upstream.
    pub fn default_upstream(&self) -> &Arc<Upstream> {
        &self.default
    }

    /// Every upstream: the default first, then the routes by model name.
    pub fn all(&self) -> Vec<(Option<&str>, &Arc<Upstream>)> {
        let mut routed: Vec<_> = self
            .by_model
            .iter()
            .map(|(m, u)| (Some(m.as_str()), u))
            .collect();
        routed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut all = vec![(None, &self.default)];
        all.extend(routed);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_http_with_and_without_prefix() {
        let target = |u: &Upstream, uri: &str| u.target_for(uri.parse().unwrap()).unwrap();
        let u = Upstream::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(target(&u, "/v1/models?x=1"), "/v1/models?x=1");
        // A client's absolute-form target goes out in origin form.
        assert_eq!(target(&u, "http://proxy:1/v1/models?x=1"), "/v1/models?x=1");
        assert_eq!(u.connect_uri(), "http://127.0.0.1:8080/");
        assert_eq!(u.host_header(), "127.0.0.1:8080");
        assert_eq!(u.host_port(), ("127.0.0.1", 8080));
        let u = Upstream::parse("http://host/llm/").unwrap();
        assert_eq!(target(&u, "/v1/models?x=1"), "/llm/v1/models?x=1");
        assert_eq!(target(&u, "http://proxy:1"), "/llm/");
        assert_eq!(u.host_header(), "host");
        assert_eq!(u.host_port(), ("host", 80));
        let u = Upstream::parse("http://[::1]:9000").unwrap();
        assert_eq!(u.host_port(), ("::1", 9000));
        assert_eq!(u.host_header(), "[::1]:9000");
        // The scheme's own port is not named (as hyper-util's client wrote it).
        assert_eq!(Upstream::parse("http://h:80").unwrap().host_header(), "h");
        assert_eq!(Upstream::parse("https://h:443").unwrap().host_header(), "h");
        assert_eq!(
            Upstream::parse("https://h:80").unwrap().host_header(),
            "h:80"
        );
    }

    #[test]
    fn refuses_what_it_cannot_forward_to() {
        let tls = Upstream::parse("https://api.openai.com/v1").unwrap();
        assert!(tls.is_https());
        assert_eq!(tls.host_port(), ("api.openai.com", 443));
        assert_eq!(
            tls.target_for("/chat/completions".parse().unwrap())
                .unwrap(),
            "/v1/chat/completions"
        );
        assert_eq!(tls.connect_uri(), "https://api.openai.com/");
        for (url, why) in [
            ("127.0.0.1:8080", "scheme"),
            ("http://", "URL"),
            ("http://u:p@host", "user info"),
            ("http://host/?a=b", "query"),
            ("ftp://host", "scheme"),
        ] {
            let err = Upstream::parse(url).unwrap_err().to_string();
            assert!(err.contains(url), "{err}");
            assert!(err.contains(why), "{url}: {err}");
        }
    }

    #[test]
    fn routes_pick_by_model_else_default() {
        let routes = Routes::new(Upstream::parse("http://a:1").unwrap())
            .route_spec("llama=http://b:2")
            .unwrap()
            .route_spec(" qwen = http://c:3 ")
            .unwrap();
        assert!(routes.has_model_routes());
        assert_eq!(routes.pick(Some("llama")).url(), "http://b:2");
        assert_eq!(routes.pick(Some("qwen")).url(), "http://c:3");
        assert_eq!(routes.pick(Some("other")).url(), "http://a:1");
        assert_eq!(routes.pick(None).url(), "http://a:1");
        let names: Vec<_> = routes.all().iter().map(|(m, _)| *m).collect();
        assert_eq!(names, [None, Some("llama"), Some("qwen")]);
        assert!(matches!(
            routes.clone().route_spec("llama=http://d:4"),
            Err(ProxyError::DuplicateRoute { .. })
        ));
        for bad in ["llama", "=http://x", "m=", "m=ftp://x"] {
            assert!(routes.clone().route_spec(bad).is_err(), "{bad}");
        }
    }
}
