//! The results outbox: `run_result_batches` rows (each the results of one
//! state write, as parallel arrays), written with each batch of runs'
//! state, moved to ClickHouse in batches by one worker at a time.

use std::time::Duration;

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
    seq: i64,
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
    details: Option<String>,
    location: Option<String>,
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
            location: r
                .location
                .unwrap_or_else(|| pulse_core::location::DEFAULT_LOCATION.into()),
            ..RunRow::with_details(r.details)
        }
    }
}

/// The advisory lock a flush holds for its transaction: one flusher at a
/// time, so rows need no claim of their own.
const FLUSH_LOCK: i64 = 0x7075_6c73_655f_6f62; // "pulse_ob"

/// How old the sent mark must be before rows at or below it are looked up
/// in ClickHouse and re-sent: longer than an insert that reached ClickHouse
/// just before its flusher died takes to land.
pub const RETRY_GRACE: Duration = Duration::from_secs(5);

impl ResultOutbox {
    pub fn new(pool: PgPool) -> ResultOutbox {
        ResultOutbox { pool }
    }

    /// A transaction holding [`FLUSH_LOCK`], or `None` when another worker
    /// holds it.
    async fn lock(&self) -> Result<Option<sqlx::Transaction<'static, sqlx::Postgres>>> {
        let mut tx = self.pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(FLUSH_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        Ok(locked.then_some(tx))
    }

    /// Moves up to `limit` of the oldest results to ClickHouse, exactly
    /// once. One flusher at a time: the rows are read and later deleted in
    /// one transaction that holds [`FLUSH_LOCK`]; if another worker holds
    /// it, this returns 0 at once (that worker moves everything). Before
    /// the insert, the highest sequence sent is committed in
    /// `run_results_sent`; a crash or failure between insert and delete
    /// leaves the rows at or below that mark, and the next flush first
    /// looks those up in ClickHouse and skips the ones already there.
    /// Returns how many moved.
    pub async fn flush(&self, results: &ResultsStore, limit: i64) -> Result<usize> {
        self.flush_paced(results, limit, Duration::ZERO).await
    }

    /// [`flush`](Self::flush), paced across every worker: moves results
    /// only when the last move (by any worker) was at least `every` ago, or
    /// when `limit` results are waiting. Returns 0 when it is not yet due.
    pub async fn flush_paced(
        &self,
        results: &ResultsStore,
        limit: i64,
        every: Duration,
    ) -> Result<usize> {
        let Some(mut tx) = self.lock().await? else {
            return Ok(0);
        };
        let (sent_upto, marked_ago, due): (i64, f64, bool) = sqlx::query_as(
            "SELECT upto, extract(epoch FROM now() - marked_at)::float8, \
                flushed_at <= now() - make_interval(secs => $1) FROM run_results_sent",
        )
        .bind(every.as_secs_f64())
        .fetch_one(&mut *tx)
        .await?;
        if !due && Self::waiting(&mut *tx).await? < limit {
            return Ok(0);
        }
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT b.seq, r.* FROM ( \
                SELECT * FROM ( \
                    SELECT f.*, sum(cardinality(f.ids)) OVER (ORDER BY f.seq) AS total \
                    FROM (SELECT * FROM run_result_batches ORDER BY seq LIMIT $1) f) w \
                WHERE total - cardinality(ids) < $1) b, \
             unnest(b.ids, b.check_ids, b.run_at, b.scheduled_at_ms, b.status, b.failure_reason, \
                b.latency_ms, b.status_code, b.error, b.worker, b.attempts, \
                COALESCE(b.details, '{}'::text[]), COALESCE(b.location, '{}'::text[])) \
                AS r(id, check_id, run_at, scheduled_at_ms, status, failure_reason, latency_ms, \
                    status_code, error, worker, attempts, details, location) \
             ORDER BY b.seq",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.iter().map(|r| r.seq).max() else {
            return Ok(0);
        };
        let retried: Vec<(Uuid, Uuid)> = rows
            .iter()
            .filter(|r| r.seq <= sent_upto)
            .map(|r| (r.check_id, r.id))
            .collect();
        // Rows at or below the mark were maybe sent by a flusher that died
        // or failed. Its insert may still be running in ClickHouse (its
        // lock went with its connection; ClickHouse finishes an insert it
        // has read whole): look them up only once that insert is over and
        // the mark is `RETRY_GRACE` old.
        if !retried.is_empty()
            && (marked_ago < RETRY_GRACE.as_secs_f64()
                || results
                    .insert_running(&self.query_id(results, sent_upto))
                    .await?)
        {
            return Ok(0);
        }
        if last > sent_upto {
            // Committed at once (not in `tx`): it must outlive a crash
            // during the insert.
            Self::mark_sent(&self.pool, last).await?;
        }
        let moved = rows.len();
        let mut seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
        seqs.dedup();
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
            results
                .insert_as(&fresh, Some(&self.query_id(results, last)))
                .await
        }
        .await;
        if let Err(e) = sent {
            // Nothing was inserted (an insert is all or nothing): lower the
            // mark again so the rows still count as never sent.
            if last > sent_upto {
                let _ = Self::mark_sent(&self.pool, sent_upto).await;
            }
            return Err(e);
        }
        sqlx::query("DELETE FROM run_result_batches WHERE seq = ANY($1)")
            .bind(&seqs)
            .execute(&mut *tx)
            .await?;
        // After `mark_sent` (another connection) updated the same row.
        sqlx::query("UPDATE run_results_sent SET flushed_at = now()")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(moved)
    }

    /// The ClickHouse `query_id` of the insert that sends the rows up to
    /// the mark `upto`: a later flusher asks whether it is still running.
    pub fn query_id(&self, results: &ResultsStore, upto: i64) -> String {
        format!("pulse-outbox-{}-{upto}", results.database())
    }

    async fn mark_sent(pool: &PgPool, upto: i64) -> Result<()> {
        sqlx::query("UPDATE run_results_sent SET upto = $1, marked_at = now()")
            .bind(upto)
            .execute(pool)
            .await?;
        Ok(())
    }

    /// Results waiting.
    pub async fn len(&self) -> Result<i64> {
        Self::waiting(&self.pool).await
    }

    async fn waiting<'e>(db: impl sqlx::PgExecutor<'e>) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(sum(cardinality(ids)), 0)::bigint FROM run_result_batches",
        )
        .fetch_one(db)
        .await?)
    }

    /// Keeps at most `max` waiting results, dropping the oldest beyond it
    /// (among those never sent, which cannot be in ClickHouse already),
    /// whole written batches at a time.
    /// Holds the flush lock, so no flush is sending meanwhile; if another
    /// worker is flushing, drops nothing. Returns how many were dropped.
    pub async fn trim(&self, max: i64) -> Result<u64> {
        let Some(mut tx) = self.lock().await? else {
            return Ok(0);
        };
        let dropped: i64 = sqlx::query_scalar(
            "WITH dropped AS ( \
                DELETE FROM run_result_batches WHERE seq IN ( \
                    SELECT seq FROM ( \
                        SELECT seq, sum(cardinality(ids)) OVER (ORDER BY seq DESC) AS newer \
                        FROM run_result_batches \
                        WHERE seq > (SELECT upto FROM run_results_sent)) t \
                    WHERE newer > $1) \
                RETURNING cardinality(ids) AS n) \
             SELECT COALESCE(sum(n), 0)::bigint FROM dropped",
        )
        .bind(max)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(dropped.max(0) as u64)
    }
}
