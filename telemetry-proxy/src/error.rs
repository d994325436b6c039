//! [`ProxyError`]: what can go wrong setting up or running the proxy (never a request: a request
//! the proxy cannot forward is answered with a 502, and telemetry never fails one).

use std::net::SocketAddr;

/// An error of the proxy's configuration or of its listener.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// An upstream URL the proxy cannot forward to.
    #[error("invalid upstream URL {url:?}: {reason}")]
    InvalidUpstream {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `--route` that is not `MODEL=URL`.
    #[error("invalid route {route:?}: expected MODEL=URL, e.g. llama-3-8b=http://127.0.0.1:8081")]
    InvalidRoute {
        /// The route as given.
        route: String,
    },
    /// Two routes for the same model.
    #[error("model {model:?} is routed twice")]
    DuplicateRoute {
        /// The model named twice.
        model: String,
    },
    /// The `--upstream-ca` file could not be read as PEM CA certificates.
    #[error("cannot use {path} as the upstreams' CA: {reason}")]
    UpstreamCa {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS client could not be set up.
    #[error("cannot set up TLS for https upstreams: {0}")]
    Tls(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A worker beyond the first ([`ProxyConfig::workers`](crate::ProxyConfig::workers))
    /// could not be started: its runtime, its thread, or its listener's registration.
    #[error("cannot start proxy worker {index}: {source}")]
    Worker {
        /// Which worker (1 is the first on a thread of its own).
        index: usize,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
