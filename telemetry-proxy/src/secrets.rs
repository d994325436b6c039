//! [`Secrets`]: the API keys a request carries (`Authorization`, `x-api-key`, `api-key`). They
//! are forwarded as they came and never stored: an upstream that echoes a key in its error
//! message (some do) has it replaced in the record by `[redacted]`.

use crate::fields::{Fields, same_name, to_str};

/// The headers that carry API keys.
const KEY_HEADERS: [&str; 2] = ["x-api-key", "api-key"];
/// Shorter values are not looked for (they would match ordinary words).
const MIN_SECRET: usize = 8;

/// The API keys of one request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Secrets(Vec<String>);

impl Secrets {
    /// The keys in `headers`, if any (for `Authorization`, the credentials after the scheme as
    /// well as the whole value).
    pub fn of(headers: &Fields) -> Option<Secrets> {
        let mut found = Vec::new();
        // One pass over the fields; most requests carry a key in one of them, or none.
        for (name, value) in headers.iter() {
            let authorization = same_name(name, b"authorization");
            if !authorization && !KEY_HEADERS.iter().any(|k| same_name(name, k.as_bytes())) {
                continue;
            }
            let Some(v) = to_str(value) else { continue };
            if authorization {
                found.push(v.to_owned());
                if let Some((_, credentials)) = v.split_once(' ') {
                    found.push(credentials.trim().to_owned());
                }
            } else {
                found.push(v.trim().to_owned());
            }
        }
        found.retain(|s| s.len() >= MIN_SECRET);
        // Longest first, so a whole `Bearer KEY` goes before `KEY` (keys of one length cannot
        // be parts of each other, so their order does not matter).
        found.sort_by_key(|s| std::cmp::Reverse(s.len()));
        (!found.is_empty()).then_some(Secrets(found))
    }

    /// `text` with every key replaced by `[redacted]`.
    pub fn scrub(&self, mut text: String) -> String {
        for secret in &self.0 {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "[redacted]");
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::AUTHORIZATION;
    use http::{HeaderMap, HeaderValue};

    #[test]
    fn keys_are_found_and_scrubbed() {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer sk-abcdefgh123"),
        );
        h.insert("api-key", HeaderValue::from_static("azure-key-0987654"));
        h.insert("x-api-key", HeaderValue::from_static("short"));
        let s = Secrets::of(&(&h).into()).unwrap();
        assert_eq!(
            s.scrub("bad key sk-abcdefgh123 or azure-key-0987654; short".into()),
            "bad key [redacted] or [redacted]; short"
        );
        assert!(Secrets::of(&Fields::default()).is_none());
    }

    #[test]
    fn every_field_of_every_key_name_is_found_in_any_case() {
        let mut h = HeaderMap::new();
        h.append(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer first-key-1"),
        );
        h.append(
            AUTHORIZATION,
            HeaderValue::from_static("Basic second-key-22"),
        );
        h.append("X-Api-Key", HeaderValue::from_static(" third-key-333 "));
        h.append("API-KEY", HeaderValue::from_static("fourth-key-4444"));
        h.append("x-api-keys", HeaderValue::from_static("not-a-key-55555"));
        h.append("content-type", HeaderValue::from_static("application/json"));
        let s = Secrets::of(&(&h).into()).unwrap();
        let mut keys = s.0.clone();
        keys.sort();
        assert_eq!(
            keys,
            [
                "Basic second-key-22",
                "Bearer first-key-1",
                "first-key-1",
                "fourth-key-4444",
                "second-key-22",
                "third-key-333",
            ]
        );
        // Longest first.
        assert!(s.0.windows(2).all(|w| w[0].len() >= w[1].len()));
    }
}
