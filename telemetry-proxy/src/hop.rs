//! Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, so the proxy drops them
//! in both directions and forwards every other header unchanged.

use http::HeaderMap;
use http::header::{self, HeaderName};

/// The request header naming the agent of a call; the proxy reads it and does not forward it.
pub const AGENT_HEADER: &str = "x-telemetry-agent";

/// Headers that are always hop-by-hop. `Expect` is answered by the proxy's own server (it has
/// read the body before forwarding), and `Host` is set by the client side from the upstream URL.
const ALWAYS: [HeaderName; 10] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("proxy-connection"),
    header::EXPECT,
];

/// Removes the hop-by-hop headers: the fixed list and any header the `Connection` header names.
pub(crate) fn strip(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(ALWAYS.iter()) {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn strips_fixed_and_named_hop_by_hop_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer k"));
        h.append("x-multi", HeaderValue::from_static("a"));
        h.append("x-multi", HeaderValue::from_static("b"));
        strip(&mut h);
        assert_eq!(h.len(), 3, "{h:?}");
        assert_eq!(h[header::AUTHORIZATION], "Bearer k");
        assert_eq!(h.get_all("x-multi").iter().count(), 2);
    }
}
