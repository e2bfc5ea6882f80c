//! What the dashboard reads beyond one check: how far behind the scheduler
//! is, and the public status page's checks (names and states only).

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::Result;

#[derive(Clone)]
pub struct OverviewStore {
    pool: PgPool,
}

/// A check as the public status page may show it: no URL, headers, body
/// or error is even read.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct PublicCheck {
    pub id: Uuid,
    pub name: String,
    pub enabled: bool,
    /// `unknown` before the first run.
    pub last_status: String,
    pub last_run_at: Option<DateTime<Utc>>,
    pub incident_open: bool,
    pub created_at: DateTime<Utc>,
}

impl OverviewStore {
    pub fn new(pool: PgPool) -> OverviewStore {
        OverviewStore { pool }
    }

    /// How long (ms) the most overdue slot has waited to be claimed: 0
    /// when none is due. Paused, deleted and leased checks do not count,
    /// nor slots a lost worker left (those are recorded missed).
    pub async fn scheduler_lag_ms(&self) -> Result<i64> {
        let (lag,): (Option<f64>,) = sqlx::query_as(
            "SELECT extract(epoch FROM now() - min(next_run_at))::float8 * 1000 \
             FROM check_schedules \
             WHERE active AND lease_token IS NULL AND NOT catching_up AND next_run_at <= now()",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(lag.map_or(0, |ms| ms.max(0.0) as i64))
    }

    /// Every live check marked `public`, by name.
    pub async fn public_checks(&self) -> Result<Vec<PublicCheck>> {
        Ok(sqlx::query_as(
            "SELECT id, name, enabled, last_status, last_run_at, incident_open, created_at FROM checks \
             WHERE public AND deleted_at IS NULL ORDER BY lower(name), id",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
