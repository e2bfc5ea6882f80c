//! The results outbox: `run_results` rows, written with each run's state,
//! moved to ClickHouse in batches by any worker.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::results::RunRow;
use crate::{Result, ResultsStore};

#[derive(Clone)]
pub struct ResultOutbox {
    pool: PgPool,
}

#[derive(FromRow)]
struct OutboxRow {
    id: Uuid,
    check_id: Uuid,
    run_at: DateTime<Utc>,
    scheduled_at_ms: i64,
    status: String,
    failure_reason: Option<String>,
    latency_ms: i32,
    status_code: i32,
    error: Option<String>,
    worker: String,
    attempts: i32,
}

impl From<OutboxRow> for RunRow {
    fn from(r: OutboxRow) -> RunRow {
        RunRow {
            id: r.id,
            check_id: r.check_id,
            run_at: r.run_at,
            run_at_ms: r.run_at.timestamp_millis(),
            scheduled_at_ms: r.scheduled_at_ms,
            status: r.status,
            failure_reason: r.failure_reason,
            latency_ms: r.latency_ms.max(0) as u32,
            status_code: r.status_code.clamp(0, u16::MAX as i32) as u16,
            error: r.error,
            worker: r.worker,
            attempts: r.attempts.clamp(0, 255) as u8,
        }
    }
}

impl ResultOutbox {
    pub fn new(pool: PgPool) -> ResultOutbox {
        ResultOutbox { pool }
    }

    /// Moves up to `limit` of the oldest results to ClickHouse. The rows are
    /// deleted in a transaction that commits only after the ClickHouse
    /// insert succeeded, so a failure (or a crash) leaves them for the next
    /// try; rows locked by another worker are skipped. Returns how many
    /// moved.
    pub async fn flush(&self, results: &ResultsStore, limit: i64) -> Result<usize> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "DELETE FROM run_results WHERE id IN ( \
                SELECT id FROM run_results ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
             RETURNING id, check_id, run_at, scheduled_at_ms, status, failure_reason, latency_ms, \
                status_code, error, worker, attempts",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let n = rows.len();
        let rows: Vec<RunRow> = rows.into_iter().map(Into::into).collect();
        results.insert(&rows).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Results waiting.
    pub async fn len(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM run_results")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Keeps at most `max` waiting results, dropping the oldest beyond it.
    /// Returns how many were dropped.
    pub async fn trim(&self, max: i64) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM run_results WHERE id IN ( \
                SELECT id FROM run_results ORDER BY created_at DESC OFFSET $1 \
                FOR UPDATE SKIP LOCKED)",
        )
        .bind(max)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}
