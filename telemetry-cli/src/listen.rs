//! What the commands that listen (`serve`, `proxy`) share: the `--listen` address parser and
//! the SIGINT/SIGTERM handler.

use std::future::Future;
use std::net::SocketAddr;

use crate::error::ServerError;

/// `127.0.0.1:9464`, `[::1]:9464`, or a host name with a port (`localhost:9464`, its first
/// address).
pub(crate) fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    if !text.contains(':') {
        return Err(format!(
            "expected HOST:PORT, e.g. 127.0.0.1:9464 (got {text:?})"
        ));
    }
    std::net::ToSocketAddrs::to_socket_addrs(text)
        .map_err(|e| format!("cannot resolve {text:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

/// Completes at the first SIGINT or SIGTERM. The handlers are installed before it returns.
pub(crate) fn shutdown_signal() -> Result<impl Future<Output = ()>, ServerError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).map_err(ServerError::Signal)?;
        let mut terminate = signal(SignalKind::terminate()).map_err(ServerError::Signal)?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_parse() {
        assert_eq!(
            parse_listen("127.0.0.1:9464"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
        assert_eq!(parse_listen("[::1]:0").map(|a| a.is_ipv6()), Ok(true));
        assert!(
            parse_listen("localhost:9464").is_ok_and(|a| a.port() == 9464 && a.ip().is_loopback())
        );
        assert!(parse_listen("9464").unwrap_err().contains("HOST:PORT"));
        assert!(parse_listen("127.0.0.1:99999").is_err());
    }
}
