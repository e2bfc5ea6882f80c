//! What the dashboard reads beyond one check: how far behind the scheduler
//! is; and what the public status page may show of a check.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::Result;

#[derive(Clone)]
pub struct OverviewStore {
    pool: PgPool,
}

/// A check as the public status page may show it: its name and state, no
/// URL, header, body or error (the page gets only this).
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl PublicCheck {
    pub fn of(c: &pulse_core::Check) -> PublicCheck {
        PublicCheck {
            id: c.id,
            name: c.spec.name.clone(),
            enabled: c.spec.enabled,
            last_status: c
                .last_status
                .map_or("unknown", pulse_core::RunStatus::as_str)
                .to_string(),
            last_run_at: c.last_run_at,
            incident_open: c.incident_open,
            created_at: c.created_at,
        }
    }
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
}
