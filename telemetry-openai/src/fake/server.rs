//! [`FakeServer`]: an HTTP/1.1 server on loopback, on a thread and tokio runtime of its own,
//! answering every request with what a responder scripts.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Channel, Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::fake::reply::{End, Part, Reply};
use crate::fake::request::FakeRequest;

/// Requests kept for [`FakeServer::requests`]; later ones are only counted, so a long
/// benchmark does not grow the fake's memory.
const KEPT_REQUESTS: usize = 10_000;

type Responder = dyn Fn(&FakeRequest) -> Reply + Send + Sync;

#[derive(Default)]
struct State {
    requests: Mutex<Vec<FakeRequest>>,
    request_count: AtomicU64,
    streams_completed: AtomicU64,
    streams_aborted: AtomicU64,
}

/// An HTTP/1.1 server on `127.0.0.1` answering every request with what the responder scripts,
/// on a thread (`fake-server`) and single-threaded tokio runtime of its own, so that blocking
/// and async code alike can call it. Stops when dropped.
pub struct FakeServer {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FakeServer {
    /// Starts a server on a free loopback port answering every request with `responder`.
    ///
    /// # Errors
    /// When no loopback port can be bound, or the thread or runtime cannot be made.
    pub fn start(
        responder: impl Fn(&FakeRequest) -> Reply + Send + Sync + 'static,
    ) -> std::io::Result<FakeServer> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let state = Arc::new(State::default());
        let responder: Arc<Responder> = Arc::new(responder);
        let (stop, stopped) = oneshot::channel();
        let shared = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("fake-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        () = serve(listener, shared, responder) => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(FakeServer {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`: the server's origin, as a proxy's upstream.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1`: the base URL an OpenAI client takes.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The first requests received (up to 10 000), in order of arrival.
    pub fn requests(&self) -> Vec<FakeRequest> {
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

    /// Streamed replies (chunked, paused or with a scripted end) whose every part was sent.
    pub fn streams_completed(&self) -> u64 {
        self.state.streams_completed.load(Ordering::SeqCst)
    }

    /// Streamed replies the client abandoned before their end (the next part could not be
    /// sent).
    pub fn streams_aborted(&self) -> u64 {
        self.state.streams_aborted.load(Ordering::SeqCst)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(listener: TcpListener, state: Arc<State>, responder: Arc<Responder>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let responder = Arc::clone(&responder);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = Arc::clone(&state);
                let responder = Arc::clone(&responder);
                async move { Ok::<_, Infallible>(answer(req, &state, &*responder).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Why a scripted answer stopped short (the connection is then closed without the body's end).
#[derive(Debug)]
struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the scripted answer ends abruptly")
    }
}

impl std::error::Error for Aborted {}

type FakeBody = Either<Full<Bytes>, Channel<Bytes, Aborted>>;

async fn answer(
    req: Request<Incoming>,
    state: &Arc<State>,
    responder: &Responder,
) -> Response<FakeBody> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let received = FakeRequest {
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        body,
    };
    let reply = responder(&received);
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
    if !reply.head_delay.is_zero() {
        tokio::time::sleep(reply.head_delay).await;
    }
    let mut response = Response::new(Either::Left(Full::new(Bytes::new())));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in &reply.headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    let whole = !reply.chunked
        && reply.end == End::Complete
        && reply.parts.iter().all(|p| matches!(p, Part::Bytes(_)));
    if whole {
        // Sent at once with its `Content-Length`.
        let body = match reply.parts.as_slice() {
            [Part::Bytes(b)] => b.clone(),
            parts => {
                let mut all = BytesMut::with_capacity(reply.body_len());
                for part in parts {
                    if let Part::Bytes(b) = part {
                        all.extend_from_slice(b);
                    }
                }
                all.freeze()
            }
        };
        *response.body_mut() = Either::Left(Full::new(body));
        return response;
    }
    if !reply.chunked {
        // The length the script promises, though it may end before.
        response.headers_mut().insert(
            http::header::CONTENT_LENGTH,
            HeaderValue::from(reply.body_len()),
        );
    }
    let (tx, rx) = Channel::new(1);
    tokio::spawn(send(reply, tx, Arc::clone(state)));
    *response.body_mut() = Either::Right(rx);
    response
}

/// Sends a streamed reply's parts, then ends it as scripted.
async fn send(
    reply: Reply,
    mut tx: http_body_util::channel::Sender<Bytes, Aborted>,
    state: Arc<State>,
) {
    for part in reply.parts {
        match part {
            Part::Pause(d) => {
                if !d.is_zero() {
                    tokio::time::sleep(d).await;
                }
            }
            // An empty chunk would end a chunked body.
            Part::Bytes(b) if b.is_empty() => {}
            Part::Bytes(b) => {
                if tx.send_data(b).await.is_err() {
                    state.streams_aborted.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
        }
    }
    state.streams_completed.fetch_add(1, Ordering::SeqCst);
    match reply.end {
        End::Complete => {}
        End::Abort => tx.abort(Aborted),
        End::Stall(d) => {
            tokio::time::sleep(d).await;
            tx.abort(Aborted);
        }
    }
}
