//! Checks: CRUD for the API, the scheduler's claim, and the worker's
//! lease-fenced start and finish.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use pulse_core::assertion::Assertion;
use pulse_core::{AlertKind, Check, CheckSpec, IncidentState, Job, JobCheck, RunOutcome};
use sqlx::postgres::PgArguments;
use sqlx::types::Json;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::{Result, StoreError};

#[derive(Clone)]
pub struct CheckStore {
    pool: PgPool,
}

/// A check's definition as stored: shared by the API's rows and the
/// claim's, so a column is read in one place.
#[derive(FromRow)]
struct SpecRow {
    name: String,
    url: String,
    method: String,
    headers: Json<BTreeMap<String, String>>,
    body: Option<String>,
    expected_status: i32,
    body_contains: Option<String>,
    interval_seconds: i32,
    timeout_ms: i32,
    alert_threshold: i32,
    retries: i32,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
    enabled: bool,
    assertions: Json<Vec<Assertion>>,
    degraded_ms: Option<i32>,
    max_response_ms: Option<i32>,
    alert_on_degraded: bool,
    tls_verify: bool,
    tls_expiry_days: i32,
    check_type: String,
    host: Option<String>,
    port: Option<i32>,
    tls: bool,
    send: Option<String>,
    expect: Option<String>,
    record_type: Option<String>,
    resolver: Option<String>,
    locations: Vec<String>,
    location_strategy: String,
    alert_locations: String,
    public: bool,
    slo: Option<Json<pulse_core::slo::Slo>>,
    slo_alerts: bool,
}

/// The columns of [`SpecRow`], in a statement's select list or RETURNING.
macro_rules! spec_columns {
    () => {
        "name, url, method, headers, body, expected_status, body_contains, interval_seconds, \
         timeout_ms, alert_threshold, retries, webhook_url, webhook_secret, enabled, assertions, \
         degraded_ms, max_response_ms, alert_on_degraded, tls_verify, tls_expiry_days, check_type, \
         host, port, tls, send, expect, record_type, resolver, locations, location_strategy, \
         alert_locations, public, slo, slo_alerts"
    };
}

impl From<SpecRow> for CheckSpec {
    fn from(r: SpecRow) -> CheckSpec {
        CheckSpec {
            name: r.name,
            url: r.url,
            method: r.method,
            headers: r.headers.0,
            body: r.body,
            expected_status: r.expected_status as u16,
            body_contains: r.body_contains,
            interval_seconds: r.interval_seconds,
            timeout_ms: r.timeout_ms,
            alert_threshold: r.alert_threshold,
            retries: r.retries,
            webhook_url: r.webhook_url,
            // Validated when stored.
            webhook_secret: r
                .webhook_secret
                .and_then(|k| pulse_core::webhook::WebhookKey::parse(&k).ok()),
            enabled: r.enabled,
            assertions: r.assertions.0,
            degraded_ms: r.degraded_ms,
            max_response_ms: r.max_response_ms,
            alert_on_degraded: r.alert_on_degraded,
            tls_verify: r.tls_verify,
            tls_expiry_days: r.tls_expiry_days,
            check_type: check_type(&r.check_type),
            host: r.host,
            port: r.port.and_then(|p| u16::try_from(p).ok()),
            tls: r.tls,
            send: r.send,
            expect: r.expect,
            record_type: r
                .record_type
                .as_deref()
                .and_then(pulse_core::check::RecordType::parse),
            resolver: r.resolver,
            locations: r.locations,
            location_strategy: pulse_core::LocationStrategy::parse(&r.location_strategy)
                .unwrap_or_default(),
            alert_locations: pulse_core::Quorum::decode(&r.alert_locations).unwrap_or_default(),
            public: r.public,
            slo: r.slo.map(|s| s.0),
            slo_alerts: r.slo_alerts,
        }
    }
}

#[derive(FromRow)]
struct CheckRow {
    id: Uuid,
    #[sqlx(flatten)]
    spec: SpecRow,
    /// `unknown` before the first run.
    last_status: String,
    last_run_at: Option<DateTime<Utc>>,
    last_latency_ms: Option<i32>,
    last_status_code: Option<i32>,
    last_error: Option<String>,
    consecutive_fails: i32,
    next_run_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
}

const CHECK_COLUMNS: &str = concat!(
    "id, ",
    spec_columns!(),
    ", last_status, last_run_at, last_latency_ms, last_status_code, last_error, \
     consecutive_fails, next_run_at, created_at, updated_at, version"
);

impl From<CheckRow> for Check {
    fn from(r: CheckRow) -> Check {
        Check {
            id: r.id,
            spec: r.spec.into(),
            last_status: pulse_core::RunStatus::parse(&r.last_status),
            last_run_at: r.last_run_at,
            last_latency_ms: r.last_latency_ms,
            last_status_code: r.last_status_code,
            last_error: r.last_error,
            consecutive_fails: r.consecutive_fails,
            next_run_at: r.next_run_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

/// Which checks a page of `GET /checks` holds.
#[derive(Debug, Clone, Default)]
pub struct CheckFilter {
    pub enabled: Option<bool>,
    /// The last run's status (`unknown` before the first run).
    pub status: Option<String>,
    /// A case-insensitive part of the name.
    pub name_contains: Option<String>,
    /// Start after this check (keyset paging by creation, then id).
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// An alert to record together with a run's state write.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub id: Uuid,
    pub kind: AlertKind,
    pub payload: serde_json::Value,
    pub webhook_url: Option<String>,
}

/// A finished run's state write, fenced by its lease token.
#[derive(Debug, Clone)]
pub struct Finish {
    pub check_id: Uuid,
    pub token: Uuid,
    /// The due time of the slot the run served.
    pub slot_ms: i64,
    pub outcome: RunOutcome,
    pub state: IncidentState,
    pub alert: Option<NewAlert>,
    /// A certificate expiring soon: alerted once per certificate.
    pub tls_alert: Option<TlsAlert>,
}

/// A `tls_expiry` alert, sent unless this certificate was alerted before.
#[derive(Debug, Clone)]
pub struct TlsAlert {
    pub fingerprint: String,
    pub alert: NewAlert,
}

#[derive(FromRow)]
struct ClaimRow {
    id: Uuid,
    lease_token: Uuid,
    lease_slot: DateTime<Utc>,
    lease_expires_at: DateTime<Utc>,
    claimed_at: DateTime<Utc>,
    #[sqlx(flatten)]
    spec: SpecRow,
    consecutive_fails: i32,
    incident_open: bool,
    consecutive_degraded: i32,
    degraded_open: bool,
}

impl From<ClaimRow> for Job {
    fn from(r: ClaimRow) -> Job {
        Job {
            check_id: r.id,
            token: r.lease_token,
            slot_ms: r.lease_slot.timestamp_millis(),
            claimed_ms: r.claimed_at.timestamp_millis(),
            lease_expires_ms: r.lease_expires_at.timestamp_millis(),
            check: JobCheck {
                spec: CheckSpec {
                    // Never leaves Postgres: the alerter reads it there.
                    webhook_secret: None,
                    ..r.spec.into()
                },
                consecutive_fails: r.consecutive_fails,
                incident_open: r.incident_open,
                consecutive_degraded: r.consecutive_degraded,
                degraded_open: r.degraded_open,
            },
        }
    }
}

/// What a claim returns: the lease and everything a worker needs.
const CLAIM_RETURNING: &str = concat!(
    "RETURNING c.id, c.lease_token, c.lease_slot, c.lease_expires_at, now() AS claimed_at, ",
    spec_columns!(),
    ", c.consecutive_fails, c.incident_open, c.consecutive_degraded, c.degraded_open"
);

/// The scheduler's claim statement (`$1` batch size, `$2` lease margin in
/// ms). The lease covers the run's budget (every attempt timing out plus
/// the pauses between retries: `Job::run_budget_ms`) plus the margin.
/// Public so the benchmark can show its plan.
pub const CLAIM_DUE_SQL: &str = "UPDATE checks c SET \
        lease_token = gen_random_uuid(), \
        lease_slot = c.next_run_at, \
        lease_expires_at = now() + make_interval(secs => \
            (pulse_run_budget_ms(c.timeout_ms, c.retries) + $2)::float8 / 1000), \
        next_run_at = c.next_run_at + make_interval(secs => (c.interval_seconds * \
            (floor(extract(epoch FROM (now() - c.next_run_at)) / c.interval_seconds) + 1))::float8) \
     WHERE c.id = ANY(ARRAY( \
        SELECT id FROM checks \
        WHERE enabled AND deleted_at IS NULL AND lease_token IS NULL AND next_run_at <= now() \
          AND NOT catching_up \
        ORDER BY next_run_at LIMIT $1 FOR UPDATE SKIP LOCKED)) ";

/// A new lease on the same slot (`$2` margin in ms), for runs whose worker
/// was lost; its old token no longer writes.
const RELEASE_LEASE: &str = "lease_token = gen_random_uuid(), catching_up = true, \
    lease_expires_at = now() + make_interval(secs => \
        (pulse_run_budget_ms(c.timeout_ms, c.retries) + $2)::float8 / 1000)";

type CheckQuery<'q> = sqlx::query::QueryAs<'q, sqlx::Postgres, CheckRow, PgArguments>;

/// Binds a spec's fields as parameters `$2` to `$35`, in column order.
fn bind_spec<'q>(query: CheckQuery<'q>, spec: &'q CheckSpec) -> CheckQuery<'q> {
    query
        .bind(&spec.name)
        .bind(&spec.url)
        .bind(&spec.method)
        .bind(Json(&spec.headers))
        .bind(&spec.body)
        .bind(spec.expected_status as i32)
        .bind(&spec.body_contains)
        .bind(spec.interval_seconds)
        .bind(spec.timeout_ms)
        .bind(spec.alert_threshold)
        .bind(&spec.webhook_url)
        .bind(spec.enabled)
        .bind(
            spec.webhook_secret
                .as_ref()
                .map(pulse_core::webhook::WebhookKey::encode),
        )
        .bind(spec.retries)
        .bind(Json(&spec.assertions))
        .bind(spec.degraded_ms)
        .bind(spec.max_response_ms)
        .bind(spec.alert_on_degraded)
        .bind(spec.tls_verify)
        .bind(spec.tls_expiry_days)
        .bind(spec.check_type.as_str())
        .bind(&spec.host)
        .bind(spec.port.map(i32::from))
        .bind(spec.tls)
        .bind(&spec.send)
        .bind(&spec.expect)
        .bind(spec.record_type.map(|t| t.as_str()))
        .bind(&spec.resolver)
        .bind(&spec.locations)
        .bind(spec.location_strategy.as_str())
        .bind(spec.alert_locations.encode())
        .bind(spec.public)
        .bind(spec.slo.map(Json))
        .bind(spec.slo_alerts)
}

fn check_type(s: &str) -> pulse_core::check::CheckType {
    match s {
        "tcp" => pulse_core::check::CheckType::Tcp,
        "dns" => pulse_core::check::CheckType::Dns,
        _ => pulse_core::check::CheckType::Http,
    }
}

impl CheckStore {
    pub fn new(pool: PgPool) -> CheckStore {
        CheckStore { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Stores a new check, due at once.
    pub async fn create(&self, spec: &CheckSpec) -> Result<Check> {
        let sql = format!(
            "INSERT INTO checks (id, name, url, method, headers, body, expected_status, body_contains, \
             interval_seconds, timeout_ms, alert_threshold, webhook_url, enabled, webhook_secret, \
             retries, assertions, degraded_ms, max_response_ms, alert_on_degraded, tls_verify, \
             tls_expiry_days, check_type, host, port, tls, send, expect, record_type, resolver, \
             locations, location_strategy, alert_locations, public, slo, slo_alerts, next_run_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                 $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, \
                 $34, $35, now()) \
             RETURNING {CHECK_COLUMNS}"
        );
        let query = sqlx::query_as(&sql).bind(Uuid::new_v4());
        let row: CheckRow = bind_spec(query, spec).fetch_one(&self.pool).await?;
        Ok(row.into())
    }

    pub async fn get(&self, id: Uuid) -> Result<Check> {
        let row: Option<CheckRow> = sqlx::query_as(&format!(
            "SELECT {CHECK_COLUMNS} FROM checks WHERE id = $1 AND deleted_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(Into::into).ok_or(StoreError::NotFound)
    }

    /// Ok when the check exists or existed (deleted checks keep history).
    pub async fn ever_existed(&self, id: Uuid) -> Result<()> {
        let found: Option<(Uuid,)> = sqlx::query_as("SELECT id FROM checks WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        found.map(|_| ()).ok_or(StoreError::NotFound)
    }

    /// A page of live checks, oldest first, filtered.
    pub async fn page(&self, f: &CheckFilter) -> Result<Vec<Check>> {
        let (after_ts, after_id) = f.after.unzip();
        let pattern = f.name_contains.as_ref().map(|q| {
            let escaped = q
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
        let rows: Vec<CheckRow> = sqlx::query_as(&format!(
            "SELECT {CHECK_COLUMNS} FROM checks WHERE deleted_at IS NULL \
             AND ($1::bool IS NULL OR enabled = $1) \
             AND ($2::text IS NULL OR last_status = $2) \
             AND ($3::text IS NULL OR name ILIKE $3) \
             AND ($4::timestamptz IS NULL OR (created_at, id) > ($4, $5)) \
             ORDER BY created_at, id LIMIT $6"
        ))
        .bind(f.enabled)
        .bind(&f.status)
        .bind(pattern)
        .bind(after_ts)
        .bind(after_id)
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Changes a check atomically: reads it under a row lock, lets `change`
    /// derive the new definition from the current one (so only the fields a
    /// client sent change, whatever happened meanwhile), and writes it with
    /// a new version. With `if_match`, a check whose version differs is left
    /// alone ([`StoreError::VersionMismatch`]). A shorter interval pulls the
    /// next run in to at most one new interval from now; a longer one
    /// applies after the run already scheduled.
    pub async fn update_with<E>(
        &self,
        id: Uuid,
        if_match: Option<i64>,
        change: impl FnOnce(CheckSpec) -> std::result::Result<CheckSpec, E>,
    ) -> std::result::Result<Check, E>
    where
        E: From<StoreError>,
    {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let row: Option<CheckRow> = sqlx::query_as(&format!(
            "SELECT {CHECK_COLUMNS} FROM checks WHERE id = $1 AND deleted_at IS NULL FOR UPDATE"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let current: Check = row.ok_or(StoreError::NotFound)?.into();
        if let Some(v) = if_match {
            if v != current.version {
                return Err(StoreError::VersionMismatch {
                    current: current.version,
                }
                .into());
            }
        }
        let spec = change(current.spec)?;
        let sql = format!(
            "UPDATE checks SET name = $2, url = $3, method = $4, headers = $5, body = $6, \
             expected_status = $7, body_contains = $8, interval_seconds = $9, timeout_ms = $10, \
             alert_threshold = $11, webhook_url = $12, enabled = $13, webhook_secret = $14, \
             retries = $15, assertions = $16, degraded_ms = $17, max_response_ms = $18, \
             alert_on_degraded = $19, tls_verify = $20, tls_expiry_days = $21, \
             check_type = $22, host = $23, port = $24, tls = $25, send = $26, expect = $27, \
             record_type = $28, resolver = $29, locations = $30, location_strategy = $31, \
             alert_locations = $32, public = $33, slo = $34, slo_alerts = $35, \
             next_run_at = LEAST(next_run_at, now() + $9 * interval '1 second'), \
             updated_at = now(), version = version + 1 \
             WHERE id = $1 RETURNING {CHECK_COLUMNS}"
        );
        let query = sqlx::query_as(&sql).bind(id);
        let row: CheckRow = bind_spec(query, &spec)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(row.into())
    }

    /// Soft-deletes a check: it stops running, its alerts and results stay.
    pub async fn delete(&self, id: Uuid) -> Result<()> {
        let done = sqlx::query(
            "UPDATE checks SET deleted_at = now(), updated_at = now() \
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// The scheduler's claim: takes up to `limit` due, unleased checks in one
    /// statement, leases each (token + expiry) and advances `next_run_at`
    /// from the slot that was due (never from now, so no drift). Missed
    /// slots (the schedulers were down, or a run outlasted its interval)
    /// are skipped: the next slot is the first after now, no burst. A check
    /// whose worker was lost (`catching_up`) waits for
    /// [`Self::skip_missed_slots`]. Rows locked by another scheduler are
    /// skipped, so concurrent schedulers never claim one slot twice.
    pub async fn claim_due(&self, limit: i64, lease_margin_ms: i64) -> Result<Vec<Job>> {
        let rows: Vec<ClaimRow> = sqlx::query_as(&format!("{CLAIM_DUE_SQL}{CLAIM_RETURNING}"))
            .bind(limit)
            .bind(lease_margin_ms)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Releases expired leases of paused or deleted checks (their queued run
    /// was skipped), so a check that is resumed is claimed again.
    pub async fn release_idle_leases(&self) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE checks SET lease_token = NULL, lease_slot = NULL, lease_expires_at = NULL \
             WHERE lease_token IS NOT NULL AND lease_expires_at <= now() \
               AND (NOT enabled OR deleted_at IS NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Re-queues runs whose lease expired (their worker died or stalled
    /// unnoticed): the same slot, under a fresh token, so the old holder's
    /// late write is refused.
    pub async fn reclaim_expired(&self, limit: i64, lease_margin_ms: i64) -> Result<Vec<Job>> {
        let rows: Vec<ClaimRow> = sqlx::query_as(&format!(
            "UPDATE checks c SET {RELEASE_LEASE} \
             WHERE c.id = ANY(ARRAY( \
                SELECT id FROM checks \
                WHERE lease_token IS NOT NULL AND lease_expires_at <= now() \
                  AND enabled AND deleted_at IS NULL \
                ORDER BY lease_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)) {CLAIM_RETURNING}"
        ))
        .bind(limit)
        .bind(lease_margin_ms)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Re-queues the runs a lost worker held, given as (check, lease token)
    /// pairs: each still-current lease gets a fresh token on the same slot
    /// at once, instead of waiting for it to expire. Leases already finished
    /// or re-issued are left alone.
    pub async fn relet(&self, held: &[(Uuid, Uuid)], lease_margin_ms: i64) -> Result<Vec<Job>> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = held.iter().map(|h| h.0).collect();
        let tokens: Vec<Uuid> = held.iter().map(|h| h.1).collect();
        let rows: Vec<ClaimRow> = sqlx::query_as(&format!(
            "UPDATE checks c SET {RELEASE_LEASE} \
             FROM UNNEST($1::uuid[], $3::uuid[]) AS h(id, token) \
             WHERE c.id = h.id AND c.lease_token = h.token \
               AND c.enabled AND c.deleted_at IS NULL {CLAIM_RETURNING}"
        ))
        .bind(ids)
        .bind(lease_margin_ms)
        .bind(tokens)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// After a lost worker's run was re-run: every slot that fell due
    /// meanwhile is recorded as a `missed` run (no request made, reason
    /// `worker_lost`) instead of being run late in a burst, and the check
    /// goes on with its schedule at the first slot at least half an
    /// interval after the re-run started. Returns how many slots were
    /// recorded missed.
    pub async fn skip_missed_slots(&self, limit: i64) -> Result<i64> {
        let (missed,): (Option<i64>,) = sqlx::query_as(
            "WITH due AS ( \
                SELECT id, next_run_at AS old_next FROM checks \
                WHERE catching_up AND lease_token IS NULL AND enabled AND deleted_at IS NULL \
                ORDER BY next_run_at LIMIT $1 FOR UPDATE SKIP LOCKED), \
             moved AS ( \
                UPDATE checks c SET catching_up = false, \
                    next_run_at = d.old_next + make_interval(secs => (c.interval_seconds * \
                        GREATEST(0, ceil(extract(epoch FROM (GREATEST(now(), \
                            COALESCE(c.last_run_at, now()) + make_interval(secs => c.interval_seconds / 2.0)) \
                            - d.old_next)) / c.interval_seconds)))::float8) \
                FROM due d WHERE c.id = d.id \
                RETURNING c.id, d.old_next, c.next_run_at, c.interval_seconds), \
             slots AS ( \
                SELECT m.id, s.slot FROM moved m, LATERAL generate_series( \
                    GREATEST(m.old_next, m.next_run_at - make_interval(secs => m.interval_seconds * 1000)), \
                    m.next_run_at - make_interval(secs => m.interval_seconds), \
                    make_interval(secs => m.interval_seconds)) AS s(slot)), \
             ins AS ( \
                INSERT INTO run_result_batches (ids, check_ids, run_at, scheduled_at_ms, status, \
                    failure_reason, latency_ms, status_code, error, worker, attempts) \
                SELECT array_agg(gen_random_uuid()), array_agg(id), array_agg(slot), \
                    array_agg(floor(extract(epoch FROM slot) * 1000)::bigint), array_agg('missed'::text), \
                    array_agg('worker_lost'::text), array_agg(0), array_agg(0), \
                    array_agg('no request made: the worker running this check was lost'::text), \
                    array_agg(''::text), array_agg(0) \
                FROM slots HAVING count(*) > 0 \
                RETURNING cardinality(ids) AS n) \
             SELECT sum(n)::bigint FROM ins",
        )
        .bind(limit)
        .fetch_one(&self.pool)
        .await?;
        Ok(missed.unwrap_or(0))
    }

    /// Records `tls_expiry` alerts, each only for a certificate (by check and
    /// fingerprint) not alerted before. Returns how many were recorded.
    pub async fn record_tls_alerts(&self, alerts: &[(Uuid, &TlsAlert)]) -> Result<u64> {
        if alerts.is_empty() {
            return Ok(0);
        }
        let checks: Vec<Uuid> = alerts.iter().map(|a| a.0).collect();
        let prints: Vec<String> = alerts.iter().map(|a| a.1.fingerprint.clone()).collect();
        let ids: Vec<Uuid> = alerts.iter().map(|a| a.1.alert.id).collect();
        let payloads: Vec<serde_json::Value> =
            alerts.iter().map(|a| a.1.alert.payload.clone()).collect();
        let hooks: Vec<Option<String>> = alerts
            .iter()
            .map(|a| a.1.alert.webhook_url.clone())
            .collect();
        let done = sqlx::query(
            "WITH input AS ( \
                SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::jsonb[], $5::text[]) \
                AS t(check_id, fingerprint, alert_id, payload, webhook_url)), \
             fresh AS ( \
                INSERT INTO tls_expiry_alerted (check_id, fingerprint) \
                SELECT check_id, fingerprint FROM input ON CONFLICT DO NOTHING \
                RETURNING check_id, fingerprint) \
             INSERT INTO alerts (id, check_id, kind, status, error, consecutive_fails, payload, \
                webhook_url, delivery_state) \
             SELECT i.alert_id, i.check_id, 'tls_expiry', i.payload->>'status', i.payload->>'error', 0, \
                i.payload, i.webhook_url, \
                CASE WHEN i.webhook_url IS NULL THEN 'skipped' ELSE 'pending' END \
             FROM input i JOIN fresh f USING (check_id, fingerprint)",
        )
        .bind(checks)
        .bind(prints)
        .bind(ids)
        .bind(payloads)
        .bind(hooks)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Writes finished runs' state and releases their leases, each fenced
    /// by its lease token, and records their alerts and their results (in
    /// the `run_result_batches` outbox as one row, on their way to ClickHouse), all in one
    /// statement. `worker` names the worker in the results.
    /// Returns the ids of the checks written; a run whose lease was lost
    /// (re-issued after expiry, or the check deleted) writes nothing.
    pub async fn finish_batch(
        &self,
        runs: &[Finish],
        worker: &str,
        location: &str,
    ) -> Result<Vec<Uuid>> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let col = |f: &dyn Fn(&Finish) -> Option<String>| runs.iter().map(f).collect::<Vec<_>>();
        let ids: Vec<Uuid> = runs.iter().map(|r| r.check_id).collect();
        let tokens: Vec<Uuid> = runs.iter().map(|r| r.token).collect();
        let statuses = col(&|r| Some(r.outcome.status.as_str().to_string()));
        let run_at: Vec<DateTime<Utc>> = runs.iter().map(|r| r.outcome.started_at).collect();
        let latency: Vec<i32> = runs.iter().map(|r| r.outcome.latency_ms as i32).collect();
        let codes: Vec<Option<i32>> = runs
            .iter()
            .map(|r| r.outcome.status_code.map(i32::from))
            .collect();
        let errors = col(&|r| r.outcome.error.clone());
        let fails: Vec<i32> = runs.iter().map(|r| r.state.consecutive_fails).collect();
        let open: Vec<bool> = runs.iter().map(|r| r.state.incident_open).collect();
        let degraded: Vec<i32> = runs.iter().map(|r| r.state.consecutive_degraded).collect();
        let degraded_open: Vec<bool> = runs.iter().map(|r| r.state.degraded_open).collect();
        let alert_ids: Vec<Option<Uuid>> = runs
            .iter()
            .map(|r| r.alert.as_ref().map(|a| a.id))
            .collect();
        let kinds = col(&|r| r.alert.as_ref().map(|a| a.kind.as_str().to_string()));
        let payloads: Vec<Option<serde_json::Value>> = runs
            .iter()
            .map(|r| r.alert.as_ref().map(|a| a.payload.clone()))
            .collect();
        let hooks = col(&|r| r.alert.as_ref().and_then(|a| a.webhook_url.clone()));
        let result_ids: Vec<Uuid> = runs.iter().map(|_| Uuid::new_v4()).collect();
        let slots: Vec<i64> = runs.iter().map(|r| r.slot_ms).collect();
        let reasons = col(&|r| r.outcome.failure_reason.map(|f| f.as_str().to_string()));
        let attempts: Vec<i32> = runs.iter().map(|r| i32::from(r.outcome.attempts)).collect();
        let details = col(&|r| serde_json::to_string(&r.outcome.details()).ok());
        let written: Vec<(Uuid,)> = sqlx::query_as(
            "WITH input AS ( \
                SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], \
                    $5::int[], $6::int[], $7::text[], $8::int[], $9::bool[], $10::uuid[], \
                    $11::text[], $12::jsonb[], $13::text[], $14::uuid[], $15::bigint[], \
                    $16::text[], $17::int[], $19::text[], $20::int[], $21::bool[]) \
                AS t(id, token, status, run_at, latency, code, error, fails, open, alert_id, \
                    alert_kind, payload, webhook_url, result_id, slot_ms, reason, attempts, \
                    details, degraded, degraded_open)), \
             upd AS ( \
                UPDATE checks c SET last_status = i.status, last_run_at = i.run_at, \
                    last_latency_ms = i.latency, last_status_code = i.code, last_error = i.error, \
                    consecutive_fails = i.fails, incident_open = i.open, \
                    consecutive_degraded = i.degraded, degraded_open = i.degraded_open, \
                    lease_token = NULL, lease_slot = NULL, lease_expires_at = NULL \
                FROM input i \
                WHERE c.id = i.id AND c.lease_token = i.token AND c.deleted_at IS NULL \
                RETURNING c.id), \
             ins AS ( \
                INSERT INTO alerts (id, check_id, kind, status, error, consecutive_fails, payload, \
                    webhook_url, delivery_state) \
                SELECT i.alert_id, i.id, i.alert_kind, i.status, i.error, i.fails, i.payload, \
                    i.webhook_url, CASE WHEN i.webhook_url IS NULL THEN 'skipped' ELSE 'pending' END \
                FROM input i JOIN upd ON upd.id = i.id WHERE i.alert_kind IS NOT NULL), \
             res AS ( \
                INSERT INTO run_result_batches (ids, check_ids, run_at, scheduled_at_ms, status, \
                    failure_reason, latency_ms, status_code, error, worker, attempts, details, \
                    location) \
                SELECT array_agg(i.result_id), array_agg(i.id), array_agg(i.run_at), \
                    array_agg(i.slot_ms), array_agg(i.status), array_agg(i.reason), \
                    array_agg(i.latency), array_agg(COALESCE(i.code, 0)), array_agg(i.error), \
                    array_agg($18::text), array_agg(i.attempts), array_agg(i.details), \
                    array_agg($22::text) \
                FROM input i JOIN upd ON upd.id = i.id HAVING count(*) > 0) \
             SELECT id FROM upd",
        )
        .bind(ids)
        .bind(tokens)
        .bind(statuses)
        .bind(run_at)
        .bind(latency)
        .bind(codes)
        .bind(errors)
        .bind(fails)
        .bind(open)
        .bind(alert_ids)
        .bind(kinds)
        .bind(payloads)
        .bind(hooks)
        .bind(result_ids)
        .bind(slots)
        .bind(reasons)
        .bind(attempts)
        .bind(worker)
        .bind(details)
        .bind(degraded)
        .bind(degraded_open)
        .bind(location)
        .fetch_all(&self.pool)
        .await?;
        Ok(written.into_iter().map(|(id,)| id).collect())
    }
}
