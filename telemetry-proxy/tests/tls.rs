//! `https://` upstreams: the proxy speaks TLS to them (rustls), sends the upstream's name (SNI)
//! and checks its certificate — against a private CA given with `upstream_ca` here, made at test
//! time; a certificate it cannot trust, or made for another name, is a 502, and so is a
//! handshake that never ends (within the connect timeout).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{client, eventually, post, proxy_with, records, send, silent_upstream, to};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use telemetry_core::Outcome;
use telemetry_openai::fake::chat_completion;

/// A CA made now, and a TLS upstream on loopback with a certificate it signed for `localhost`,
/// answering every request with a chat completion; it notes the SNI name each client sent.
struct TlsUpstream {
    port: u16,
    ca_pem: String,
    sni: Arc<Mutex<Vec<Option<String>>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl TlsUpstream {
    async fn start() -> TlsUpstream {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "telemetry-proxy test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sni = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&sni);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let name = tls.get_ref().1.server_name().map(str::to_owned);
                    seen.lock().unwrap().push(name);
                    let service = service_fn(|_req| async {
                        let mut response =
                            hyper::Response::new(Full::new(chat_completion("tls-model", 12, 3)));
                        response
                            .headers_mut()
                            .insert("content-type", "application/json".parse().unwrap());
                        Ok::<_, Infallible>(response)
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        TlsUpstream {
            port,
            ca_pem: ca.pem(),
            sni,
            _task: task,
        }
    }
}

const CHAT: &str = r#"{"model":"m","messages":[]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_with_a_private_ca_is_forwarded_to_and_recorded() {
    let upstream = TlsUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &upstream.ca_pem).unwrap();
    let url = format!("https://localhost:{}", upstream.port);
    let (proxy, bus) = proxy_with(|c| c.upstream_ca(&ca), to(&url)).await;
    let got = send(&client(), post(&proxy.url("/v1/chat/completions"), CHAT)).await;
    assert_eq!(
        got.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&got.body())
    );
    assert_eq!(got.body(), chat_completion("tls-model", 12, 3).to_vec());
    assert_eq!(
        upstream.sni.lock().unwrap().as_slice(),
        [Some("localhost".to_owned())],
        "the upstream's name is sent"
    );
    eventually("the record", || records(&bus).len() == 1).await;
    let r = &records(&bus)[0];
    assert_eq!((r.prompt_tokens, r.completion_tokens), (12, 3));
    assert_eq!(
        r.metadata,
        serde_json::json!({"server.address": "localhost", "server.port": upstream.port})
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_the_proxy_cannot_trust_is_a_502() {
    let upstream = TlsUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &upstream.ca_pem).unwrap();
    // Not signed by a CA the proxy knows; and signed by the right CA for another name.
    let cases = [
        (
            format!("https://localhost:{}", upstream.port),
            None,
            "invalid peer certificate",
        ),
        (
            format!("https://127.0.0.1:{}", upstream.port),
            Some(ca.as_path()),
            "not valid for name",
        ),
    ];
    for (url, ca, why) in cases {
        let (proxy, bus) = proxy_with(
            |c| match ca {
                Some(ca) => c.upstream_ca(ca),
                None => c,
            },
            to(&url),
        )
        .await;
        let got = send(&client(), post(&proxy.url("/v1/chat/completions"), CHAT)).await;
        assert_eq!(got.status, 502);
        let message = got.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains(why), "{message}");
        eventually("the record", || records(&bus).len() == 1).await;
        assert_eq!(records(&bus)[0].outcome, Outcome::Error);
        proxy.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_never_ends_is_a_502_within_the_connect_timeout() {
    let (url, _silent) = silent_upstream().await;
    let url = url.replace("http://", "https://");
    let (proxy, bus) =
        proxy_with(|c| c.connect_timeout(Duration::from_millis(300)), to(&url)).await;
    let started = Instant::now();
    let got = send(&client(), post(&proxy.url("/v1/chat/completions"), CHAT)).await;
    assert_eq!(got.status, 502);
    assert!(started.elapsed() < Duration::from_secs(3));
    eventually("the record", || records(&bus).len() == 1).await;
    assert_eq!(records(&bus)[0].error_kind, "connect");
    proxy.shutdown().await;
}
