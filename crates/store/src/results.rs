//! Run results in ClickHouse: one `check_runs` table, written in batches,
//! in SQL that both ClickHouse 18.16 and current servers accept.
//!
//! Times are `DateTime` (seconds) plus an epoch-milliseconds column, since
//! `DateTime64` is unknown to old servers.

use chrono::{DateTime, Utc};
use clickhouse::Client;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::ClickHouseDsn;
use crate::Result;

pub const TABLE: &str = "check_runs";

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
}

/// A run as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub id: Uuid,
    pub check_id: Uuid,
    pub status: String,
    pub failure_reason: Option<String>,
    pub latency_ms: u32,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    #[serde(serialize_with = "pulse_core::time::ms")]
    pub run_at: DateTime<Utc>,
    #[serde(serialize_with = "pulse_core::time::ms")]
    pub scheduled_at: DateTime<Utc>,
    pub attempts: u8,
}

impl From<RunRow> for RunView {
    fn from(r: RunRow) -> RunView {
        let ms = |v: i64| DateTime::from_timestamp_millis(v).unwrap_or_default();
        RunView {
            id: r.id,
            check_id: r.check_id,
            status: r.status,
            failure_reason: r.failure_reason,
            latency_ms: r.latency_ms,
            status_code: (r.status_code != 0).then_some(r.status_code),
            error: r.error,
            run_at: ms(r.run_at_ms),
            scheduled_at: ms(r.scheduled_at_ms),
            attempts: r.attempts,
        }
    }
}

#[derive(Clone)]
pub struct ResultsStore {
    client: Client,
    server: Client,
    database: String,
}

impl ResultsStore {
    pub fn new(dsn: &ClickHouseDsn) -> ResultsStore {
        // Validation off: with it on, the crate sends a format and settings
        // that ClickHouse 18.16 rejects (see shared/CLICKHOUSE.md).
        let server = Client::default()
            .with_url(&dsn.url)
            .with_user(&dsn.user)
            .with_password(&dsn.password)
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
        self.server
            .query(&format!(
                "CREATE DATABASE IF NOT EXISTS `{}`",
                self.database
            ))
            .execute()
            .await?;
        self.client
            .query(&format!(
                "CREATE TABLE IF NOT EXISTS {TABLE} (
                    id UUID,
                    check_id UUID,
                    run_at DateTime,
                    run_at_ms Int64,
                    scheduled_at_ms Int64,
                    status String,
                    failure_reason Nullable(String),
                    latency_ms UInt32,
                    status_code UInt16,
                    error Nullable(String),
                    worker String,
                    attempts UInt8 DEFAULT 1
                ) ENGINE = MergeTree()
                PARTITION BY toYYYYMMDD(run_at)
                ORDER BY (check_id, run_at)"
            ))
            .execute()
            .await?;
        // Columns added after the first release: old servers lack
        // `ADD COLUMN IF NOT EXISTS`, so look in system.columns first.
        for (column, ty) in [("attempts", "UInt8 DEFAULT 1")] {
            let present: u64 = self
                .server
                .query("SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?")
                .bind(&self.database)
                .bind(TABLE)
                .bind(column)
                .fetch_one()
                .await?;
            if present == 0 {
                self.client
                    .query(&format!("ALTER TABLE {TABLE} ADD COLUMN {column} {ty}"))
                    .execute()
                    .await?;
            }
        }
        Ok(())
    }

    pub async fn ping(&self) -> Result<()> {
        self.server.query("SELECT 1").execute().await?;
        Ok(())
    }

    /// Writes rows in one insert.
    pub async fn insert(&self, rows: &[RunRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut insert = self.client.insert::<RunRow>(TABLE).await?;
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await?;
        Ok(())
    }

    /// Which of the given (check, result id) pairs are stored already.
    pub async fn existing(
        &self,
        pairs: &[(Uuid, Uuid)],
    ) -> Result<std::collections::HashSet<Uuid>> {
        #[derive(clickhouse::Row, Deserialize)]
        struct Id {
            #[serde(with = "clickhouse::serde::uuid")]
            id: Uuid,
        }
        // UUIDs are formatted by us, never user text: safe to inline.
        let list = |it: &mut dyn Iterator<Item = Uuid>| {
            it.map(|u| format!("toUUID('{u}')"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let checks = list(&mut pairs.iter().map(|p| p.0));
        let ids = list(&mut pairs.iter().map(|p| p.1));
        let found: Vec<Id> = self
            .client
            .query(&format!(
                "SELECT id FROM {TABLE} WHERE check_id IN ({checks}) AND id IN ({ids})"
            ))
            .fetch_all()
            .await?;
        Ok(found.into_iter().map(|r| r.id).collect())
    }

    /// A check's latest runs, newest first.
    pub async fn latest(&self, check_id: Uuid, limit: u32) -> Result<Vec<RunRow>> {
        Ok(self
            .client
            .query(&format!(
                "SELECT ?fields FROM {TABLE} WHERE check_id = ? \
                 ORDER BY run_at_ms DESC, id LIMIT ?"
            ))
            .bind(check_id)
            .bind(limit)
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
        limit: u32,
    ) -> Result<Vec<RunRow>> {
        let (before_ms, before_id) = before.unwrap_or((i64::MAX, Uuid::max()));
        Ok(self
            .client
            .query(&format!(
                "SELECT ?fields FROM {TABLE} WHERE check_id = ? \
                 AND run_at_ms >= ? AND run_at_ms < ? \
                 AND (run_at_ms < ? OR (run_at_ms = ? AND id < toUUID(?))) \
                 ORDER BY run_at_ms DESC, id DESC LIMIT ?"
            ))
            .bind(check_id)
            .bind(from_ms)
            .bind(to_ms)
            .bind(before_ms)
            .bind(before_ms)
            .bind(before_id.to_string())
            .bind(limit)
            .fetch_all()
            .await?)
    }

    /// Every run of a check since `since_ms`, oldest first (tests, benchmark).
    pub async fn since(&self, check_id: Uuid, since_ms: i64) -> Result<Vec<RunRow>> {
        Ok(self
            .client
            .query(&format!(
                "SELECT ?fields FROM {TABLE} WHERE check_id = ? AND run_at_ms >= ? \
                 ORDER BY run_at_ms"
            ))
            .bind(check_id)
            .bind(since_ms)
            .fetch_all()
            .await?)
    }
}
