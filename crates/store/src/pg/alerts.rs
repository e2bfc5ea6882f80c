//! Alerts, and the webhook outbox they form: recorded with the state change
//! that raised them, then claimed, delivered and marked by the alerter.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::Result;

#[derive(Clone)]
pub struct AlertStore {
    pool: PgPool,
}

/// An alert as `GET /checks/:id/alerts` shows it, delivery state included.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct AlertRecord {
    pub id: Uuid,
    pub check_id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub error: Option<String>,
    pub consecutive_fails: i32,
    pub payload: serde_json::Value,
    pub delivery_state: String,
    pub attempts: i32,
    pub last_response_code: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A delivery the alerter has claimed.
#[derive(Debug, Clone, FromRow)]
pub struct Delivery {
    pub id: Uuid,
    pub webhook_url: String,
    pub payload: serde_json::Value,
    pub attempts: i32,
}

/// How one delivery attempt went.
pub enum Attempt {
    Delivered {
        code: u16,
    },
    /// Retry at `retry_at`, or give up when `None`.
    Failed {
        code: Option<u16>,
        error: String,
        retry_at: Option<DateTime<Utc>>,
    },
}

impl AlertStore {
    pub fn new(pool: PgPool) -> AlertStore {
        AlertStore { pool }
    }

    /// A check's alerts, newest first.
    pub async fn for_check(&self, check_id: Uuid, limit: i64) -> Result<Vec<AlertRecord>> {
        Ok(sqlx::query_as(
            "SELECT id, check_id, kind, status, error, consecutive_fails, payload, delivery_state, \
                attempts, last_response_code, last_error, delivered_at, created_at \
             FROM alerts WHERE check_id = $1 ORDER BY created_at DESC, id LIMIT $2",
        )
        .bind(check_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Claims up to `limit` pending deliveries that are due. Each claim
    /// counts an attempt and pushes `next_attempt_at` out by `claim_secs`, so
    /// a crashed alerter's claim is retried later by any alerter.
    pub async fn claim_deliveries(&self, limit: i64, claim_secs: i64) -> Result<Vec<Delivery>> {
        Ok(sqlx::query_as(
            "UPDATE alerts a SET attempts = a.attempts + 1, \
                next_attempt_at = now() + $2 * interval '1 second' \
             WHERE a.id IN ( \
                SELECT id FROM alerts WHERE delivery_state = 'pending' AND next_attempt_at <= now() \
                ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
             RETURNING a.id, a.webhook_url, a.payload, a.attempts",
        )
        .bind(limit)
        .bind(claim_secs as f64)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn record_attempt(&self, id: Uuid, attempt: &Attempt) -> Result<()> {
        match attempt {
            Attempt::Delivered { code } => {
                sqlx::query(
                    "UPDATE alerts SET delivery_state = 'delivered', delivered_at = now(), \
                        last_response_code = $2, last_error = NULL WHERE id = $1",
                )
                .bind(id)
                .bind(i32::from(*code))
                .execute(&self.pool)
                .await?;
            }
            Attempt::Failed {
                code,
                error,
                retry_at,
            } => {
                sqlx::query(
                    "UPDATE alerts SET last_response_code = $2, last_error = $3, \
                        delivery_state = CASE WHEN $4::timestamptz IS NULL THEN 'failed' ELSE 'pending' END, \
                        next_attempt_at = COALESCE($4, next_attempt_at) WHERE id = $1",
                )
                .bind(id)
                .bind(code.map(i32::from))
                .bind(error)
                .bind(retry_at)
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }
}
