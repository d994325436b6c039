//! OTLP over gRPC (feature `grpc`): the same protobuf messages, each framed as one gRPC message and
//! sent as a unary call on a plain-text HTTP/2 connection (h2c, prior knowledge; no TLS), kept open
//! between requests and reopened when the collector closes it.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::error::ExportError;

/// One HTTP/2 connection to the collector and the runtime that drives it while a request runs.
pub(crate) struct GrpcClient {
    runtime: tokio::runtime::Runtime,
    /// The open connection and the `host:port` it goes to.
    connection: Option<(String, SendRequest<Full<Bytes>>)>,
}

impl std::fmt::Debug for GrpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcClient")
            .field("connected_to", &self.connection.as_ref().map(|(a, _)| a))
            .finish()
    }
}

/// `body` as one gRPC message: uncompressed flag, big-endian length, the bytes.
pub(crate) fn frame(body: &[u8]) -> Result<Vec<u8>, u32> {
    let len = u32::try_from(body.len()).map_err(|_| u32::MAX)?;
    let mut framed = Vec::with_capacity(body.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(body);
    Ok(framed)
}

impl GrpcClient {
    /// A client with its own single-threaded runtime (an error if the runtime cannot start).
    pub(crate) fn new() -> std::io::Result<GrpcClient> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        Ok(GrpcClient {
            runtime,
            connection: None,
        })
    }

    /// Calls the unary method at `url` (`http://host:port/package.Service/Method`) with `body`;
    /// success is HTTP 200 with `grpc-status: 0`.
    pub(crate) fn post(
        &mut self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<(), ExportError> {
        let transport = |message: String| ExportError::Transport {
            url: url.to_owned(),
            message,
        };
        let uri: Uri = url
            .parse()
            .map_err(|e| transport(format!("not a URI: {e}")))?;
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .ok_or_else(|| transport("no host in the URL".to_owned()))?;
        let framed = Bytes::from(
            frame(body).map_err(|_| transport("message larger than 4 GiB".to_owned()))?,
        );
        let mut request = Request::post(uri)
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (name, value) in headers {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) else {
                return Err(transport(format!("header {name:?} cannot be sent")));
            };
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(framed))
            .map_err(|e| transport(e.to_string()))?;
        let connection = &mut self.connection;
        let outcome = self.runtime.block_on(async {
            tokio::time::timeout(timeout, call(connection, &authority, url, request)).await
        });
        match outcome {
            Ok(result) => result,
            Err(_) => {
                // A half-finished exchange leaves the connection in an unknown state.
                self.connection = None;
                Err(ExportError::Timeout {
                    url: url.to_owned(),
                    after: timeout,
                })
            }
        }
    }
}

async fn call(
    connection: &mut Option<(String, SendRequest<Full<Bytes>>)>,
    authority: &str,
    url: &str,
    request: Request<Full<Bytes>>,
) -> Result<(), ExportError> {
    let reusable = connection
        .as_ref()
        .is_some_and(|(a, s)| a == authority && !s.is_closed());
    if !reusable {
        *connection = Some((authority.to_owned(), connect(authority, url).await?));
    }
    let Some((_, sender)) = connection.as_mut() else {
        return Err(ExportError::Transport {
            url: url.to_owned(),
            message: "no connection".to_owned(),
        });
    };
    let failed = |message: String| ExportError::Transport {
        url: url.to_owned(),
        message,
    };
    if sender.ready().await.is_err() {
        *connection = None;
        return Err(failed("the collector closed the connection".to_owned()));
    }
    let response = match sender.send_request(request).await {
        Ok(r) => r,
        Err(e) => {
            *connection = None;
            return Err(failed(e.to_string()));
        }
    };
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    let collected = body
        .collect()
        .await
        .map_err(|e| failed(format!("reading the answer: {e}")))?;
    // A trailers-only answer carries grpc-status in its headers.
    let trailers = collected.trailers().cloned();
    let field = |name: &str| {
        trailers
            .as_ref()
            .and_then(|t| t.get(name))
            .or_else(|| parts.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if status != 200 {
        return Err(ExportError::Status {
            url: url.to_owned(),
            status,
            message: field("grpc-message").unwrap_or_default(),
        });
    }
    match field("grpc-status").as_deref() {
        Some("0") => Ok(()),
        Some(code) => Err(ExportError::GrpcStatus {
            url: url.to_owned(),
            code: code.parse().unwrap_or(2),
            message: field("grpc-message").unwrap_or_default(),
        }),
        None => Err(failed("the answer has no grpc-status".to_owned())),
    }
}

async fn connect(authority: &str, url: &str) -> Result<SendRequest<Full<Bytes>>, ExportError> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| ExportError::Connect {
            url: url.to_owned(),
            message: e.to_string(),
        })?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .map_err(|e| ExportError::Transport {
            url: url.to_owned(),
            message: format!("HTTP/2 handshake: {e}"),
        })?;
    tokio::spawn(async move {
        // Ends when the collector closes the connection; the next call reconnects.
        let _ = connection.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_framed_uncompressed_with_its_length() {
        assert_eq!(frame(b"abc"), Ok(vec![0, 0, 0, 0, 3, b'a', b'b', b'c']));
        assert_eq!(frame(b""), Ok(vec![0, 0, 0, 0, 0]));
    }
}
