//! Reading a range into per-group [`Rollup`]s: stored summaries for the whole buckets of the
//! [`plan`](crate::plan), raw rows for the rest.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::LazyLock;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row, params};
use telemetry_core::schema::ROLLUP_COLUMNS;
use telemetry_core::{
    ROLLUP_FIELDS, ROLLUP_INPUT_FIELDS, ROLLUP_INPUTS, ROLLUP_LEVELS, Rollup, StringCache,
    TelemetryRecord, TimeRange, bucket_start,
};

use telemetry_sqlite::stored_value;

use crate::error::AggError;
use crate::plan::{HOUR, Plan, plan};
use crate::row::set_field;

/// One group's rollup: `(bucket, model, engine, agent)`; `bucket` is 0 unless a series asked for
/// buckets.
#[derive(Debug, Clone, Default)]
pub(crate) struct GroupRollup {
    pub bucket: i64,
    pub model_id: String,
    pub engine: String,
    pub agent: String,
    pub rollup: Rollup,
}

/// Rollups by `(bucket, model, engine, agent)`, looked up without allocating; with a limit, at
/// most that many groups, the rest merged into one overflow rollup.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    index: HashMap<Vec<u8>, usize>,
    groups: Vec<GroupRollup>,
    key: Vec<u8>,
    limit: Option<usize>,
    overflow: Option<Rollup>,
    /// Hashes of the keys merged into `overflow` (8 bytes per folded group, to count them).
    folded: HashSet<u64>,
}

impl Groups {
    fn entry(&mut self, bucket: i64, model: &str, engine: &str, agent: &str) -> &mut Rollup {
        // Length-prefixed, so that no two different label triples share a key.
        self.key.clear();
        self.key.extend_from_slice(&bucket.to_le_bytes());
        for s in [model, engine, agent] {
            self.key.extend_from_slice(&s.len().to_le_bytes());
            self.key.extend_from_slice(s.as_bytes());
        }
        let i = match self.index.get(self.key.as_slice()) {
            Some(&i) => i,
            None if self.limit.is_some_and(|l| self.groups.len() >= l) => {
                let mut hasher = std::hash::DefaultHasher::new();
                self.key.hash(&mut hasher);
                self.folded.insert(hasher.finish());
                return self.overflow.get_or_insert_with(Rollup::default);
            }
            None => {
                self.groups.push(GroupRollup {
                    bucket,
                    model_id: model.to_owned(),
                    engine: engine.to_owned(),
                    agent: agent.to_owned(),
                    rollup: Rollup::default(),
                });
                self.index.insert(self.key.clone(), self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        &mut self.groups[i].rollup
    }

    /// The groups, in no particular order.
    pub(crate) fn into_groups(self) -> Vec<GroupRollup> {
        self.groups
    }

    /// The groups, the overflow rollup and how many groups it merged.
    pub(crate) fn into_limited(self) -> (Vec<GroupRollup>, Option<Rollup>, u64) {
        let folded = self.folded.len() as u64;
        (self.groups, self.overflow, folded)
    }
}

/// The range clamped to the data: unbounded or over-wide sides become the edges of the first and
/// last day holding a record, so that "everything" is answered by whole days. `None` when the
/// range holds no record for sure.
pub(crate) fn effective_bounds(
    conn: &Connection,
    range: &TimeRange,
) -> Result<Option<(f64, f64)>, AggError> {
    let Some((min, max)) = data_extent(conn)? else {
        return Ok(None);
    };
    let day = ROLLUP_LEVELS[2];
    let data_lo = bucket_start(min, day) as f64;
    let data_hi = (bucket_start(max, day) + day) as f64;
    let lo = range.since_bound().map_or(data_lo, |s| s.max(data_lo));
    let hi = range.until_bound().map_or(data_hi, |u| u.min(data_hi));
    Ok((lo <= hi).then_some((lo, hi)))
}

/// `MIN(timestamp)` and `MAX(timestamp)` of `telemetry` (two index lookups); `None` when empty.
pub(crate) fn data_extent(conn: &Connection) -> Result<Option<(f64, f64)>, AggError> {
    let sql = |e| AggError::sqlite("reading the time extent of telemetry", e);
    let min: Option<f64> = conn
        .query_row("SELECT MIN(timestamp) FROM telemetry", [], |r| r.get(0))
        .map_err(sql)?;
    let max: Option<f64> = conn
        .query_row("SELECT MAX(timestamp) FROM telemetry", [], |r| r.get(0))
        .map_err(sql)?;
    Ok(min.zip(max))
}

/// The largest row id (0 for an empty table): rows committed later have larger ids.
pub(crate) fn max_id(conn: &Connection) -> Result<i64, AggError> {
    let id: Option<i64> = conn
        .query_row("SELECT MAX(id) FROM telemetry", [], |r| r.get(0))
        .map_err(|e| AggError::sqlite("reading the last row id of telemetry", e))?;
    Ok(id.unwrap_or(0))
}

/// Levels usable when results are bucketed by `width` (all when `None`), coarsest first.
pub(crate) fn levels_up_to(width: Option<i64>) -> Vec<i64> {
    let mut levels: Vec<i64> = ROLLUP_LEVELS
        .iter()
        .copied()
        .filter(|&l| width.is_none_or(|w| l <= w))
        .collect();
    levels.sort_unstable_by(|a, b| b.cmp(a));
    levels
}

/// Every record of `range` merged into rollups per `(bucket, model, engine, agent)`, where
/// `bucket` is the start of the `width` bucket of the record (0 when `width` is `None`).
pub(crate) fn collect(
    conn: &Connection,
    range: &TimeRange,
    width: Option<i64>,
) -> Result<Groups, AggError> {
    collect_into(conn, range, width, Groups::default())
}

/// [`collect`] over the whole range (no buckets) keeping the first `limit` groups met (rollup
/// rows are read by bucket, then labels: the groups seen earliest) and merging the others into
/// one overflow rollup, so memory stays bounded by `limit` whatever the number of groups.
pub(crate) fn collect_limited(
    conn: &Connection,
    range: &TimeRange,
    limit: usize,
) -> Result<Groups, AggError> {
    let groups = Groups {
        limit: Some(limit),
        ..Groups::default()
    };
    collect_into(conn, range, None, groups)
}

fn collect_into(
    conn: &Connection,
    range: &TimeRange,
    width: Option<i64>,
    mut groups: Groups,
) -> Result<Groups, AggError> {
    let Some((lo, hi)) = effective_bounds(conn, range)? else {
        return Ok(groups);
    };
    let plan = detailed_plan(conn, lo, hi, &levels_up_to(width))?;
    let series_bucket = |start: i64| width.map_or(0, |w| start.div_euclid(w) * w);
    read_rollups(conn, &plan, &mut |row| {
        let start: i64 = row.get(0).map_err(rollup_sql)?;
        let g = groups.entry(
            series_bucket(start),
            text(row, 1, start)?,
            text(row, 2, start)?,
            text(row, 3, start)?,
        );
        merge_row(row, start, g)
    })?;
    read_raw(conn, range, lo, hi, &plan, &mut |record| {
        // The record's own second: for buckets of a minute or more the same bucket as its
        // minute's, and what buckets shorter than the summaries' finest need.
        let second = bucket_start(record.timestamp, 1);
        groups
            .entry(
                series_bucket(second),
                &record.model_id,
                &record.engine,
                &record.agent,
            )
            .add(record);
    })?;
    Ok(groups)
}

/// Number of records in `range`, from `SUM(call_count)` of the summaries plus raw edge rows.
pub(crate) fn count(conn: &Connection, range: &TimeRange) -> Result<u64, AggError> {
    let Some((lo, hi)) = effective_bounds(conn, range)? else {
        return Ok(0);
    };
    let plan = detailed_plan(conn, lo, hi, &levels_up_to(None))?;
    let mut total: u64 = 0;
    let mut stmt = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(call_count), 0) FROM telemetry_rollup \
             WHERE level = ?1 AND bucket_start >= ?2 AND bucket_start < ?3",
        )
        .map_err(rollup_sql)?;
    for p in &plan.pieces {
        let n: i64 = stmt
            .query_row(params![p.level, p.from, p.to], |r| r.get(0))
            .map_err(rollup_sql)?;
        total += u64::try_from(n).unwrap_or(0);
    }
    let mut raw = conn
        .prepare_cached("SELECT timestamp FROM telemetry WHERE timestamp >= ?1 AND timestamp <= ?2")
        .map_err(raw_sql)?;
    for (a, b) in raw_windows(lo, hi, &plan) {
        let mut rows = raw.query(params![a, b]).map_err(raw_sql)?;
        while let Some(row) = rows.next().map_err(raw_sql)? {
            let ts: f64 = row.get(0).map_err(raw_sql)?;
            if is_raw(range, &plan, ts) {
                total += 1;
            }
        }
    }
    Ok(total)
}

/// The plan of `[lo, hi]` over `levels`, with the minute pieces taken out of the hours the store
/// keeps no minute summaries for (see [`crate::plan`]'s "Sparse hours"). Runs inside the
/// caller's read transaction, so the hours found sparse are the ones the query then reads.
fn detailed_plan(conn: &Connection, lo: f64, hi: f64, levels: &[i64]) -> Result<Plan, AggError> {
    let full = plan(lo, hi, levels);
    // Hours with summaries (an hour row) but no minute row: a seek on the primary key
    // (level, bucket_start, ...) for each. Hours with no hour row hold no record.
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT h.bucket_start FROM (SELECT DISTINCT bucket_start FROM telemetry_rollup \
             WHERE level = {HOUR} AND bucket_start >= ?1 AND bucket_start < ?2) AS h \
             WHERE NOT EXISTS (SELECT 1 FROM telemetry_rollup WHERE level = ?3 \
             AND bucket_start >= h.bucket_start AND bucket_start < h.bucket_start + {HOUR})"
        ))
        .map_err(rollup_sql)?;
    let mut sparse: Vec<i64> = Vec::new();
    for p in full.minute_pieces() {
        let first_hour = p.from.div_euclid(HOUR) * HOUR;
        let mut rows = stmt
            .query(params![first_hour, p.to, p.level])
            .map_err(rollup_sql)?;
        while let Some(row) = rows.next().map_err(rollup_sql)? {
            sparse.push(row.get(0).map_err(rollup_sql)?);
        }
    }
    Ok(full.without_hours(&sparse))
}

fn rollup_sql(e: rusqlite::Error) -> AggError {
    AggError::sqlite("reading telemetry_rollup", e)
}

fn raw_sql(e: rusqlite::Error) -> AggError {
    AggError::sqlite("reading telemetry rows", e)
}

/// Calls `f` with every summary row of the plan's pieces: `bucket_start, model_id, engine, agent`
/// and then the [`ROLLUP_COLUMNS`].
fn read_rollups(
    conn: &Connection,
    plan: &Plan,
    f: &mut dyn FnMut(&Row<'_>) -> Result<(), AggError>,
) -> Result<(), AggError> {
    let sql = format!(
        "SELECT bucket_start, model_id, engine, agent, {} FROM telemetry_rollup \
         WHERE level = ?1 AND bucket_start >= ?2 AND bucket_start < ?3",
        ROLLUP_COLUMNS.join(", ")
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(rollup_sql)?;
    for p in &plan.pieces {
        let mut rows = stmt
            .query(params![p.level, p.from, p.to])
            .map_err(rollup_sql)?;
        while let Some(row) = rows.next().map_err(rollup_sql)? {
            f(row).map_err(|e| match e {
                AggError::BadRollup {
                    bucket_start,
                    column,
                    detail,
                    ..
                } => AggError::BadRollup {
                    level: p.level,
                    bucket_start,
                    column,
                    detail,
                },
                other => other,
            })?;
        }
    }
    Ok(())
}

/// Label column `i` (1..=3) of a summary row.
fn text<'r>(row: &'r Row<'_>, i: usize, start: i64) -> Result<&'r str, AggError> {
    let column = ["bucket_start", "model_id", "engine", "agent"][i.min(3)];
    let bad = |detail: String| AggError::BadRollup {
        level: 0,
        bucket_start: start,
        column,
        detail,
    };
    match row.get_ref(i).map_err(rollup_sql)? {
        ValueRef::Text(t) => std::str::from_utf8(t).map_err(|e| bad(e.to_string())),
        other => Err(bad(format!("expected text, found {:?}", other.data_type()))),
    }
}

/// Adds the summary columns of `row` (starting at column 4) to `into`.
fn merge_row(row: &Row<'_>, start: i64, into: &mut Rollup) -> Result<(), AggError> {
    const BASE: usize = 4;
    for i in 0..ROLLUP_FIELDS.len() {
        let value = row.get_ref(BASE + i).map_err(rollup_sql)?;
        into.merge_stored(i, stored_value(value))
            .map_err(|e| AggError::BadRollup {
                level: 0,
                bucket_start: start,
                column: e.column,
                detail: e.detail,
            })?;
    }
    Ok(())
}

/// Timestamp windows (inclusive, widened by a second so that rounding never hides a row) that
/// hold every record not answered by the summaries.
fn raw_windows(lo: f64, hi: f64, plan: &Plan) -> Vec<(f64, f64)> {
    let mut windows = Vec::with_capacity(plan.covered.len() + 1);
    let mut from = lo - 1.0;
    for &(a, b) in &plan.covered {
        windows.push((from, a as f64 + 1.0));
        from = b as f64 - 1.0;
    }
    windows.push((from, hi + 1.0));
    windows
}

/// Whether a record at `ts` in the widened windows is counted from its raw row.
fn is_raw(range: &TimeRange, plan: &Plan, ts: f64) -> bool {
    range.contains(ts) && !plan.covers_minute(bucket_start(ts, ROLLUP_LEVELS[0]))
}

/// `id`, then the columns [`Rollup::add`] reads ([`ROLLUP_INPUTS`], `timestamp` first).
static RAW_COLUMNS: LazyLock<String> =
    LazyLock::new(|| format!("id, {}", ROLLUP_INPUTS.join(", ")));

fn read_raw(
    conn: &Connection,
    range: &TimeRange,
    lo: f64,
    hi: f64,
    plan: &Plan,
    f: &mut dyn FnMut(&TelemetryRecord),
) -> Result<(), AggError> {
    let sql = format!(
        "SELECT {} FROM telemetry WHERE timestamp >= ?1 AND timestamp <= ?2",
        *RAW_COLUMNS
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(raw_sql)?;
    let mut record = TelemetryRecord::default();
    let mut cache = StringCache::new();
    for (a, b) in raw_windows(lo, hi, plan) {
        let mut rows = stmt.query(params![a, b]).map_err(raw_sql)?;
        while let Some(row) = rows.next().map_err(raw_sql)? {
            let ts: f64 = row.get(1).map_err(raw_sql)?;
            if !is_raw(range, plan, ts) {
                continue;
            }
            fill_rollup_input(conn, &mut cache, row, &mut record)?;
            f(&record);
        }
    }
    Ok(())
}

/// Reads the [`RAW_COLUMNS`] of `row` (read on `conn`) into `r`, reusing its string buffers.
fn fill_rollup_input(
    conn: &Connection,
    cache: &mut StringCache,
    row: &Row<'_>,
    r: &mut TelemetryRecord,
) -> Result<(), AggError> {
    let id: i64 = row.get(0).map_err(raw_sql)?;
    for (i, field) in ROLLUP_INPUT_FIELDS.into_iter().enumerate() {
        let value = row.get_ref(i + 1).map_err(raw_sql)?;
        set_field(conn, cache, r, id, field, stored_value(value))?;
    }
    Ok(())
}
