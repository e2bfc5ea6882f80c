//! Run results in ClickHouse: one `check_runs` table, written in batches,
//! in SQL that both ClickHouse 18.16 and current servers accept.
//!
//! Times are `DateTime` (seconds) plus an epoch-milliseconds column, since
//! `DateTime64` is unknown to old servers.

use chrono::{DateTime, Utc};
use clickhouse::query::Query;
use clickhouse::{Client, Row};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::ClickHouseDsn;
use crate::Result;

pub const TABLE: &str = "check_runs";

/// The table's columns as first released, in `RunRow` order.
const COLUMNS: &[(&str, &str)] = &[
    ("id", "UUID"),
    ("check_id", "UUID"),
    ("run_at", "DateTime"),
    ("run_at_ms", "Int64"),
    ("scheduled_at_ms", "Int64"),
    ("status", "String"),
    ("failure_reason", "Nullable(String)"),
    ("latency_ms", "UInt32"),
    ("status_code", "UInt16"),
    ("error", "Nullable(String)"),
    ("worker", "String"),
];

/// Columns added after the first release: old servers lack `ADD COLUMN IF
/// NOT EXISTS`, so `migrate` looks in system.columns first.
const ADDED_COLUMNS: &[(&str, &str)] = &[
    ("attempts", "UInt8 DEFAULT 1"),
    ("dns_ms", "UInt32 DEFAULT 0"),
    ("connect_ms", "UInt32 DEFAULT 0"),
    ("tls_ms", "UInt32 DEFAULT 0"),
    ("ttfb_ms", "UInt32 DEFAULT 0"),
    ("download_ms", "UInt32 DEFAULT 0"),
    ("details", "String DEFAULT '{}'"),
    ("location", "String DEFAULT 'default'"),
];

/// One run, as stored.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
pub struct RunRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub check_id: Uuid,
    /// When the run started (seconds; see `run_at_ms`).
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub run_at: DateTime<Utc>,
    pub run_at_ms: i64,
    /// The due time of the slot this run served.
    pub scheduled_at_ms: i64,
    pub status: String,
    pub failure_reason: Option<String>,
    pub latency_ms: u32,
    /// 0 when no response arrived.
    pub status_code: u16,
    pub error: Option<String>,
    pub worker: String,
    /// Attempts made (1 plus retries used).
    pub attempts: u8,
    /// Where the time went (0 for runs that made no request).
    pub dns_ms: u32,
    pub connect_ms: u32,
    pub tls_ms: u32,
    pub ttfb_ms: u32,
    pub download_ms: u32,
    /// The rest of the run as JSON (`pulse_core::run::RunDetails`):
    /// assertion outcomes, a failed response's excerpt, the certificate.
    pub details: String,
    /// Where the run was made from (`LOCATION` of its worker).
    pub location: String,
}

impl RunRow {
    /// The phase columns and details of a run from its details JSON, the
    /// other fields empty (fill them with `..`).
    pub fn with_details(details: Option<String>) -> RunRow {
        let parsed: pulse_core::run::RunDetails = details
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_default();
        let p = parsed.phases.unwrap_or_default();
        RunRow {
            id: Uuid::nil(),
            check_id: Uuid::nil(),
            run_at: DateTime::default(),
            run_at_ms: 0,
            scheduled_at_ms: 0,
            status: String::new(),
            failure_reason: None,
            latency_ms: 0,
            status_code: 0,
            error: None,
            worker: String::new(),
            attempts: 0,
            dns_ms: p.dns_ms,
            connect_ms: p.connect_ms,
            tls_ms: p.tls_ms,
            ttfb_ms: p.ttfb_ms,
            download_ms: p.download_ms,
            details: details.unwrap_or_else(|| "{}".into()),
            location: pulse_core::location::DEFAULT_LOCATION.into(),
        }
    }

    /// The details JSON, parsed.
    pub fn details(&self) -> pulse_core::run::RunDetails {
        serde_json::from_str(&self.details).unwrap_or_default()
    }
}

#[derive(Clone)]
pub struct ResultsStore {
    pub(crate) client: Client,
    pub(crate) server: Client,
    pub(crate) database: String,
}

impl ResultsStore {
    pub fn new(dsn: &ClickHouseDsn) -> ResultsStore {
        // Validation off: with it on, the crate sends a format and settings
        // that ClickHouse 18.16 rejects (see "ClickHouse compatibility" in
        // docs/architecture.md).
        let server = Client::default()
            .with_url(&dsn.url)
            .with_user(&dsn.user)
            .with_password(dsn.password.expose_secret())
            .with_validation(false);
        ResultsStore {
            client: server.clone().with_database(&dsn.database),
            server,
            database: dsn.database.clone(),
        }
    }

    /// Creates the database and table when missing. Idempotent, and safe
    /// when several processes start together.
    pub async fn migrate(&self) -> Result<()> {
        sql::create_database(&self.server, &self.database)
            .execute()
            .await?;
        let all: Vec<_> = COLUMNS.iter().chain(ADDED_COLUMNS).copied().collect();
        sql::create_table(&self.client, TABLE, &all)
            .execute()
            .await?;
        for &(column, ty) in ADDED_COLUMNS {
            let present: u64 = sql::column_present(&self.server, &self.database, TABLE, column)
                .fetch_one()
                .await?;
            if present == 0 {
                sql::add_column(&self.client, TABLE, column, ty)
                    .execute()
                    .await?;
            }
        }
        self.migrate_rollups().await
    }

    pub async fn ping(&self) -> Result<()> {
        sql::ping(&self.server).execute().await?;
        Ok(())
    }

    /// Writes rows in one insert.
    pub async fn insert(&self, rows: &[RunRow]) -> Result<()> {
        self.insert_as(rows, None).await
    }

    /// [`insert`](Self::insert) under the given ClickHouse `query_id`
    /// (`None`: one of ClickHouse's own), so that another process can tell
    /// whether it is still running ([`insert_running`](Self::insert_running)).
    pub async fn insert_as(&self, rows: &[RunRow], query_id: Option<&str>) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut insert = self.client.insert::<RunRow>(TABLE).await?;
        if let Some(id) = query_id {
            insert = insert.with_setting("query_id", id);
        }
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await?;
        Ok(())
    }

    /// Whether a query with this `query_id` is running on the server now.
    /// ClickHouse refuses a second query under the id of a running one
    /// (error 216, `QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING`): a trivial
    /// query under it answers.
    pub async fn insert_running(&self, query_id: &str) -> Result<bool> {
        match sql::ping(&self.server)
            .with_setting("query_id", query_id)
            .execute()
            .await
        {
            Ok(()) => Ok(false),
            Err(clickhouse::error::Error::BadResponse(m)) if m.contains("Code: 216") => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    /// The database this store writes to.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Which of the given (check, result id) pairs are stored already.
    /// Asked 1,000 pairs a query (the ids are inlined; ClickHouse caps a
    /// query's size).
    pub async fn existing(
        &self,
        pairs: &[(Uuid, Uuid)],
    ) -> Result<std::collections::HashSet<Uuid>> {
        #[derive(clickhouse::Row, Deserialize)]
        struct Id {
            #[serde(with = "clickhouse::serde::uuid")]
            id: Uuid,
        }
        let mut out = std::collections::HashSet::new();
        for chunk in pairs.chunks(1000) {
            let found: Vec<Id> = sql::existing(&self.client, chunk).fetch_all().await?;
            out.extend(found.into_iter().map(|r| r.id));
        }
        Ok(out)
    }

    /// A check's latest runs, newest first.
    pub async fn latest(&self, check_id: Uuid, limit: u32) -> Result<Vec<RunRow>> {
        Ok(sql::latest(&self.client, check_id, limit)
            .fetch_all()
            .await?)
    }

    /// A page of a check's runs, newest first: started in `[from_ms,
    /// to_ms)`, and before `before` (the last run of the previous page, as
    /// start time and id) when given.
    pub async fn page(
        &self,
        check_id: Uuid,
        from_ms: i64,
        to_ms: i64,
        before: Option<(i64, Uuid)>,
        location: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunRow>> {
        Ok(sql::page(
            &self.client,
            check_id,
            from_ms,
            to_ms,
            before,
            location,
            limit,
        )
        .fetch_all()
        .await?)
    }

    /// Every run of a check since `since_ms`, oldest first (tests, benchmark).
    pub async fn since(&self, check_id: Uuid, since_ms: i64) -> Result<Vec<RunRow>> {
        Ok(sql::since(&self.client, check_id, since_ms)
            .fetch_all()
            .await?)
    }

    /// Retention: drops the daily partitions of days before `today - days`
    /// (the server's today, as the partition key uses the server's time
    /// zone), so runs are kept `days` full days plus today. Returns the
    /// partitions dropped (`yyyymmdd`). Safe to run from several workers at
    /// once: dropping a partition already gone does nothing.
    pub async fn drop_partitions_older_than(&self, days: u32) -> Result<Vec<u32>> {
        let partitions: Vec<String> =
            sql::old_partitions(&self.server, &self.database, TABLE, days)
                .fetch_all()
                .await?;
        let mut dropped = Vec::new();
        for partition in partitions {
            // Our key is toYYYYMMDD: anything else is not ours to drop.
            let Ok(day) = partition.parse::<u32>() else {
                tracing::warn!(partition, "unexpected partition id, skipped");
                continue;
            };
            sql::drop_partition(&self.client, TABLE, day)
                .execute()
                .await?;
            dropped.push(day);
        }
        Ok(dropped)
    }
}

/// Every statement the store sends, each built in one place and used both by
/// the store and by [`compatibility_scenario`].
mod sql {
    use super::*;

    /// The columns of `RunRow`, as the crate's `?fields` writes them.
    pub(super) fn fields() -> String {
        RunRow::COLUMN_NAMES
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub(super) fn create_database(server: &Client, database: &str) -> Query {
        server.query(&format!("CREATE DATABASE IF NOT EXISTS `{database}`"))
    }

    pub(super) fn create_table(client: &Client, table: &str, columns: &[(&str, &str)]) -> Query {
        let columns = columns
            .iter()
            .map(|(name, ty)| format!("{name} {ty}"))
            .collect::<Vec<_>>()
            .join(", ");
        client.query(&format!(
            "CREATE TABLE IF NOT EXISTS {table} ({columns}) ENGINE = MergeTree() \
             PARTITION BY toYYYYMMDD(run_at) ORDER BY (check_id, run_at)"
        ))
    }

    pub(super) fn column_present(
        server: &Client,
        database: &str,
        table: &str,
        column: &str,
    ) -> Query {
        server
            .query(
                "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?",
            )
            .bind(database)
            .bind(table)
            .bind(column)
    }

    pub(super) fn add_column(client: &Client, table: &str, column: &str, ty: &str) -> Query {
        client.query(&format!("ALTER TABLE {table} ADD COLUMN {column} {ty}"))
    }

    pub(super) fn ping(server: &Client) -> Query {
        server.query("SELECT 1")
    }

    pub(super) fn existing(client: &Client, pairs: &[(Uuid, Uuid)]) -> Query {
        // UUIDs are formatted by us, never user text: safe to inline.
        let list = |it: &mut dyn Iterator<Item = Uuid>| {
            it.map(|u| format!("toUUID('{u}')"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let checks = list(&mut pairs.iter().map(|p| p.0));
        let ids = list(&mut pairs.iter().map(|p| p.1));
        client.query(&format!(
            "SELECT id FROM {TABLE} WHERE check_id IN ({checks}) AND id IN ({ids})"
        ))
    }

    pub(super) fn latest(client: &Client, check_id: Uuid, limit: u32) -> Query {
        client
            .query(&format!(
                "SELECT {} FROM {TABLE} WHERE check_id = ? ORDER BY run_at_ms DESC, id LIMIT ?",
                fields()
            ))
            .bind(check_id)
            .bind(limit)
    }

    pub(super) fn page(
        client: &Client,
        check_id: Uuid,
        from_ms: i64,
        to_ms: i64,
        before: Option<(i64, Uuid)>,
        location: Option<&str>,
        limit: u32,
    ) -> Query {
        let (before_ms, before_id) = before.unwrap_or((i64::MAX, Uuid::max()));
        client
            .query(&format!(
                "SELECT {} FROM {TABLE} WHERE check_id = ? \
                 AND run_at_ms >= ? AND run_at_ms < ? \
                 AND (run_at_ms < ? OR (run_at_ms = ? AND id < toUUID(?))) \
                 AND (? = 0 OR location = ?) \
                 ORDER BY run_at_ms DESC, id DESC LIMIT ?",
                fields()
            ))
            .bind(check_id)
            .bind(from_ms)
            .bind(to_ms)
            .bind(before_ms)
            .bind(before_ms)
            .bind(before_id.to_string())
            .bind(u8::from(location.is_some()))
            .bind(location.unwrap_or_default())
            .bind(limit)
    }

    pub(super) fn since(client: &Client, check_id: Uuid, since_ms: i64) -> Query {
        client
            .query(&format!(
                "SELECT {} FROM {TABLE} WHERE check_id = ? AND run_at_ms >= ? ORDER BY run_at_ms",
                fields()
            ))
            .bind(check_id)
            .bind(since_ms)
    }

    /// Active partitions of days before `today() - days`, oldest first.
    pub(super) fn old_partitions(server: &Client, database: &str, table: &str, days: u32) -> Query {
        server
            .query(
                "SELECT DISTINCT partition FROM system.parts \
                 WHERE database = ? AND table = ? AND active \
                 AND toUInt32(partition) < toYYYYMMDD(today() - ?) ORDER BY partition",
            )
            .bind(database)
            .bind(table)
            .bind(days)
    }

    pub(super) fn drop_partition(client: &Client, table: &str, day: u32) -> Query {
        client.query(&format!("ALTER TABLE {table} DROP PARTITION {day}"))
    }
}

pub(crate) fn drop_partition_query(c: &Client, table: &str, day: u32) -> Query {
    sql::drop_partition(c, table, day)
}

/// One step of [`compatibility_scenario`].
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: &'static str,
    /// The statement as sent, arguments bound.
    pub sql: String,
    /// Whether it returns rows to compare across servers.
    pub answers: bool,
}

/// Every ClickHouse statement Pulse sends, with sample arguments, in an
/// order that runs on an empty server: the DDL (and the upgrade path of an
/// added column), an insert of `rows`, each query, retention. Built by the
/// same functions the store uses, so a check that runs these on another
/// ClickHouse release (scripts/chdb-check.py) cannot drift from the code.
/// Statements run in `database` (the DDL names it; run the rest there).
///
/// The `insert` step is the rows as `VALUES` with the crate's column list;
/// the store itself sends them as `RowBinary` with the same columns.
pub fn compatibility_scenario(database: &str, rows: &[RunRow]) -> Vec<Step> {
    let c = Client::default();
    let step = |name, q: Query, answers| Step {
        name,
        sql: q.sql_display().to_string(),
        answers,
    };
    let first_release = "check_runs_upgrade";
    let all: Vec<_> = COLUMNS.iter().chain(ADDED_COLUMNS).copied().collect();
    let check = rows.first().map(|r| r.check_id).unwrap_or_default();
    let mut steps = vec![
        step("ping", sql::ping(&c), true),
        step("create_database", sql::create_database(&c, database), false),
        step("create_table", sql::create_table(&c, TABLE, &all), false),
        step(
            "create_table_again",
            sql::create_table(&c, TABLE, &all),
            false,
        ),
        step(
            "column_present",
            sql::column_present(&c, database, TABLE, "attempts"),
            true,
        ),
        step(
            "create_table_first_release",
            sql::create_table(&c, first_release, COLUMNS),
            false,
        ),
    ];
    for &(column, ty) in ADDED_COLUMNS {
        steps.push(step(
            "column_missing",
            sql::column_present(&c, database, first_release, column),
            true,
        ));
        steps.push(step(
            "add_column",
            sql::add_column(&c, first_release, column, ty),
            false,
        ));
        steps.push(step(
            "column_added",
            sql::column_present(&c, database, first_release, column),
            true,
        ));
    }
    steps.extend(crate::reports::scenario_ddl(&c));
    steps.push(Step {
        name: "insert",
        sql: insert_values(rows),
        answers: false,
    });
    let pairs: Vec<_> = rows.iter().map(|r| (r.check_id, r.id)).collect();
    steps.extend([
        step("existing", sql::existing(&c, &pairs), true),
        step(
            "existing_none",
            sql::existing(&c, &[(check, Uuid::nil())]),
            true,
        ),
        step("latest", sql::latest(&c, check, 1000), true),
        step("latest_limited", sql::latest(&c, check, 1), true),
        step("since", sql::since(&c, check, 0), true),
        step(
            "page",
            sql::page(&c, check, 0, i64::MAX, None, None, 2),
            true,
        ),
        step(
            "page_in_location",
            sql::page(&c, check, 0, i64::MAX, None, Some("eu-west"), 1000),
            true,
        ),
        step(
            "page_after",
            sql::page(
                &c,
                check,
                0,
                i64::MAX,
                rows.get(1).map(|r| (r.run_at_ms, r.id)),
                None,
                1000,
            ),
            true,
        ),
        step(
            "old_partitions",
            sql::old_partitions(&c, database, TABLE, 30),
            true,
        ),
    ]);
    let newest = rows.iter().map(|r| r.run_at.timestamp()).max().unwrap_or(0);
    steps.extend(crate::reports::scenario_queries(
        &c, database, check, newest,
    ));
    // Drop every day that has rows (as retention would after enough time),
    // twice, plus a day that never had any: all must be harmless.
    let mut days: Vec<u32> = rows
        .iter()
        .map(|r| r.run_at.format("%Y%m%d").to_string().parse().unwrap_or(0))
        .collect();
    days.sort_unstable();
    days.dedup();
    if let Some(&oldest) = days.first() {
        steps.push(step(
            "drop_partition",
            sql::drop_partition(&c, TABLE, oldest),
            false,
        ));
        steps.push(step(
            "drop_partition_again",
            sql::drop_partition(&c, TABLE, oldest),
            false,
        ));
    }
    steps.extend([
        step(
            "drop_partition_never_used",
            sql::drop_partition(&c, TABLE, 19700102),
            false,
        ),
        step(
            "old_partitions_after_drop",
            sql::old_partitions(&c, database, TABLE, 30),
            true,
        ),
        step("since_after_drop", sql::since(&c, check, 0), true),
        step("existing_after_drop", sql::existing(&c, &pairs), true),
    ]);
    steps.extend(crate::reports::scenario_generated(&c, newest));
    steps
}

/// `rows` as one `INSERT ... VALUES` with `RunRow`'s columns.
fn insert_values(rows: &[RunRow]) -> String {
    let text = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    let opt = |v: &Option<String>| v.as_deref().map_or("NULL".to_string(), text);
    let values = rows
        .iter()
        .map(|r| {
            format!(
                "(toUUID('{}'), toUUID('{}'), toDateTime({}), {}, {}, {}, {}, {}, {}, {}, {}, {}, \
                 {}, {}, {}, {}, {}, {}, {})",
                r.id,
                r.check_id,
                r.run_at.timestamp(),
                r.run_at_ms,
                r.scheduled_at_ms,
                text(&r.status),
                opt(&r.failure_reason),
                r.latency_ms,
                r.status_code,
                opt(&r.error),
                text(&r.worker),
                r.attempts,
                r.dns_ms,
                r.connect_ms,
                r.tls_ms,
                r.ttfb_ms,
                r.download_ms,
                text(&r.details),
                text(&r.location)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("INSERT INTO {TABLE} ({}) VALUES {values}", sql::fields())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_the_row_columns_in_the_row_order() {
        let table: Vec<&str> = COLUMNS
            .iter()
            .chain(ADDED_COLUMNS)
            .map(|(name, _)| *name)
            .collect();
        assert_eq!(table, RunRow::COLUMN_NAMES);
    }
}
