//! Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, so the proxy drops them
//! in both directions and forwards every other header unchanged.

use http::HeaderMap;
use http::header::{self, HeaderName};

/// The request header naming the agent of a call; the proxy reads it and does not forward it.
pub const AGENT_HEADER: &str = "x-telemetry-agent";

/// Headers that are always hop-by-hop. `Expect` is answered by the proxy's own server (it has
/// read the body before forwarding), and `Host` is set by the client side from the upstream URL.
static ALWAYS: [HeaderName; 10] = [
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

/// The index in [`ALWAYS`] of a (lower-case) header name: a match on the text, a length
/// switch and a compare, where `HeaderName` equality against each listed name cost ten compares.
fn always_index(name: &str) -> Option<usize> {
    Some(match name {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-authenticate" => 2,
        "proxy-authorization" => 3,
        "te" => 4,
        "trailer" => 5,
        "transfer-encoding" => 6,
        "upgrade" => 7,
        "proxy-connection" => 8,
        "expect" => 9,
        _ => return None,
    })
}

/// Whether a header name as received (any case) is always hop-by-hop (not counting the names
/// a `Connection` header lists).
pub(crate) fn is_always_name(name: &[u8]) -> bool {
    // A switch on the length leaves one or two names to compare (most names none).
    let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    match name.len() {
        2 => is("te"),
        6 => is("expect"),
        7 => is("trailer") || is("upgrade"),
        10 => is("connection") || is("keep-alive"),
        16 => is("proxy-connection"),
        17 => is("transfer-encoding"),
        18 => is("proxy-authenticate"),
        19 => is("proxy-authorization"),
        _ => false,
    }
}

/// Removes the hop-by-hop headers: the fixed list and any header the `Connection` header names.
///
/// One pass over the message's names (a handful) finds the hop-by-hop ones present, and only
/// those are removed: a removal per listed name, present or not, was twenty hash lookups per
/// request and response, 4 % of the proxy's instructions per call.
pub(crate) fn strip(headers: &mut HeaderMap) {
    let mut present = [false; ALWAYS.len()];
    for name in headers.keys() {
        if let Some(i) = always_index(name.as_str()) {
            present[i] = true;
        }
    }
    if present[0] {
        // Names the `Connection` header lists beyond the fixed ones (rare: parsed only then).
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|name| {
                let lower = if name.bytes().any(|b| b.is_ascii_uppercase()) {
                    std::borrow::Cow::Owned(name.to_ascii_lowercase())
                } else {
                    std::borrow::Cow::Borrowed(*name)
                };
                always_index(&lower).is_none()
            })
            .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
            .collect();
        for name in &named {
            headers.remove(name);
        }
    }
    for (name, _) in ALWAYS.iter().zip(present).filter(|(_, p)| *p) {
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
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        strip(&mut h);
        assert_eq!(h.len(), 3, "{h:?}");
        assert_eq!(h[header::AUTHORIZATION], "Bearer k");
        assert_eq!(h.get_all("x-multi").iter().count(), 2);

        // Names listed in two Connection headers, in any case, go; a header not named stays.
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("Keep-Alive"));
        h.append(header::CONNECTION, HeaderValue::from_static("X-A , x-b"));
        for name in ["x-a", "x-b", "x-c", "keep-alive", "proxy-connection"] {
            h.insert(name, HeaderValue::from_static("1"));
        }
        strip(&mut h);
        assert_eq!(
            h.keys().map(HeaderName::as_str).collect::<Vec<_>>(),
            ["x-c"]
        );
        let mut plain = HeaderMap::new();
        plain.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let before = plain.clone();
        strip(&mut plain);
        assert_eq!(plain, before);
    }

    #[test]
    fn the_index_match_agrees_with_the_list() {
        for (i, name) in ALWAYS.iter().enumerate() {
            assert_eq!(always_index(name.as_str()), Some(i), "{name}");
        }
        assert_eq!(always_index("content-type"), None);
    }

    #[test]
    fn names_as_received_are_matched_without_case() {
        for name in ALWAYS.iter() {
            assert!(is_always_name(name.as_str().as_bytes()), "{name}");
            let upper = name.as_str().to_ascii_uppercase();
            assert!(is_always_name(upper.as_bytes()), "{upper}");
        }
        assert!(is_always_name(b"Transfer-Encoding"));
        for other in [
            &b"content-type"[..],
            b"",
            b"te-x",
            b"proxy-authorization-and-more",
            b"\xff",
        ] {
            assert!(!is_always_name(other), "{}", String::from_utf8_lossy(other));
        }
    }
}
