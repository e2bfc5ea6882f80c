//! Reports from ClickHouse rollups: two `AggregatingMergeTree` tables, per
//! (check, location, minute) and per (check, location, hour), each fed by
//! its own materialized view from the raw `check_runs` table, read with
//! `-Merge` combinators. SQL that ClickHouse 18.16 and current servers both
//! accept: buckets by `intDiv` (no `toStartOfInterval`), empty buckets
//! filled by the caller (no `WITH FILL`), retention by dropping daily
//! partitions (no TTL).
//!
//! Latency percentiles are `quantilesTiming(0.5, 0.95, 0.99)` states:
//! exact below 1,024 ms, rounded to 16 ms above, and values over 30 s count
//! as 30 s. Merging states loses nothing, so the rollups answer exactly what
//! `quantilesTiming` over the raw runs answers.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use clickhouse::query::Query;
use clickhouse::{Client, Row};
use serde::Deserialize;
use uuid::Uuid;

use crate::results::{ResultsStore, Step, TABLE};
use crate::Result;

pub const MINUTE_TABLE: &str = "check_runs_1m";
pub const HOUR_TABLE: &str = "check_runs_1h";
/// Every check's hours, ordered by time: what `GET /stats` reads.
pub const CHECKS_TABLE: &str = "check_runs_1h_checks";

/// Run statuses counted, in [`Aggregate`] field order.
pub const STATUSES: [&str; 6] = ["success", "degraded", "fail", "timeout", "error", "missed"];
/// Latency columns whose percentiles are kept: the whole run, then each
/// phase.
pub const LATENCIES: [&str; 6] = [
    "latency_ms",
    "dns_ms",
    "connect_ms",
    "tls_ms",
    "ttfb_ms",
    "download_ms",
];
/// The percentiles kept.
pub const QUANTILES: [f64; 3] = [0.5, 0.95, 0.99];
const LEVELS: &str = "0.5, 0.95, 0.99";
const MADE: &str = "status != 'missed'";
const DOWN: &str = "status IN ('fail', 'timeout', 'error')";
/// Runs down (`fail`, `timeout`, `error`) in a rollup's merged counts.
const DOWN_MERGED: &str = "countIfMerge(n_fail) + countIfMerge(n_timeout) + countIfMerge(n_error)";
/// How far back the state before a window is looked for (a check runs at
/// least daily).
const PRIOR_LOOKBACK_SECS: i64 = 2 * 86_400 + 60;

/// What the figures of one group are: counts by status, percentiles, and
/// minutes with runs (made) and with a failed run (down).
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct Aggregate {
    /// The group: a location, a check id, or a bucket's start (epoch
    /// seconds), as text.
    pub key: String,
    pub success: u64,
    pub degraded: u64,
    pub fail: u64,
    pub timeout: u64,
    pub error: u64,
    pub missed: u64,
    /// p50, p95, p99 of each of [`LATENCIES`], over runs made; empty
    /// arrays' values are 0 when no run was made.
    pub latency_ms: Vec<f64>,
    pub dns_ms: Vec<f64>,
    pub connect_ms: Vec<f64>,
    pub tls_ms: Vec<f64>,
    pub ttfb_ms: Vec<f64>,
    pub download_ms: Vec<f64>,
    /// Minutes with a run made, and with a failed run (all locations): only
    /// in [`ResultsStore::all_checks`] answers, 0 elsewhere.
    pub minutes_made: u64,
    pub minutes_down: u64,
}

impl Aggregate {
    /// Every run, `missed` included.
    pub fn runs(&self) -> u64 {
        self.made() + self.missed
    }

    /// Runs made (everything but `missed`).
    pub fn made(&self) -> u64 {
        self.success + self.degraded + self.fail + self.timeout + self.error
    }

    /// Runs up (`success` and `degraded`).
    pub fn up(&self) -> u64 {
        self.success + self.degraded
    }

    /// Each latency column's name and percentiles, in [`LATENCIES`] order.
    pub fn latencies(&self) -> [(&'static str, &[f64]); 6] {
        [
            (LATENCIES[0], &self.latency_ms),
            (LATENCIES[1], &self.dns_ms),
            (LATENCIES[2], &self.connect_ms),
            (LATENCIES[3], &self.tls_ms),
            (LATENCIES[4], &self.ttfb_ms),
            (LATENCIES[5], &self.download_ms),
        ]
    }
}

/// Runs made and failed in one minute.
/// One check's minutes with runs over a range, oldest first, and the last
/// one before it (see [`ResultsStore::checks_minutes`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckMinuteRuns {
    pub minutes: Vec<pulse_core::report::MinuteRuns>,
    pub prior: Option<pulse_core::report::MinuteRuns>,
}

#[derive(Debug, Row, Deserialize)]
struct CheckMinuteArrays {
    key: String,
    minutes: Vec<u32>,
    failed: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Row, Deserialize)]
pub struct MinuteRow {
    pub minute: u32,
    pub made: u64,
    pub down: u64,
}

impl From<MinuteRow> for pulse_core::report::MinuteRuns {
    fn from(r: MinuteRow) -> Self {
        pulse_core::report::MinuteRuns {
            minute: i64::from(r.minute),
            made: r.made,
            down: r.down,
        }
    }
}

/// One check's minutes with a run made and with a failed run.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
struct CheckMinutes {
    key: String,
    made: u64,
    down: u64,
}

/// Runs made and failed per check over the burn-rate windows
/// (`pulse_core::slo::BURN_WINDOWS`), newest minutes only.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct BurnRow {
    pub key: String,
    pub made: Vec<u64>,
    pub down: Vec<u64>,
}

/// One check's runs up, degraded and down per hour that had runs (the
/// dashboard's list bars): four arrays, index-aligned.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct StatusHours {
    #[serde(with = "clickhouse::serde::uuid")]
    pub check_id: Uuid,
    /// Each hour's start, epoch seconds.
    pub hours: Vec<u32>,
    pub success: Vec<u64>,
    pub degraded: Vec<u64>,
    /// `fail`, `timeout` and `error` runs.
    pub down: Vec<u64>,
}

/// Which runs a report reads.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// One check, in one location or all.
    Check(Uuid, Option<&'a str>),
    /// Every check.
    All,
}

/// How a report's rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// One row for everything read.
    Overall,
    ByLocation,
    ByCheck,
}

/// A time range in epoch seconds, `[from, to)`, multiples of 60.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: i64,
    pub to: i64,
}

impl Range {
    /// The whole hours inside the range (read from the hour table); the
    /// minutes either side come from the minute table. Empty (`to`, `to`)
    /// when no whole hour fits.
    fn hours(&self) -> (i64, i64) {
        let start = (self.from + 3599).div_euclid(3600) * 3600;
        let end = self.to.div_euclid(3600) * 3600;
        if start < end {
            (start, end)
        } else {
            (self.to, self.to)
        }
    }
}

impl ResultsStore {
    /// Creates the rollup tables and the views that feed them from
    /// `check_runs`. Idempotent. Runs written before the views existed are
    /// not rolled up.
    pub async fn migrate_rollups(&self) -> Result<()> {
        for q in sql::ddl(&self.client) {
            q.execute().await?;
        }
        Ok(())
    }

    /// The figures of a scope over a range, grouped; groups without runs
    /// are left out (18.16 answers one empty row for a constant key).
    pub async fn aggregate(
        &self,
        scope: Scope<'_>,
        group: Group,
        range: Range,
    ) -> Result<Vec<Aggregate>> {
        let rows: Vec<Aggregate> = sql::aggregate(&self.client, scope, group, range)
            .fetch_all()
            .await?;
        Ok(rows.into_iter().filter(|a| a.runs() > 0).collect())
    }

    /// Every check's figures over whole hours (`range` rounded out to
    /// hours), with its minutes made and down; checks without runs are left
    /// out.
    pub async fn all_checks(&self, range: Range) -> Result<Vec<Aggregate>> {
        let from = range.from.div_euclid(3600) * 3600;
        let to = (range.to + 3599).div_euclid(3600) * 3600;
        // Two queries at once: one level of merging each, where one query
        // would merge the percentile states twice.
        let (rows, minutes) = tokio::try_join!(
            sql::all_checks(&self.client, from, to).fetch_all::<Aggregate>(),
            sql::all_checks_minutes(&self.client, from, to).fetch_all::<CheckMinutes>(),
        )?;
        let mut minutes = minutes.into_iter().peekable();
        let mut out = Vec::with_capacity(rows.len());
        // Both ordered by key.
        for mut a in rows.into_iter().filter(|a| a.runs() > 0) {
            while minutes.next_if(|m| m.key < a.key).is_some() {}
            if let Some(m) = minutes.next_if(|m| m.key == a.key) {
                a.minutes_made = m.made;
                a.minutes_down = m.down;
            }
            out.push(a);
        }
        Ok(out)
    }

    /// A check's figures per bucket of `bucket` seconds over `range` (both
    /// aligned to the bucket), only the buckets that have runs. Buckets of
    /// an hour or more are read from the hour table.
    pub async fn series(
        &self,
        check: Uuid,
        location: Option<&str>,
        range: Range,
        bucket: i64,
    ) -> Result<Vec<Aggregate>> {
        Ok(sql::series(&self.client, check, location, range, bucket)
            .fetch_all()
            .await?)
    }

    /// Every check's runs by status per hour over `range` (whole hours),
    /// one row per check with runs, from the time-ordered hourly rollup
    /// `GET /stats` reads. The dashboard's list draws its bars from these.
    pub async fn status_hours(&self, range: Range) -> Result<Vec<StatusHours>> {
        Ok(sql::status_hours(&self.client, range).fetch_all().await?)
    }

    /// A check's minutes with runs in `range`, oldest first, and the last
    /// such minute before it (within two days), for uptime.
    pub async fn minutes(
        &self,
        check: Uuid,
        location: Option<&str>,
        range: Range,
    ) -> Result<(Vec<MinuteRow>, Option<MinuteRow>)> {
        let minutes = sql::minutes(&self.client, check, location, range)
            .fetch_all()
            .await?;
        let prior = sql::minute_before(&self.client, check, location, range.from)
            .fetch_optional()
            .await?;
        Ok((minutes, prior))
    }

    /// The minutes with runs of each of `checks` over `range`, with the
    /// last such minute before it (within two days) as `prior`, by check:
    /// what uptime over the range is computed from, in one query for all of
    /// them (the status page).
    pub async fn checks_minutes(
        &self,
        checks: &[Uuid],
        range: Range,
    ) -> Result<HashMap<Uuid, CheckMinuteRuns>> {
        if checks.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<CheckMinuteArrays> = sql::checks_minutes(
            &self.client,
            checks,
            range.from - PRIOR_LOOKBACK_SECS,
            range.to,
        )
        .fetch_all()
        .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in rows {
            let Ok(id) = Uuid::parse_str(&r.key) else {
                continue;
            };
            let mut all: Vec<(u32, u8)> = r.minutes.into_iter().zip(r.failed).collect();
            all.sort_unstable();
            // One entry per minute, failed when any of its rows is.
            all.dedup_by(|later, first| {
                let same = later.0 == first.0;
                if same {
                    first.1 = first.1.max(later.1);
                }
                same
            });
            let split = all.partition_point(|(m, _)| i64::from(*m) < range.from);
            let runs = |(minute, failed): (u32, u8)| pulse_core::report::MinuteRuns {
                minute: i64::from(minute),
                made: 1,
                down: u64::from(failed),
            };
            let prior = split.checked_sub(1).map(|i| runs(all[i]));
            out.insert(
                id,
                CheckMinuteRuns {
                    minutes: all[split..].iter().copied().map(runs).collect(),
                    prior,
                },
            );
        }
        Ok(out)
    }

    /// Runs made and failed over each burn-rate window ending at `now`, for
    /// the given checks.
    pub async fn burn_counts(&self, checks: &[Uuid], now: DateTime<Utc>) -> Result<Vec<BurnRow>> {
        if checks.is_empty() {
            return Ok(Vec::new());
        }
        Ok(sql::burn_counts(&self.client, checks, now.timestamp())
            .fetch_all()
            .await?)
    }

    /// Loads generated runs straight into ClickHouse (benchmark, tests):
    /// `count` runs from run number `first` over `checks` checks (ids from
    /// [`generated_check_id`]), each check's runs `step` seconds apart from
    /// `from` (epoch seconds), spread over `locations` locations `loc-<i>`.
    #[allow(clippy::too_many_arguments)]
    pub async fn generate_runs(
        &self,
        checks: u64,
        first: u64,
        count: u64,
        from: i64,
        step: u32,
        locations: u32,
    ) -> Result<()> {
        sql::generate(
            &self.client,
            checks,
            first,
            count,
            from,
            step,
            locations.max(1),
        )
        .execute()
        .await?;
        Ok(())
    }

    /// Rollup retention: drops the rollups' monthly partitions (`yyyymm`)
    /// whose every day is older than `days` full days before today (so up
    /// to a month more is kept). Returns the (table, month) pairs dropped.
    /// Safe to run from several workers at once.
    pub async fn drop_rollup_partitions_older_than(
        &self,
        days: u32,
    ) -> Result<Vec<(&'static str, u32)>> {
        let mut dropped = Vec::new();
        for table in [MINUTE_TABLE, HOUR_TABLE, CHECKS_TABLE] {
            let partitions: Vec<String> =
                sql::old_months(&self.server, &self.database, table, days)
                    .fetch_all()
                    .await?;
            for partition in partitions {
                let Ok(month) = partition.parse::<u32>() else {
                    tracing::warn!(partition, "unexpected partition id, skipped");
                    continue;
                };
                crate::results::drop_partition_query(&self.client, table, month)
                    .execute()
                    .await?;
                dropped.push((table, month));
            }
        }
        Ok(dropped)
    }
}

/// Every statement reports send, each built in one place and used both by
/// the store and by [`scenario`].
mod sql {
    use super::*;

    fn columns() -> String {
        let mut cols = vec![
            "check_id UUID".to_string(),
            "location String".into(),
            "t DateTime".into(),
        ];
        for s in STATUSES {
            cols.push(format!("n_{s} AggregateFunction(countIf, UInt8)"));
        }
        for l in LATENCIES {
            cols.push(format!(
                "q_{l} AggregateFunction(quantilesTimingIf({LEVELS}), UInt32, UInt8)"
            ));
        }
        cols.join(", ")
    }

    /// Every check's hours, by time: counts, the whole run's percentiles
    /// and the sets of minutes with a run made and with a failed run
    /// (`uniqUpTo(60)`: exact within an hour; queries add hours up).
    pub(super) fn create_checks_rollup(client: &Client) -> Query {
        let mut cols = vec!["t DateTime".to_string(), "check_id UUID".into()];
        for s in STATUSES {
            cols.push(format!("n_{s} AggregateFunction(countIf, UInt8)"));
        }
        cols.push(format!(
            "q_latency_ms AggregateFunction(quantilesTimingIf({LEVELS}), UInt32, UInt8)"
        ));
        cols.push("minutes_made AggregateFunction(uniqUpToIf(60), UInt32, UInt8)".into());
        cols.push("minutes_down AggregateFunction(uniqUpToIf(60), UInt32, UInt8)".into());
        client.query(&format!(
            "CREATE TABLE IF NOT EXISTS {CHECKS_TABLE} ({}) ENGINE = AggregatingMergeTree() \
             PARTITION BY toYYYYMM(t) ORDER BY (t, check_id)",
            cols.join(", ")
        ))
    }

    pub(super) fn create_checks_view(client: &Client) -> Query {
        let minute = "toUInt32(intDiv(toUInt32(run_at), 60) * 60)";
        let mut cols = vec![
            "toDateTime(intDiv(toUInt32(run_at), 3600) * 3600) AS t".to_string(),
            "check_id".into(),
        ];
        for s in STATUSES {
            cols.push(format!("countIfState(status = '{s}') AS n_{s}"));
        }
        cols.push(format!(
            "quantilesTimingIfState({LEVELS})(latency_ms, {MADE}) AS q_latency_ms"
        ));
        cols.push(format!(
            "uniqUpToIfState(60)({minute}, {MADE}) AS minutes_made"
        ));
        cols.push(format!(
            "uniqUpToIfState(60)({minute}, {DOWN}) AS minutes_down"
        ));
        client.query(&format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {CHECKS_TABLE}_mv TO {CHECKS_TABLE} AS \
             SELECT {} FROM {TABLE} GROUP BY t, check_id",
            cols.join(", ")
        ))
    }

    /// Every check's counts and whole-run percentiles over whole hours
    /// `[from, to)`, one level of `-Merge` (minutes made and down are 0:
    /// [`all_checks_minutes`] counts them, at the same time).
    pub(super) fn all_checks(client: &Client, from: i64, to: i64) -> Query {
        client
            .query(&format!(
                "SELECT toString(check_id) AS key, {} FROM {CHECKS_TABLE} \
                 WHERE t >= ? AND t < ? GROUP BY key ORDER BY key",
                merged(false)
            ))
            .bind(from as u32)
            .bind(to as u32)
    }

    /// Every check's minutes with a run made and with a failed run over
    /// whole hours `[from, to)`: each hour's minute sets counted first (at
    /// most 60), then the hours added up.
    pub(super) fn all_checks_minutes(client: &Client, from: i64, to: i64) -> Query {
        client
            .query(&format!(
                "SELECT toString(check_id) AS key, sum(made) AS made, sum(down) AS down \
                 FROM (SELECT check_id, t, uniqUpToIfMerge(60)(minutes_made) AS made, \
                        uniqUpToIfMerge(60)(minutes_down) AS down \
                     FROM {CHECKS_TABLE} WHERE t >= ? AND t < ? GROUP BY check_id, t) \
                 GROUP BY key ORDER BY key"
            ))
            .bind(from as u32)
            .bind(to as u32)
    }

    /// A rollup table (both have the same columns; rows are minutes or hours).
    pub(super) fn create_rollup(client: &Client, table: &str) -> Query {
        client.query(&format!(
            "CREATE TABLE IF NOT EXISTS {table} ({}) ENGINE = AggregatingMergeTree() \
             PARTITION BY toYYYYMM(t) ORDER BY (check_id, location, t) \
             SETTINGS index_granularity = 256",
            columns()
        ))
    }

    /// The view that feeds `table` with `step`-second rows from the raw runs.
    pub(super) fn create_view(client: &Client, table: &str, step: u32) -> Query {
        let mut cols = vec![
            "check_id".to_string(),
            "location".into(),
            format!("toDateTime(intDiv(toUInt32(run_at), {step}) * {step}) AS t"),
        ];
        for s in STATUSES {
            cols.push(format!("countIfState(status = '{s}') AS n_{s}"));
        }
        for l in LATENCIES {
            cols.push(format!(
                "quantilesTimingIfState({LEVELS})({l}, {MADE}) AS q_{l}"
            ));
        }
        client.query(&format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_mv TO {table} AS SELECT {} \
             FROM {TABLE} GROUP BY check_id, location, t",
            cols.join(", ")
        ))
    }

    /// Active monthly partitions whose every day is before `today() - days`.
    pub(super) fn old_months(server: &Client, database: &str, table: &str, days: u32) -> Query {
        server
            .query(
                "SELECT DISTINCT partition FROM system.parts \
                 WHERE database = ? AND table = ? AND active \
                 AND toUInt32(partition) < toYYYYMM(today() - ?) ORDER BY partition",
            )
            .bind(database)
            .bind(table)
            .bind(days)
    }

    pub(super) fn ddl(client: &Client) -> Vec<Query> {
        vec![
            create_rollup(client, MINUTE_TABLE),
            create_rollup(client, HOUR_TABLE),
            create_view(client, MINUTE_TABLE, 60),
            create_view(client, HOUR_TABLE, 3600),
            create_checks_rollup(client),
            create_checks_view(client),
        ]
    }

    /// The `-Merge` select list, after the group key; without `phases`,
    /// the phases' percentiles are empty (`GET /stats` needs none).
    fn merged(phases: bool) -> String {
        let mut cols = Vec::new();
        for s in STATUSES {
            cols.push(format!("countIfMerge(n_{s}) AS {s}"));
        }
        for l in LATENCIES {
            if phases || l == "latency_ms" {
                // Float32 on some servers: one type on all.
                cols.push(format!(
                    "arrayMap(x -> toFloat64(x), quantilesTimingIfMerge({LEVELS})(q_{l})) AS {l}"
                ));
            } else {
                cols.push(format!("emptyArrayFloat64() AS {l}"));
            }
        }
        cols.push("toUInt64(0) AS minutes_made, toUInt64(0) AS minutes_down".into());
        cols.join(", ")
    }

    fn key(group: Group) -> &'static str {
        match group {
            Group::Overall => "''",
            Group::ByLocation => "location",
            Group::ByCheck => "toString(check_id)",
        }
    }

    /// `check_id = ? AND (? = 0 OR location = ?)`, or true for every check.
    fn scope_filter(scope: Scope<'_>) -> &'static str {
        match scope {
            Scope::Check(..) => "check_id = ? AND (? = 0 OR location = ?)",
            Scope::All => "1 = ?",
        }
    }

    fn bind_scope(q: Query, scope: Scope<'_>) -> Query {
        match scope {
            Scope::Check(check, location) => q
                .bind(check)
                .bind(u8::from(location.is_some()))
                .bind(location.unwrap_or_default()),
            Scope::All => q.bind(1u8),
        }
    }

    pub(super) fn aggregate(
        client: &Client,
        scope: Scope<'_>,
        group: Group,
        range: Range,
    ) -> Query {
        let f = scope_filter(scope);
        let (h_from, h_to) = range.hours();
        let q = client.query(&format!(
            "SELECT {key} AS key, {merged} FROM ( \
                SELECT * FROM {HOUR_TABLE} WHERE {f} AND t >= ? AND t < ? \
                UNION ALL \
                SELECT * FROM {MINUTE_TABLE} WHERE {f} \
                    AND ((t >= ? AND t < ?) OR (t >= ? AND t < ?))) \
             GROUP BY key ORDER BY key",
            key = key(group),
            merged = merged(group != Group::ByCheck),
        ));
        let q = bind_scope(q, scope).bind(h_from as u32).bind(h_to as u32);
        bind_scope(q, scope)
            .bind(range.from as u32)
            .bind(h_from as u32)
            .bind(h_to as u32)
            .bind(range.to as u32)
    }

    pub(super) fn series(
        client: &Client,
        check: Uuid,
        location: Option<&str>,
        range: Range,
        bucket: i64,
    ) -> Query {
        let table = if bucket >= 3600 {
            HOUR_TABLE
        } else {
            MINUTE_TABLE
        };
        let scope = Scope::Check(check, location);
        let q = client.query(&format!(
            "SELECT toString(intDiv(toUInt32(t), ?) * ?) AS key, {} FROM {table} \
             WHERE {} AND t >= ? AND t < ? \
             GROUP BY key ORDER BY toUInt32(key)",
            merged(true),
            scope_filter(scope)
        ));
        bind_scope(q.bind(bucket as u32).bind(bucket as u32), scope)
            .bind(range.from as u32)
            .bind(range.to as u32)
    }

    pub(super) fn status_hours(client: &Client, range: Range) -> Query {
        client
            .query(&format!(
                "SELECT check_id, groupArray(toUInt32(t)) AS hours, groupArray(success) AS success, \
                    groupArray(degraded) AS degraded, groupArray(down) AS down \
                 FROM (SELECT check_id, t, countIfMerge(n_success) AS success, \
                        countIfMerge(n_degraded) AS degraded, \
                        {DOWN_MERGED} AS down \
                     FROM {CHECKS_TABLE} WHERE t >= ? AND t < ? GROUP BY check_id, t \
                     ORDER BY check_id, t) \
                 GROUP BY check_id ORDER BY check_id"
            ))
            .bind(range.from as u32)
            .bind(range.to as u32)
    }

    /// Runs made and down per minute (and per check with `by_check`), from
    /// the minute table.
    fn per_minute(by_check: bool) -> String {
        let check = if by_check { "check_id, " } else { "" };
        let made = STATUSES
            .iter()
            .filter(|s| **s != "missed")
            .map(|s| format!("countIfMerge(n_{s})"))
            .collect::<Vec<_>>()
            .join(" + ");
        format!(
            "SELECT {check}toUInt32(t) AS minute, {made} AS made, \
                {DOWN_MERGED} AS down \
             FROM {MINUTE_TABLE}"
        )
    }

    pub(super) fn minutes(
        client: &Client,
        check: Uuid,
        location: Option<&str>,
        range: Range,
    ) -> Query {
        let scope = Scope::Check(check, location);
        let q = client.query(&format!(
            "{} WHERE {} AND t >= ? AND t < ? GROUP BY minute ORDER BY minute",
            per_minute(false),
            scope_filter(scope)
        ));
        bind_scope(q, scope)
            .bind(range.from as u32)
            .bind(range.to as u32)
    }

    pub(super) fn minute_before(
        client: &Client,
        check: Uuid,
        location: Option<&str>,
        from: i64,
    ) -> Query {
        let scope = Scope::Check(check, location);
        let q = client.query(&format!(
            "{} WHERE {} AND t >= ? AND t < ? \
             GROUP BY minute HAVING made > 0 ORDER BY minute DESC LIMIT 1",
            per_minute(false),
            scope_filter(scope)
        ));
        bind_scope(q, scope)
            .bind((from - PRIOR_LOOKBACK_SECS).max(0) as u32)
            .bind(from as u32)
    }

    /// `check_id IN (...)` for `checks` (UUIDs formatted by us, never user
    /// text: safe to inline).
    fn check_in(checks: &[Uuid]) -> String {
        let ids = checks
            .iter()
            .map(|c| format!("toUUID('{c}')"))
            .collect::<Vec<_>>()
            .join(", ");
        format!("check_id IN ({ids})")
    }

    /// The minutes with a run made of each of `checks` in `[from, to)`, one
    /// row per check: the minutes and, for each, whether a run in it
    /// failed. Each rollup row is finalized on its own (no `GROUP BY`
    /// over minutes, which costs a hash table of every minute): a minute
    /// may come more than once (locations, parts not merged yet) and in any
    /// order; [`ResultsStore::checks_minutes`] sorts and joins them.
    pub(super) fn checks_minutes(client: &Client, checks: &[Uuid], from: i64, to: i64) -> Query {
        let fin = |statuses: &[&str]| {
            statuses
                .iter()
                .map(|s| format!("finalizeAggregation(n_{s})"))
                .collect::<Vec<_>>()
                .join(" + ")
        };
        let made: Vec<&str> = STATUSES
            .iter()
            .copied()
            .filter(|s| *s != "missed")
            .collect();
        client
            .query(&format!(
                "SELECT toString(check_id) AS key, groupArray(minute) AS minutes, \
                    groupArray(failed) AS failed \
                 FROM (SELECT check_id, toUInt32(t) AS minute, {made} AS made, \
                        toUInt8(({down}) > 0) AS failed \
                     FROM {MINUTE_TABLE} WHERE {filter} AND t >= ? AND t < ?) \
                 WHERE made > 0 GROUP BY key ORDER BY key",
                made = fin(&made),
                down = fin(&["fail", "timeout", "error"]),
                filter = check_in(checks),
            ))
            .bind(from.max(0) as u32)
            .bind(to.max(0) as u32)
    }

    pub(super) fn burn_counts(client: &Client, checks: &[Uuid], now: i64) -> Query {
        let end = now.div_euclid(60) * 60 + 60;
        let starts: Vec<i64> = pulse_core::slo::BURN_WINDOWS
            .iter()
            .map(|(_, secs)| end - i64::from(*secs))
            .collect();
        let sums = |col: &str| {
            starts
                .iter()
                .map(|s| format!("sumIf({col}, minute >= {s})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let oldest = starts.iter().min().copied().unwrap_or(end);
        client
            .query(&format!(
                "SELECT toString(check_id) AS key, [{made}] AS made, [{down}] AS down FROM ( \
                    {per_minute} WHERE {filter} AND t >= ? AND t < ? \
                    GROUP BY check_id, minute) \
                 GROUP BY key ORDER BY key",
                made = sums("made"),
                down = sums("down"),
                per_minute = per_minute(true),
                filter = check_in(checks),
            ))
            .bind(oldest.max(0) as u32)
            .bind(end as u32)
    }

    /// Generated runs (benchmark, tests): run `n` (from `first`, `count` of
    /// them) is check `n % checks`'s run number `n / checks`, made at
    /// `from + (n / checks) * step` seconds, from location
    /// `loc-<(n / checks) % locations>`, with a status and latencies drawn
    /// from a hash of `n` (about 0.5% failing, 4.5% degraded, 0.1% missed).
    pub(super) fn generate(
        client: &Client,
        checks: u64,
        first: u64,
        count: u64,
        from: i64,
        step: u32,
        locations: u32,
    ) -> Query {
        let n = format!("(number + {first})");
        let slot = format!("intDiv({n}, {checks})");
        let at = format!("({from} + {slot} * {step})");
        let h = format!("intHash32({n})");
        let lat = format!("(intHash32({n} * 3) % 700 + if({h} % 10 = 0, 1200, 5))");
        client.query(&format!(
            "INSERT INTO {TABLE} (id, check_id, run_at, run_at_ms, scheduled_at_ms, status, \
                latency_ms, status_code, worker, dns_ms, connect_ms, tls_ms, ttfb_ms, download_ms, location) \
             SELECT generateUUIDv4(), \
                toUUID(concat('00000000-0000-4000-8000-', toString(100000000000 + {n} % {checks}))), \
                toDateTime({at}), {at} * 1000, {at} * 1000, \
                multiIf({h} % 1000 < 3, 'fail', {h} % 1000 < 4, 'timeout', {h} % 1000 < 5, 'error', \
                    {h} % 1000 < 6, 'missed', {h} % 1000 < 51, 'degraded', 'success'), \
                if({h} % 1000 = 5, 0, {lat}), 200, 'generated', \
                {lat} % 7, {lat} % 11, {lat} % 13, intDiv({lat}, 2), intDiv({lat}, 4), \
                concat('loc-', toString({slot} % {locations})) \
             FROM numbers({count})"
        ))
    }
}

/// The id of generated check `i` (see [`ResultsStore::generate_runs`]).
pub fn generated_check_id(i: u64) -> Uuid {
    Uuid::parse_str(&format!(
        "00000000-0000-4000-8000-{:012}",
        100_000_000_000 + i
    ))
    .unwrap_or_default()
}

/// The reports' steps of `results::compatibility_scenario`: the DDL (before
/// the rows are inserted, so the views roll them up) ...
pub(crate) fn scenario_ddl(c: &Client) -> Vec<Step> {
    let names = [
        "create_minute_rollup",
        "create_hour_rollup",
        "create_minute_view",
        "create_hour_view",
        "create_checks_rollup",
        "create_checks_view",
    ];
    names
        .into_iter()
        .zip(sql::ddl(c))
        .map(|(name, q)| step(name, q, false))
        .collect()
}

/// ... and every report query over the inserted rows (`check` has rows
/// from `now - 2 days` to `now`), and rollup retention.
pub(crate) fn scenario_queries(c: &Client, database: &str, check: Uuid, now: i64) -> Vec<Step> {
    let to = now.div_euclid(60) * 60 + 60;
    let day = Range {
        from: to - 86_400,
        to,
    };
    let week = Range {
        from: (to - 7 * 86_400).div_euclid(3600) * 3600 + 60,
        to,
    };
    let hours = Range {
        from: (to - 3 * 86_400).div_euclid(86_400) * 86_400,
        to: to.div_euclid(86_400) * 86_400 + 86_400,
    };
    let one = Scope::Check(check, None);
    let there = Scope::Check(check, Some("eu-west"));
    vec![
        step(
            "rollup_overall",
            sql::aggregate(c, one, Group::Overall, week),
            true,
        ),
        step(
            "rollup_by_location",
            sql::aggregate(c, there, Group::ByLocation, day),
            true,
        ),
        step(
            "rollup_by_check",
            sql::aggregate(c, Scope::All, Group::ByCheck, week),
            true,
        ),
        step(
            "rollup_all_checks",
            sql::all_checks(c, day.from.div_euclid(3600) * 3600, day.to),
            true,
        ),
        step(
            "rollup_all_checks_minutes",
            sql::all_checks_minutes(c, day.from.div_euclid(3600) * 3600, day.to),
            true,
        ),
        step(
            "rollup_series_minutes",
            sql::series(c, check, None, day, 300),
            true,
        ),
        step(
            "rollup_series_days",
            sql::series(c, check, Some("eu-west"), hours, 86_400),
            true,
        ),
        step("rollup_status_hours", sql::status_hours(c, hours), true),
        step("rollup_minutes", sql::minutes(c, check, None, week), true),
        step(
            "rollup_minute_before",
            sql::minute_before(c, check, None, to),
            true,
        ),
        step(
            "rollup_checks_minutes",
            sql::checks_minutes(c, &[check, Uuid::nil()], week.from, week.to),
            true,
        ),
        step(
            "rollup_burn_counts",
            sql::burn_counts(c, &[check, Uuid::nil()], now),
            true,
        ),
        step(
            "rollup_old_partitions",
            sql::old_months(c, database, MINUTE_TABLE, 1),
            true,
        ),
        step(
            "rollup_drop_partition",
            crate::results::drop_partition_query(c, HOUR_TABLE, 197001),
            false,
        ),
    ]
}

/// ... and last, generated runs and the figures of one generated check.
pub(crate) fn scenario_generated(c: &Client, now: i64) -> Vec<Step> {
    let from = now.div_euclid(86_400) * 86_400 - 86_400;
    let range = Range {
        from: from + 1800,
        to: from + 86_400 + 600,
    };
    let check = generated_check_id(1);
    vec![
        step(
            "generate_runs",
            sql::generate(c, 3, 0, 30_000, from, 17, 2),
            false,
        ),
        step(
            "generated_by_location",
            sql::aggregate(c, Scope::Check(check, None), Group::ByLocation, range),
            true,
        ),
        step(
            "generated_by_check",
            sql::aggregate(c, Scope::All, Group::ByCheck, range),
            true,
        ),
        step(
            "generated_all_checks",
            sql::all_checks(c, from, from + 86_400),
            true,
        ),
        step(
            "generated_all_checks_minutes",
            sql::all_checks_minutes(c, from, from + 86_400),
            true,
        ),
        step(
            "generated_series",
            sql::series(c, check, None, range, 3600),
            true,
        ),
    ]
}

fn step(name: &'static str, q: Query, answers: bool) -> Step {
    Step {
        name,
        sql: q.sql_display().to_string(),
        answers,
    }
}
