//! Do the summaries agree with the rows? [`RollupCheck`] compares, per UTC day, the number of
//! raw rows with the calls counted by the `telemetry_rollup` rows of each level.
//!
//! The store keeps minute summaries only for the hours that reached its threshold of calls,
//! and then for every record of the hour; so the minute level is compared hour by hour, over
//! the hours that have minute rows (an hour with none is answered from its raw rows and has
//! nothing to disagree with).

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::Connection;
use telemetry_core::ROLLUP_LEVELS;

use crate::error::AggError;

/// Seconds in a day bucket (the coarsest rollup level).
const DAY: i64 = ROLLUP_LEVELS[ROLLUP_LEVELS.len() - 1];
/// Seconds in a minute bucket (the finest level, kept only for detailed hours).
const MINUTE: i64 = ROLLUP_LEVELS[0];
/// Seconds in an hour: the unit in which minute summaries are kept or not.
const HOUR: i64 = ROLLUP_LEVELS[1];

/// What [`TelemetryAggregator::check_rollups`](crate::TelemetryAggregator::check_rollups) found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RollupCheck {
    /// `COUNT(*)` of `telemetry`: the records actually stored.
    pub rows: u64,
    /// Calls counted by the day-level summaries (what `stats` reports).
    pub rollup_calls: u64,
    /// Every (level, day) whose summaries count a different number of calls than the day has
    /// rows, ordered by day, then level. Empty when the summaries agree with the rows.
    pub drift: Vec<RollupDrift>,
}

impl RollupCheck {
    /// Whether every level of every day agrees with the rows.
    pub fn is_consistent(&self) -> bool {
        self.drift.is_empty()
    }
}

/// One UTC day whose summaries at one level disagree with its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RollupDrift {
    /// Start of the day, unix seconds (UTC midnight).
    pub day_start: i64,
    /// Rollup level (bucket width in seconds: 60, 3 600 or 86 400).
    pub level: i64,
    /// Rows of `telemetry` with a timestamp in the day; for the minute level, in the day's
    /// hours that have minute summaries.
    pub rows: u64,
    /// Calls the level's summary rows of that day add up to. (For the minute level a day is
    /// reported when any of its hours disagrees, even if the day's sums happen to match.)
    pub rollup_calls: u64,
}

/// `floor(timestamp / width) * width` in SQL without the math functions: CAST truncates toward
/// zero, so step one down for a negative timestamp that is not a multiple of `width`.
fn floor_sql(width: i64) -> String {
    format!(
        "SELECT (q - (timestamp < q * {width}.0)) * {width} AS bucket, COUNT(*) FROM \
         (SELECT timestamp, CAST(timestamp / {width}.0 AS INTEGER) AS q FROM telemetry) \
         GROUP BY bucket"
    )
}

/// Runs the comparison inside the caller's read transaction.
pub(crate) fn check_rollups(conn: &Connection) -> Result<RollupCheck, AggError> {
    let sql = |e| AggError::sqlite("comparing telemetry_rollup with the rows", e);
    // Raw rows per hour; the days' counts are their sums.
    let mut rows_by_hour: BTreeMap<i64, u64> = BTreeMap::new();
    let mut stmt = conn.prepare(&floor_sql(HOUR)).map_err(sql)?;
    let mut q = stmt.query([]).map_err(sql)?;
    while let Some(row) = q.next().map_err(sql)? {
        let hour: i64 = row.get(0).map_err(sql)?;
        let n: i64 = row.get(1).map_err(sql)?;
        *rows_by_hour.entry(hour).or_default() += u64::try_from(n).unwrap_or(0);
    }
    drop(q);
    let mut rows_by_day: BTreeMap<i64, u64> = BTreeMap::new();
    for (&hour, &n) in &rows_by_hour {
        *rows_by_day.entry(hour.div_euclid(DAY) * DAY).or_default() += n;
    }
    // TOTAL, not SUM: an edited call_count must not make the check itself fail on overflow.
    // Every level but the minute is compared per day; the minute level per hour.
    let rollup_sql = format!(
        "SELECT level, bucket_start - ((bucket_start % {DAY}) + {DAY}) % {DAY} AS day, \
         TOTAL(call_count) FROM telemetry_rollup WHERE level <> {MINUTE} GROUP BY level, day"
    );
    let mut calls: BTreeMap<(i64, i64), u64> = BTreeMap::new();
    let mut levels: BTreeSet<i64> = ROLLUP_LEVELS[1..].iter().copied().collect();
    let mut stmt = conn.prepare(&rollup_sql).map_err(sql)?;
    let mut q = stmt.query([]).map_err(sql)?;
    while let Some(row) = q.next().map_err(sql)? {
        let level: i64 = row.get(0).map_err(sql)?;
        let day: i64 = row.get(1).map_err(sql)?;
        let total: f64 = row.get(2).map_err(sql)?;
        // `as` saturates: a negative or absurd total still differs from the row count.
        calls.insert((day, level), total as u64);
        levels.insert(level);
    }
    drop(q);
    let minute_drift = minute_drift(conn, &rows_by_hour)?;
    let days: BTreeSet<i64> = rows_by_day
        .keys()
        .copied()
        .chain(calls.keys().map(|(day, _)| *day))
        .chain(minute_drift.keys().copied())
        .collect();
    let mut drift = Vec::new();
    for &day in &days {
        if let Some(d) = minute_drift.get(&day) {
            drift.push(d.clone());
        }
        let rows = rows_by_day.get(&day).copied().unwrap_or(0);
        for &level in &levels {
            let rollup_calls = calls.get(&(day, level)).copied().unwrap_or(0);
            if rollup_calls != rows {
                drift.push(RollupDrift {
                    day_start: day,
                    level,
                    rows,
                    rollup_calls,
                });
            }
        }
    }
    Ok(RollupCheck {
        rows: rows_by_day.values().sum(),
        rollup_calls: calls
            .iter()
            .filter(|((_, level), _)| *level == DAY)
            .map(|(_, n)| *n)
            .fold(0u64, u64::saturating_add),
        drift,
    })
}

/// Days where an hour with minute summaries counts a different number of calls than the hour
/// has rows, with the day's totals over such hours.
fn minute_drift(
    conn: &Connection,
    rows_by_hour: &BTreeMap<i64, u64>,
) -> Result<BTreeMap<i64, RollupDrift>, AggError> {
    let sql = |e| AggError::sqlite("comparing the minute summaries with the rows", e);
    let mut stmt = conn
        .prepare(&format!(
            "SELECT bucket_start - ((bucket_start % {HOUR}) + {HOUR}) % {HOUR} AS hour, \
             TOTAL(call_count) FROM telemetry_rollup WHERE level = {MINUTE} GROUP BY hour"
        ))
        .map_err(sql)?;
    let mut q = stmt.query([]).map_err(sql)?;
    let mut by_day: BTreeMap<i64, (RollupDrift, bool)> = BTreeMap::new();
    while let Some(row) = q.next().map_err(sql)? {
        let hour: i64 = row.get(0).map_err(sql)?;
        let total: f64 = row.get(1).map_err(sql)?;
        let calls = total as u64;
        let rows = rows_by_hour.get(&hour).copied().unwrap_or(0);
        let day = hour.div_euclid(DAY) * DAY;
        let (d, differs) = by_day.entry(day).or_insert_with(|| {
            (
                RollupDrift {
                    day_start: day,
                    level: MINUTE,
                    rows: 0,
                    rollup_calls: 0,
                },
                false,
            )
        });
        d.rows = d.rows.saturating_add(rows);
        d.rollup_calls = d.rollup_calls.saturating_add(calls);
        *differs |= rows != calls;
    }
    Ok(by_day
        .into_iter()
        .filter(|(_, (_, differs))| *differs)
        .map(|(day, (d, _))| (day, d))
        .collect())
}
