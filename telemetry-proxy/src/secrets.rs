//! [`Secrets`]: the API keys a request carries (`Authorization`, `x-api-key`, `api-key`). They
//! are forwarded as they came and never stored: an upstream that echoes a key in its error
//! message (some do) has it replaced in the record by `[redacted]`.

use crate::fields::{Fields, to_str};

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
        for value in headers.get_all("authorization") {
            if let Some(v) = to_str(value) {
                found.push(v.to_owned());
                if let Some((_, credentials)) = v.split_once(' ') {
                    found.push(credentials.trim().to_owned());
                }
            }
        }
        for name in KEY_HEADERS {
            for value in headers.get_all(name) {
                if let Some(v) = to_str(value) {
                    found.push(v.trim().to_owned());
                }
            }
        }
        found.retain(|s| s.len() >= MIN_SECRET);
        // Longest first, so a whole `Bearer KEY` goes before `KEY`.
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
}
