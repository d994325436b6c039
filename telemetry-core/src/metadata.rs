//! [`Metadata`]: a record's caller metadata, a JSON object shared between the records that
//! carry the same one.

use std::fmt;
use std::io;
use std::sync::{Arc, LazyLock, OnceLock};

use serde_json::{Map, Value};

use crate::error::ValidationError;

/// Largest accepted metadata, as compact JSON bytes (64 KiB). Defined here, beside the type that
/// counts it, so that `validate` uses `metadata` and not the other way round (`record` uses
/// `metadata`, `validate` uses `record`).
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// The metadata of a [`TelemetryRecord`](crate::TelemetryRecord): a JSON object (empty by
/// default), read through `Deref` as a [`serde_json::Value`].
///
/// A clone is a reference count, not a copy: a recorder that puts the same metadata in every
/// record (an upstream's `server.address` and `server.port`, a run's id) builds it once and
/// each record shares it. What is worked out about the value is kept with it, so that it is
/// done once for all the records that share it: its size as compact JSON (what
/// [`validate`](crate::TelemetryRecord::validate) checks) and that JSON text itself
/// ([`json`](Self::json), what the store writes). The empty object allocates nothing.
///
/// ```
/// use serde_json::json;
/// use telemetry_core::{Metadata, TelemetryRecord};
///
/// let shared = Metadata::from(json!({ "server.address": "gpu-host", "server.port": 8080 }));
/// let a = TelemetryRecord::builder("m", 1.7e9).metadata(shared.clone()).build();
/// let b = TelemetryRecord::builder("m", 1.7e9).metadata(shared).build();
/// assert!(a.metadata.same(&b.metadata));
/// assert_eq!(a.metadata["server.port"], 8080);
/// assert_eq!(b.metadata.json(), r#"{"server.address":"gpu-host","server.port":8080}"#);
/// assert_eq!(TelemetryRecord::default().metadata, json!({}));
/// ```
#[derive(Clone, Default)]
pub struct Metadata(Option<Arc<Shared>>);

#[derive(Clone)]
struct Shared {
    value: Value,
    /// Bytes of the value as compact JSON, counted up to just past [`MAX_METADATA_BYTES`].
    size: OnceLock<usize>,
    /// The value as compact JSON.
    json: OnceLock<Box<str>>,
}

/// What an empty [`Metadata`] reads as.
static EMPTY: LazyLock<Value> = LazyLock::new(|| Value::Object(Map::new()));

impl Metadata {
    /// The empty object (allocates nothing).
    pub const fn new() -> Self {
        Metadata(None)
    }

    /// The value.
    pub fn value(&self) -> &Value {
        self.0.as_ref().map_or(&EMPTY, |s| &s.value)
    }

    /// Whether `self` and `other` share one value (clones of one `Metadata`): then they are
    /// equal without comparing them.
    pub fn same(&self, other: &Metadata) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }

    /// The value, to change it: copied first when shared (the other records keep theirs); what
    /// was worked out about it is forgotten.
    pub fn make_mut(&mut self) -> &mut Value {
        let shared = self
            .0
            .get_or_insert_with(|| Arc::new(Shared::new(Map::new().into())));
        let shared = Arc::make_mut(shared);
        shared.size = OnceLock::new();
        shared.json = OnceLock::new();
        &mut shared.value
    }

    /// The value as compact JSON (`serde_json::to_string`), written at the first call and kept
    /// for every record that shares it.
    pub fn json(&self) -> &str {
        match &self.0 {
            None => "{}",
            Some(s) => s.json.get_or_init(|| {
                // Serializing a `Value` into a `String` cannot fail (its map keys are strings).
                serde_json::to_string(&s.value)
                    .unwrap_or_default()
                    .into_boxed_str()
            }),
        }
    }

    /// Checks that the metadata is a JSON object of at most [`MAX_METADATA_BYTES`] of compact
    /// JSON; its size is counted once per shared value. Allocates nothing.
    pub(crate) fn check(&self) -> Result<(), ValidationError> {
        let Some(shared) = &self.0 else {
            return Ok(());
        };
        let Value::Object(map) = &shared.value else {
            return Err(ValidationError::MetadataNotObject {
                kind: json_kind(&shared.value),
            });
        };
        if map.is_empty() {
            return Ok(());
        }
        let len = *shared.size.get_or_init(|| compact_size(&shared.value));
        if len > MAX_METADATA_BYTES {
            return Err(ValidationError::MetadataTooLarge {
                len,
                max: MAX_METADATA_BYTES,
            });
        }
        Ok(())
    }
}

impl Shared {
    fn new(value: Value) -> Self {
        Shared {
            value,
            size: OnceLock::new(),
            json: OnceLock::new(),
        }
    }
}

impl From<Value> for Metadata {
    fn from(value: Value) -> Self {
        Metadata(Some(Arc::new(Shared::new(value))))
    }
}

impl From<Map<String, Value>> for Metadata {
    fn from(map: Map<String, Value>) -> Self {
        Metadata::from(Value::Object(map))
    }
}

impl std::ops::Deref for Metadata {
    type Target = Value;

    fn deref(&self) -> &Value {
        self.value()
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.value(), f)
    }
}

impl PartialEq for Metadata {
    fn eq(&self, other: &Metadata) -> bool {
        self.same(other) || self.value() == other.value()
    }
}

impl PartialEq<Value> for Metadata {
    fn eq(&self, other: &Value) -> bool {
        self.value() == other
    }
}

impl PartialEq<Metadata> for Value {
    fn eq(&self, other: &Metadata) -> bool {
        self == other.value()
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Metadata {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(serializer)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Metadata {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Metadata::from)
    }
}

/// Bytes of `value` as compact JSON, counted up to just past [`MAX_METADATA_BYTES`].
fn compact_size(value: &Value) -> usize {
    let mut counter = ByteCounter(0);
    // Writing to a counter fails only past the limit (or through serde_json's map-key errors,
    // which a `Value` never produces): either way the value counts as too large.
    if serde_json::to_writer(&mut counter, value).is_err() {
        return counter.0.max(MAX_METADATA_BYTES + 1);
    }
    counter.0
}

/// Name of a JSON value's kind, for error messages.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Counts bytes written, stopping early once past the limit.
struct ByteCounter(usize);

impl io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        if self.0 > MAX_METADATA_BYTES {
            return Err(io::Error::other("metadata over limit"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn clones_share_one_value_and_what_is_known_of_it() {
        let a = Metadata::from(json!({ "k": "v" }));
        let b = a.clone();
        assert!(a.same(&b) && a == b);
        assert_eq!(a.check(), Ok(()));
        let Some(shared) = &b.0 else { panic!() };
        assert_eq!(shared.size.get(), Some(&9), "counted once, for both");
        assert!(std::ptr::eq(a.json(), b.json()));
        assert_eq!(
            a.json(),
            serde_json::to_string(&json!({ "k": "v" })).unwrap()
        );
    }

    #[test]
    fn equal_values_are_equal_whoever_built_them() {
        let a = Metadata::from(json!({ "k": [1, 2] }));
        let b = Metadata::from(json!({ "k": [1, 2] }));
        assert!(!a.same(&b));
        assert_eq!(a, b);
        assert_eq!(a, json!({ "k": [1, 2] }));
        assert_eq!(Metadata::new(), Metadata::from(json!({})));
        assert_eq!(Metadata::new().json(), "{}");
        assert_ne!(a, Metadata::new());
    }

    #[test]
    fn a_change_copies_a_shared_value_and_is_checked_again() {
        let big = "x".repeat(MAX_METADATA_BYTES);
        let shared = Metadata::from(json!({ "k": "v" }));
        let mut changed = shared.clone();
        assert_eq!(changed.check(), Ok(()));
        changed.make_mut()["k"] = Value::String(big);
        assert_eq!(shared["k"], "v", "the other clone keeps its value");
        assert!(matches!(
            changed.check(),
            Err(ValidationError::MetadataTooLarge { .. })
        ));
        assert!(changed.json().len() > MAX_METADATA_BYTES);
        let mut empty = Metadata::new();
        empty.make_mut()["n"] = 1.into();
        assert_eq!(empty, json!({ "n": 1 }));
    }

    #[test]
    fn only_a_small_object_passes() {
        for (bad, kind) in [(json!([1]), "an array"), (json!(null), "null")] {
            assert_eq!(
                Metadata::from(bad).check(),
                Err(ValidationError::MetadataNotObject { kind })
            );
        }
        let over = Metadata::from(json!({ "b": "x".repeat(MAX_METADATA_BYTES) }));
        assert!(matches!(
            over.check(),
            Err(ValidationError::MetadataTooLarge { len, .. }) if len > MAX_METADATA_BYTES
        ));
    }
}
