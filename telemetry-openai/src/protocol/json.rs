//! [`parse_json`]: serde_json over bytes, at the speed of its `&str` reader where it can.

use std::borrow::Cow;

use serde::Deserialize;

/// Deserializes JSON `bytes`, with the same result as `serde_json::from_slice`.
///
/// Bytes that are valid UTF-8 as a whole (every body and chunk a server sends) are read as a
/// `str`: serde_json then does not validate each string it reads, which for a small stream
/// chunk full of short keys was a third of its parsing. Other bytes are read as before (invalid
/// UTF-8 inside a string that is only skipped is no error).
///
/// ```
/// use telemetry_openai::protocol::parse_json;
///
/// let v: serde_json::Value = parse_json(br#"{"model":"m"}"#).unwrap();
/// assert_eq!(v["model"], "m");
/// assert!(parse_json::<serde_json::Value>(b"{").is_err());
/// ```
pub fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
}

/// A JSON string borrowed from the input when it has no escapes (serde's own `Cow` impl always
/// copies inside an `Option`).
pub(crate) struct Text<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IgnoredAny;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Probe<'a> {
        #[serde(borrow)]
        model: Option<std::borrow::Cow<'a, str>>,
    }

    #[test]
    fn it_agrees_with_from_slice() {
        let inputs: [&[u8]; 6] = [
            br#"{"model":"m\u00e9","x":[1,{"y":"\ud83d\ude00"}]}"#,
            b"{\"model\":\"caf\xc3\xa9\"}",
            b"{\"id\":\"\xff\",\"model\":\"m\"}",
            b"{\"model\":\"\xff\"}",
            br#"{"model":"m","model":"n"}"#,
            b"not json",
        ];
        for input in inputs {
            let ours = parse_json::<Probe<'_>>(input).map_err(|e| e.to_string());
            let theirs = serde_json::from_slice::<Probe<'_>>(input).map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(input));
            let ours = parse_json::<IgnoredAny>(input).is_ok();
            assert_eq!(ours, serde_json::from_slice::<IgnoredAny>(input).is_ok());
        }
    }
}
