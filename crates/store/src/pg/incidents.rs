//! Incidents and SLO breaches. Incidents are written by Postgres itself (the
//! `alerts_incidents` trigger: a `failure` alert opens one, the next
//! `recovery` closes it); here they are read. SLO breaches are opened and
//! closed by the SLO evaluator, each with its alert, under one advisory
//! lock so several servers never alert twice.

use chrono::{DateTime, Utc};
use pulse_core::AlertKind;
use sqlx::{FromRow, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::Result;

/// The advisory lock key the SLO evaluator holds while it evaluates.
pub const SLO_LOCK_KEY: i64 = 0x5055_4c53_455f_534c; // "PULSE_SL"

#[derive(Clone)]
pub struct IncidentStore {
    pool: PgPool,
}

/// An incident as stored.
#[derive(Debug, Clone, FromRow)]
pub struct IncidentRecord {
    pub id: Uuid,
    pub check_id: Uuid,
    pub check_name: String,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub first_error: Option<String>,
    /// The failing locations, `[{"location", "error"}]`, when the failure
    /// alert named them.
    pub locations: serde_json::Value,
    pub opened_alert_id: Uuid,
    pub resolved_alert_id: Option<Uuid>,
}

/// A check with an SLO and `slo_alerts`, as the evaluator needs it.
#[derive(Debug, Clone, FromRow)]
pub struct SloCheck {
    pub id: Uuid,
    pub name: String,
    pub url: String,
    pub slo: sqlx::types::Json<pulse_core::slo::Slo>,
    pub webhook_url: Option<String>,
    /// The rule of the open breach, if one is open.
    pub open_rule: Option<String>,
}

/// An SLO alert to record.
#[derive(Debug, Clone)]
pub struct SloAlert {
    pub id: Uuid,
    pub check_id: Uuid,
    pub kind: AlertKind,
    pub rule: String,
    pub error: String,
    pub payload: serde_json::Value,
    pub webhook_url: Option<String>,
}

/// Which incidents a listing holds.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub check_id: Option<Uuid>,
    /// Only open (`true`) or only resolved (`false`) ones.
    pub open: Option<bool>,
    /// Continue after this incident (keyset on opened_at, id; newest first).
    pub before: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

impl IncidentStore {
    pub fn new(pool: PgPool) -> IncidentStore {
        IncidentStore { pool }
    }

    /// Incidents, newest first.
    pub async fn list(&self, f: &IncidentFilter) -> Result<Vec<IncidentRecord>> {
        let (before_ts, before_id) = f.before.unzip();
        Ok(sqlx::query_as(
            "SELECT i.id, i.check_id, c.name AS check_name, i.opened_at, i.resolved_at, \
                i.first_error, i.locations, i.opened_alert_id, i.resolved_alert_id \
             FROM incidents i JOIN checks c ON c.id = i.check_id \
             WHERE ($1::uuid IS NULL OR i.check_id = $1) \
               AND ($2::bool IS NULL OR (i.resolved_at IS NULL) = $2) \
               AND ($3::timestamptz IS NULL OR (i.opened_at, i.id) < ($3, $4)) \
             ORDER BY i.opened_at DESC, i.id DESC LIMIT $5",
        )
        .bind(f.check_id)
        .bind(f.open)
        .bind(before_ts)
        .bind(before_id)
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The open incidents of `checks` and those opened since `since`,
    /// newest first, at most `limit`, in one query (the status page).
    pub async fn of_checks_since(
        &self,
        checks: &[Uuid],
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<IncidentRecord>> {
        Ok(sqlx::query_as(
            "SELECT i.id, i.check_id, c.name AS check_name, i.opened_at, i.resolved_at, \
                i.first_error, i.locations, i.opened_alert_id, i.resolved_alert_id \
             FROM incidents i JOIN checks c ON c.id = i.check_id \
             WHERE i.check_id = ANY($1) AND (i.resolved_at IS NULL OR i.opened_at >= $2) \
             ORDER BY i.opened_at DESC, i.id DESC LIMIT $3",
        )
        .bind(checks)
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Starts an SLO evaluation: a transaction holding the evaluator's
    /// advisory lock, or `None` when another process holds it.
    pub async fn begin_slo_round(&self) -> Result<Option<Transaction<'static, Postgres>>> {
        let mut tx = self.pool.begin().await?;
        let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1)")
            .bind(SLO_LOCK_KEY)
            .fetch_one(&mut *tx)
            .await?;
        Ok(locked.then_some(tx))
    }

    /// Live checks with `slo_alerts`, and checks with a breach still open
    /// (their SLO since removed or the check deleted: closed quietly).
    pub async fn slo_checks(tx: &mut Transaction<'static, Postgres>) -> Result<Vec<SloCheck>> {
        Ok(sqlx::query_as(
            "SELECT c.id, c.name, c.url, c.slo, c.webhook_url, b.rule AS open_rule \
             FROM checks c LEFT JOIN slo_breaches b ON b.check_id = c.id \
             WHERE c.slo IS NOT NULL AND c.slo_alerts AND c.deleted_at IS NULL \
             ORDER BY c.id",
        )
        .fetch_all(&mut **tx)
        .await?)
    }

    /// Forgets breaches of checks that no longer alert on their SLO.
    pub async fn drop_stale_breaches(tx: &mut Transaction<'static, Postgres>) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM slo_breaches b USING checks c WHERE c.id = b.check_id \
             AND NOT (c.slo IS NOT NULL AND c.slo_alerts AND c.deleted_at IS NULL)",
        )
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected())
    }

    /// Records an `slo_burn` alert and opens its breach, or an
    /// `slo_recovered` alert and closes it.
    pub async fn record_slo_alert(
        tx: &mut Transaction<'static, Postgres>,
        alert: &SloAlert,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO alerts (id, check_id, kind, status, error, consecutive_fails, payload, \
                webhook_url, delivery_state) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7, \
                CASE WHEN $7::text IS NULL THEN 'skipped' ELSE 'pending' END)",
        )
        .bind(alert.id)
        .bind(alert.check_id)
        .bind(alert.kind.as_str())
        .bind(alert.kind.as_str())
        .bind(&alert.error)
        .bind(&alert.payload)
        .bind(&alert.webhook_url)
        .execute(&mut **tx)
        .await?;
        if alert.kind == AlertKind::SloBurn {
            sqlx::query(
                "INSERT INTO slo_breaches (check_id, rule, alert_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (check_id) DO UPDATE SET rule = $2, alert_id = $3, opened_at = now()",
            )
            .bind(alert.check_id)
            .bind(&alert.rule)
            .bind(alert.id)
            .execute(&mut **tx)
            .await?;
        } else {
            sqlx::query("DELETE FROM slo_breaches WHERE check_id = $1")
                .bind(alert.check_id)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

/// A live check as `GET /stats` lists it.
#[derive(Debug, Clone, FromRow)]
pub struct CheckSummary {
    pub id: Uuid,
    pub name: String,
    pub last_status: String,
    pub created_at: DateTime<Utc>,
}

impl IncidentStore {
    /// Every live check, oldest first, for `GET /stats`.
    pub async fn check_summaries(&self) -> Result<Vec<CheckSummary>> {
        Ok(sqlx::query_as(
            "SELECT id, name, last_status, created_at FROM checks WHERE deleted_at IS NULL \
             ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
