//! Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, so the proxy drops them
//! in both directions and forwards every other header unchanged.

use crate::fields::{Fields, same_name};

/// The request header naming the agent of a call; the proxy reads it and does not forward it.
pub const AGENT_HEADER: &str = "x-telemetry-agent";

/// Whether a header name as received (any case) is always hop-by-hop (not counting the names
/// a `Connection` header lists): `Connection`, `Keep-Alive`, `Proxy-Authenticate`,
/// `Proxy-Authorization`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`, `Proxy-Connection`
/// and `Expect` (answered by the proxy's own server: it has read the body before forwarding).
/// `Host` is the caller's to replace.
pub(crate) fn is_always_name(name: &[u8]) -> bool {
    // A switch on the length leaves one or two names to compare (most names none).
    let is = |n: &str| same_name(name, n.as_bytes());
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

/// Removes the hop-by-hop fields — the fixed list and any field a `Connection` field names —
/// and those named in `also` (names compared without case).
///
/// One pass over the fields (a handful) finds the names a `Connection` field lists beyond the
/// fixed ones (rare: collected only then), and one more keeps the others.
pub(crate) fn strip(fields: &mut Fields, also: &[&str]) {
    let named: Vec<Vec<u8>> = listed(fields.get_all("connection"))
        .filter(|name| !is_always_name(name))
        .map(<[u8]>::to_vec)
        .collect();
    fields.retain(|name, _| {
        !(is_always_name(name)
            || also.iter().any(|a| same_name(name, a.as_bytes()))
            || named.iter().any(|n| same_name(n, name)))
    });
}

/// The field names the `Connection` field values `connection` list (a value that is not text
/// names nothing, as `HeaderValue::to_str` had it).
pub(crate) fn listed<'a>(
    connection: impl IntoIterator<Item = &'a [u8]>,
) -> impl Iterator<Item = &'a [u8]> {
    connection
        .into_iter()
        .filter(|value| crate::fields::is_text(value))
        .flat_map(|value| value.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{self, HeaderName};
    use http::{HeaderMap, HeaderValue};

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
        let mut f = Fields::from(&h);
        strip(&mut f, &[]);
        assert_eq!(f.len(), 3, "{f:?}");
        assert_eq!(f.get("authorization"), Some(&b"Bearer k"[..]));
        assert_eq!(f.get_all("x-multi").count(), 2);

        // Names listed in two Connection headers, in any case, go; a header not named stays.
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("Keep-Alive"));
        h.append(header::CONNECTION, HeaderValue::from_static("X-A , x-b"));
        for name in ["x-a", "x-b", "x-c", "keep-alive", "proxy-connection"] {
            h.insert(name, HeaderValue::from_static("1"));
        }
        let mut f = Fields::from(&h);
        strip(&mut f, &[]);
        assert_eq!(f.iter().map(|(n, _)| n).collect::<Vec<_>>(), [&b"x-c"[..]]);
        let mut plain = HeaderMap::new();
        plain.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let mut f = Fields::from(&plain);
        strip(&mut f, &[]);
        assert_eq!(
            f.iter().collect::<Vec<_>>(),
            [(&b"content-type"[..], &b"text/plain"[..])]
        );
    }

    #[test]
    fn names_asked_for_go_too_in_any_case() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("client"));
        h.insert(AGENT_HEADER, HeaderValue::from_static("a"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        let mut f = Fields::from(&h);
        f.append("X-Telemetry-Agent", b"b");
        strip(&mut f, &["Host", AGENT_HEADER]);
        assert_eq!(
            f.iter().collect::<Vec<_>>(),
            [(&b"accept"[..], &b"*/*"[..])]
        );
    }

    /// The names that are always hop-by-hop.
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
