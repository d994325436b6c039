//! [`OpenAiConfig`]: where the server is and how to talk to it, shared by the engines.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use telemetry_wrap::{GenerateParams, Message};

use crate::protocol::{ChatCompletionRequest, CompletionRequest, OpenAiError};

/// Which endpoint the engine calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Endpoint {
    /// `POST <base>/chat/completions` with the messages.
    #[default]
    Chat,
    /// `POST <base>/completions` with the messages' text joined by newlines as the prompt.
    Completions,
}

/// Timeouts of one call, each recorded under its own error kind. `None` waits for ever.
///
/// - `connect`: establishing the TCP connection (`timeout_connect`).
/// - `first_token`: from sending the request to the first chunk with content of a stream
///   (`timeout_first_token`); SSE comments (`: ping`), role-only and empty chunks do not count,
///   so a server that keeps a stream alive without producing text is cut at this time. For a
///   blocking call, to the response head (which comes with the whole answer there).
/// - `idle`: between chunks: the longest time from one chunk with content to the next
///   (`timeout_idle`); keep-alive comments do not reset it.
/// - `total`: the whole call, from sending the request to the end of the answer
///   (`timeout_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect.
    pub connect: Option<Duration>,
    /// Request to first content chunk (stream) or to the response head (blocking call).
    pub first_token: Option<Duration>,
    /// Between two content chunks of a stream.
    pub idle: Option<Duration>,
    /// The whole call.
    pub total: Option<Duration>,
}

impl Default for Timeouts {
    /// 10 s to connect, 300 s to the first token, 60 s between chunks, no total limit.
    fn default() -> Self {
        Timeouts {
            connect: Some(Duration::from_secs(10)),
            first_token: Some(Duration::from_secs(300)),
            idle: Some(Duration::from_secs(60)),
            total: None,
        }
    }
}

impl Timeouts {
    /// The longest of the timeouts that bound a read (first token, idle, total): a read
    /// abandoned at a deadline returns within this at the latest. `None` when none is set.
    #[cfg(any(feature = "blocking", feature = "async"))]
    pub(crate) fn longest_read(&self) -> Option<Duration> {
        [self.first_token, self.idle, self.total]
            .into_iter()
            .flatten()
            .max()
    }
}

/// Where the server is and how to call it.
///
/// ```
/// use std::time::Duration;
/// use telemetry_openai::OpenAiConfig;
///
/// let config = OpenAiConfig::new("http://127.0.0.1:8080/v1")
///     .with_api_key("sk-local")
///     .with_header("x-team", "search")
///     .with_alias("small", "smollm2-135m")
///     .with_engine_id("llama.cpp")
///     .with_idle_timeout(Some(Duration::from_secs(5)));
/// assert_eq!(config.url("chat/completions"), "http://127.0.0.1:8080/v1/chat/completions");
/// assert_eq!(config.resolve_model("small"), "smollm2-135m");
/// assert_eq!(config.resolve_model("other"), "other");
/// ```
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    pub(crate) base_url: String,
    pub(crate) api_key: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeouts: Timeouts,
    pub(crate) aliases: HashMap<String, String>,
    pub(crate) engine_id: Option<String>,
    pub(crate) endpoint: Endpoint,
    pub(crate) include_usage: bool,
}

impl OpenAiConfig {
    /// A server at `base_url` (e.g. `http://127.0.0.1:8080/v1`), with the API key from
    /// `OPENAI_API_KEY` when that is set, default [`Timeouts`], the chat endpoint, and streams
    /// that ask for the final usage chunk.
    pub fn new(base_url: impl Into<String>) -> Self {
        let api_key = std::env::var("OPENAI_API_KEY")
            .ok()
            .filter(|k| !k.trim().is_empty());
        OpenAiConfig {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key,
            headers: Vec::new(),
            timeouts: Timeouts::default(),
            aliases: HashMap::new(),
            engine_id: None,
            endpoint: Endpoint::Chat,
            include_usage: true,
        }
    }

    /// Sets the API key (sent as `Authorization: Bearer <key>`).
    #[must_use]
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Sends no API key, even when `OPENAI_API_KEY` is set.
    #[must_use]
    pub fn without_api_key(mut self) -> Self {
        self.api_key = None;
        self
    }

    /// Adds a header sent with every request.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets all timeouts.
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Sets the connect timeout.
    #[must_use]
    pub fn with_connect_timeout(mut self, t: Option<Duration>) -> Self {
        self.timeouts.connect = t;
        self
    }

    /// Sets the first-token timeout.
    #[must_use]
    pub fn with_first_token_timeout(mut self, t: Option<Duration>) -> Self {
        self.timeouts.first_token = t;
        self
    }

    /// Sets the total timeout of a call.
    #[must_use]
    pub fn with_total_timeout(mut self, t: Option<Duration>) -> Self {
        self.timeouts.total = t;
        self
    }

    /// Sets the idle (between content chunks) timeout of a stream.
    #[must_use]
    pub fn with_idle_timeout(mut self, t: Option<Duration>) -> Self {
        self.timeouts.idle = t;
        self
    }

    /// Sends `model` to the server whenever a caller asks for `alias` (the record keeps the
    /// caller's name).
    #[must_use]
    pub fn with_alias(mut self, alias: impl Into<String>, model: impl Into<String>) -> Self {
        self.aliases.insert(alias.into(), model.into());
        self
    }

    /// Sets the record's `engine` instead of detecting it.
    #[must_use]
    pub fn with_engine_id(mut self, engine_id: impl Into<String>) -> Self {
        self.engine_id = Some(engine_id.into());
        self
    }

    /// Chooses the endpoint.
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// Whether streams ask for the final usage chunk (`stream_options.include_usage`, default
    /// on). Servers that refuse the option need it off; tokens are then counted from chunks.
    #[must_use]
    pub fn with_include_usage(mut self, on: bool) -> Self {
        self.include_usage = on;
        self
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The timeouts.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The engine id set with [`with_engine_id`](Self::with_engine_id), if any.
    pub fn engine_id(&self) -> Option<&str> {
        self.engine_id.as_deref()
    }

    /// `<base>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url, path.trim_start_matches('/'))
    }

    /// The model name sent for `model`.
    pub fn resolve_model<'a>(&'a self, model: &'a str) -> &'a str {
        self.aliases.get(model).map_or(model, String::as_str)
    }

    /// The headers of every request: extra headers, then `Authorization` when a key is set.
    #[cfg_attr(not(any(feature = "blocking", feature = "async")), allow(dead_code))]
    pub(crate) fn request_headers(&self) -> impl Iterator<Item = (&str, String)> {
        self.headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.clone()))
            .chain(
                self.api_key
                    .iter()
                    .map(|k| ("authorization", format!("Bearer {k}"))),
            )
    }

    /// The path and JSON body of a call.
    #[cfg_attr(not(any(feature = "blocking", feature = "async")), allow(dead_code))]
    pub(crate) fn request_body(
        &self,
        messages: &[Message],
        params: &GenerateParams,
        stream: bool,
    ) -> Result<(&'static str, Vec<u8>), OpenAiError> {
        let model = self.resolve_model(&params.model);
        let encoded = match self.endpoint {
            Endpoint::Chat => {
                let mut req = ChatCompletionRequest::new(messages, params, stream);
                model.clone_into(&mut req.model);
                if !self.include_usage && !params.extra.contains_key("stream_options") {
                    req.stream_options = None;
                }
                serde_json::to_vec(&req).map(|b| ("chat/completions", b))
            }
            Endpoint::Completions => {
                let prompt: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
                let mut extra = params.extra.clone();
                let stream_options = if stream && self.include_usage {
                    extra
                        .remove("stream_options")
                        .and_then(|v| serde_json::from_value(v).ok())
                        .or(Some(crate::protocol::StreamOptions {
                            include_usage: Some(true),
                            extra: serde_json::Map::new(),
                        }))
                } else {
                    None
                };
                let req = CompletionRequest {
                    model: model.to_owned(),
                    prompt: serde_json::Value::String(prompt.join("\n")),
                    stream: stream.then_some(true),
                    stream_options,
                    max_tokens: params.max_tokens,
                    temperature: params.temperature,
                    extra,
                };
                serde_json::to_vec(&req).map(|b| ("completions", b))
            }
        };
        // Serializing these types cannot fail (string keys, finite numbers from callers are
        // not checked by serde_json: a NaN temperature becomes `null`), but stay typed.
        encoded.map_err(|e| OpenAiError::Io(format!("cannot encode the request: {e}")))
    }
}

/// A shared, immutable configuration.
#[cfg_attr(not(any(feature = "blocking", feature = "async")), allow(dead_code))]
pub(crate) type SharedConfig = Arc<OpenAiConfig>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_uses_the_alias_and_endpoint() {
        let config = OpenAiConfig::new("http://h/v1/")
            .without_api_key()
            .with_alias("a", "real");
        let params = GenerateParams::new("a").with_max_tokens(3);
        let (path, body) = config
            .request_body(&[Message::user("x")], &params, true)
            .unwrap();
        assert_eq!(path, "chat/completions");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["model"], "real");
        assert_eq!(v["stream_options"]["include_usage"], true);
        let completions = config
            .with_endpoint(Endpoint::Completions)
            .with_include_usage(false);
        let (path, body) = completions
            .request_body(&[Message::system("s"), Message::user("x")], &params, true)
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((path, v["prompt"].as_str()), ("completions", Some("s\nx")));
        assert!(v.get("stream_options").is_none());
    }

    #[test]
    fn headers_carry_the_key() {
        let config = OpenAiConfig::new("http://h")
            .with_header("x-a", "1")
            .with_api_key("k");
        let headers: Vec<_> = config.request_headers().collect();
        assert_eq!(
            headers,
            [
                ("x-a", "1".to_owned()),
                ("authorization", "Bearer k".to_owned())
            ]
        );
    }
}
