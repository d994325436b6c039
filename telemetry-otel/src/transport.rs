//! Posting one protobuf body to an OTLP/HTTP endpoint (plain HTTP/1.1 through `ureq`, pooled
//! keep-alive connections, no TLS).

use std::io::ErrorKind;
use std::time::Duration;

use crate::config::Protocol;
use crate::error::ExportError;

/// How much of an error response is kept in [`ExportError::Status`].
const ERROR_BODY_LIMIT: u64 = 512;

/// How requests reach the collector: a pool of HTTP/1.1 connections, or one HTTP/2 connection
/// for gRPC.
#[derive(Debug)]
pub(crate) enum Transport {
    /// OTLP/HTTP.
    Http(ureq::Agent),
    /// OTLP/gRPC; `Err` keeps why its runtime could not start, for every request to report.
    #[cfg(feature = "grpc")]
    Grpc(Result<crate::grpc::GrpcClient, String>),
}

impl Transport {
    pub(crate) fn new(protocol: Protocol) -> Self {
        match protocol {
            #[cfg(feature = "grpc")]
            Protocol::Grpc => {
                Transport::Grpc(crate::grpc::GrpcClient::new().map_err(|e| e.to_string()))
            }
            // Without the feature a gRPC configuration cannot be built.
            _ => Transport::Http(
                ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .new_agent(),
            ),
        }
    }

    /// Sends `body` (one encoded export request) to `url`; success is any 2xx over HTTP, status
    /// 0 over gRPC.
    pub(crate) fn post(
        &mut self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<(), ExportError> {
        match self {
            Transport::Http(agent) => post_http(agent, url, headers, body, timeout),
            #[cfg(feature = "grpc")]
            Transport::Grpc(Ok(client)) => client.post(url, headers, body, timeout),
            #[cfg(feature = "grpc")]
            Transport::Grpc(Err(why)) => Err(ExportError::Transport {
                url: url.to_owned(),
                message: format!("the gRPC client could not start: {why}"),
            }),
        }
    }
}

/// POSTs `body` as `application/x-protobuf`; any 2xx is success.
fn post_http(
    agent: &ureq::Agent,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<(), ExportError> {
    {
        let mut request = agent
            .post(url)
            .header("content-type", "application/x-protobuf");
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request
            .config()
            .timeout_global(Some(timeout))
            .build()
            .send(body)
            .map_err(|e| map_error(e, url, timeout))?;
        let status = response.status().as_u16();
        // Reading the body to its end returns the connection to the pool.
        let text = response
            .into_body()
            .into_with_config()
            .limit(ERROR_BODY_LIMIT)
            .lossy_utf8(true)
            .read_to_string()
            .unwrap_or_default();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(ExportError::Status {
                url: url.to_owned(),
                status,
                message: text.chars().filter(|c| !c.is_control()).collect(),
            })
        }
    }
}

fn map_error(e: ureq::Error, url: &str, timeout: Duration) -> ExportError {
    let url = url.to_owned();
    match e {
        ureq::Error::Timeout(_) => ExportError::Timeout {
            url,
            after: timeout,
        },
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => ExportError::Connect {
            message: e.to_string(),
            url,
        },
        ureq::Error::Io(io)
            if matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
            ) =>
        {
            ExportError::Connect {
                message: io.to_string(),
                url,
            }
        }
        ureq::Error::Io(io) if io.kind() == ErrorKind::TimedOut => ExportError::Timeout {
            url,
            after: timeout,
        },
        other => ExportError::Transport {
            message: other.to_string(),
            url,
        },
    }
}
