//! Several workers ([`ProxyConfig::workers`](crate::ProxyConfig::workers)), as nginx runs
//! worker processes: each worker is a thread with a current-thread runtime and a listening
//! socket of its own on the proxy's address, and serves the connections it accepts from start
//! to end with its own upstream pools. Nothing passes between workers per request but what is
//! shared on purpose (the telemetry bus and store, the byte budget, the connection slots): no
//! task is stolen, no wake-up crosses threads.
//!
//! The sockets: on Linux each has `SO_REUSEPORT` and the kernel spreads new connections over
//! them by a hash of their addresses; elsewhere (the option does not balance, or does not
//! exist) and where setting it fails, one socket is shared by every worker, each waiting on it.
//! Before them a plain socket is bound once, so that a port anything listens on is refused as
//! with one worker (another proxy's `SO_REUSEPORT` socket of the same user would otherwise share
//! the port without a word), and port 0 becomes the one port every worker binds.
//!
//! The first worker is the caller's runtime (`Proxy::run`); the others ([`Others`]) are started
//! by `Proxy::bind`, each waiting for `run` before it accepts, and stop with the first: dropping
//! the proxy or the `run` future stops them too.

use std::future::Future;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::error::ProxyError;

/// Pending connections each listening socket holds (tokio's `TcpListener::bind` uses 1024).
const BACKLOG: i32 = 1024;

/// `n` listening sockets on `addr` (non-blocking, for the workers' runtimes), and the address
/// they listen on (port 0 resolved).
pub(crate) fn listeners(
    addr: SocketAddr,
    n: usize,
) -> Result<(SocketAddr, Vec<std::net::TcpListener>), ProxyError> {
    let probe =
        std::net::TcpListener::bind(addr).map_err(|source| ProxyError::Bind { addr, source })?;
    let addr = probe
        .local_addr()
        .map_err(|source| ProxyError::Bind { addr, source })?;
    drop(probe);
    let bound = match own_sockets(addr, n) {
        Ok(listeners) => Ok(listeners),
        Err(Refused::Option(e)) => {
            tracing::debug!(error = %e, "no SO_REUSEPORT: the workers share one listening socket");
            one_shared(addr, n)
        }
        Err(Refused::Bind(e)) => Err(e),
    };
    let listeners = bound.map_err(|source| ProxyError::Bind { addr, source })?;
    Ok((addr, listeners))
}

/// Why the workers could not have a socket each.
enum Refused {
    /// The platform has no balancing `SO_REUSEPORT`: share one socket.
    Option(std::io::Error),
    /// The address could not be bound.
    Bind(std::io::Error),
}

/// A socket per worker, each with `SO_REUSEPORT`.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn own_sockets(addr: SocketAddr, n: usize) -> Result<Vec<std::net::TcpListener>, Refused> {
    (0..n)
        .map(|i| {
            let socket = socket(addr).map_err(Refused::Bind)?;
            // The first socket tells whether the kernel has the option at all (Linux 3.9+).
            socket.set_reuse_port(true).map_err(|e| {
                if i == 0 {
                    Refused::Option(e)
                } else {
                    Refused::Bind(e)
                }
            })?;
            listen(socket, addr).map_err(Refused::Bind)
        })
        .collect()
}

/// Elsewhere `SO_REUSEPORT` does not spread connections (the BSDs and macOS give them all to
/// one socket) or does not exist.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn own_sockets(_: SocketAddr, _: usize) -> Result<Vec<std::net::TcpListener>, Refused> {
    Err(Refused::Option(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "SO_REUSEPORT does not balance connections on this platform",
    )))
}

/// One socket, handed to every worker (each registers its own handle of it).
fn one_shared(addr: SocketAddr, n: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let listener = listen(socket(addr)?, addr)?;
    let mut all = (1..n)
        .map(|_| listener.try_clone())
        .collect::<std::io::Result<Vec<_>>>()?;
    all.insert(0, listener);
    Ok(all)
}

/// A TCP socket for `addr`, with `SO_REUSEADDR` as tokio's listeners have it.
fn socket(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    Ok(socket)
}

/// `socket` bound to `addr`, listening, non-blocking.
fn listen(socket: Socket, addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Where the workers on threads of their own are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Bound: connections wait in the sockets' backlogs.
    Bound,
    /// `Proxy::run` began: accept and serve.
    Serving,
    /// The shutdown came: stop accepting, finish within the grace.
    Stopping,
}

/// The workers beyond the first, each on a thread of its own.
#[derive(Debug)]
pub(crate) struct Others {
    /// Dropped (with the proxy, or the `run` future) it stops them as `Stopping` does.
    phase: watch::Sender<Phase>,
    /// Each worker's connections cut at the end of the grace, sent when it has stopped.
    reports: Vec<oneshot::Receiver<u64>>,
}

impl Others {
    /// Starts a thread for each of `workers` (worker 1, 2, ...), with a runtime of its own that
    /// the worker's listener is registered with; they wait for [`start`](Self::start), then
    /// each serves its listener until its [`Stop`] completes and returns the connections it cut.
    pub fn spawn<S, F>(
        workers: impl Iterator<Item = (std::net::TcpListener, S)>,
    ) -> Result<Others, ProxyError>
    where
        S: FnOnce(TcpListener, Stop) -> F + Send + 'static,
        F: Future<Output = u64>,
    {
        let (phase, _) = watch::channel(Phase::Bound);
        let mut reports = Vec::new();
        for (i, (listener, serve)) in workers.enumerate() {
            let index = i + 1;
            let failed = |source| ProxyError::Worker { index, source };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(failed)?;
            let listener = {
                let _inside = runtime.enter();
                TcpListener::from_std(listener).map_err(failed)?
            };
            let (report, report_back) = oneshot::channel();
            let mut phase = phase.subscribe();
            std::thread::Builder::new()
                .name(format!("proxy-worker-{index}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        // The sender gone before `run`: the proxy was dropped unrun.
                        if phase.wait_for(|p| *p != Phase::Bound).await.is_err() {
                            return;
                        }
                        let _ = report.send(serve(listener, Stop(phase)).await);
                    });
                })
                .map_err(failed)?;
            reports.push(report_back);
        }
        Ok(Others { phase, reports })
    }

    /// Lets the workers serve. Returns the first worker's shutdown, which stops the others too
    /// when `shutdown` completes, and their reports.
    pub fn start(self, shutdown: impl Future<Output = ()>) -> (impl Future<Output = ()>, Reports) {
        let Others { phase, reports } = self;
        phase.send_replace(Phase::Serving);
        let shutdown = async move {
            shutdown.await;
            phase.send_replace(Phase::Stopping);
        };
        (shutdown, Reports(reports))
    }
}

/// A worker's shutdown: completes when the first worker's does, or when the proxy (or its `run`
/// future) is dropped.
#[derive(Debug)]
pub(crate) struct Stop(watch::Receiver<Phase>);

impl Stop {
    /// Completes at the shutdown.
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|p| *p == Phase::Stopping).await;
    }
}

/// What the workers on threads of their own report when they have stopped.
#[derive(Debug)]
pub(crate) struct Reports(Vec<oneshot::Receiver<u64>>);

impl Reports {
    /// Waits for every worker to stop; the connections they cut at the end of the grace.
    pub async fn connections_cut(self) -> u64 {
        let mut cut = 0;
        for (i, report) in self.0.into_iter().enumerate() {
            match report.await {
                Ok(n) => cut += n,
                Err(_) => tracing::error!(worker = i + 1, "a proxy worker ended without a report"),
            }
        }
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// Accepts one connection from any of `listeners` (non-blocking), within a few seconds.
    fn accept_any(listeners: &[std::net::TcpListener]) -> std::net::TcpStream {
        for _ in 0..2000 {
            for l in listeners {
                if let Ok((stream, _)) = l.accept() {
                    return stream;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        panic!("no listener accepted the connection");
    }

    #[test]
    fn port_0_is_resolved_once_and_every_socket_listens_on_it() {
        let (addr, listeners) = listeners("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        assert_ne!(addr.port(), 0);
        assert_eq!(listeners.len(), 3);
        for l in &listeners {
            assert_eq!(l.local_addr().unwrap(), addr);
        }
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client.write_all(b"x").unwrap();
        let mut server = accept_any(&listeners);
        server.set_nonblocking(false).unwrap();
        let mut byte = [0];
        server.read_exact(&mut byte).unwrap();
        assert_eq!(&byte, b"x");
    }

    #[test]
    fn a_port_in_use_is_refused_even_by_a_listener_with_so_reuseport() {
        let (addr, _held) = listeners("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        match listeners(addr, 2) {
            Err(ProxyError::Bind { addr: a, source }) => {
                assert_eq!(a, addr);
                assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
            }
            other => panic!("expected a bind error, got {other:?}"),
        }
    }

    #[test]
    fn one_shared_socket_serves_every_worker() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let shared = one_shared(addr, 2).unwrap();
        assert_eq!(shared.len(), 2);
        let _client = std::net::TcpStream::connect(addr).unwrap();
        // A clone accepts what was queued on the one socket.
        accept_any(&shared[1..]);
    }
}
