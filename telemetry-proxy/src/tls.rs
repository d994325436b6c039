//! The upstream connector: TCP, and for `https://` upstreams TLS with rustls (ring provider),
//! the server's name sent (SNI) and its certificate checked against the system's roots (else
//! webpki-roots') plus the CA certificates of
//! [`ProxyConfig::upstream_ca`](crate::ProxyConfig::upstream_ca). The whole connection
//! (TCP and handshake) has the configured connect timeout.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use http::uri::Scheme;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::ProxyError;
use crate::upstream::Routes;

/// The connector of the proxy's pools: TCP (no Nagle delay), and TLS for `https://` URIs, the
/// whole within the connect timeout.
#[derive(Clone)]
pub(crate) struct Connector {
    tls: TlsConnector,
    timeout: Duration,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A connection to an upstream: TCP, or TLS over TCP (boxed: rustls' state is large).
#[derive(Debug)]
pub(crate) enum Io {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Why no connection to an upstream was made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// The URI has no host (the pools' URIs always have one).
    #[error("no host in {0}")]
    NoHost(Uri),
    /// TCP: the name did not resolve, or the connection was refused or failed.
    #[error("tcp connect error")]
    Tcp(#[source] io::Error),
    /// The host cannot be a TLS server name.
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    /// The TLS handshake failed (the certificate not trusted, or not for this name, ...).
    #[error("TLS handshake failed")]
    Tls(#[source] io::Error),
    /// A connection to an upstream was not made within the connect timeout.
    #[error("no connection within {0:?}")]
    Timeout(Duration),
}

/// Builds the connector for the upstreams of `routes`: the CA certificates of `upstream_ca`
/// trusted besides the system's, every connection made within `connect_timeout` (the settings of
/// a [`ProxyConfig`](crate::ProxyConfig), taken one by one so that this module does not use the
/// config's, which uses the metrics', which uses the bodies', which use this one's `Io`).
pub(crate) fn connector(
    routes: &Routes,
    upstream_ca: Option<&Path>,
    connect_timeout: Duration,
) -> Result<Connector, ProxyError> {
    let https = routes.all().iter().any(|(_, u)| u.is_https());
    let roots = if https || upstream_ca.is_some() {
        roots(upstream_ca)?
    } else {
        // No https upstream: no roots to load (no TLS connection is ever made).
        RootCertStore::empty()
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ProxyError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Connector {
        tls: TlsConnector::from(Arc::new(tls)),
        timeout: connect_timeout,
    })
}

impl Connector {
    async fn connect(self, uri: Uri) -> Result<Io, ConnectError> {
        let https = uri.scheme() == Some(&Scheme::HTTPS);
        let Some(host) = uri.host() else {
            return Err(ConnectError::NoHost(uri));
        };
        // An IPv6 literal keeps its brackets in `host()`.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(ConnectError::Tcp)?;
        tcp.set_nodelay(true).map_err(ConnectError::Tcp)?;
        if !https {
            return Ok(Io::Tcp(tcp));
        }
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| ConnectError::ServerName(host.to_owned()))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(ConnectError::Tls)?;
        Ok(Io::Tls(Box::new(tls)))
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Io;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Io, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = self.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connector.connect(uri)).await {
                Ok(connected) => connected,
                Err(_) => Err(ConnectError::Timeout(timeout)),
            }
        })
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Tcp(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

/// The system's CA certificates (webpki-roots' when the system has none), plus `extra`'s.
fn roots(extra: Option<&Path>) -> Result<RootCertStore, ProxyError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(path) = extra {
        let bad = |reason: String| ProxyError::UpstreamCa {
            path: path.to_owned(),
            reason,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Upstream;

    #[test]
    fn a_ca_file_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let routes = Routes::new(Upstream::parse("https://h").unwrap());
        let timeout = Duration::from_secs(1);
        let err = connector(&routes, Some(&empty), timeout).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = connector(&routes, Some(&missing), timeout).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
        assert!(connector(&routes, None, timeout).is_ok());
    }
}
