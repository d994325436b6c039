//! [`TelemetryAggregator`]: the read-only query API.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use telemetry_core::{QuantileSketch, Rollup, TelemetryRecord, TimeRange};

use crate::collect::{GroupRollup, collect, collect_limited, count, data_extent, max_id};
use crate::error::AggError;
use crate::export::RecordIter;
use crate::histogram::LatencyHistogram;
use crate::open::{SideFileCleanup, open_read_only, schema_version};
use crate::series::{Bucket, GroupBy, SeriesPoint};
use crate::stats::{AgentStats, AggregatedStats, EngineStats, ModelStats};

/// Read-only queries over a telemetry database written by `telemetry-store`.
///
/// It holds its own connection, opened read-only with `PRAGMA query_only`, so it cannot write
/// even by mistake, and in WAL mode it never blocks a writer in another thread or process. Each
/// query runs in one read transaction, so it sees one consistent snapshot.
///
/// A query over `[since, until]` merges the stored summaries of whole days, then whole hours and
/// whole minutes at the edges, then reads raw rows only for the partial minutes at the very edges
/// (and for the edge hours the store keeps no minute summaries for, which hold fewer than its
/// threshold of records): a few thousand summary rows instead of millions of records.
#[derive(Debug)]
pub struct TelemetryAggregator {
    conn: Connection,
    path: PathBuf,
    /// After `conn`, so that it drops after it.
    _side_files: Option<SideFileCleanup>,
}

impl TelemetryAggregator {
    /// Opens `path` read-only. Fails with [`AggError::NotFound`] for a missing file (it is never
    /// created), [`AggError::NotADatabase`] for a non-SQLite file, [`AggError::NotTelemetry`]
    /// when the `telemetry` tables are missing, and [`AggError::UnsupportedSchema`] when the
    /// schema version is not [`telemetry_core::schema::SCHEMA_VERSION`].
    ///
    /// Needs no write access, and leaves no `-wal`/`-shm` behind where there were none: a
    /// read-only file, or one in a read-only directory, with no write-ahead log holding
    /// commits, is opened `immutable=1` (nothing created; no writer can be at work there); a
    /// writable one is opened as a normal reader, which sees commits made while it is open,
    /// and the side files SQLite creates for that are removed when the aggregator is dropped
    /// (unless another connection, e.g. a writer, still uses them). A log with content is read
    /// through its `-shm` index; when that is impossible, [`AggError::WalUnreadable`] says why.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AggError> {
        let path = path.as_ref();
        let (conn, side_files) = open_read_only(path)?;
        Ok(TelemetryAggregator {
            conn,
            path: path.to_path_buf(),
            _side_files: side_files,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stats per model, by call count (descending), then model name.
    pub fn per_model_stats(&self, range: &TimeRange) -> Result<Vec<ModelStats>, AggError> {
        let groups = self.groups(range)?;
        Ok(per_model(&groups))
    }

    /// Stats per engine, by call count (descending), then engine name.
    pub fn per_engine_stats(&self, range: &TimeRange) -> Result<Vec<EngineStats>, AggError> {
        let groups = self.groups(range)?;
        Ok(per_engine(&groups))
    }

    /// Stats per agent, by call count (descending), then agent name.
    pub fn per_agent_stats(&self, range: &TimeRange) -> Result<Vec<AgentStats>, AggError> {
        let groups = self.groups(range)?;
        Ok(per_agent(&groups))
    }

    /// Totals, percentiles and ratios of the range, with the per-model, per-engine and
    /// per-agent breakdowns. An empty database or range gives zeroed stats.
    pub fn summary(&self, range: &TimeRange) -> Result<AggregatedStats, AggError> {
        Ok(summary_of(&self.groups(range)?))
    }

    /// [`summary`](Self::summary) of the records of `range` that `keep` accepts, e.g. those of
    /// one benchmark run (a run id in their metadata). Unlike the other queries it reads every
    /// raw row of the range (the summaries know nothing of metadata), so keep the range close
    /// to the records wanted.
    pub fn summary_matching(
        &self,
        range: &TimeRange,
        mut keep: impl FnMut(&TelemetryRecord) -> bool,
    ) -> Result<AggregatedStats, AggError> {
        let mut index: HashMap<(String, String, String), usize> = HashMap::new();
        let mut groups: Vec<GroupRollup> = Vec::new();
        for record in self.export_records(range)? {
            let record = record?;
            if !keep(&record) {
                continue;
            }
            let key = (
                record.model_id.clone(),
                record.engine.clone(),
                record.agent.clone(),
            );
            let i = *index.entry(key).or_insert_with(|| {
                groups.push(GroupRollup {
                    bucket: 0,
                    model_id: record.model_id.clone(),
                    engine: record.engine.clone(),
                    agent: record.agent.clone(),
                    rollup: Rollup::default(),
                });
                groups.len() - 1
            });
            groups[i].rollup.add(&record);
        }
        Ok(summary_of(&groups))
    }
}

/// Totals and breakdowns of `groups`.
fn summary_of(groups: &[GroupRollup]) -> AggregatedStats {
    let mut all = Rollup::default();
    for g in groups {
        all.merge(&g.rollup);
    }
    let mut stats = AggregatedStats::from_rollup(&all);
    stats.per_model = per_model(groups);
    stats.per_engine = per_engine(groups);
    stats.per_agent = per_agent(groups);
    stats
}

impl TelemetryAggregator {
    /// The merged [`Rollup`] (sums, counts and quantile sketches) of each (model, engine, agent)
    /// group with a call in the range, ordered by model, engine, then agent. This is what
    /// exporters that keep their own histograms (the Prometheus exposition) read: the sketches
    /// give bucket counts without touching raw rows.
    pub fn rollups_by_group(&self, range: &TimeRange) -> Result<Vec<RollupGroup>, AggError> {
        Ok(sorted_groups(self.groups(range)?))
    }

    /// [`rollups_by_group`](Self::rollups_by_group) keeping at most `limit` groups: the first
    /// met in the stored summaries (the earliest day's, then by model, engine and agent), so a
    /// group keeps its place from one call to the next as new ones appear. The calls of every
    /// other group are merged into [`LimitedGroups::overflow`]. Memory stays bounded by `limit`
    /// however many groups the database holds (clients can choose model names).
    pub fn rollups_by_group_limited(
        &self,
        range: &TimeRange,
        limit: usize,
    ) -> Result<LimitedGroups, AggError> {
        let tx = self.read_tx()?;
        let (groups, overflow, folded_groups) =
            collect_limited(&self.conn, range, limit)?.into_limited();
        drop(tx);
        Ok(LimitedGroups {
            groups: sorted_groups(groups),
            overflow,
            folded_groups,
        })
    }

    /// The `n` models with the most calls (ties broken by name).
    pub fn top_models(&self, n: usize, range: &TimeRange) -> Result<Vec<ModelStats>, AggError> {
        let mut models = self.per_model_stats(range)?;
        models.truncate(n);
        Ok(models)
    }

    /// Number of records in the range.
    pub fn record_count(&self, range: &TimeRange) -> Result<u64, AggError> {
        let tx = self.read_tx()?;
        let n = count(&self.conn, range)?;
        drop(tx);
        Ok(n)
    }

    /// Calls, tokens, cost, energy and latency percentiles per `bucket` (UTC) and group, ordered
    /// by bucket start, then group name. Buckets with no call are absent; edge buckets count only
    /// the part of them inside the range.
    pub fn series(
        &self,
        range: &TimeRange,
        bucket: Bucket,
        group_by: GroupBy,
    ) -> Result<Vec<SeriesPoint>, AggError> {
        let tx = self.read_tx()?;
        let groups = collect(&self.conn, range, Some(bucket.width_seconds()))?.into_groups();
        drop(tx);
        let mut points: BTreeMap<(i64, Option<&str>), Rollup> = BTreeMap::new();
        for g in &groups {
            let label = match group_by {
                GroupBy::None => None,
                GroupBy::Model => Some(g.model_id.as_str()),
                GroupBy::Engine => Some(g.engine.as_str()),
                GroupBy::Agent => Some(g.agent.as_str()),
            };
            points
                .entry((g.bucket, label))
                .or_default()
                .merge(&g.rollup);
        }
        Ok(points
            .into_iter()
            .map(|((start, label), r)| {
                SeriesPoint::from_rollup(start, label.map(str::to_owned), &r)
            })
            .collect())
    }

    /// Latency of the calls in the range as `bins` log-spaced bins (at least one), from the
    /// merged latency sketches of the stored summaries (raw rows only at the partial edges, as
    /// for [`summary`](Self::summary)). Counts sum to the range's call count.
    pub fn latency_histogram(
        &self,
        range: &TimeRange,
        bins: usize,
    ) -> Result<LatencyHistogram, AggError> {
        let groups = self.groups(range)?;
        let mut all = QuantileSketch::new();
        for g in &groups {
            all.merge(&g.rollup.latency);
        }
        Ok(LatencyHistogram::from_sketch(&all, bins))
    }

    /// The first and last record timestamps within the range (two index lookups); `None` when
    /// the range holds no record.
    pub fn time_extent(&self, range: &TimeRange) -> Result<Option<(f64, f64)>, AggError> {
        let lo = range.since_bound().unwrap_or(f64::MIN);
        let hi = range.until_bound().unwrap_or(f64::MAX);
        let sql = |e| AggError::sqlite("reading the time extent of telemetry", e);
        let tx = self.read_tx()?;
        let min: Option<f64> = self
            .conn
            .query_row(
                "SELECT MIN(timestamp) FROM telemetry WHERE timestamp >= ?1 AND timestamp <= ?2",
                rusqlite::params![lo, hi],
                |r| r.get(0),
            )
            .map_err(sql)?;
        let max: Option<f64> = self
            .conn
            .query_row(
                "SELECT MAX(timestamp) FROM telemetry WHERE timestamp >= ?1 AND timestamp <= ?2",
                rusqlite::params![lo, hi],
                |r| r.get(0),
            )
            .map_err(sql)?;
        drop(tx);
        Ok(min.zip(max))
    }

    /// Streams every record of the range, ordered by timestamp, then insertion order, a page at a
    /// time (see [`RecordIter`]). Exports of 20 000 rows or more are read by two worker threads
    /// on their own read-only connections, each taking alternate time slices of the range. The
    /// export holds the rows committed before this call, not those a writer adds while it runs.
    pub fn export_records(&self, range: &TimeRange) -> Result<RecordIter<'_>, AggError> {
        let tx = self.read_tx()?;
        let extent = data_extent(&self.conn)?;
        let rows = count(&self.conn, range)?;
        let max_id = max_id(&self.conn)?;
        drop(tx);
        RecordIter::new(&self.conn, &self.path, range, extent, rows, max_id)
    }

    /// The schema version recorded in `refinery_schema_history`.
    pub fn schema_version(&self) -> Result<i32, AggError> {
        schema_version(&self.conn, &self.path)
    }

    /// The lines of SQLite's `PRAGMA integrity_check`: `["ok"]` when the file is healthy.
    ///
    /// When damage stops the whole-file check itself ("database disk image is malformed"), each
    /// table is checked on its own and the lines name the tables: `` table `telemetry`: database
    /// disk image is malformed ``, then the problems found in the tables that could be checked.
    /// Other failures (I/O) are errors.
    pub fn integrity_check(&self) -> Result<Vec<String>, AggError> {
        match pragma_lines(&self.conn, "PRAGMA integrity_check") {
            Ok(lines) => Ok(lines),
            Err(e) if e.is_corruption() => self.integrity_by_table(),
            Err(e) => Err(e),
        }
    }

    fn integrity_by_table(&self) -> Result<Vec<String>, AggError> {
        let tables = pragma_lines(
            &self.conn,
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
        )?;
        let mut lines = Vec::new();
        for table in tables {
            // The name comes from sqlite_master; quote it as an identifier all the same.
            let sql = format!("PRAGMA integrity_check(\"{}\")", table.replace('"', "\"\""));
            match pragma_lines(&self.conn, &sql) {
                Ok(found) if found == ["ok"] => {}
                Ok(found) => {
                    lines.extend(found.into_iter().map(|l| format!("table `{table}`: {l}")))
                }
                Err(AggError::Sqlite { source, .. }) => {
                    lines.push(format!("table `{table}`: {source}"));
                }
                Err(e) => return Err(e),
            }
        }
        if lines.is_empty() {
            // Every table checks out alone, yet the whole-file check failed: say so.
            lines.push("the whole-file check failed: database disk image is malformed".to_owned());
        }
        Ok(lines)
    }

    /// Compares, per UTC day, `COUNT(*)` of the rows with the calls counted by the summary rows
    /// of every rollup level, in one snapshot: rows changed behind the store's back (an
    /// external `DELETE` or `INSERT`) show up as [`RollupDrift`](crate::RollupDrift)s naming
    /// the day and level. Reads every row's timestamp (through the timestamp index) and every
    /// summary row.
    pub fn check_rollups(&self) -> Result<crate::RollupCheck, AggError> {
        let tx = self.read_tx()?;
        let found = crate::health::check_rollups(&self.conn)?;
        drop(tx);
        Ok(found)
    }

    /// One read transaction, so summaries and raw rows come from the same snapshot.
    fn read_tx(&self) -> Result<rusqlite::Transaction<'_>, AggError> {
        self.conn
            .unchecked_transaction()
            .map_err(|e| AggError::sqlite("starting a read transaction", e))
    }

    fn groups(&self, range: &TimeRange) -> Result<Vec<GroupRollup>, AggError> {
        let tx = self.read_tx()?;
        let groups = collect(&self.conn, range, None)?.into_groups();
        drop(tx);
        Ok(groups)
    }
}

/// The first column of every row of `sql`, as text.
fn pragma_lines(conn: &Connection, sql: &str) -> Result<Vec<String>, AggError> {
    let err = |e| AggError::sqlite(format!("running {sql}"), e);
    let mut stmt = conn.prepare(sql).map_err(err)?;
    stmt.query_map([], |r| r.get::<_, String>(0))
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)
}

/// One (model, engine, agent) group and its merged [`Rollup`]; see
/// [`TelemetryAggregator::rollups_by_group`].
#[derive(Debug, Clone, PartialEq)]
pub struct RollupGroup {
    /// Model.
    pub model_id: String,
    /// Engine.
    pub engine: String,
    /// Agent (empty when not set).
    pub agent: String,
    /// Sums, counts and sketches of the group's calls in the range.
    pub rollup: Rollup,
}

/// What [`TelemetryAggregator::rollups_by_group_limited`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitedGroups {
    /// The groups kept, ordered by model, engine, then agent.
    pub groups: Vec<RollupGroup>,
    /// The merged calls of every group beyond the limit; `None` when none was.
    pub overflow: Option<Rollup>,
    /// How many groups were merged into `overflow`.
    pub folded_groups: u64,
}

fn sorted_groups(groups: Vec<GroupRollup>) -> Vec<RollupGroup> {
    let mut out: Vec<RollupGroup> = groups
        .into_iter()
        .map(|g| RollupGroup {
            model_id: g.model_id,
            engine: g.engine,
            agent: g.agent,
            rollup: g.rollup,
        })
        .collect();
    out.sort_by(|a, b| (&a.model_id, &a.engine, &a.agent).cmp(&(&b.model_id, &b.engine, &b.agent)));
    out
}

/// Merges `groups` by `label`, then orders by call count (descending), then label.
fn by_label<'g, T>(
    groups: &'g [GroupRollup],
    label: impl Fn(&'g GroupRollup) -> &'g str,
    make: impl Fn(String, &Rollup) -> T,
    calls: impl Fn(&T) -> u64,
    name: impl Fn(&T) -> &str,
) -> Vec<T> {
    let mut merged: BTreeMap<&str, Rollup> = BTreeMap::new();
    for g in groups {
        merged.entry(label(g)).or_default().merge(&g.rollup);
    }
    let mut out: Vec<T> = merged
        .into_iter()
        .map(|(k, r)| make(k.to_owned(), &r))
        .collect();
    out.sort_by(|a, b| match calls(b).cmp(&calls(a)) {
        Ordering::Equal => name(a).cmp(name(b)),
        o => o,
    });
    out
}

fn per_model(groups: &[GroupRollup]) -> Vec<ModelStats> {
    by_label(
        groups,
        |g| &g.model_id,
        ModelStats::from_rollup,
        |s| s.call_count,
        |s| &s.model_id,
    )
}

fn per_engine(groups: &[GroupRollup]) -> Vec<EngineStats> {
    by_label(
        groups,
        |g| &g.engine,
        EngineStats::from_rollup,
        |s| s.call_count,
        |s| &s.engine,
    )
}

fn per_agent(groups: &[GroupRollup]) -> Vec<AgentStats> {
    by_label(
        groups,
        |g| &g.agent,
        AgentStats::from_rollup,
        |s| s.call_count,
        |s| &s.agent,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_and_errors_cross_threads() {
        fn send<T: Send>() {}
        fn send_sync<T: Send + Sync + 'static>() {}
        send::<TelemetryAggregator>();
        send_sync::<AggError>();
        send_sync::<AggregatedStats>();
    }
}
