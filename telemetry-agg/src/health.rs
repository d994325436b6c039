//! Do the summaries agree with the rows? [`RollupCheck`] compares, per UTC day, the number of
//! raw rows with the calls counted by the `telemetry_rollup` rows of each level.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::Connection;
use telemetry_core::ROLLUP_LEVELS;

use crate::error::AggError;

/// Seconds in a day bucket (the coarsest rollup level).
const DAY: i64 = ROLLUP_LEVELS[ROLLUP_LEVELS.len() - 1];

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
    /// Rows of `telemetry` with a timestamp in the day.
    pub rows: u64,
    /// Calls the level's summary rows of that day add up to.
    pub rollup_calls: u64,
}

/// Runs the comparison inside the caller's read transaction.
pub(crate) fn check_rollups(conn: &Connection) -> Result<RollupCheck, AggError> {
    let sql = |e| AggError::sqlite("comparing telemetry_rollup with the rows", e);
    // floor(timestamp / DAY) * DAY without the math functions: CAST truncates toward zero, so
    // step one down for a negative timestamp that is not a multiple of a day.
    let raw_sql = format!(
        "SELECT (q - (timestamp < q * {DAY}.0)) * {DAY} AS day, COUNT(*) FROM \
         (SELECT timestamp, CAST(timestamp / {DAY}.0 AS INTEGER) AS q FROM telemetry) \
         GROUP BY day"
    );
    let mut rows_by_day: BTreeMap<i64, u64> = BTreeMap::new();
    let mut stmt = conn.prepare(&raw_sql).map_err(sql)?;
    let mut q = stmt.query([]).map_err(sql)?;
    while let Some(row) = q.next().map_err(sql)? {
        let day: i64 = row.get(0).map_err(sql)?;
        let n: i64 = row.get(1).map_err(sql)?;
        *rows_by_day.entry(day).or_default() += u64::try_from(n).unwrap_or(0);
    }
    drop(q);
    // TOTAL, not SUM: an edited call_count must not make the check itself fail on overflow.
    let rollup_sql = format!(
        "SELECT level, bucket_start - ((bucket_start % {DAY}) + {DAY}) % {DAY} AS day, \
         TOTAL(call_count) FROM telemetry_rollup GROUP BY level, day"
    );
    let mut calls: BTreeMap<(i64, i64), u64> = BTreeMap::new();
    let mut levels: BTreeSet<i64> = ROLLUP_LEVELS.into_iter().collect();
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
    let days: BTreeSet<i64> = rows_by_day
        .keys()
        .copied()
        .chain(calls.keys().map(|(day, _)| *day))
        .collect();
    let mut drift = Vec::new();
    for &day in &days {
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
