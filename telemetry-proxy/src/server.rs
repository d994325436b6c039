//! [`Proxy`]: the listener, one HTTP/1 connection task per client, the upstream pools,
//! and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::budget::ByteBudget;
use crate::config::ProxyConfig;
use crate::error::ProxyError;
use crate::forward;
use crate::pool::Pools;
use crate::record::Recorder;
use crate::shared::Shared;
use crate::stats::{Counters, ProxyStats};

/// Connections served while every connection slot is taken: they get `/telemetry/health`
/// answered and anything else a quick 503, so the proxy can be watched while it is full.
const OVERFLOW_SLOTS: usize = 32;
/// How long an over-limit connection may take to send its request head.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// A bound, not yet running, recording reverse proxy. Needs a tokio runtime with the `net` and
/// `time` drivers enabled.
#[derive(Debug)]
pub struct Proxy {
    listener: TcpListener,
    addr: SocketAddr,
    shared: Arc<Shared>,
}

/// Reads a running proxy's counters.
#[derive(Debug, Clone)]
pub struct StatsHandle(Arc<Counters>);

impl StatsHandle {
    /// The counters now.
    pub fn get(&self) -> ProxyStats {
        self.0.snapshot()
    }
}

/// How a shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Connections still busy when the grace period ended, closed then (their calls are
    /// recorded as cancelled).
    pub connections_cut: u64,
    /// The counters at the end.
    pub stats: ProxyStats,
}

/// Counts an open client connection and holds its place under the connection limit, until
/// dropped (when the connection ends or its task is aborted).
struct OpenConnection {
    counters: Arc<Counters>,
    _permit: OwnedSemaphorePermit,
}

impl OpenConnection {
    fn new(counters: Arc<Counters>, permit: OwnedSemaphorePermit) -> OpenConnection {
        counters.connections.fetch_add(1, Ordering::Relaxed);
        OpenConnection {
            counters,
            _permit: permit,
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.counters.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Proxy {
    /// Binds `addr` (port 0 picks a free port; see [`local_addr`](Self::local_addr)).
    pub async fn bind(addr: SocketAddr, config: ProxyConfig) -> Result<Proxy, ProxyError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ProxyError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ProxyError::Bind { addr, source })?;
        let pools = Pools::new(
            &config.routes,
            &crate::tls::connector(&config)?,
            config.pool_idle_timeout,
        );
        let counters = Arc::new(Counters::new(ByteBudget::new(config.buffer_budget)));
        Ok(Proxy {
            listener,
            addr,
            shared: Arc::new(Shared {
                recorder: Recorder::new(
                    Arc::clone(&counters),
                    config.telemetry.clone(),
                    &config.routes,
                    config.capture_limit,
                ),
                refusals: crate::inject::Refusals::new(&config.routes),
                config,
                pools,
                counters,
            }),
        })
    }

    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle on the proxy's counters, usable while it runs.
    pub fn stats(&self) -> StatsHandle {
        StatsHandle(Arc::clone(&self.shared.counters))
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight responses finish
    /// (streams included) for up to the configured grace, and closes what is left.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> ShutdownReport {
        let Proxy {
            listener, shared, ..
        } = self;
        let graceful = GracefulShutdown::new();
        let limit = Arc::new(Semaphore::new(shared.config.max_connections));
        let overflow = Arc::new(Semaphore::new(OVERFLOW_SLOTS));
        let mut tasks = JoinSet::new();
        let mut shutdown = pin!(shutdown);
        loop {
            let (permit, over_limit) = match Arc::clone(&limit).try_acquire_owned() {
                Ok(p) => (p, false),
                Err(_) => tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    permit = Arc::clone(&limit).acquire_owned() => match permit {
                        Ok(p) => (p, false),
                        Err(_) => break,
                    },
                    permit = Arc::clone(&overflow).acquire_owned() => match permit {
                        Ok(p) => (p, true),
                        Err(_) => break,
                    },
                },
            };
            let stream = tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
            };
            // A slot may have come free while this connection was awaited on an overflow one.
            let (permit, over_limit) = match over_limit {
                true => match Arc::clone(&limit).try_acquire_owned() {
                    Ok(p) => (p, false),
                    Err(_) => (permit, true),
                },
                false => (permit, false),
            };
            // Small SSE chunks must leave at once, not wait for Nagle.
            let _ = stream.set_nodelay(true);
            let conn_shared = Arc::clone(&shared);
            let mut builder = http1::Builder::new();
            builder.timer(TokioTimer::new());
            let open = OpenConnection::new(Arc::clone(&shared.counters), permit);
            if over_limit {
                Counters::bump(&shared.counters.connections_over_limit);
                builder
                    .keep_alive(false)
                    .header_read_timeout(OVERFLOW_HEADER_TIMEOUT);
                let service = service_fn(move |request| {
                    forward::handle_over_limit(Arc::clone(&conn_shared), request)
                });
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                tasks.spawn(serve(conn, open));
            } else {
                let service =
                    service_fn(move |request| forward::handle(Arc::clone(&conn_shared), request));
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                tasks.spawn(serve(conn, open));
            }
            // Reap finished connection tasks so the set stays as small as the open connections.
            while tasks.try_join_next().is_some() {}
        }
        drop(listener);
        let grace = shared.config.shutdown_grace;
        let cut = match tokio::time::timeout(grace, graceful.shutdown()).await {
            Ok(()) => 0,
            Err(_) => shared.counters.connections.load(Ordering::Relaxed),
        };
        // Connections past the grace are dropped here; their calls are recorded as cancelled.
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        ShutdownReport {
            connections_cut: cut,
            stats: shared.counters.snapshot(),
        }
    }
}

/// Serves one client connection to its end; its slot is free again then.
async fn serve(conn: impl Future<Output = Result<(), hyper::Error>>, open: OpenConnection) {
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "client connection ended with an error");
    }
    drop(open);
}
