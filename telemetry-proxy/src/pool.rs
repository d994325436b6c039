//! The proxy's upstream connections: one [`Pool`] per upstream of the routes, built when the
//! proxy starts, of HTTP/1.1 connections of the proxy's own client (`h1.rs`: the IO and a read
//! buffer, driven inline by the request's future: no connection task, no channel) over the
//! proxy's connector (TCP, TLS for `https://` upstreams, the connect timeout: `tls.rs`; the
//! pool takes any connector and any request body, and names neither module).
//!
//! A connection is used by one request at a time: the request is written whole (its head and
//! the body's ready frames in one vectored write, the rest as it comes), then the response head
//! read. The response body ([`UpstreamBody`]) holds the connection, and gives it back to its
//! pool when it has been read to its end and the upstream keeps the connection open (a body
//! dropped before its end closes the connection); the most recently used idle connection is
//! taken first (LIFO: it is the least likely to have been closed by the upstream), and one idle
//! longer than the pool's idle timeout is dropped, never used (below the 5 s keep-alive of
//! uvicorn and llama.cpp, so the upstream does not close it under a request). An idle
//! connection the upstream has closed is seen when taken (a read that does not wait) and
//! dropped; one that turns out closed under a request before any byte of the response (the
//! close was on its way) has the request sent again on a new connection, when the request was
//! written whole at once (it is kept until its response begins). A request the upstream stops
//! reading after answering it (a `413` before the body) gets that answer, as hyper's client gave
//! it: when the writing fails, a response head already come is read (the connection is then
//! not reused).
//!
//! Nothing is hashed, spawned or sent between tasks per request on this path (hyper-util's
//! pooled client hashed its pool key twice, allocated a checkout and spawned a task per request
//! to learn when the connection was idle again, about 11 K instructions a call; hyper's own
//! connection task, its dispatch channel and second task per request were another 16 K).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Method, Uri};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tower_service::Service;

use crate::fields::Reply;
use crate::h1::{self, BodyDecoder, Conn, ConnError, Outgoing, RequestHead};
use crate::upstream::{Routes, Upstream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request did not get a response head from its upstream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// No connection could be made (TCP, TLS, or the connect timeout).
    #[error("connecting failed")]
    Connect(#[source] BoxError),
    /// The connection failed while the request was sent or its answer awaited (the client's
    /// body breaking off included: see [`ClientBodyError`](crate::body::ClientBodyError)).
    #[error("the request failed")]
    Request(#[source] ConnError),
}

impl UpstreamError {
    /// Whether the upstream could not be connected to at all.
    pub fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect(_))
    }
}

/// The pools of every upstream of the routes, their connections made by `C`.
pub(crate) struct Pools<C: Service<Uri>>(Vec<Arc<Pool<C>>>);

impl<C: Service<Uri>> std::fmt::Debug for Pools<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

impl<C: Service<Uri> + Clone> Pools<C> {
    /// A pool for each upstream of `routes`, its connections made with `connector` and idle at
    /// most `idle_timeout`.
    pub fn new(routes: &Routes, connector: &C, idle_timeout: Duration) -> Pools<C> {
        Pools(
            routes
                .all()
                .into_iter()
                .map(|(_, upstream)| Arc::new(Pool::new(upstream, connector.clone(), idle_timeout)))
                .collect(),
        )
    }

    /// The pool of `upstream` (one of the routes' the pools were built from).
    pub fn of(&self, upstream: &Arc<Upstream>) -> Option<&Arc<Pool<C>>> {
        self.0.iter().find(|p| Arc::ptr_eq(&p.upstream, upstream))
    }
}

/// The connections to one upstream.
pub(crate) struct Pool<C: Service<Uri>> {
    upstream: Arc<Upstream>,
    /// `scheme://authority/`: what the connector connects to.
    connect_uri: Uri,
    /// The `Host` header of every request (the port only when not the scheme's default).
    host: HeaderValue,
    connector: C,
    idle: Arc<IdleList<C::Response>>,
}

/// The idle connections of a pool, the most recently used at the back.
pub(crate) struct IdleList<I> {
    timeout: Duration,
    list: Mutex<VecDeque<Idle<I>>>,
}

impl<I> std::fmt::Debug for IdleList<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self.list.lock().map_or(0, |l| l.len());
        f.debug_struct("IdleList")
            .field("timeout", &self.timeout)
            .field("idle", &idle)
            .finish()
    }
}

struct Idle<I> {
    conn: Box<Conn<I>>,
    since: Instant,
}

impl<C: Service<Uri>> std::fmt::Debug for Pool<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("upstream", &self.upstream)
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

impl<C: Service<Uri>> Pool<C> {
    fn new(upstream: &Arc<Upstream>, connector: C, idle_timeout: Duration) -> Pool<C> {
        Pool {
            upstream: Arc::clone(upstream),
            connect_uri: upstream.connect_uri(),
            host: upstream.host_header(),
            connector,
            idle: Arc::new(IdleList {
                timeout: idle_timeout,
                list: Mutex::new(VecDeque::new()),
            }),
        }
    }

    /// The `Host` header value of this upstream's requests.
    pub fn host(&self) -> &HeaderValue {
        &self.host
    }
}

impl<C> Pool<C>
where
    C: Service<Uri> + Clone,
    C::Response: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    C::Error: Into<BoxError>,
{
    /// Sends a request (`head`, `body`) on an idle connection, else a new one;
    /// returns the response (its header fields as they came, but the hop-by-hop ones), whose
    /// body holds the connection until it ends. The response head is due within `first_byte`
    /// of the whole request having gone (else [`ConnError::FirstByteTimeout`]), and an upstream
    /// that takes none of the request for as long fails it ([`ConnError::WriteStalled`]). The head is only
    /// read (serialized at once): borrowed, it is not moved into this future and the caller's.
    pub async fn send<B>(
        &self,
        head: &RequestHead,
        mut body: B,
        first_byte: Duration,
    ) -> Result<Reply<UpstreamBody<C::Response>>, UpstreamError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<BoxError>,
    {
        let head_request = head.method == Method::HEAD;
        let (head, send) = h1::encode_head(head, &body).map_err(UpstreamError::Request)?;
        let (mut conn, mut reused) = match self.idle.checkout() {
            Some(conn) => (conn, true),
            None => (self.connect().await?, false),
        };
        // The body's frames ready now go with the head (after the connection is had: the
        // first-byte timeout starts when the body has gone).
        let mut out = Outgoing::new(head, send);
        std::future::poll_fn(|cx| Poll::Ready(out.gather(&mut body, cx)))
            .await
            .map_err(UpstreamError::Request)?;
        let head = loop {
            match h1::exchange(&mut conn, &mut out, &mut body, head_request, first_byte).await {
                Ok(head) => break head,
                // The idle connection had been closed: the same bytes again, on a new one.
                Err((_, true)) if reused => {
                    conn = self.connect().await?;
                    reused = false;
                }
                Err((e, _)) => return Err(UpstreamError::Request(e)),
            }
        };
        let mut body = UpstreamBody {
            conn: Some(conn),
            decoder: BodyDecoder::new(head.framing),
            keep_alive: head.keep_alive,
            idle: Arc::clone(&self.idle),
        };
        body.end_if_done();
        Ok(Reply {
            status: head.status,
            fields: head.headers,
            body,
        })
    }

    /// A new connection, boxed: it moves between the pool and the requests' bodies by pointer
    /// (a TLS connection's state is over a kilobyte).
    async fn connect(&self) -> Result<Box<Conn<C::Response>>, UpstreamError> {
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(|e| UpstreamError::Connect(e.into()))?;
        let io = connector
            .call(self.connect_uri.clone())
            .await
            .map_err(|e| UpstreamError::Connect(e.into()))?;
        Ok(Box::new(Conn::new(io)))
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> IdleList<I> {
    /// The most recently used idle connection that is still open, if any; those idle too long
    /// or closed are dropped.
    fn checkout(&self) -> Option<Box<Conn<I>>> {
        let now = Instant::now();
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(mut c) = list.pop_back() {
            if now.saturating_duration_since(c.since) < self.timeout && c.conn.is_open() {
                return Some(c.conn);
            }
        }
        None
    }

    fn push(&self, conn: Box<Conn<I>>) {
        let now = Instant::now();
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        // The oldest first: drop those idle too long.
        while list
            .front()
            .is_some_and(|c| now.saturating_duration_since(c.since) >= self.timeout)
        {
            list.pop_front();
        }
        list.push_back(Idle { conn, since: now });
    }
}

/// A response body from an upstream: its pieces are slices of the connection's read buffer.
/// The connection goes back to its pool when the body has been read to its end (and the
/// upstream keeps it open); dropped before, it closes.
#[derive(Debug)]
pub(crate) struct UpstreamBody<I> {
    /// `None` once the body has ended (or failed).
    conn: Option<Box<Conn<I>>>,
    decoder: BodyDecoder,
    keep_alive: bool,
    idle: Arc<IdleList<I>>,
}

impl<I: AsyncRead + AsyncWrite + Unpin> UpstreamBody<I> {
    /// At the body's end: the connection goes back to its pool, unless it cannot serve again.
    fn end_if_done(&mut self) {
        if self.decoder.is_done()
            && let Some(conn) = self.conn.take()
            && self.keep_alive
            && !conn.has_extra()
        {
            self.idle.push(conn);
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> Body for UpstreamBody<I> {
    type Data = Bytes;
    type Error = ConnError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ConnError>>> {
        let this = &mut *self;
        let Some(conn) = this.conn.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = std::task::ready!(conn.poll_body(&mut this.decoder, cx));
        match polled {
            Some(Ok(piece)) => {
                this.end_if_done();
                Poll::Ready(Some(Ok(Frame::data(piece))))
            }
            None => {
                this.end_if_done();
                Poll::Ready(None)
            }
            Some(Err(e)) => {
                this.conn = None;
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::{BodyExt, Full};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::h1::ParseError;

    /// Connects to the URI's port on loopback.
    #[derive(Clone)]
    struct Tcp;

    impl Service<Uri> for Tcp {
        type Response = TcpStream;
        type Error = std::io::Error;
        type Future = Pin<Box<dyn Future<Output = std::io::Result<TcpStream>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, uri: Uri) -> Self::Future {
            let port = uri.port_u16().unwrap_or(80);
            Box::pin(TcpStream::connect(("127.0.0.1", port)))
        }
    }

    /// What an upstream does with the `n`th request of a connection (from 1).
    #[derive(Clone, Copy)]
    enum Then {
        Answer,
        /// Answers, then closes the connection.
        AnswerAndClose,
        /// Closes the connection without answering.
        Close,
    }

    /// An upstream on loopback: each connection's requests are read and dealt with by `plan`
    /// (connection number from 0, request number from 1); counts its connections.
    async fn upstream(plan: fn(usize, usize) -> Then) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&conns);
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let conn = count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut n = 0;
                    loop {
                        let mut piece = [0u8; 1024];
                        match tcp.read(&mut piece).await {
                            Ok(0) | Err(_) => return,
                            Ok(got) => buf.extend_from_slice(&piece[..got]),
                        }
                        // Every request of the tests is a head and a 2-byte body.
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            if buf.len() < end + 6 {
                                break;
                            }
                            buf.drain(..end + 6);
                            n += 1;
                            let answer =
                                format!("HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nc{conn}r{n}");
                            match plan(conn, n) {
                                Then::Answer => tcp.write_all(answer.as_bytes()).await.unwrap(),
                                Then::AnswerAndClose => {
                                    tcp.write_all(answer.as_bytes()).await.unwrap();
                                    return;
                                }
                                Then::Close => return,
                            }
                        }
                    }
                });
            }
        });
        (addr, conns)
    }

    fn pool_to(addr: SocketAddr) -> Pool<Tcp> {
        let upstream = Arc::new(Upstream::parse(&format!("http://{addr}")).unwrap());
        Pool::new(&upstream, Tcp, Duration::from_secs(5))
    }

    /// A `POST` to `target`, without fields.
    fn post(target: &str) -> RequestHead {
        RequestHead {
            method: Method::POST,
            uri: target.parse().unwrap(),
            host: None,
            fields: Default::default(),
            length: None,
            identity: false,
        }
    }

    /// Sends a request with a 2-byte body; the response's body as text.
    async fn call(pool: &Pool<Tcp>) -> Result<String, UpstreamError> {
        let mut head = post("/v1/x");
        head.host = Some(pool.host().clone());
        let response = pool
            .send(
                &head,
                Full::new(Bytes::from_static(b"{}")),
                Duration::from_secs(5),
            )
            .await?;
        let body = response.body.collect().await.unwrap().to_bytes();
        Ok(String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_connection_serves_again_once_its_body_has_ended() {
        let (addr, conns) = upstream(|_, _| Then::Answer).await;
        let pool = pool_to(addr);
        assert_eq!(call(&pool).await.unwrap(), "c0r1");
        assert_eq!(call(&pool).await.unwrap(), "c0r2");
        assert_eq!(conns.load(Ordering::SeqCst), 1);
        // A body dropped before its end closes its connection.
        let body = Full::new(Bytes::from_static(b"{}"));
        let response = pool
            .send(&post("/"), body, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(!response.body.is_end_stream());
        drop(response);
        assert_eq!(call(&pool).await.unwrap(), "c1r1");
    }

    #[tokio::test]
    async fn an_answer_the_upstream_gives_before_reading_the_body_is_the_response() {
        // Like nginx with a body over its client_max_body_size: a 413 once the head is read,
        // and the connection closed without reading the body.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let mut buf = Vec::new();
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let mut piece = [0u8; 1024];
                    match tcp.read(&mut piece).await {
                        Ok(0) | Err(_) => break,
                        Ok(got) => buf.extend_from_slice(&piece[..got]),
                    }
                }
                let answer = b"HTTP/1.1 413 Payload Too Large\r\nconnection: close\r\ncontent-length: 3\r\n\r\nbig";
                let _ = tcp.write_all(answer).await;
                drop(tcp);
            }
        });
        let pool = pool_to(addr);
        let body = Bytes::from(vec![b'x'; 32 << 20]);
        let response = pool
            .send(&post("/v1/x"), Full::new(body), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(response.status, http::StatusCode::PAYLOAD_TOO_LARGE);
        let body = response.body.collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"big");
        assert!(pool.idle.checkout().is_none(), "not reused");
    }

    #[tokio::test]
    async fn an_idle_connection_the_upstream_closed_is_not_used() {
        let (addr, conns) = upstream(|_, _| Then::AnswerAndClose).await;
        let pool = pool_to(addr);
        assert_eq!(call(&pool).await.unwrap(), "c0r1");
        // The close reaches the proxy's side before the next request takes a connection.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(call(&pool).await.unwrap(), "c1r1");
        assert_eq!(conns.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_request_whose_reused_connection_closes_before_any_answer_goes_again() {
        // The first connection answers its first request and closes under the second: the
        // second is sent again, once, on a new connection.
        let (addr, conns) = upstream(|conn, n| match (conn, n) {
            (0, 1) => Then::Answer,
            (0, _) => Then::Close,
            _ => Then::Answer,
        })
        .await;
        let pool = pool_to(addr);
        assert_eq!(call(&pool).await.unwrap(), "c0r1");
        assert_eq!(call(&pool).await.unwrap(), "c1r1");
        assert_eq!(conns.load(Ordering::SeqCst), 2);
        // A new connection that closes without an answer is an error, not sent again.
        let (addr, conns) = upstream(|_, _| Then::Close).await;
        let pool = pool_to(addr);
        let e = call(&pool).await.unwrap_err();
        assert!(
            matches!(e, UpstreamError::Request(ConnError::ClosedBeforeHead)),
            "{e:?}"
        );
        assert_eq!(conns.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_head_cut_by_the_close_is_an_error_and_not_sent_again() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&conns);
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let mut piece = [0u8; 4096];
                let _ = tcp.read(&mut piece).await;
                let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-").await;
            }
        });
        let pool = pool_to(addr);
        let e = call(&pool).await.unwrap_err();
        assert!(
            matches!(
                e,
                UpstreamError::Request(ConnError::Parse(ParseError::Truncated))
            ),
            "{e:?}"
        );
        assert_eq!(conns.load(Ordering::SeqCst), 1);
    }
}
