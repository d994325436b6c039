//! [`Proxy`]: the listener, one HTTP/1 connection task per client, the upstream pools,
//! and graceful shutdown — once per worker, the first on the caller's runtime and the others
//! on threads of their own (`workers.rs`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::budget::ByteBudget;
use crate::config::ProxyConfig;
use crate::error::ProxyError;
use crate::forward;
use crate::h1_server;
use crate::pool::Pools;
use crate::record::Recorder;
use crate::shared::Shared;
use crate::stats::{CounterSet, Counters, ProxyStats};
use crate::workers::{self, Others, Stop};

/// Connections served while every connection slot is taken: they get `/telemetry/health`
/// answered and anything else a quick 503, so the proxy can be watched while it is full.
const OVERFLOW_SLOTS: usize = 32;
/// How a connection within the limit is served: keep-alive, a head due within 30 s of being
/// awaited (hyper's default, which served clients before), up to 64 KiB of head.
const SERVED: h1_server::Options = h1_server::Options {
    header_timeout: Duration::from_secs(30),
    keep_alive: true,
    max_head: 64 * 1024,
};
/// An over-limit connection: one request, whose head is due within 5 s.
const OVERFLOW: h1_server::Options = h1_server::Options {
    header_timeout: Duration::from_secs(5),
    keep_alive: false,
    max_head: 64 * 1024,
};
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// A bound, not yet running, recording reverse proxy. Needs a tokio runtime with the `net` and
/// `time` drivers enabled; with [`ProxyConfig::workers`] above 1, build it current-thread: it
/// is the first worker, each other worker has a thread and a runtime of its own.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    /// The listener of the worker on the caller's runtime.
    listener: TcpListener,
    /// That worker.
    first: Worker,
    /// The workers on threads of their own (none with one worker).
    others: Others,
    counters: CounterSet,
}

/// One worker: what serves the connections of one listener, on one runtime, with its own
/// upstream pools and counters; the connection slots are every worker's.
#[derive(Debug)]
struct Worker {
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    overflow: Arc<Semaphore>,
}

/// Reads a running proxy's counters.
#[derive(Debug, Clone)]
pub struct StatsHandle(CounterSet);

impl StatsHandle {
    /// The counters now (every worker's together).
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
    /// Binds `addr` (port 0 picks a free port; see [`local_addr`](Self::local_addr)), with
    /// one listener per worker ([`ProxyConfig::workers`]).
    pub async fn bind(addr: SocketAddr, config: ProxyConfig) -> Result<Proxy, ProxyError> {
        let (addr, listener, others) = if config.workers <= 1 {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| ProxyError::Bind { addr, source })?;
            let addr = listener
                .local_addr()
                .map_err(|source| ProxyError::Bind { addr, source })?;
            (addr, listener, Vec::new())
        } else {
            let (addr, mut listeners) = workers::listeners(addr, config.workers)?;
            let first = listeners.remove(0);
            let listener =
                TcpListener::from_std(first).map_err(|source| ProxyError::Bind { addr, source })?;
            (addr, listener, listeners)
        };
        let connector = crate::tls::connector(
            &config.routes,
            config.upstream_ca.as_deref(),
            config.connect_timeout,
        )?;
        let budget = ByteBudget::new(config.buffer_budget);
        let shard = || Arc::new(Counters::new(budget.clone()));
        let first_shard = shard();
        let other_shards: Vec<_> = others.iter().map(|_| shard()).collect();
        let counters = CounterSet::new(
            std::iter::once(Arc::clone(&first_shard))
                .chain(other_shards.iter().cloned())
                .collect(),
        );
        let refusals = Arc::new(crate::inject::Refusals::new(&config.routes));
        let limit = Arc::new(Semaphore::new(config.max_connections));
        let overflow = Arc::new(Semaphore::new(OVERFLOW_SLOTS));
        // Each worker its own pools (a pooled connection is a task on the runtime that made
        // it), recorder and counters; the budget, the connection slots and what is learnt of
        // the upstreams are every worker's.
        let worker = |shard: Arc<Counters>| Worker {
            shared: Arc::new(Shared {
                recorder: Recorder::new(
                    Arc::clone(&shard),
                    config.telemetry.clone(),
                    &config.routes,
                    config.capture_limit,
                ),
                refusals: Arc::clone(&refusals),
                pools: Pools::new(&config.routes, &connector, config.pool_idle_timeout),
                config: config.clone(),
                counters: shard,
                totals: counters.clone(),
            }),
            limit: Arc::clone(&limit),
            overflow: Arc::clone(&overflow),
        };
        let first = worker(first_shard);
        let others = Others::spawn(others.into_iter().zip(other_shards.into_iter().map(
            |shard| {
                let worker = worker(shard);
                move |listener, stop: Stop| worker.serve(listener, stop.wait())
            },
        )))?;
        Ok(Proxy {
            addr,
            listener,
            first,
            others,
            counters,
        })
    }

    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle on the proxy's counters, usable while it runs.
    pub fn stats(&self) -> StatsHandle {
        StatsHandle(self.counters.clone())
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight responses finish
    /// (streams included) for up to the configured grace, and closes what is left. Every worker
    /// stops at once; with several, the report sums them.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> ShutdownReport {
        let Proxy {
            listener,
            first,
            others,
            counters,
            ..
        } = self;
        let (shutdown, reports) = others.start(shutdown);
        let cut = first.serve(listener, shutdown).await + reports.connections_cut().await;
        ShutdownReport {
            connections_cut: cut,
            stats: counters.snapshot(),
        }
    }
}

impl Worker {
    /// Serves until `shutdown` completes, then stops accepting and lets in-flight responses
    /// finish for up to the grace; returns how many connections were cut after it.
    async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> u64 {
        let Worker {
            shared,
            limit,
            overflow,
        } = self;
        // Changed once, at shutdown: idle connections close, busy ones after their response.
        let (stop, _) = watch::channel(false);
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
            let open = OpenConnection::new(Arc::clone(&shared.counters), permit);
            if over_limit {
                Counters::bump(&shared.counters.connections_over_limit);
            }
            tasks.spawn(serve(
                Arc::clone(&shared),
                stream,
                over_limit,
                stop.subscribe(),
                open,
            ));
            // Reap finished connection tasks so the set stays as small as the open connections.
            while tasks.try_join_next().is_some() {}
        }
        drop(listener);
        let grace = shared.config.shutdown_grace;
        stop.send_replace(true);
        let cut = match tokio::time::timeout(grace, stop.closed()).await {
            Ok(()) => 0,
            Err(_) => shared.counters.connections.load(Ordering::Relaxed),
        };
        // Connections past the grace are dropped here; their calls are recorded as cancelled.
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        cut
    }
}

/// Serves one client connection to its end; its slot is free again then.
async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    over_limit: bool,
    stop: watch::Receiver<bool>,
    open: OpenConnection,
) {
    if over_limit {
        h1_server::serve(stream, OVERFLOW, stop, |request| {
            forward::handle_over_limit(Arc::clone(&shared), request)
        })
        .await;
    } else {
        h1_server::serve(stream, SERVED, stop, |request| {
            forward::handle(Arc::clone(&shared), request)
        })
        .await;
    }
    drop(open);
}
