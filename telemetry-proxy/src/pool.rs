//! The proxy's upstream connections: one [`Pool`] per upstream of the routes, built when the
//! proxy starts, of HTTP/1 connections made with hyper's `client::conn::http1` over the
//! proxy's connector (TCP, TLS for `https://` upstreams, the connect timeout: `tls.rs`; the
//! pool takes any connector and any request body, and names neither module).
//!
//! A connection is used by one request at a time. Its sender comes back to its pool when the
//! response body has been read to its end (a body dropped before it ends closes the connection)
//! and the connection is ready for the next request; the most recently used idle connection is
//! taken first (LIFO: it is the least likely to have been closed by the upstream), and one idle
//! longer than the pool's idle timeout is dropped, never used (below the 5 s keep-alive of
//! uvicorn and llama.cpp, so the upstream does not close it under a request). A request that
//! an idle connection could not take (the upstream had closed it) is sent again on a new one:
//! hyper hands it back unsent.
//!
//! Nothing is hashed, allocated or spawned per request on this path (hyper-util's pooled client
//! hashed its pool key twice, allocated a checkout and spawned a task per request to learn when
//! the connection was idle again, about 11 K instructions a call).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::header::HeaderValue;
use http::{Request, Response, Uri};
use hyper::body::{Body, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::rt::{Read, Write};
use tokio::time::Instant;
use tower_service::Service;

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
    Request(#[source] hyper::Error),
}

impl UpstreamError {
    /// Whether the upstream could not be connected to at all.
    pub fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect(_))
    }
}

/// The pools of every upstream of the routes: requests with bodies `B`, connections made by
/// `C`.
#[derive(Debug)]
pub(crate) struct Pools<B, C>(Vec<Arc<Pool<B, C>>>);

impl<B, C: Clone> Pools<B, C> {
    /// A pool for each upstream of `routes`, its connections made with `connector` and idle at
    /// most `idle_timeout`.
    pub fn new(routes: &Routes, connector: &C, idle_timeout: Duration) -> Pools<B, C> {
        Pools(
            routes
                .all()
                .into_iter()
                .map(|(_, upstream)| Arc::new(Pool::new(upstream, connector.clone(), idle_timeout)))
                .collect(),
        )
    }

    /// The pool of `upstream` (one of the routes' the pools were built from).
    pub fn of(&self, upstream: &Arc<Upstream>) -> Option<&Arc<Pool<B, C>>> {
        self.0.iter().find(|p| Arc::ptr_eq(&p.upstream, upstream))
    }
}

/// The connections to one upstream.
#[derive(Debug)]
pub(crate) struct Pool<B, C> {
    upstream: Arc<Upstream>,
    /// `scheme://authority/`: what the connector connects to.
    connect_uri: Uri,
    /// The `Host` header of every request (the port only when not the scheme's default).
    host: HeaderValue,
    connector: C,
    idle: Arc<IdleList<B>>,
}

/// The idle connections of a pool, the most recently used at the back.
#[derive(Debug)]
pub(crate) struct IdleList<B> {
    timeout: Duration,
    list: Mutex<VecDeque<Idle<B>>>,
}

#[derive(Debug)]
struct Idle<B> {
    sender: SendRequest<B>,
    since: Instant,
}

/// A connection in use by one request, until its response body ends
/// ([`InUse::give_back`]) or is dropped.
#[derive(Debug)]
pub(crate) struct InUse<B> {
    sender: SendRequest<B>,
    idle: Arc<IdleList<B>>,
}

impl<B, C> Pool<B, C> {
    fn new(upstream: &Arc<Upstream>, connector: C, idle_timeout: Duration) -> Pool<B, C> {
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
}

impl<B, C> Pool<B, C>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    C: Service<Uri> + Clone,
    C::Response: Read + Write + Unpin + Send + 'static,
    C::Error: Into<BoxError>,
{
    /// The `Host` header value of this upstream's requests.
    pub fn host(&self) -> &HeaderValue {
        &self.host
    }

    /// Sends `request` (origin-form target, `Host` set) on an idle connection, else a new one;
    /// returns the response head and the connection, which is busy until the body ends.
    pub async fn send(
        &self,
        mut request: Request<B>,
    ) -> Result<(Response<Incoming>, InUse<B>), UpstreamError> {
        loop {
            let (mut sender, reused) = match self.idle.checkout() {
                Some(sender) => (sender, true),
                None => (self.connect().await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let conn = InUse {
                        sender,
                        idle: Arc::clone(&self.idle),
                    };
                    return Ok((response, conn));
                }
                Err(mut e) => match e.take_message() {
                    // Never sent: the idle connection had been closed. Again, on another.
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(UpstreamError::Request(e.into_error())),
                },
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<B>, UpstreamError> {
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(|e| UpstreamError::Connect(e.into()))?;
        let io = connector
            .call(self.connect_uri.clone())
            .await
            .map_err(|e| UpstreamError::Connect(e.into()))?;
        let (sender, connection) = http1::handshake(io)
            .await
            .map_err(|e| UpstreamError::Connect(Box::new(e)))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

impl<B: Body + 'static> IdleList<B> {
    /// The most recently used idle connection that is ready, if any; those idle too long are
    /// dropped.
    fn checkout(&self) -> Option<SendRequest<B>> {
        let now = Instant::now();
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(c) = list.pop_back() {
            if now.saturating_duration_since(c.since) < self.timeout && c.sender.is_ready() {
                return Some(c.sender);
            }
        }
        None
    }

    fn push(&self, sender: SendRequest<B>) {
        let now = Instant::now();
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        // The oldest first: drop those idle too long.
        while list
            .front()
            .is_some_and(|c| now.saturating_duration_since(c.since) >= self.timeout)
        {
            list.pop_front();
        }
        list.push_back(Idle { sender, since: now });
    }
}

impl<B> InUse<B>
where
    B: Body + Send + 'static,
{
    /// The response body has been read to its end: the connection is idle once hyper has
    /// finished with it (at once, unless the request body is still on its way).
    pub fn give_back(self) {
        let InUse { mut sender, idle } = self;
        if sender.is_ready() {
            idle.push(sender);
        } else if !sender.is_closed()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if sender.ready().await.is_ok() {
                    idle.push(sender);
                }
            });
        }
    }
}
