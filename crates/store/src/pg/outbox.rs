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
    flushes: i32,
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

    /// Moves up to `limit` of the oldest results to ClickHouse, exactly
    /// once: rows are claimed (committed), inserted, then deleted. A crash
    /// or failure between insert and delete leaves them claimed; when the
    /// claim lapses they are flushed again, and rows flushed before are
    /// first looked up in ClickHouse and skipped if already there. Rows
    /// claimed by another worker are skipped. Returns how many moved.
    pub async fn flush(&self, results: &ResultsStore, limit: i64) -> Result<usize> {
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "UPDATE run_results SET claimed_until = now() + interval '30 seconds', \
                flushes = flushes + 1 \
             WHERE id = ANY(ARRAY( \
                SELECT id FROM run_results \
                WHERE claimed_until IS NULL OR claimed_until < now() \
                ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED)) \
             RETURNING id, check_id, run_at, scheduled_at_ms, status, failure_reason, latency_ms, \
                status_code, error, worker, attempts, flushes",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let retried: Vec<(Uuid, Uuid)> = rows
            .iter()
            .filter(|r| r.flushes > 1)
            .map(|r| (r.check_id, r.id))
            .collect();
        let sent = async {
            let already = if retried.is_empty() {
                Default::default()
            } else {
                results.existing(&retried).await?
            };
            let fresh: Vec<RunRow> = rows
                .into_iter()
                .filter(|r| !already.contains(&r.id))
                .map(Into::into)
                .collect();
            results.insert(&fresh).await
        }
        .await;
        if let Err(e) = sent {
            // Nothing was inserted (an insert is all or nothing): undo the
            // claim so the next tick retries at once and the rows still
            // count as never sent.
            let _ = sqlx::query(
                "UPDATE run_results SET claimed_until = NULL, flushes = flushes - 1 \
                 WHERE id = ANY($1)",
            )
            .bind(&ids)
            .execute(&self.pool)
            .await;
            return Err(e);
        }
        sqlx::query("DELETE FROM run_results WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&self.pool)
            .await?;
        Ok(ids.len())
    }

    /// Results waiting.
    pub async fn len(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM run_results")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Keeps at most `max` waiting results, dropping the oldest beyond it
    /// (among those never sent, which cannot be in ClickHouse already).
    /// Returns how many were dropped.
    pub async fn trim(&self, max: i64) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM run_results WHERE id IN ( \
                SELECT id FROM run_results WHERE flushes = 0 \
                ORDER BY created_at DESC OFFSET $1 FOR UPDATE SKIP LOCKED)",
        )
        .bind(max)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}
