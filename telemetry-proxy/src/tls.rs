//! The upstream connector: TCP, and for `https://` upstreams TLS with rustls (ring provider),
//! the server's name sent (SNI) and its certificate checked against the system's roots (else
//! webpki-roots') plus the CA certificates of
//! [`ProxyConfig::upstream_ca`](crate::ProxyConfig::upstream_ca). The whole connection
//! (TCP and handshake) has the configured connect timeout.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::ProxyError;
use crate::upstream::Routes;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The connector of the proxy's pooled client.
pub(crate) type Connector = Timed<HttpsConnector<HttpConnector>>;

/// A connection it makes (TCP or TLS), with tokio's IO traits.
pub(crate) type Io = <Connector as tower_service::Service<Uri>>::Response;

/// A connection to an upstream was not made within the connect timeout.
#[derive(Debug, thiserror::Error)]
#[error("no connection within {0:?}")]
pub(crate) struct ConnectTimeout(Duration);

/// Builds the connector for the upstreams of `routes`: the CA certificates of `upstream_ca`
/// trusted besides the system's, every connection made within `connect_timeout` (the settings of
/// a [`ProxyConfig`](crate::ProxyConfig), taken one by one so that this module does not use the
/// config's, which uses the metrics', which uses the bodies', which use this one's `Io`).
pub(crate) fn connector(
    routes: &Routes,
    upstream_ca: Option<&Path>,
    connect_timeout: Duration,
) -> Result<Connector, ProxyError> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.enforce_http(false);
    let https = routes.all().iter().any(|(_, u)| u.is_https());
    let roots = if https || upstream_ca.is_some() {
        roots(upstream_ca)?
    } else {
        // No https upstream: no roots to load (the connector still refuses nothing it is not
        // asked for: every URL is http://).
        RootCertStore::empty()
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ProxyError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let inner = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Timed {
        inner,
        timeout: connect_timeout,
    })
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

/// A connector whose connections (TCP and TLS handshake) must be made within `timeout`.
#[derive(Debug, Clone)]
pub(crate) struct Timed<C> {
    inner: C,
    timeout: Duration,
}

impl<C> tower_service::Service<Uri> for Timed<C>
where
    C: tower_service::Service<Uri>,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
    C::Response: 'static,
{
    type Response = TokioIo<C::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<TokioIo<C::Response>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(connected) => connected.map(TokioIo::new).map_err(Into::into),
                Err(_) => Err(Box::new(ConnectTimeout(timeout)) as BoxError),
            }
        })
    }
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
