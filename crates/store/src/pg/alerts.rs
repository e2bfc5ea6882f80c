//! Alerts, and the webhook outbox they form: recorded with the state change
//! that raised them, then claimed, delivered and marked by the alerter.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use pulse_core::delivery::DeliveryState;
use pulse_core::webhook::WebhookKey;
use pulse_core::AlertKind;

use crate::Result;

#[derive(Clone)]
pub struct AlertStore {
    pool: PgPool,
}

/// An alert with its delivery state, as stored.
#[derive(Debug, Clone, FromRow)]
pub struct AlertRecord {
    pub id: Uuid,
    pub check_id: Uuid,
    pub kind: AlertKind,
    pub status: String,
    pub error: Option<String>,
    pub consecutive_fails: i32,
    pub payload: serde_json::Value,
    pub delivery_state: DeliveryState,
    pub attempts: i32,
    pub last_response_code: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Every delivery attempt, oldest first: `attempt`, `attempted_at`,
    /// `response_code`, `error`, `duration_ms`.
    pub deliveries: serde_json::Value,
}

/// A delivery the alerter has claimed.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: Uuid,
    pub webhook_url: String,
    pub payload: serde_json::Value,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    /// The check's own signing key, if it has one.
    pub webhook_secret: Option<WebhookKey>,
}

#[derive(FromRow)]
struct DeliveryRow {
    id: Uuid,
    webhook_url: String,
    payload: serde_json::Value,
    attempts: i32,
    created_at: DateTime<Utc>,
    webhook_secret: Option<String>,
}

impl From<DeliveryRow> for Delivery {
    fn from(r: DeliveryRow) -> Delivery {
        Delivery {
            id: r.id,
            webhook_url: r.webhook_url,
            payload: r.payload,
            attempts: r.attempts,
            created_at: r.created_at,
            // Validated when stored.
            webhook_secret: r.webhook_secret.and_then(|k| WebhookKey::parse(&k).ok()),
        }
    }
}

/// How one delivery attempt went.
#[derive(Debug)]
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
            "SELECT a.id, a.check_id, a.kind, a.status, a.error, a.consecutive_fails, a.payload, \
                a.delivery_state, a.attempts, a.last_response_code, a.last_error, a.delivered_at, \
                a.created_at, \
                COALESCE((SELECT json_agg(json_build_object('attempt', w.attempt, \
                    'attempted_at', to_char(w.attempted_at AT TIME ZONE 'UTC', \
                        'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), 'response_code', w.response_code, \
                    'error', w.error, 'duration_ms', w.duration_ms) ORDER BY w.attempt) \
                  FROM webhook_attempts w WHERE w.alert_id = a.id), '[]'::json) AS deliveries \
             FROM alerts a WHERE a.check_id = $1 ORDER BY a.created_at DESC, a.id LIMIT $2",
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
        let rows: Vec<DeliveryRow> = sqlx::query_as(
            "UPDATE alerts a SET attempts = a.attempts + 1, \
                next_attempt_at = now() + $2 * interval '1 second' \
             WHERE a.id IN ( \
                SELECT id FROM alerts WHERE delivery_state = 'pending' AND next_attempt_at <= now() \
                ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
             RETURNING a.id, a.webhook_url, a.payload, a.attempts, a.created_at, \
                (SELECT c.webhook_secret FROM checks c WHERE c.id = a.check_id) AS webhook_secret",
        )
        .bind(limit)
        .bind(claim_secs as f64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Records attempt number `n` (taking `duration_ms`) in the attempt log
    /// and its outcome on the alert.
    pub async fn record_attempt(
        &self,
        id: Uuid,
        n: i32,
        duration_ms: i32,
        attempt: &Attempt,
    ) -> Result<()> {
        let (code, error) = match attempt {
            Attempt::Delivered { code } => (Some(i32::from(*code)), None),
            Attempt::Failed { code, error, .. } => (code.map(i32::from), Some(error.as_str())),
        };
        sqlx::query(
            "INSERT INTO webhook_attempts (alert_id, attempt, response_code, error, duration_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(n)
        .bind(code)
        .bind(error)
        .bind(duration_ms)
        .execute(&self.pool)
        .await?;
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
