//! Texts stored once (schema V5): the writer's [`Interner`] decides, for each text or JSON cell,
//! whether the row holds the text itself or the id of the text in `telemetry_strings`.
//!
//! A text is stored there from the second time the writer meets it: a label or a run's metadata,
//! repeated on every record, then costs one small integer a row instead of its bytes, while a
//! text met once (a unique error message, per-request metadata) stays in its row and costs no
//! extra table entry. Texts shorter than an id would be stay in the rows. The writer remembers
//! the texts it stored (and hashes of those met once) in bounded maps; what it forgot is found
//! again in the table, whose `UNIQUE` index also gives a second process the same id.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

use foldhash::fast::RandomState;

use rusqlite::{Connection, OptionalExtension, params};
use telemetry_core::{STRING_BY_ID_SQL, StoredValue};
use telemetry_core::{StringCache, TelemetryRecord};

use crate::error::StoreError;

/// Texts shorter than this stay in the rows: an id of the first 8 million texts takes up to 3
/// bytes (and the empty text takes none).
const MIN_LEN: usize = 4;
/// Texts (with their ids) the writer remembers; past it, it starts again from the table.
const MAX_KNOWN: usize = 16_384;
/// Hashes of texts met once that the writer remembers (8 bytes each).
const MAX_SEEN: usize = 65_536;

/// The writer's half: texts to ids, for the rows it inserts.
///
/// Hashed with foldhash, randomly seeded per map, rather than SipHash: a few times cheaper for a
/// label (the writer looks up each new text of each row), and the maps are bounded, so texts
/// chosen to collide could slow the writer only so much.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    known: HashMap<Box<str>, i64, RandomState>,
    seen: HashSet<u64, RandomState>,
    hasher: RandomState,
    /// Texts added to `known` in the transaction under way: forgotten if it rolls back.
    pending: Vec<Box<str>>,
}

impl Interner {
    /// Whether [`id`](Self::id) may give `text` an id: `false` for a text shorter than an id.
    pub(crate) fn may_store(text: &str) -> bool {
        text.len() >= MIN_LEN
    }

    /// The id to store for `text` instead of the text (`None`: store the text). Inserts the text
    /// into `telemetry_strings` (in the caller's transaction) the second time it is met.
    pub(crate) fn id(&mut self, tx: &Connection, text: &str) -> Result<Option<i64>, StoreError> {
        if !Self::may_store(text) {
            return Ok(None);
        }
        if let Some(&id) = self.known.get(text) {
            return Ok(Some(id));
        }
        if self.seen.len() >= MAX_SEEN {
            self.seen.clear();
        }
        if self.seen.insert(self.hasher.hash_one(text)) {
            // Met for the first time (as far as this writer remembers): stored in the row.
            return Ok(None);
        }
        let id = match lookup(tx, text)? {
            Some(id) => id,
            None => {
                tx.prepare_cached("INSERT INTO telemetry_strings (text) VALUES (?1)")
                    .and_then(|mut s| s.execute(params![text]))
                    .map_err(|e| StoreError::sqlite("storing a text once", e))?;
                tx.last_insert_rowid()
            }
        };
        if self.known.len() >= MAX_KNOWN {
            self.known.clear();
        }
        self.known.insert(text.into(), id);
        self.pending.push(text.into());
        Ok(Some(id))
    }

    /// The transaction that used [`id`](Self::id) committed: its ids are for good.
    pub(crate) fn committed(&mut self) {
        self.pending.clear();
    }

    /// The transaction rolled back: the texts it stored are gone, and so are their ids.
    pub(crate) fn rolled_back(&mut self) {
        for text in self.pending.drain(..) {
            self.known.remove(&text);
        }
    }
}

/// The id of `text` in `telemetry_strings`, if it is stored there.
fn lookup(tx: &Connection, text: &str) -> Result<Option<i64>, StoreError> {
    tx.prepare_cached("SELECT id FROM telemetry_strings WHERE text = ?1")
        .and_then(|mut s| s.query_row(params![text], |r| r.get(0)).optional())
        .map_err(|e| StoreError::sqlite("looking up a stored text", e))
}

/// Sets field `field` of `r` from a cell read on `conn`, the text of a stored id looked up.
pub(crate) fn set_field_from_cell(
    conn: &Connection,
    cache: &mut StringCache,
    r: &mut TelemetryRecord,
    field: usize,
    value: StoredValue<'_>,
) -> Result<(), StoreError> {
    let value = cache.resolve(field, value, |id| text_of(conn, id))?;
    r.set_field(field, value).map_err(|e| StoreError::Decode {
        column: e.field,
        detail: e.detail,
    })
}

/// The text of id `id` in `telemetry_strings`.
fn text_of(conn: &Connection, id: i64) -> Result<String, StoreError> {
    conn.prepare_cached(STRING_BY_ID_SQL)
        .and_then(|mut s| s.query_row(params![id], |r| r.get(0)).optional())
        .map_err(|e| StoreError::sqlite("reading a stored text", e))?
        .ok_or_else(|| StoreError::Decode {
            column: "telemetry_strings",
            detail: format!("no text with id {id}"),
        })
}

/// Stores once, in the caller's transaction, every text of the rows that the writer would store
/// once today but that a row holds itself: the texts of rows written before V5 (which hold all
/// their texts) and the first row of each text stored since (a writer keeps the first row of
/// each text it meets with its text). A text of at least [`MIN_LEN`] bytes held by two or more
/// cells of a column, or already in `telemetry_strings`, is stored there (a stored text keeps
/// its id) and every such cell takes its id. Every row reads back exactly as before (readers
/// take both forms); returns how many rows changed.
///
/// One `UPDATE` rewrites each changed row once; like `VACUUM`, a rewrite of the rows goes
/// through the write-ahead log.
pub(crate) fn store_texts_once(tx: &Connection) -> Result<u64, StoreError> {
    let columns: Vec<&str> = telemetry_core::RECORD_FIELDS
        .iter()
        .filter(|f| f.kind.stored_once())
        .map(|f| f.name)
        .collect();
    // A cell the writer could give an id: a text, long enough (in bytes, as `may_store`).
    let storable = |c: &str| {
        format!(
            "typeof(telemetry.{c}) = 'text' \
             AND length(CAST(telemetry.{c} AS BLOB)) >= {MIN_LEN}"
        )
    };
    for c in &columns {
        // In the order the rows first hold them, so that ids follow the rows.
        tx.execute(
            &format!(
                "INSERT OR IGNORE INTO telemetry_strings (text) \
                 SELECT telemetry.{c} FROM telemetry WHERE {} \
                 GROUP BY telemetry.{c} HAVING count(*) > 1 ORDER BY min(telemetry.id)",
                storable(c)
            ),
            [],
        )
        .map_err(|e| StoreError::sqlite("storing the rows' repeated texts once", e))?;
    }
    // The cell value of a stored text's id: the id's decimal digits as a blob (`stored_id`).
    let id_of = |c: &str| {
        format!(
            "(SELECT CAST(CAST(s.id AS TEXT) AS BLOB) FROM telemetry_strings AS s \
             WHERE s.text = telemetry.{c})"
        )
    };
    let set: Vec<String> = columns
        .iter()
        .map(|c| {
            format!(
                "{c} = CASE WHEN {} THEN coalesce({}, telemetry.{c}) ELSE telemetry.{c} END",
                storable(c),
                id_of(c)
            )
        })
        .collect();
    let any: Vec<String> = columns
        .iter()
        .map(|c| format!("({} AND {} IS NOT NULL)", storable(c), id_of(c)))
        .collect();
    let rows = tx
        .execute(
            &format!(
                "UPDATE telemetry SET {} WHERE {}",
                set.join(", "),
                any.join(" OR ")
            ),
            [],
        )
        .map_err(|e| StoreError::sqlite("replacing the rows' texts by their ids", e))?;
    Ok(rows as u64)
}
