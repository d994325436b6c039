//! Posting one protobuf body to an OTLP/HTTP endpoint (plain HTTP/1.1 through `ureq`, pooled
//! keep-alive connections, no TLS).

use std::io::ErrorKind;
use std::time::Duration;

use crate::error::ExportError;

/// How much of an error response is kept in [`ExportError::Status`].
const ERROR_BODY_LIMIT: u64 = 512;

/// A connection pool to the collector.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    agent: ureq::Agent,
}

impl Transport {
    pub(crate) fn new() -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        Transport { agent }
    }

    /// POSTs `body` as `application/x-protobuf`; any 2xx is success.
    pub(crate) fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<(), ExportError> {
        let mut request = self
            .agent
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
