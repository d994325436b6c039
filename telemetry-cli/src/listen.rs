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

/// For `proxy`: a warning when `addr` is not a loopback address. The proxy has no
/// authentication, so on any other address whoever reaches it can send requests through it to
/// the upstreams (an open relay, with the proxy's network position) and read
/// `/telemetry/health`, which lists them.
#[cfg_attr(not(feature = "proxy"), allow(dead_code))]
pub(crate) fn exposure_warning(addr: &SocketAddr) -> Option<String> {
    if addr.ip().is_loopback() {
        return None;
    }
    let reach = if addr.ip().is_unspecified() {
        "every interface of this machine"
    } else {
        "a non-loopback address"
    };
    Some(format!(
        "warning: --listen {addr} is {reach}: the proxy has no authentication, so anyone who \
         can reach it can send requests through it to the upstream (an open relay) and read \
         /telemetry/health, which lists the upstreams; listen on 127.0.0.1, or put a firewall \
         or an authenticating front before it"
    ))
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
    fn only_a_loopback_listen_address_goes_without_a_warning() {
        for quiet in ["127.0.0.1:8000", "[::1]:8000", "127.0.0.2:1"] {
            assert_eq!(exposure_warning(&quiet.parse().unwrap()), None);
        }
        for (loud, words) in [
            ("0.0.0.0:8000", "every interface"),
            ("[::]:8000", "every interface"),
            ("192.168.1.5:8000", "non-loopback"),
        ] {
            let addr = loud.parse().unwrap();
            let line = exposure_warning(&addr).unwrap_or_default();
            assert!(
                line.contains(words) && line.contains("no authentication"),
                "{line}"
            );
        }
    }

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
