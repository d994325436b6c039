//! Texts stored once: a text or JSON cell of a `telemetry` row holds either its text or, for a
//! text the store met more than once, the id of that text in `telemetry_strings`
//! ([`schema`](crate::schema), V5), as a blob of the id's decimal digits ([`stored_id`]). A label or a run's metadata repeated on a million rows is
//! then one small integer on each. [`StringCache`] is what readers use to turn the ids back into
//! texts; SQL users read the `telemetry_records` view, which does the same.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use crate::fields::{FieldKind, RECORD_FIELDS, StoredValue};

impl FieldKind {
    /// Whether a cell of this kind may hold the id of a text in `telemetry_strings` instead of
    /// the text itself: [`FieldKind::Text`] and [`FieldKind::Json`].
    pub const fn stored_once(self) -> bool {
        matches!(self, FieldKind::Text | FieldKind::Json)
    }
}

/// The cell value that stands for text `id` of `telemetry_strings`: the id's decimal digits, to
/// be stored as a blob (`TEXT` affinity would turn an integer into text, and no text is ever
/// stored as a blob). Written into `buf`, which it returns.
pub fn stored_id(id: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    let mut n = id;
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 || start == 0 {
            break;
        }
    }
    &buf[start..]
}

/// The id a [`stored_id`] blob stands for; `None` for a blob that is not one.
pub fn parse_stored_id(blob: &[u8]) -> Option<i64> {
    if blob.is_empty() || blob.len() > 18 {
        return None;
    }
    blob.iter().try_fold(0i64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
    })
}

/// `SELECT` of one stored text by id (parameter 1), for [`StringCache::resolve`]'s lookup.
pub const STRING_BY_ID_SQL: &str = "SELECT text FROM telemetry_strings WHERE id = ?1";

/// The texts of `telemetry_strings` a reader has met, by id: each is looked up once per cache.
/// Stored texts are never changed or removed while a file is in use, so a cache stays valid for
/// the life of its connection.
#[derive(Debug, Default, Clone)]
pub struct StringCache {
    /// Texts of ids below [`DENSE_IDS`], at their id: the store hands ids out from 1 upwards and
    /// a file holds a few hundred texts, so a reader's lookup per cell is an index, not a hash
    /// (a `HashMap` lookup per text cell cost an export about a quarter of its time).
    dense: Vec<Option<Box<str>>>,
    /// Texts of any other id.
    sparse: HashMap<i64, Box<str>>,
}

/// Ids below this are kept in [`StringCache`]'s vector (at most 8 bytes a slot, 512 KiB filled).
const DENSE_IDS: usize = 1 << 16;

impl StringCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// `value`, read from the cell of field `index` ([`RECORD_FIELDS`]), as the field's own
    /// value: for a text or JSON field a blob is the id of its text ([`stored_id`]), which
    /// `lookup` fetches (by [`STRING_BY_ID_SQL`]) the first time this cache meets it; anything
    /// else is returned as it is, for
    /// [`TelemetryRecord::set_field`](crate::TelemetryRecord::set_field) to take or refuse.
    pub fn resolve<'a, E>(
        &'a mut self,
        index: usize,
        value: StoredValue<'a>,
        lookup: impl FnOnce(i64) -> Result<String, E>,
    ) -> Result<StoredValue<'a>, E> {
        match value {
            StoredValue::Blob(blob)
                if RECORD_FIELDS
                    .get(index)
                    .is_some_and(|f| f.kind.stored_once()) =>
            {
                let Some(id) = parse_stored_id(blob) else {
                    return Ok(value);
                };
                let text = match usize::try_from(id).ok().filter(|&i| i < DENSE_IDS) {
                    Some(i) => {
                        if self.dense.len() <= i {
                            self.dense.resize(i + 1, None);
                        }
                        match &mut self.dense[i] {
                            Some(text) => text,
                            slot => slot.insert(lookup(id)?.into_boxed_str()),
                        }
                    }
                    None => match self.sparse.entry(id) {
                        Entry::Occupied(e) => e.into_mut(),
                        Entry::Vacant(e) => e.insert(lookup(id)?.into_boxed_str()),
                    },
                };
                Ok(StoredValue::Text(text.as_bytes()))
            }
            other => Ok(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::field_index;
    use crate::record::TelemetryRecord;

    #[test]
    fn an_id_in_a_text_field_becomes_its_text_looked_up_once() {
        let model = field_index("model_id").unwrap_or(usize::MAX);
        let mut cache = StringCache::new();
        let mut lookups = 0;
        for _ in 0..3 {
            let v = cache
                .resolve(model, StoredValue::Blob(b"7"), |id| {
                    lookups += 1;
                    Ok::<_, ()>(format!("model-{id}"))
                })
                .unwrap();
            let mut r = TelemetryRecord::default();
            r.set_field(model, v).unwrap();
            assert_eq!(r.model_id, "model-7");
        }
        assert_eq!(lookups, 1);
    }

    #[test]
    fn small_and_large_ids_are_each_looked_up_once_and_kept_apart() {
        let model = field_index("model_id").unwrap_or(usize::MAX);
        let mut cache = StringCache::new();
        let mut lookups = Vec::new();
        for blob in [&b"5"[..], b"70000", b"5", b"0", b"70000", b"0"] {
            let v = cache
                .resolve(model, StoredValue::Blob(blob), |id| {
                    lookups.push(id);
                    Ok::<_, ()>(format!("text-{id}"))
                })
                .unwrap();
            let expected = format!("text-{}", std::str::from_utf8(blob).unwrap());
            assert_eq!(v, StoredValue::Text(expected.as_bytes()));
        }
        assert_eq!(lookups, [5, 70_000, 0]);
    }

    #[test]
    fn ids_are_written_and_read_as_their_digits() {
        let mut buf = [0; 20];
        for id in [0, 7, 10, 4_096, i64::MAX as u64] {
            let blob = stored_id(id, &mut buf).to_vec();
            assert_eq!(blob, id.to_string().as_bytes());
            assert_eq!(
                parse_stored_id(&blob),
                i64::try_from(id).ok().filter(|_| blob.len() <= 18)
            );
        }
        assert_eq!(parse_stored_id(b""), None);
        assert_eq!(parse_stored_id(b"1x"), None);
    }

    #[test]
    fn other_values_and_other_fields_pass_unchanged() {
        let mut cache = StringCache::new();
        let never = |_| -> Result<String, ()> { panic!("no lookup expected") };
        let tokens = field_index("prompt_tokens").unwrap_or(usize::MAX);
        assert_eq!(
            cache.resolve(tokens, StoredValue::Integer(3), never),
            Ok(StoredValue::Integer(3))
        );
        let model = field_index("model_id").unwrap_or(usize::MAX);
        assert_eq!(
            cache.resolve(model, StoredValue::Text(b"m"), never),
            Ok(StoredValue::Text(b"m"))
        );
        assert_eq!(
            cache.resolve(model, StoredValue::Blob(b"9"), |_| Err("missing")),
            Err("missing")
        );
    }
}
