//! A fake upstream server on loopback (feature `testing`), for tests and benches of the proxy
//! and of code that uses it: it answers each request with what a handler returns (a whole body,
//! or chunks sent after delays), keeps what it received, and counts streams the client
//! abandoned.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use telemetry_proxy::testing::{FakeReply, FakeUpstream, chat_completion};
//!
//! let upstream = FakeUpstream::start(|_req| FakeReply::json(200, chat_completion("m", 7, 3))).await;
//! assert!(upstream.url().starts_with("http://127.0.0.1:"));
//! assert_eq!(upstream.request_count(), 0);
//! # }
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Channel, Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Requests kept for [`FakeUpstream::requests`]; later ones are only counted, so a long
/// benchmark does not grow the fake's memory.
const KEPT_REQUESTS: usize = 10_000;

/// A request as the fake upstream received it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// Method.
    pub method: Method,
    /// Request target (path and query).
    pub uri: Uri,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

/// What the fake upstream answers.
#[derive(Debug, Clone)]
pub struct FakeReply {
    /// Status code.
    pub status: u16,
    /// Headers (name, value).
    pub headers: Vec<(String, String)>,
    /// The body: sent whole (with `Content-Length`) when `chunks` is empty...
    pub body: Bytes,
    /// ...else these chunks, each after its delay, with chunked encoding.
    pub chunks: Vec<(Duration, Bytes)>,
}

impl FakeReply {
    /// A whole JSON body.
    pub fn json(status: u16, body: impl Into<Bytes>) -> FakeReply {
        FakeReply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
            chunks: Vec::new(),
        }
    }

    /// An SSE stream of `events`, each sent after its delay.
    pub fn sse(events: Vec<(Duration, Bytes)>) -> FakeReply {
        FakeReply {
            status: 200,
            headers: vec![
                ("content-type".into(), "text/event-stream".into()),
                ("cache-control".into(), "no-cache".into()),
            ],
            body: Bytes::new(),
            chunks: events,
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> FakeReply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Handler = dyn Fn(&ReceivedRequest) -> FakeReply + Send + Sync;

#[derive(Default)]
struct State {
    requests: Mutex<Vec<ReceivedRequest>>,
    request_count: AtomicU64,
    streams_completed: AtomicU64,
    streams_aborted: AtomicU64,
}

/// A fake upstream HTTP/1 server on `127.0.0.1`, stopped when dropped.
pub struct FakeUpstream {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FakeUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeUpstream")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FakeUpstream {
    /// Starts a server on a free loopback port answering every request with `handler`.
    ///
    /// # Panics
    /// If no loopback port can be bound (a test environment problem).
    pub async fn start(
        handler: impl Fn(&ReceivedRequest) -> FakeReply + Send + Sync + 'static,
    ) -> FakeUpstream {
        #[allow(clippy::expect_used)] // a fake for tests: no port means no test
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port for the fake upstream");
        #[allow(clippy::expect_used)]
        let addr = listener.local_addr().expect("the fake upstream's address");
        let state = Arc::new(State::default());
        let handler: Arc<Handler> = Arc::new(handler);
        let task = tokio::spawn(serve(listener, Arc::clone(&state), handler));
        FakeUpstream { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The first requests received (up to 10 000), in order of arrival.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Requests received.
    pub fn request_count(&self) -> u64 {
        self.state.request_count.load(Ordering::SeqCst)
    }

    /// Chunked replies sent to their end.
    pub fn streams_completed(&self) -> u64 {
        self.state.streams_completed.load(Ordering::SeqCst)
    }

    /// Chunked replies the client abandoned before their end (the next chunk could not be
    /// sent).
    pub fn streams_aborted(&self) -> u64 {
        self.state.streams_aborted.load(Ordering::SeqCst)
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, state: Arc<State>, handler: Arc<Handler>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = Arc::clone(&state);
                let handler = Arc::clone(&handler);
                async move { Ok::<_, Infallible>(answer(req, &state, &*handler).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type FakeBody = Either<Full<Bytes>, Channel<Bytes, Infallible>>;

async fn answer(
    req: Request<Incoming>,
    state: &Arc<State>,
    handler: &Handler,
) -> Response<FakeBody> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let received = ReceivedRequest {
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        body,
    };
    let reply = handler(&received);
    state.request_count.fetch_add(1, Ordering::SeqCst);
    {
        let mut kept = state
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if kept.len() < KEPT_REQUESTS {
            kept.push(received);
        }
    }
    let body = if reply.chunks.is_empty() {
        Either::Left(Full::new(reply.body))
    } else {
        let (mut tx, rx) = Channel::new(1);
        let state = Arc::clone(state);
        tokio::spawn(async move {
            for (delay, chunk) in reply.chunks {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if tx.send_data(chunk).await.is_err() {
                    state.streams_aborted.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
            state.streams_completed.fetch_add(1, Ordering::SeqCst);
        });
        Either::Right(rx)
    };
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// A llama.cpp-style blocking chat completion with this usage.
pub fn chat_completion(model: &str, prompt_tokens: u64, completion_tokens: u64) -> Bytes {
    serde_json::json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_764_000_000,
        "model": model,
        "choices": [{
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "Hello! How can I help you today?"}
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens
        },
        "timings": {"prompt_n": prompt_tokens, "prompt_ms": 12.5, "predicted_n": completion_tokens, "predicted_ms": 40.0, "cache_n": 0}
    })
    .to_string()
    .into()
}

/// A llama.cpp-style chat stream: a role-only first chunk (`content: null`), `words` content
/// chunks, a finish chunk, with `usage` a usage chunk (`choices: []`), then `[DONE]`; each event
/// `gap` after the previous one.
pub fn chat_stream(
    model: &str,
    words: usize,
    usage: Option<(u64, u64)>,
    gap: Duration,
) -> Vec<(Duration, Bytes)> {
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        serde_json::json!({
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_764_000_000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        })
    };
    let mut events = vec![chunk(
        serde_json::json!({"role": "assistant", "content": null}),
        None,
    )];
    for i in 0..words {
        events.push(chunk(
            serde_json::json!({"content": format!(" w{i}")}),
            None,
        ));
    }
    events.push(chunk(serde_json::json!({}), Some("stop")));
    if let Some((prompt, completion)) = usage {
        events.push(serde_json::json!({
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_764_000_000,
            "model": model, "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
            "timings": {"prompt_n": prompt, "prompt_ms": 12.5, "predicted_n": completion, "predicted_ms": 40.0, "cache_n": 0}
        }));
    }
    let mut out: Vec<(Duration, Bytes)> = events
        .into_iter()
        .map(|e| (gap, Bytes::from(format!("data: {e}\n\n"))))
        .collect();
    out.push((gap, Bytes::from_static(b"data: [DONE]\n\n")));
    out
}
