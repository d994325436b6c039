//! Errors: [`ProtocolError`] for bytes that do not follow the protocol, [`OpenAiError`] for a
//! failed call (what the engines return and the proxy records), each with a stable
//! [`error_kind`](OpenAiError::error_kind) string.

use std::borrow::Cow;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// Bytes from the server that do not follow the OpenAI-compatible protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A JSON body or stream chunk could not be decoded.
    #[error("malformed {what} at line {line} column {column}: {message} (starts with {snippet:?})")]
    Json {
        /// What was being decoded (`chat completion chunk`, `completion response`, ...).
        what: &'static str,
        /// 1-based line of the error within the JSON text.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the JSON parser said.
        message: String,
        /// The first bytes of the text (at most 80), to recognise it in a log.
        snippet: String,
    },
    /// A line of the event stream grew past the parser's bound without a line end.
    #[error("event-stream line longer than {limit} bytes")]
    SseLineTooLong {
        /// The bound, bytes.
        limit: usize,
    },
    /// The response is not what was asked for (e.g. a JSON body when a stream was requested).
    #[error("unexpected response: {0}")]
    Unexpected(String),
}

impl ProtocolError {
    /// A decoding error of `what` from serde_json, with the start of `text` as a snippet.
    pub fn json(what: &'static str, text: &[u8], error: &serde_json::Error) -> Self {
        ProtocolError::Json {
            what,
            line: error.line(),
            column: error.column(),
            message: error.to_string(),
            snippet: snippet(text),
        }
    }
}

/// The first 80 bytes of `text`, lossily decoded.
pub(crate) fn snippet(text: &[u8]) -> String {
    let cut = text.len().min(80);
    String::from_utf8_lossy(&text[..cut]).into_owned()
}

/// Why a call to an OpenAI-compatible server failed.
///
/// Every variant maps to a short, stable [`error_kind`](Self::error_kind) for the record's
/// `error_kind` column: `http_<status>` (`http_400`, `http_429`, `http_500`, `http_503`, ...),
/// `connect`, `timeout_connect`, `timeout_first_token`, `timeout_idle`, `timeout_total`, `protocol`,
/// `stream_incomplete`, `stream_error`, `io`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenAiError {
    /// The server answered with an HTTP error status; `message` is the server's own message
    /// (from `{"error": {"message": ...}}` and its variants), else the start of the body.
    #[error("HTTP {status} from the server: {message}")]
    Http {
        /// The status code.
        status: u16,
        /// The server's message.
        message: String,
        /// The server's error type (`invalid_request_error`, `BadRequestError`, ...), if given.
        error_type: Option<String>,
    },
    /// The server sent an error inside a stream that had started (llama.cpp's `error:` line,
    /// an `event: error`, or a chunk holding `{"error": ...}`).
    #[error("server error in the stream{}: {message}", code.map(|c| format!(" (code {c})")).unwrap_or_default())]
    StreamError {
        /// The error's HTTP-like code, when the server gave one.
        code: Option<u16>,
        /// The server's message.
        message: String,
    },
    /// No TCP connection could be made (refused, unreachable, DNS).
    #[error("cannot connect to {url}: {message}")]
    Connect {
        /// The URL called.
        url: String,
        /// What the client said.
        message: String,
    },
    /// The connection was not established within the connect timeout.
    #[error("no connection to {url} within {timeout:?}")]
    TimeoutConnect {
        /// The URL called.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
    /// No answer (a blocking call's), or no first chunk with content (a stream's: comments such
    /// as `: ping` and role-only chunks do not count), within the first-token timeout of
    /// sending the request.
    #[error("no first token within {timeout:?} (first-token timeout)")]
    TimeoutFirstToken {
        /// The timeout.
        timeout: Duration,
    },
    /// A started stream sent no chunk with content for longer than the between-chunks (idle)
    /// timeout (comments and keep-alives do not count).
    #[error("no chunk with content for more than {timeout:?} after {chunks} chunks")]
    TimeoutIdle {
        /// The timeout.
        timeout: Duration,
        /// Content chunks received before it stalled.
        chunks: u64,
    },
    /// The call as a whole took longer than the total timeout.
    #[error("the call took more than {timeout:?} (total timeout) after {chunks} chunks")]
    TimeoutTotal {
        /// The timeout.
        timeout: Duration,
        /// Content chunks received before then.
        chunks: u64,
    },
    /// The server's bytes do not follow the protocol.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The stream ended (connection closed) without the `[DONE]` sentinel.
    #[error("stream ended without [DONE] after {chunks} content chunks")]
    StreamIncomplete {
        /// Content chunks received.
        chunks: u64,
    },
    /// Another I/O failure (connection reset mid-body, invalid URL, ...).
    #[error("I/O error: {0}")]
    Io(String),
}

impl OpenAiError {
    /// The stable kind stored as the record's `error_kind` (see the type's documentation).
    pub fn error_kind(&self) -> Cow<'static, str> {
        match self {
            OpenAiError::Http { status, .. } => http_error_kind(*status),
            OpenAiError::StreamError { code: Some(c), .. } if *c >= 400 => http_error_kind(*c),
            OpenAiError::StreamError { .. } => Cow::Borrowed("stream_error"),
            OpenAiError::Connect { .. } => Cow::Borrowed("connect"),
            OpenAiError::TimeoutConnect { .. } => Cow::Borrowed("timeout_connect"),
            OpenAiError::TimeoutFirstToken { .. } => Cow::Borrowed("timeout_first_token"),
            OpenAiError::TimeoutIdle { .. } => Cow::Borrowed("timeout_idle"),
            OpenAiError::TimeoutTotal { .. } => Cow::Borrowed("timeout_total"),
            OpenAiError::Protocol(_) => Cow::Borrowed("protocol"),
            OpenAiError::StreamIncomplete { .. } => Cow::Borrowed("stream_incomplete"),
            OpenAiError::Io(_) => Cow::Borrowed("io"),
        }
    }

    /// The error for an HTTP error response: `status` and the server's message parsed from
    /// `body` (see [`ServerError::from_body`]).
    ///
    /// ```
    /// use telemetry_openai::protocol::OpenAiError;
    ///
    /// let body = br#"{"error":{"code":400,"message":"\"messages\" is required","type":"invalid_request_error"}}"#;
    /// let e = OpenAiError::from_http_response(400, body);
    /// assert_eq!(e.error_kind(), "http_400");
    /// assert_eq!(e.to_string(), "HTTP 400 from the server: \"messages\" is required");
    /// ```
    pub fn from_http_response(status: u16, body: &[u8]) -> Self {
        let server = ServerError::from_body(body);
        OpenAiError::Http {
            status,
            message: server.message,
            error_type: server.error_type,
        }
    }

    /// The error for a stream event that carries an error (`payload` is its data).
    pub fn from_stream_error(payload: &[u8]) -> Self {
        let server = ServerError::from_body(payload);
        OpenAiError::StreamError {
            code: server.code,
            message: server.message,
        }
    }
}

/// `http_<status>` as a static string for the common statuses.
pub fn http_error_kind(status: u16) -> Cow<'static, str> {
    Cow::Borrowed(match status {
        400 => "http_400",
        401 => "http_401",
        403 => "http_403",
        404 => "http_404",
        408 => "http_408",
        409 => "http_409",
        413 => "http_413",
        422 => "http_422",
        429 => "http_429",
        500 => "http_500",
        501 => "http_501",
        502 => "http_502",
        503 => "http_503",
        504 => "http_504",
        _ => return Cow::Owned(format!("http_{status}")),
    })
}

/// An error as servers describe it in a body or stream event.
///
/// Understood shapes: OpenAI and llama.cpp `{"error": {"message", "type", "code"}}`, Ollama
/// `{"error": "text"}`, vLLM `{"object": "error", "message", "type", "code"}`, FastAPI
/// `{"detail": ...}`, and a bare error object `{"message", "code"}` (llama.cpp's `error:` line).
/// Anything else gives the start of the body as the message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerError {
    /// The message.
    pub message: String,
    /// The error type, if given.
    pub error_type: Option<String>,
    /// A numeric code, if given.
    pub code: Option<u16>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<Value>,
    message: Option<Value>,
    detail: Option<Value>,
    #[serde(rename = "type")]
    error_type: Option<Value>,
    code: Option<Value>,
}

impl ServerError {
    /// Parses an error body; never fails (unknown shapes give the start of the body).
    pub fn from_body(body: &[u8]) -> Self {
        let fallback = || ServerError {
            message: snippet(body.trim_ascii()),
            ..ServerError::default()
        };
        let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) else {
            return fallback();
        };
        let from_object = |o: &serde_json::Map<String, Value>| ServerError {
            message: o.get("message").map(text).unwrap_or_default(),
            error_type: o.get("type").map(text),
            code: o.get("code").and_then(code),
        };
        let found = match (&parsed.error, &parsed.message, &parsed.detail) {
            (Some(Value::Object(o)), _, _) => from_object(o),
            (Some(Value::String(s)), _, _) => ServerError {
                message: s.clone(),
                ..ServerError::default()
            },
            (_, Some(m), _) => ServerError {
                message: text(m),
                error_type: parsed.error_type.as_ref().map(text),
                code: parsed.code.as_ref().and_then(code),
            },
            (_, _, Some(d)) => ServerError {
                message: text(d),
                ..ServerError::default()
            },
            _ => return fallback(),
        };
        if found.message.is_empty() {
            ServerError {
                message: snippet(body.trim_ascii()),
                ..found
            }
        } else {
            found
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn code(v: &Value) -> Option<u16> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_stable_strings() {
        let cases: [(OpenAiError, &str); 11] = [
            (OpenAiError::from_http_response(429, b"{}"), "http_429"),
            (OpenAiError::from_http_response(418, b""), "http_418"),
            (OpenAiError::from_http_response(503, b"busy"), "http_503"),
            (
                OpenAiError::from_stream_error(br#"{"code":500,"message":"x"}"#),
                "http_500",
            ),
            (OpenAiError::from_stream_error(b"oops"), "stream_error"),
            (
                OpenAiError::Connect {
                    url: "u".into(),
                    message: "refused".into(),
                },
                "connect",
            ),
            (
                OpenAiError::TimeoutFirstToken {
                    timeout: Duration::from_secs(1),
                },
                "timeout_first_token",
            ),
            (
                OpenAiError::TimeoutIdle {
                    timeout: Duration::from_secs(1),
                    chunks: 3,
                },
                "timeout_idle",
            ),
            (
                OpenAiError::TimeoutTotal {
                    timeout: Duration::from_secs(1),
                    chunks: 3,
                },
                "timeout_total",
            ),
            (
                OpenAiError::StreamIncomplete { chunks: 2 },
                "stream_incomplete",
            ),
            (
                OpenAiError::Protocol(ProtocolError::SseLineTooLong { limit: 1 }),
                "protocol",
            ),
        ];
        for (error, kind) in cases {
            assert_eq!(error.error_kind(), kind, "{error}");
        }
    }

    #[test]
    fn server_error_shapes() {
        let openai = ServerError::from_body(
            br#"{"error":{"message":"Rate limit","type":"requests","code":"429"}}"#,
        );
        assert_eq!(openai.message, "Rate limit");
        assert_eq!(openai.error_type.as_deref(), Some("requests"));
        assert_eq!(openai.code, Some(429));
        let ollama = ServerError::from_body(br#"{"error":"model \"x\" not found"}"#);
        assert_eq!(ollama.message, "model \"x\" not found");
        let vllm = ServerError::from_body(
            br#"{"object":"error","message":"The model `m` does not exist.","type":"NotFoundError","param":null,"code":404}"#,
        );
        assert_eq!(
            (vllm.message.as_str(), vllm.code),
            ("The model `m` does not exist.", Some(404))
        );
        let fastapi = ServerError::from_body(br#"{"detail":"Not Found"}"#);
        assert_eq!(fastapi.message, "Not Found");
        let html = ServerError::from_body(b"  <html>502 Bad Gateway</html>\n");
        assert_eq!(html.message, "<html>502 Bad Gateway</html>");
        let empty_message = ServerError::from_body(br#"{"error":{"code":500}}"#);
        assert_eq!(empty_message.message, r#"{"error":{"code":500}}"#);
    }
}
