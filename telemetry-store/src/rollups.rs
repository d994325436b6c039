//! Keeping `telemetry_rollup` right: accumulating a batch's records, merging them into the stored
//! rows, and recomputing the buckets cut by a prune.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use rusqlite::{CachedStatement, Connection, OptionalExtension, Row, Statement, params};
use telemetry_core::schema::ROLLUP_COLUMNS;
use telemetry_core::{
    ROLLUP_FIELDS, ROLLUP_LEVELS, Rollup, RollupKey, RollupValue, StringCache, TelemetryRecord,
    bucket_start,
};
use telemetry_sqlite::stored_value;

use crate::error::{StoreError, to_i64};
use crate::rows::{ROLLUP_INPUT_COLUMNS, rollup_input, same_text};

/// A multiply-rotate hasher (as in rustc's `FxHasher`) for the per-batch rollup map: it is
/// looked up once per row on the writer's hot path, its keys are the caller's own labels, and it
/// lives for one batch, so SipHash's flooding resistance buys nothing here.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Seconds in a minute bucket, the finest level.
const MINUTE: i64 = ROLLUP_LEVELS[0];
/// Seconds in an hour bucket: the unit in which minute summaries are kept or not.
const HOUR: i64 = ROLLUP_LEVELS[1];

/// The hour (start, unix seconds) whose summaries hold a record: the hour of its minute bucket,
/// derived from that bucket as the coarser levels are, so that a record's minute and hour rows
/// always nest.
pub(crate) fn hour_of(timestamp: f64) -> i64 {
    bucket_start(timestamp, MINUTE).div_euclid(HOUR) * HOUR
}

/// Rollups of a set of records: at every level of [`ROLLUP_LEVELS`] for records of detailed
/// hours, at the hour and day levels only for the others.
#[derive(Debug, Default)]
pub(crate) struct BatchRollups<'a> {
    /// Finest level kept per record (minute or hour) and bucket start, keyed by borrowed labels
    /// so that adding a record allocates nothing; in the order first met.
    finest: Vec<(KeyRef<'a>, Rollup)>,
    /// Where each key of `finest` is.
    index: HashMap<KeyRef<'a>, usize, BuildHasherDefault<FastHasher>>,
    /// The key of the last record added and where it is: a record's key is mostly the previous
    /// record's, and comparing it costs a fraction of hashing it.
    last: Option<(KeyRef<'a>, usize)>,
}

impl<'a> BatchRollups<'a> {
    /// Adds `r`, with minute rollups when `minutes` (its hour is detailed), else from the hour up.
    pub(crate) fn add(&mut self, r: &'a TelemetryRecord, minutes: bool) {
        let minute = bucket_start(r.timestamp, MINUTE);
        let (level, start) = if minutes {
            (MINUTE, minute)
        } else {
            (HOUR, minute.div_euclid(HOUR) * HOUR)
        };
        let key = (
            level,
            start,
            r.model_id.as_str(),
            r.engine.as_str(),
            r.agent.as_str(),
        );
        let at = match self.last {
            Some((last, at)) if same_key(&last, &key) => at,
            _ => {
                let next = self.finest.len();
                let at = *self.index.entry(key).or_insert(next);
                if at == next {
                    self.finest.push((key, Rollup::default()));
                }
                self.last = Some((key, at));
                at
            }
        };
        if let Some((_, rollup)) = self.finest.get_mut(at) {
            rollup.add(r);
        }
    }

    /// Every level's rollups, sorted by row key: the coarser ones merge the finest (each level
    /// divides the next, so a finest bucket lies in exactly one coarser bucket). Keys stay
    /// borrowed and the finest rollups are moved, not copied (a spread-out batch has about one
    /// finest bucket per ten records); sorted, their rows go into `telemetry_rollup`'s B-tree in
    /// key order (appended, mostly, instead of inserted all over its last pages).
    pub(crate) fn into_levels(self) -> Vec<(KeyRef<'a>, Rollup)> {
        let mut coarse = LevelRollups::with_capacity_and_hasher(
            self.finest.len() / 4 + 4,
            BuildHasherDefault::default(),
        );
        let mut out = Vec::with_capacity(self.finest.len() + self.finest.len() / 4 + 4);
        for (key, rollup) in self.finest {
            let (finest, start, model, engine, agent) = key;
            for &level in ROLLUP_LEVELS.iter().filter(|&&l| l > finest) {
                coarse
                    .entry((level, start.div_euclid(level) * level, model, engine, agent))
                    .or_default()
                    .merge(&rollup);
            }
            out.push((key, rollup));
        }
        out.extend(coarse);
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        // A finest key is never a coarser key of another finest bucket (an hour is kept at the
        // minute level for all of a batch's records or for none), but merge them if it were.
        out.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1.merge(&later.1);
            }
            same
        });
        out
    }
}

/// A `telemetry_rollup` key with borrowed labels: level, bucket start, model, engine, agent.
pub(crate) type KeyRef<'a> = (i64, i64, &'a str, &'a str, &'a str);

/// `a == b` for two keys, their texts compared by [`same_text`] (records' agents are mostly
/// empty: no `memcmp` for those).
fn same_key(a: &KeyRef<'_>, b: &KeyRef<'_>) -> bool {
    a.0 == b.0 && a.1 == b.1 && same_text(a.2, b.2) && same_text(a.3, b.3) && same_text(a.4, b.4)
}

/// The borrowed form of `key`.
fn key_ref(key: &RollupKey) -> KeyRef<'_> {
    (
        key.level,
        key.bucket_start,
        &key.model_id,
        &key.engine,
        &key.agent,
    )
}

/// A batch's rollups at every level, by row key.
pub(crate) type LevelRollups<'a> = HashMap<KeyRef<'a>, Rollup, BuildHasherDefault<FastHasher>>;

/// Which hours of a batch get minute summaries, decided before its rollups are built.
///
/// An hour is *detailed* when `telemetry_rollup` holds minute rows for it; those rows then
/// cover every record of the hour, and the query layer reads them. Other hours have none, and
/// readers take their (few) records from the raw rows. A batch's records of a detailed hour add
/// to its minute rows; an hour whose calls reach the threshold with this batch is backfilled
/// from its raw rows (the batch's included); any other hour gets no minute row.
#[derive(Debug, Default)]
pub(crate) struct MinuteDetail {
    /// Hours whose records of this batch get minute rollups.
    detailed: Vec<i64>,
    /// Hours to backfill from the raw rows once the batch's rows are inserted.
    backfill: Vec<i64>,
}

impl MinuteDetail {
    /// Decides for the hours of a batch: `batch_calls` holds each hour's records in the batch.
    /// Two index seeks per hour (minute rows of the hour? calls of the hour?).
    pub(crate) fn decide(
        conn: &Connection,
        batch_calls: &HashMap<i64, u64>,
        threshold: u64,
    ) -> Result<Self, StoreError> {
        let mut out = MinuteDetail::default();
        for (&hour, &n) in batch_calls {
            if is_detailed(conn, hour)? {
                out.detailed.push(hour);
            } else if hour_calls(conn, hour)?.saturating_add(n) >= threshold {
                out.backfill.push(hour);
            }
        }
        out.detailed.sort_unstable();
        Ok(out)
    }

    /// Whether the batch's records of `hour` get minute rollups.
    pub(crate) fn minutes(&self, hour: i64) -> bool {
        self.detailed.binary_search(&hour).is_ok()
    }

    /// Whether [`backfill`](Self::backfill) writes anything.
    pub(crate) fn backfills(&self) -> bool {
        !self.backfill.is_empty()
    }

    /// Writes the minute rows of the hours that crossed the threshold, from all their raw rows.
    pub(crate) fn backfill(&self, conn: &Connection) -> Result<(), StoreError> {
        for &hour in &self.backfill {
            backfill_minutes(conn, hour)?;
        }
        Ok(())
    }
}

/// Whether `hour` has minute rows: one seek on the primary key (level, bucket_start, ...).
pub(crate) fn is_detailed(conn: &Connection, hour: i64) -> Result<bool, StoreError> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM telemetry_rollup WHERE level = ?1 \
         AND bucket_start >= ?2 AND bucket_start < ?3)",
    )
    .and_then(|mut s| {
        s.query_row(params![MINUTE, hour, hour.saturating_add(HOUR)], |r| {
            r.get(0)
        })
    })
    .map_err(|e| StoreError::sqlite("looking up minute summaries", e))
}

/// Calls of `hour` counted by its stored hour rows (all groups).
fn hour_calls(conn: &Connection, hour: i64) -> Result<u64, StoreError> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(call_count), 0) FROM telemetry_rollup \
             WHERE level = ?1 AND bucket_start = ?2",
        )
        .and_then(|mut s| s.query_row(params![HOUR, hour], |r| r.get(0)))
        .map_err(|e| StoreError::sqlite("reading the calls of an hour", e))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Writes the minute rows of `hour` from its raw rows (it has none yet). The window is widened
/// by a second and filtered with [`hour_of`], so a record lands where the writer files it.
fn backfill_minutes(conn: &Connection, hour: i64) -> Result<(), StoreError> {
    let sql = |e| StoreError::sqlite("writing the minute summaries of an hour", e);
    let select = format!(
        "SELECT {} FROM telemetry WHERE timestamp >= ?1 AND timestamp < ?2",
        &*ROLLUP_INPUT_COLUMNS
    );
    let mut stmt = conn.prepare_cached(&select).map_err(sql)?;
    let mut rows = stmt
        .query(params![
            hour as f64 - 1.0,
            hour.saturating_add(HOUR) as f64 + 1.0
        ])
        .map_err(sql)?;
    let mut minutes: HashMap<RollupKey, Rollup> = HashMap::new();
    let mut cache = StringCache::new();
    while let Some(row) = rows.next().map_err(sql)? {
        let record = rollup_input(conn, &mut cache, row)?;
        if hour_of(record.timestamp) == hour {
            minutes
                .entry(RollupKey::of(&record, MINUTE))
                .or_default()
                .add(&record);
        }
    }
    drop(rows);
    for (key, rollup) in &minutes {
        write(conn, key_ref(key), rollup, Write::Replace)?;
    }
    Ok(())
}

const KEY_WHERE: &str =
    "level = ?1 AND bucket_start = ?2 AND model_id = ?3 AND engine = ?4 AND agent = ?5";

/// The `telemetry_rollup` rows as the writer's last committed batch left them, so that the next
/// batch, which mostly adds to the same minute, hour and day rows, merges into them without
/// reading and decoding them back (and without first trying to insert them as new): about 60 K
/// instructions per row, most of a small batch's summary cost.
///
/// They are right as long as no one else wrote the table since: another connection's commit is
/// seen by `PRAGMA data_version` (checked at the start of each batch, under the write lock), and
/// the writer forgets them whenever it writes summaries any other way (a prune, clear, rebuild
/// or import) and when a transaction rolls back.
#[derive(Debug, Default)]
pub(crate) struct KnownRollups {
    /// `PRAGMA data_version` when `rows` were committed.
    version: Option<i64>,
    rows: HashMap<RollupKey, Rollup>,
    /// The rows written by the transaction under way: `rows` once it commits.
    pending: HashMap<RollupKey, Rollup>,
}

impl KnownRollups {
    /// At the start of a write transaction: forgets the rows if another connection committed
    /// since they were written.
    pub(crate) fn check(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let version: i64 = conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(|e| StoreError::sqlite("reading the data version", e))?;
        if self.version != Some(version) {
            self.rows.clear();
            self.version = Some(version);
        }
        self.pending.clear();
        Ok(())
    }

    /// The transaction committed: its rows are the stored ones (the others stay too).
    pub(crate) fn committed(&mut self) {
        if !self.pending.is_empty() {
            // Keep what the last batch wrote: the next one mostly writes the same rows.
            self.rows = std::mem::take(&mut self.pending);
        }
    }

    /// Forgets every row: the transaction rolled back, or the summaries were written otherwise.
    pub(crate) fn forget(&mut self) {
        self.rows.clear();
        self.pending.clear();
        self.version = None;
    }
}

/// Merges `rollups` into the stored rows (inside the caller's transaction). Each bucket is
/// written once: merged into the row `known` holds, else first inserted as new (no lookup; a
/// backfill or import of spread-out records makes almost only new minute rows), and only when a
/// row is already there read, merged and replaced. The rows written go to `known`'s pending
/// rows.
pub(crate) fn merge_into(
    conn: &Connection,
    rollups: Vec<(KeyRef<'_>, Rollup)>,
    known: &mut KnownRollups,
) -> Result<(), StoreError> {
    static SELECT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {} FROM telemetry_rollup WHERE {KEY_WHERE}",
            ROLLUP_COLUMNS.join(", ")
        )
    });
    let sql = |e| StoreError::sqlite("updating telemetry_rollup", e);
    let mut select = conn.prepare_cached(&SELECT).map_err(sql)?;
    let mut insert = statement(conn, Write::New)?;
    let mut replace = statement(conn, Write::Replace)?;
    for (key, rollup) in rollups {
        let (level, start, model, engine, agent) = key;
        let owned = RollupKey {
            level,
            bucket_start: start,
            model_id: model.to_owned(),
            engine: engine.to_owned(),
            agent: agent.to_owned(),
        };
        if let Some(mut merged) = known.rows.remove(&owned) {
            merged.merge(&rollup);
            write_with(&mut replace, key, &merged)?;
            known.pending.insert(owned, merged);
            continue;
        }
        if write_with(&mut insert, key, &rollup)? {
            known.pending.insert(owned, rollup);
            continue;
        }
        let stored = select
            .query_row(params![level, start, model, engine, agent], |row| {
                Ok(decode(row))
            })
            .optional()
            .map_err(sql)?
            .transpose()?;
        let mut merged = stored.unwrap_or_default();
        merged.merge(&rollup);
        write_with(&mut replace, key, &merged)?;
        known.pending.insert(owned, merged);
    }
    Ok(())
}

/// How [`write`] treats a row already stored under the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    /// Leave it, and write nothing (only a key conflict is ignored; any other failure is an
    /// error).
    New,
    /// Replace it.
    Replace,
}

/// The (cached) statement that writes a rollup row the way `how` says.
fn statement(conn: &Connection, how: Write) -> Result<CachedStatement<'_>, StoreError> {
    static SQL: std::sync::LazyLock<[String; 2]> = std::sync::LazyLock::new(|| {
        let params: Vec<String> = (1..=5 + ROLLUP_COLUMNS.len())
            .map(|i| format!("?{i}"))
            .collect();
        let body = format!(
            "INTO telemetry_rollup (level, bucket_start, model_id, engine, agent, {}) VALUES ({})",
            ROLLUP_COLUMNS.join(", "),
            params.join(", ")
        );
        [
            format!(
                "INSERT {body} ON CONFLICT (level, bucket_start, model_id, engine, agent) DO NOTHING"
            ),
            format!("INSERT OR REPLACE {body}"),
        ]
    });
    let text = match how {
        Write::New => &SQL[0],
        Write::Replace => &SQL[1],
    };
    conn.prepare_cached(text)
        .map_err(|e| StoreError::sqlite("writing telemetry_rollup", e))
}

/// Inserts one rollup row, or replaces the stored one; returns whether a row was written.
fn write(conn: &Connection, key: KeyRef<'_>, r: &Rollup, how: Write) -> Result<bool, StoreError> {
    let mut stmt = statement(conn, how)?;
    write_with(&mut stmt, key, r)
}

/// [`write`] with a statement from [`statement`], prepared once for many rows (looking a
/// statement up in the cache hashes its whole text, about 600 bytes).
fn write_with(stmt: &mut Statement<'_>, key: KeyRef<'_>, r: &Rollup) -> Result<bool, StoreError> {
    let sql = |e| StoreError::sqlite("writing telemetry_rollup", e);
    let (level, start, model, engine, agent) = key;
    stmt.raw_bind_parameter(1, level).map_err(sql)?;
    stmt.raw_bind_parameter(2, start).map_err(sql)?;
    stmt.raw_bind_parameter(3, model).map_err(sql)?;
    stmt.raw_bind_parameter(4, engine).map_err(sql)?;
    stmt.raw_bind_parameter(5, agent).map_err(sql)?;
    for (i, (field, value)) in ROLLUP_FIELDS.iter().zip(r.values()).enumerate() {
        let at = 6 + i;
        match value {
            RollupValue::Count(v) => stmt.raw_bind_parameter(at, to_i64(field.name, v)?),
            RollupValue::Sum(v) => stmt.raw_bind_parameter(at, v),
            RollupValue::Sketch(s) => stmt.raw_bind_parameter(at, s.to_bytes()),
        }
        .map_err(sql)?;
    }
    Ok(stmt.raw_execute().map_err(sql)? > 0)
}

/// Decodes the [`ROLLUP_COLUMNS`] of a row.
fn decode(row: &Row<'_>) -> Result<Rollup, StoreError> {
    let sql = |e| StoreError::sqlite("reading telemetry_rollup", e);
    let mut r = Rollup::default();
    for i in 0..ROLLUP_FIELDS.len() {
        r.merge_stored(i, stored_value(row.get_ref(i).map_err(sql)?))
            .map_err(|e| StoreError::Decode {
                column: e.column,
                detail: e.detail,
            })?;
    }
    Ok(r)
}

/// After deleting raw rows before `ts`: drops the rollup rows of buckets wholly before `ts` and
/// rebuilds those of the buckets containing `ts` (unless `ts` is their start: they lost
/// nothing), finest level first, each from what is cheapest and exact:
/// - the minute, from its raw rows (at most a minute of records) — but only when its hour is
///   detailed: a minute row in a sparse hour would make readers take the hour's other minutes
///   (which have none) as empty;
/// - the hour, by merging its remaining minute rows when it is detailed (they cover every
///   record of the hour), else from its raw rows (a sparse hour has fewer than the minute
///   threshold);
/// - the day, by merging its remaining hour rows (every record has one).
///
/// So a prune's cost does not grow with the records left in the cut day or hour, and the
/// stepped prunes of retention (cut on minute boundaries) rebuild almost nothing.
pub(crate) fn repair_after_prune(conn: &Connection, ts: f64) -> Result<(), StoreError> {
    let sql = |e| StoreError::sqlite("recomputing telemetry_rollup after a prune", e);
    let hour_detailed = is_detailed(conn, hour_of(ts))?;
    for &level in &ROLLUP_LEVELS {
        let start = bucket_start(ts, level);
        // `ts` on the bucket's start: the bucket keeps all its records, and its row stays.
        let untouched = start as f64 == ts;
        let op = if untouched { "<" } else { "<=" };
        conn.prepare_cached(&format!(
            "DELETE FROM telemetry_rollup WHERE level = ?1 AND bucket_start {op} ?2"
        ))
        .and_then(|mut s| s.execute(params![level, start]))
        .map_err(sql)?;
        if untouched {
            continue;
        }
        let end = start.saturating_add(level);
        let rebuilt = match level {
            MINUTE if !hour_detailed => continue,
            MINUTE => from_raw_rows(conn, level, start, end)?,
            HOUR if !hour_detailed => from_raw_rows(conn, level, start, end)?,
            HOUR => from_finer_rows(conn, MINUTE, level, start, end)?,
            _ => from_finer_rows(conn, HOUR, level, start, end)?,
        };
        for (key, rollup) in &rebuilt {
            write(conn, key_ref(key), rollup, Write::Replace)?;
        }
    }
    Ok(())
}

/// The rollups at `level` of the raw rows in `[start, end)`.
fn from_raw_rows(
    conn: &Connection,
    level: i64,
    start: i64,
    end: i64,
) -> Result<HashMap<RollupKey, Rollup>, StoreError> {
    let sql = |e| StoreError::sqlite("recomputing telemetry_rollup from the rows", e);
    let select = format!(
        "SELECT {} FROM telemetry WHERE timestamp >= ?1 AND timestamp < ?2 ORDER BY id",
        &*ROLLUP_INPUT_COLUMNS
    );
    let mut stmt = conn.prepare_cached(&select).map_err(sql)?;
    let mut rows = stmt.query(params![start as f64, end as f64]).map_err(sql)?;
    let mut rebuilt: HashMap<RollupKey, Rollup> = HashMap::new();
    let mut cache = StringCache::new();
    while let Some(row) = rows.next().map_err(sql)? {
        let record = rollup_input(conn, &mut cache, row)?;
        rebuilt
            .entry(RollupKey::of(&record, level))
            .or_default()
            .add(&record);
    }
    Ok(rebuilt)
}

/// The rollups at `level` of the bucket `[start, end)`, merged from its stored rows at the
/// finer level `finer` (which divides `level`, so those rows lie wholly inside the bucket).
fn from_finer_rows(
    conn: &Connection,
    finer: i64,
    level: i64,
    start: i64,
    end: i64,
) -> Result<HashMap<RollupKey, Rollup>, StoreError> {
    let sql = |e| StoreError::sqlite("merging telemetry_rollup rows after a prune", e);
    let n = ROLLUP_COLUMNS.len();
    let select = format!(
        "SELECT {}, model_id, engine, agent FROM telemetry_rollup \
         WHERE level = ?1 AND bucket_start >= ?2 AND bucket_start < ?3",
        ROLLUP_COLUMNS.join(", ")
    );
    let mut stmt = conn.prepare_cached(&select).map_err(sql)?;
    let mut rows = stmt.query(params![finer, start, end]).map_err(sql)?;
    let mut merged: HashMap<RollupKey, Rollup> = HashMap::new();
    while let Some(row) = rows.next().map_err(sql)? {
        let rollup = decode(row)?;
        let key = RollupKey {
            level,
            bucket_start: start,
            model_id: row.get(n).map_err(sql)?,
            engine: row.get(n + 1).map_err(sql)?,
            agent: row.get(n + 2).map_err(sql)?,
        };
        merged.entry(key).or_default().merge(&rollup);
    }
    Ok(merged)
}

/// Deletes every `telemetry_rollup` row and recomputes every level from the raw rows (inside the
/// caller's transaction), with minute rows for the hours holding at least `threshold` rows (as
/// the writer would have made them); returns how many rows were read. Rows are streamed in
/// timestamp order and summarised one day at a time (every level divides a day), so memory
/// holds one day's rows, not the table.
pub(crate) fn rebuild_all(conn: &Connection, threshold: u64) -> Result<u64, StoreError> {
    let sql = |e| StoreError::sqlite("rebuilding telemetry_rollup from the rows", e);
    conn.execute("DELETE FROM telemetry_rollup", [])
        .map_err(sql)?;
    let day = ROLLUP_LEVELS[ROLLUP_LEVELS.len() - 1];
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {} FROM telemetry ORDER BY timestamp, id",
            &*ROLLUP_INPUT_COLUMNS
        ))
        .map_err(sql)?;
    let mut rows = stmt.query([]).map_err(sql)?;
    let mut read = 0u64;
    let mut current: Option<i64> = None;
    let mut records: Vec<TelemetryRecord> = Vec::new();
    let mut cache = StringCache::new();
    let flush = |records: &mut Vec<TelemetryRecord>| -> Result<(), StoreError> {
        let mut calls: HashMap<i64, u64> = HashMap::new();
        for r in records.iter() {
            *calls.entry(hour_of(r.timestamp)).or_default() += 1;
        }
        let mut batch = BatchRollups::default();
        for r in records.iter() {
            let n = calls.get(&hour_of(r.timestamp)).copied().unwrap_or(0);
            batch.add(r, n >= threshold);
        }
        for (key, rollup) in &batch.into_levels() {
            write(conn, *key, rollup, Write::Replace)?;
        }
        records.clear();
        Ok(())
    };
    while let Some(row) = rows.next().map_err(sql)? {
        let record = rollup_input(conn, &mut cache, row)?;
        read += 1;
        let bucket = bucket_start(record.timestamp, day);
        if current.is_some_and(|c| c != bucket) {
            flush(&mut records)?;
        }
        current = Some(bucket);
        records.push(record);
    }
    flush(&mut records)?;
    Ok(read)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn record(ts: f64, model: &str, agent: &str) -> TelemetryRecord {
        TelemetryRecord::builder(model, ts)
            .agent(agent)
            .latency_seconds(0.5 + ts % 7.0)
            .build()
    }

    #[test]
    fn levels_come_sorted_once_per_key_and_count_every_record_at_each_level() {
        // Two days, one record every 7 minutes, three models and two agents; hours whose start
        // divides by 7 200 s are kept at the minute level.
        let start = 1_764_288_000.0;
        let records: Vec<TelemetryRecord> = (0..600)
            .map(|i| {
                record(
                    start + f64::from(i) * 420.0,
                    ["m1", "m2", "m3"][i as usize % 3],
                    ["a", "b"][i as usize % 2],
                )
            })
            .rev()
            .collect();
        let detailed = |r: &TelemetryRecord| hour_of(r.timestamp) % 7_200 == 0;
        let mut batch = BatchRollups::default();
        for r in &records {
            batch.add(r, detailed(r));
        }
        let levels = batch.into_levels();
        for pair in levels.windows(2) {
            assert!(
                pair[0].0 < pair[1].0,
                "{:?} then {:?}",
                pair[0].0,
                pair[1].0
            );
        }
        for &level in &ROLLUP_LEVELS {
            let calls: u64 = levels
                .iter()
                .filter(|(k, _)| k.0 == level)
                .map(|(_, r)| r.call_count)
                .sum();
            let want = if level == MINUTE {
                records.iter().filter(|r| detailed(r)).count() as u64
            } else {
                records.len() as u64
            };
            assert_eq!(calls, want, "level {level}");
        }
        // Each row equals the rollup of its records, sketches included.
        for (key, rollup) in &levels {
            let (level, start, model, engine, agent) = *key;
            let mut want = Rollup::default();
            records
                .iter()
                .filter(|r| {
                    bucket_start(r.timestamp, level) == start
                        && (level != MINUTE || detailed(r))
                        && (r.model_id.as_str(), r.engine.as_str(), r.agent.as_str())
                            == (model, engine, agent)
                })
                .for_each(|r| want.add(r));
            assert_eq!(want.latency.count(), rollup.latency.count(), "{key:?}");
            assert_eq!(&want.latency, &rollup.latency, "{key:?}");
            assert_eq!(want.call_count, rollup.call_count, "{key:?}");
            assert!(
                (want.total_latency - rollup.total_latency).abs() < 1e-9,
                "{key:?}"
            );
        }
    }
}
