//! Values read from a row as core's [`StoredValue`].

use rusqlite::types::ValueRef;
use telemetry_core::StoredValue;

/// rusqlite's borrowed value as core's [`StoredValue`]: the same storage class, the same bytes
/// (text is checked to be UTF-8 only by the field that reads it).
pub fn stored_value(value: ValueRef<'_>) -> StoredValue<'_> {
    match value {
        ValueRef::Null => StoredValue::Null,
        ValueRef::Integer(v) => StoredValue::Integer(v),
        ValueRef::Real(v) => StoredValue::Real(v),
        ValueRef::Text(t) => StoredValue::Text(t),
        ValueRef::Blob(b) => StoredValue::Blob(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_storage_class_keeps_its_class_and_value() {
        let cases = [
            (ValueRef::Null, StoredValue::Null),
            (ValueRef::Integer(-3), StoredValue::Integer(-3)),
            (ValueRef::Real(0.25), StoredValue::Real(0.25)),
            (ValueRef::Text(b"\xff"), StoredValue::Text(b"\xff")),
            (ValueRef::Blob(b"\x00\x01"), StoredValue::Blob(b"\x00\x01")),
        ];
        for (from, to) in cases {
            assert_eq!(stored_value(from), to);
            assert_eq!(stored_value(from).type_name(), from.data_type().to_string());
        }
    }
}
