//! Checks: CRUD for the API, the scheduler's claim, and the worker's
//! lease-fenced start and finish.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use pulse_core::assertion::Assertion;
use pulse_core::check::LocationState;
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
    description: String,
    url: String,
    method: String,
    headers: Json<BTreeMap<String, String>>,
    secret_headers: Vec<String>,
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
         alert_locations, public, slo, slo_alerts, secret_headers, description"
    };
}

impl From<SpecRow> for CheckSpec {
    fn from(r: SpecRow) -> CheckSpec {
        CheckSpec {
            name: r.name,
            description: r.description,
            url: r.url,
            method: r.method,
            headers: r.headers.0,
            secret_headers: r.secret_headers,
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
    incident_open: bool,
    by_location: Json<Vec<LocationState>>,
}

/// How bad a location's last status is, worst first: the check's overall
/// status is its worst location's.
macro_rules! severity {
    () => {
        "CASE s.last_status WHEN 'fail' THEN 0 WHEN 'timeout' THEN 0 WHEN 'error' THEN 0 \
         WHEN 'degraded' THEN 1 WHEN 'success' THEN 2 WHEN 'missed' THEN 3 ELSE 4 END, \
         s.last_run_at DESC NULLS LAST"
    };
}

/// A check with the summary of its locations' last runs: the worst
/// location's status and run, the latest run time, the longest failure
/// streak, the next slot anywhere, and each listed location's own.
const CHECK_SELECT: &str = concat!(
    "SELECT c.id, ",
    spec_columns!(),
    ", COALESCE(st.last_status, 'unknown') AS last_status, st.last_run_at, st.last_latency_ms, \
     st.last_status_code, st.last_error, COALESCE(st.consecutive_fails, 0) AS consecutive_fails, \
     COALESCE(st.next_run_at, now()) AS next_run_at, c.created_at, c.updated_at, c.version, \
     c.incident_open, COALESCE(st.by_location, '[]'::jsonb) AS by_location \
     FROM checks c LEFT JOIN LATERAL (SELECT \
        (array_agg(s.last_status ORDER BY ",
    severity!(),
    "))[1] AS last_status, \
        max(s.last_run_at) AS last_run_at, \
        (array_agg(s.last_latency_ms ORDER BY ",
    severity!(),
    "))[1] AS last_latency_ms, \
        (array_agg(s.last_status_code ORDER BY ",
    severity!(),
    "))[1] AS last_status_code, \
        (array_agg(s.last_error ORDER BY ",
    severity!(),
    "))[1] AS last_error, \
        max(s.consecutive_fails) AS consecutive_fails, \
        min(s.next_run_at) AS next_run_at, \
        jsonb_agg(jsonb_build_object('location', s.location, 'last_status', s.last_status, \
            'last_run_at', s.last_run_at, 'last_latency_ms', s.last_latency_ms, \
            'last_status_code', s.last_status_code, 'last_error', s.last_error, \
            'consecutive_fails', s.consecutive_fails, 'next_run_at', s.next_run_at) \
            ORDER BY array_position(c.locations, s.location)) AS by_location \
        FROM check_schedules s WHERE s.check_id = c.id AND s.location = ANY(c.locations)) st ON true "
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
            incident_open: r.incident_open,
            by_location: r.by_location.0,
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
    /// Only the checks shown on the public status page (`true`), or only
    /// the others.
    pub public: Option<bool>,
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
    /// For a check with several locations, its job: the finisher decides
    /// the check's incident again from every location's streak.
    pub quorum: Option<Box<Job>>,
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
    location: String,
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
            location: r.location,
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
    "RETURNING s.check_id AS id, s.location, s.lease_token, s.lease_slot, s.lease_expires_at, \
     now() AS claimed_at, ",
    spec_columns!(),
    ", s.consecutive_fails, c.incident_open, s.consecutive_degraded, c.degraded_open"
);

/// What [`CLAIM_DUE_SQL`] runs under, in its transaction (`SET LOCAL` of
/// both, in one round trip).
pub const CLAIM_SETTINGS: &str = "SELECT set_config('enable_hashjoin', 'off', true), \
    set_config('enable_mergejoin', 'off', true)";

/// The scheduler's claim statement (`$1` batch size, `$2` lease margin in
/// ms, `$3` the locations with a live worker): leases due slots, one per
/// (check, location). The lease covers the run's budget (every attempt
/// timing out plus the pauses between retries: `Job::run_budget_ms`) plus
/// the margin. Each claimed row, and its check, is read by its primary key:
/// [`CheckStore::claim_due`] runs it with hash and merge joins off, and
/// the `OFFSET 0` keeps the check's lookup a lookup. Public so the
/// benchmark can show its plan.
pub const CLAIM_DUE_SQL: &str = "UPDATE check_schedules s SET \
        lease_token = gen_random_uuid(), \
        lease_slot = s.next_run_at, \
        lease_expires_at = now() + make_interval(secs => \
            (pulse_run_budget_ms(c.timeout_ms, c.retries) + $2)::float8 / 1000), \
        next_run_at = s.next_run_at + make_interval(secs => (s.period_seconds * \
            (floor(extract(epoch FROM (now() - s.next_run_at)) / s.period_seconds) + 1))::float8) \
     FROM ( \
        SELECT check_id, location FROM check_schedules \
        WHERE active AND lease_token IS NULL AND next_run_at <= now() AND NOT catching_up \
          AND location = ANY($3) \
        ORDER BY next_run_at LIMIT $1 FOR UPDATE SKIP LOCKED) d \
     CROSS JOIN LATERAL (SELECT * FROM checks WHERE id = d.check_id OFFSET 0) c \
     WHERE s.check_id = d.check_id AND s.location = d.location ";

/// A new lease on the same slot (`$2` margin in ms), for runs whose worker
/// was lost; its old token no longer writes.
const RELEASE_LEASE: &str = "lease_token = gen_random_uuid(), catching_up = true, \
    lease_expires_at = now() + make_interval(secs => \
        (pulse_run_budget_ms(c.timeout_ms, c.retries) + $2)::float8 / 1000)";

/// Records the slots of `moved` (check, location, `old_next` up to before
/// `next_run_at`, a period apart, at most 1,000) as `missed` runs with
/// reason `$2` and error `$3`, in the results outbox; `ins` returns how many.
const MISSED_INSERT: &str = "slots AS ( \
        SELECT m.check_id, m.location, g.slot FROM moved m, LATERAL generate_series( \
            GREATEST(m.old_next, m.next_run_at - make_interval(secs => m.period_seconds * 1000)), \
            m.next_run_at - make_interval(secs => m.period_seconds), \
            make_interval(secs => m.period_seconds)) AS g(slot)), \
     ins AS ( \
        INSERT INTO run_result_batches (ids, check_ids, run_at, scheduled_at_ms, status, \
            failure_reason, latency_ms, status_code, error, worker, attempts, location) \
        SELECT array_agg(gen_random_uuid()), array_agg(check_id), array_agg(slot), \
            array_agg(floor(extract(epoch FROM slot) * 1000)::bigint), array_agg('missed'::text), \
            array_agg($2::text), array_agg(0), array_agg(0), array_agg($3::text), \
            array_agg(''::text), array_agg(0), array_agg(location) \
        FROM slots HAVING count(*) > 0 \
        RETURNING cardinality(ids) AS n)";

/// Releases the leases of the rows in `due` (which holds their
/// `lease_slot`) and gives each leased slot as the one slot moved past
/// (`moved`, for [`MISSED_INSERT`]); `{set}` sets more columns.
const RELEASE_DUE: &str = "moved AS ( \
        UPDATE check_schedules s SET lease_token = NULL, lease_slot = NULL, \
            lease_expires_at = NULL{set} \
        FROM due d WHERE s.check_id = d.check_id AND s.location = d.location \
        RETURNING s.check_id, s.location, d.lease_slot AS old_next, \
            d.lease_slot + make_interval(secs => s.period_seconds) AS next_run_at, \
            s.period_seconds)";

/// Releases the leases `due` selects (check, location and `lease_slot`;
/// `$2` and `$3` are the reason and error, the others free for it) and
/// records each leased slot `missed` in the results outbox; the schedule's
/// `next_run_at` is left as the claim set it, and `set` sets more columns.
fn missed_sql(due: &str, set: &str) -> String {
    format!(
        "WITH due AS ({due}), {}, {MISSED_INSERT} SELECT sum(n)::bigint FROM ins",
        RELEASE_DUE.replace("{set}", set)
    )
}

/// What an interrupted run recorded missed sets: `catching_up`, so the
/// slots that fell due while it was leased are recorded missed by
/// [`CheckStore::skip_missed_slots`] rather than skipped by the next claim.
const CATCH_UP: &str = ", catching_up = true";

/// A schedule row whose next slot is due within half an interval: its
/// interrupted run is recorded missed rather than run again just before it.
const NEXT_SLOT_CLOSE: &str =
    "s.next_run_at <= now() + make_interval(secs => s.period_seconds / 2.0)";

/// The error of an interrupted run recorded missed instead of re-run.
const INTERRUPTED_ERROR: &str = "no request made: the worker running this check was lost, \
    and the next run was due within half an interval";

/// The reason and error of a run recorded by [`CheckStore::record_late`].
pub const LATE_REASON: &str = "queued_too_long";
const LATE_ERROR: &str = "no request made: the run waited in the queue past its lease \
    (the location's workers were busy or down)";

/// What [`CheckStore::sweep_probe`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepProbe {
    /// Some lease has expired (its run was lost, or its check paused or
    /// deleted meanwhile).
    pub expired: bool,
    /// Some active slot is in a location without a live worker.
    pub elsewhere: bool,
}

/// Which locations may run slots now, as the scheduler sees them.
#[derive(Debug, Clone, Default)]
pub struct LocationsNow {
    /// Locations with a live worker: their due slots are claimed.
    pub live: Vec<String>,
    /// Locations seen before whose workers are all gone (for longer than
    /// the grace): their slots are recorded `missed`.
    pub stale: Vec<String>,
    /// Every location ever seen.
    pub known: Vec<String>,
    /// Whether a location never seen counts as stale too (the scheduler
    /// has waited the grace for its first worker).
    pub unknown_stale: bool,
}

type CheckQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, PgArguments>;

/// Brings the check's schedule rows in line with its definition (see the
/// `pulse_sync_schedules` function in the migrations).
async fn sync_schedules(tx: &mut sqlx::PgConnection, id: Uuid, rephase: bool) -> Result<()> {
    sqlx::query("SELECT pulse_sync_schedules($1, $2)")
        .bind(id)
        .bind(rephase)
        .execute(tx)
        .await?;
    Ok(())
}

/// Binds a spec's fields as parameters `$2` to `$37`, in column order.
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
        .bind(&spec.secret_headers)
        .bind(&spec.description)
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

    /// Stores a new check, due at once in each of its locations (one
    /// interval apart in turn for `round_robin`).
    pub async fn create(&self, spec: &CheckSpec) -> Result<Check> {
        let sql = "INSERT INTO checks (id, name, url, method, headers, body, expected_status, \
             body_contains, interval_seconds, timeout_ms, alert_threshold, webhook_url, enabled, \
             webhook_secret, retries, assertions, degraded_ms, max_response_ms, alert_on_degraded, \
             tls_verify, tls_expiry_days, check_type, host, port, tls, send, expect, record_type, \
             resolver, locations, location_strategy, alert_locations, public, slo, slo_alerts, \
             secret_headers, description, next_run_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                 $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, \
                 $34, $35, $36, $37, now())";
        let id = Uuid::new_v4();
        let mut tx = self.pool.begin().await?;
        bind_spec(sqlx::query(sql).bind(id), spec)
            .execute(&mut *tx)
            .await?;
        sync_schedules(&mut tx, id, true).await?;
        let check = Self::read(&mut tx, id, false).await?;
        tx.commit().await?;
        check.ok_or(StoreError::NotFound)
    }

    /// A live check with its locations' state; `lock` holds its row.
    async fn read(tx: &mut sqlx::PgConnection, id: Uuid, lock: bool) -> Result<Option<Check>> {
        let lock = if lock { "FOR UPDATE OF c" } else { "" };
        let row: Option<CheckRow> = sqlx::query_as(&format!(
            "{CHECK_SELECT} WHERE c.id = $1 AND c.deleted_at IS NULL {lock}"
        ))
        .bind(id)
        .fetch_optional(tx)
        .await?;
        Ok(row.map(Into::into))
    }

    pub async fn get(&self, id: Uuid) -> Result<Check> {
        let mut conn = self.pool.acquire().await?;
        Self::read(&mut conn, id, false)
            .await?
            .ok_or(StoreError::NotFound)
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
            "{CHECK_SELECT} WHERE c.deleted_at IS NULL \
             AND ($1::bool IS NULL OR c.enabled = $1) \
             AND ($2::text IS NULL OR COALESCE(st.last_status, 'unknown') = $2) \
             AND ($3::text IS NULL OR c.name ILIKE $3) \
             AND ($4::timestamptz IS NULL OR (c.created_at, c.id) > ($4, $5)) \
             AND ($7::bool IS NULL OR c.public = $7) \
             ORDER BY c.created_at, c.id LIMIT $6"
        ))
        .bind(f.enabled)
        .bind(&f.status)
        .bind(pattern)
        .bind(after_ts)
        .bind(after_id)
        .bind(f.limit)
        .bind(f.public)
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
    /// applies after the run already scheduled. New locations are due at
    /// once; a change of locations or strategy lays the slots out again.
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
        let current = Self::read(&mut tx, id, true)
            .await?
            .ok_or(StoreError::NotFound)?;
        if let Some(v) = if_match {
            if v != current.version {
                return Err(StoreError::VersionMismatch {
                    current: current.version,
                }
                .into());
            }
        }
        let before = current.spec.clone();
        let spec = change(current.spec)?;
        let rephase = spec.locations != before.locations
            || spec.location_strategy != before.location_strategy
            || (spec.location_strategy == pulse_core::LocationStrategy::RoundRobin
                && spec.interval_seconds != before.interval_seconds);
        let sql = "UPDATE checks SET name = $2, url = $3, method = $4, headers = $5, body = $6, \
             expected_status = $7, body_contains = $8, interval_seconds = $9, timeout_ms = $10, \
             alert_threshold = $11, webhook_url = $12, enabled = $13, webhook_secret = $14, \
             retries = $15, assertions = $16, degraded_ms = $17, max_response_ms = $18, \
             alert_on_degraded = $19, tls_verify = $20, tls_expiry_days = $21, \
             check_type = $22, host = $23, port = $24, tls = $25, send = $26, expect = $27, \
             record_type = $28, resolver = $29, locations = $30, location_strategy = $31, \
             alert_locations = $32, public = $33, slo = $34, slo_alerts = $35, \
             secret_headers = $36, description = $37, updated_at = now(), \
             version = version + 1 \
             WHERE id = $1";
        bind_spec(sqlx::query(sql).bind(id), &spec)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        sync_schedules(&mut tx, id, rephase).await?;
        let check = Self::read(&mut tx, id, false)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(check)
    }

    /// Every location some live check runs in, with how many checks run
    /// there.
    pub async fn locations_in_use(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT location, count(*) FROM check_schedules WHERE active \
             GROUP BY location ORDER BY location",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Soft-deletes a check: it stops running, its alerts and results stay.
    pub async fn delete(&self, id: Uuid) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE checks SET deleted_at = now(), updated_at = now() \
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sync_schedules(&mut tx, id, false).await?;
        // A run in flight writes nothing once its check is deleted: its
        // lease, which fences the write, is gone.
        sqlx::query(
            "UPDATE check_schedules SET lease_token = NULL, lease_slot = NULL, \
                lease_expires_at = NULL \
             WHERE check_id = $1 AND lease_token IS NOT NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The scheduler's claim: takes up to `limit` due slots in locations
    /// with a live worker (`live`) in one statement, leases each (token +
    /// expiry) and advances its `next_run_at` from the slot that was due
    /// (never from now, so no drift). Missed slots (the schedulers were
    /// down, or a run outlasted its interval) are skipped: the next slot is
    /// the first after now, no burst. A slot whose worker was lost
    /// (`catching_up`) waits for [`Self::skip_missed_slots`]. Rows locked by
    /// another scheduler are skipped, so concurrent schedulers never claim
    /// one slot twice.
    pub async fn claim_due(
        &self,
        limit: i64,
        lease_margin_ms: i64,
        live: &[String],
    ) -> Result<Vec<Job>> {
        // Hash and merge joins off for this statement: it joins a batch to
        // its rows and checks, which the key lookups do in a few ms, while
        // the planner, sure of neither the batch's size nor the table's,
        // would hash a full scan of both tables.
        let mut tx = self.pool.begin().await?;
        sqlx::query(CLAIM_SETTINGS).execute(&mut *tx).await?;
        let rows: Vec<ClaimRow> = sqlx::query_as(&format!("{CLAIM_DUE_SQL}{CLAIM_RETURNING}"))
            .bind(limit)
            .bind(lease_margin_ms)
            .bind(live)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// What the scheduler's sweep has to do, from one scan of the
    /// schedules: whether any lease has expired, and whether any active
    /// slot is in a location without a live worker (`live`). Most sweeps
    /// find neither and stop here.
    pub async fn sweep_probe(&self, live: &[String]) -> Result<SweepProbe> {
        let (expired, elsewhere): (bool, bool) = sqlx::query_as(
            "SELECT COALESCE(bool_or(lease_token IS NOT NULL AND lease_expires_at <= now()), \
                false), \
                COALESCE(bool_or(active AND location <> ALL($1)), false) \
             FROM check_schedules",
        )
        .bind(live)
        .fetch_one(&self.pool)
        .await?;
        Ok(SweepProbe { expired, elsewhere })
    }

    /// Releases expired leases of paused or deleted checks, and of
    /// locations a check no longer lists (their queued run was skipped), so
    /// a check that is resumed is claimed again.
    pub async fn release_idle_leases(&self) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE check_schedules SET lease_token = NULL, lease_slot = NULL, \
                lease_expires_at = NULL \
             WHERE lease_token IS NOT NULL AND lease_expires_at <= now() AND NOT active",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Re-queues runs in live locations whose lease expired (their worker
    /// died or stalled unnoticed): the same slot, under a fresh token, so
    /// the old holder's late write is refused. A run whose check's next
    /// slot is due within half an interval is not run again but recorded
    /// `missed` (reason `worker_lost`), so two runs never land just apart.
    pub async fn reclaim_expired(
        &self,
        limit: i64,
        lease_margin_ms: i64,
        live: &[String],
    ) -> Result<Vec<Job>> {
        // One transaction, so both statements see one `now()` and every
        // expired lease is either missed or re-queued.
        let mut tx = self.pool.begin().await?;
        sqlx::query(&missed_sql(
            &format!(
                "SELECT check_id, location, lease_slot FROM check_schedules s \
                 WHERE lease_token IS NOT NULL AND lease_expires_at <= now() AND active \
                   AND location = ANY($4) AND {NEXT_SLOT_CLOSE} \
                 ORDER BY lease_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED"
            ),
            CATCH_UP,
        ))
        .bind(limit)
        .bind("worker_lost")
        .bind(INTERRUPTED_ERROR)
        .bind(live)
        .execute(&mut *tx)
        .await?;
        let rows: Vec<ClaimRow> = sqlx::query_as(&format!(
            "UPDATE check_schedules s SET {RELEASE_LEASE} FROM checks c \
             WHERE c.id = s.check_id AND (s.check_id, s.location) IN ( \
                SELECT check_id, location FROM check_schedules s \
                WHERE lease_token IS NOT NULL AND lease_expires_at <= now() AND active \
                  AND location = ANY($3) AND NOT {NEXT_SLOT_CLOSE} \
                ORDER BY lease_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED) {CLAIM_RETURNING}"
        ))
        .bind(limit)
        .bind(lease_margin_ms)
        .bind(live)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Re-queues the runs a lost worker held, given as (check, lease token)
    /// pairs: each still-current lease gets a fresh token on the same slot
    /// at once, instead of waiting for it to expire. Leases already finished
    /// or re-issued are left alone. As in [`Self::reclaim_expired`], a run
    /// whose next slot is due within half an interval is recorded `missed`
    /// instead.
    pub async fn relet(&self, held: &[(Uuid, Uuid)], lease_margin_ms: i64) -> Result<Vec<Job>> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = held.iter().map(|h| h.0).collect();
        let tokens: Vec<Uuid> = held.iter().map(|h| h.1).collect();
        let mut tx = self.pool.begin().await?;
        sqlx::query(&missed_sql(
            &format!(
                "SELECT s.check_id, s.location, s.lease_slot FROM check_schedules s, \
                UNNEST($1::uuid[], $4::uuid[]) AS h(id, token) \
             WHERE s.check_id = h.id AND s.lease_token = h.token AND s.active \
               AND {NEXT_SLOT_CLOSE} FOR UPDATE OF s"
            ),
            CATCH_UP,
        ))
        .bind(&ids)
        .bind("worker_lost")
        .bind(INTERRUPTED_ERROR)
        .bind(&tokens)
        .execute(&mut *tx)
        .await?;
        let rows: Vec<ClaimRow> = sqlx::query_as(&format!(
            "UPDATE check_schedules s SET {RELEASE_LEASE} \
             FROM checks c, UNNEST($1::uuid[], $3::uuid[]) AS h(id, token) \
             WHERE s.check_id = h.id AND s.lease_token = h.token AND c.id = s.check_id \
               AND s.active AND NOT {NEXT_SLOT_CLOSE} {CLAIM_RETURNING}"
        ))
        .bind(ids)
        .bind(lease_margin_ms)
        .bind(tokens)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// After a lost worker's run was re-run: every slot that fell due
    /// meanwhile is recorded as a `missed` run (no request made, reason
    /// `worker_lost`) instead of being run late in a burst, and the
    /// location goes on with its schedule at the first slot at least half
    /// a period after the re-run started. Returns how many slots were
    /// recorded missed.
    pub async fn skip_missed_slots(&self, limit: i64) -> Result<i64> {
        self.record_missed(
            "due AS ( \
                SELECT check_id, location, next_run_at AS old_next FROM check_schedules \
                WHERE catching_up AND lease_token IS NULL AND active \
                ORDER BY next_run_at LIMIT $1 FOR UPDATE SKIP LOCKED), \
             moved AS ( \
                UPDATE check_schedules s SET catching_up = false, \
                    next_run_at = d.old_next + make_interval(secs => (s.period_seconds * \
                        GREATEST(0, ceil(extract(epoch FROM (GREATEST(now(), \
                            COALESCE(s.last_run_at, '-infinity') + make_interval(secs => s.period_seconds / 2.0)) \
                            - d.old_next)) / s.period_seconds)))::float8) \
                FROM due d WHERE s.check_id = d.check_id AND s.location = d.location \
                RETURNING s.check_id, s.location, d.old_next, s.next_run_at, s.period_seconds)",
            limit,
            "worker_lost",
            "no request made: the worker running this check was lost",
            None,
        )
        .await
    }

    /// The slots due in stale locations (no live worker for longer than
    /// the grace), recorded as `missed` runs (no request made, reason
    /// `location_stale`), and leases there that expired (their run was
    /// lost with the location's last worker), recorded `worker_lost`. The
    /// schedule goes on at the first slot after now. Returns how many
    /// slots were recorded missed.
    pub async fn miss_stale_slots(&self, limit: i64, now: &LocationsNow) -> Result<i64> {
        let leases = self
            .record_missed(
                &format!(
                    "due AS ( \
                    SELECT check_id, location, lease_slot FROM check_schedules \
                    WHERE lease_token IS NOT NULL AND lease_expires_at <= now() AND {{stale}} \
                    LIMIT $1 FOR UPDATE SKIP LOCKED), {}",
                    RELEASE_DUE.replace("{set}", ", catching_up = false")
                ),
                limit,
                "worker_lost",
                "no request made: the worker running this check was lost with its location",
                Some(now),
            )
            .await?;
        let slots = self
            .record_missed(
                "due AS ( \
                    SELECT check_id, location, next_run_at AS old_next FROM check_schedules \
                    WHERE active AND lease_token IS NULL AND next_run_at <= now() AND {stale} \
                    ORDER BY next_run_at LIMIT $1 FOR UPDATE SKIP LOCKED), \
                 moved AS ( \
                    UPDATE check_schedules s SET catching_up = false, \
                        next_run_at = d.old_next + make_interval(secs => (s.period_seconds * \
                            (floor(extract(epoch FROM (now() - d.old_next)) / s.period_seconds) \
                            + 1))::float8) \
                    FROM due d WHERE s.check_id = d.check_id AND s.location = d.location \
                    RETURNING s.check_id, s.location, d.old_next, s.next_run_at, \
                        s.period_seconds)",
                limit,
                "location_stale",
                "no request made: no worker is serving this location",
                Some(now),
            )
            .await?;
        Ok(leases + slots)
    }

    /// Records runs that waited in the queue past their lease (`late`, as
    /// (check, lease token) pairs taken in `location`) as `missed` (no
    /// request made, reason `queued_too_long`) and releases their leases,
    /// fenced by the token: the check goes on with its next slot instead of
    /// running this one late (a late run does not measure the past) or
    /// waiting for the lease to expire and queueing it again, which under
    /// overload only adds work. Returns how many were recorded.
    pub async fn record_late(&self, late: &[(Uuid, Uuid)], location: &str) -> Result<i64> {
        if late.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = late.iter().map(|l| l.0).collect();
        let tokens: Vec<Uuid> = late.iter().map(|l| l.1).collect();
        let sql = missed_sql(
            "SELECT s.check_id, s.location, s.lease_slot FROM check_schedules s, \
                UNNEST($1::uuid[], $4::uuid[]) AS l(id, token) \
             WHERE s.check_id = l.id AND s.location = $5 AND s.lease_token = l.token \
             FOR UPDATE OF s",
            "",
        );
        let (recorded,): (Option<i64>,) = sqlx::query_as(&sql)
            .bind(ids)
            .bind(LATE_REASON)
            .bind(LATE_ERROR)
            .bind(tokens)
            .bind(location)
            .fetch_one(&self.pool)
            .await?;
        Ok(recorded.unwrap_or(0))
    }

    /// Runs `WITH {ctes}, {MISSED_INSERT}`: `ctes` pick up to `$1` rows
    /// (`due`) and move their schedule (`moved`); the slots moved past are
    /// recorded `missed` with `reason` and `error`. With `stale`, `{stale}`
    /// in `ctes` is the condition "in a stale location" (`$4` to `$6`).
    /// Returns how many slots were recorded.
    async fn record_missed(
        &self,
        ctes: &str,
        limit: i64,
        reason: &str,
        error: &str,
        stale: Option<&LocationsNow>,
    ) -> Result<i64> {
        let ctes = ctes.replace(
            "{stale}",
            "(location = ANY($4) OR ($5 AND location <> ALL($6)))",
        );
        let sql = format!("WITH {ctes}, {MISSED_INSERT} SELECT sum(n)::bigint FROM ins");
        let mut query = sqlx::query_as(&sql).bind(limit).bind(reason).bind(error);
        if let Some(now) = stale {
            query = query
                .bind(&now.stale)
                .bind(now.unknown_stale)
                .bind(&now.known);
        }
        let (missed,): (Option<i64>,) = query.fetch_one(&self.pool).await?;
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
        let mut conn = self.pool.acquire().await?;
        finish_in(&mut conn, runs, worker, location).await
    }

    /// Like [`Self::finish_batch`], when some runs' incident depends on
    /// their check's other locations (those with `quorum`): in one
    /// transaction, locks those checks' rows (so their locations' finishes
    /// decide one after another), reads their incident state and every
    /// location's streak, lets `decide` set the runs' state and alerts from
    /// them (in place; it may be called again on a retry), and writes the
    /// batch. Without such runs it is [`Self::finish_batch`].
    pub async fn finish_batch_with(
        &self,
        runs: &mut [Finish],
        worker: &str,
        location: &str,
        decide: impl FnOnce(&QuorumSnapshot, &mut [Finish]),
    ) -> Result<Vec<Uuid>> {
        let quorum: Vec<Uuid> = runs
            .iter()
            .filter(|f| f.quorum.is_some())
            .map(|f| f.check_id)
            .collect();
        if quorum.is_empty() {
            return self.finish_batch(runs, worker, location).await;
        }
        let mut tx = self.pool.begin().await?;
        let checks: Vec<(Uuid, bool, bool)> = sqlx::query_as(
            "SELECT id, incident_open, degraded_open FROM checks WHERE id = ANY($1) \
             ORDER BY id FOR NO KEY UPDATE",
        )
        .bind(&quorum)
        .fetch_all(&mut *tx)
        .await?;
        let streaks: Vec<(Uuid, String, i32, i32, Option<String>)> = sqlx::query_as(
            "SELECT check_id, location, consecutive_fails, consecutive_degraded, last_error \
             FROM check_schedules WHERE check_id = ANY($1) AND active",
        )
        .bind(&quorum)
        .fetch_all(&mut *tx)
        .await?;
        let mut snapshot = QuorumSnapshot::default();
        for (id, incident_open, degraded_open) in checks {
            snapshot.incidents.insert(
                id,
                IncidentState {
                    incident_open,
                    degraded_open,
                    ..Default::default()
                },
            );
        }
        for (id, location, fails, degraded, error) in streaks {
            snapshot
                .streaks
                .entry(id)
                .or_default()
                .push(pulse_core::LocationStreak {
                    location,
                    consecutive_fails: fails,
                    consecutive_degraded: degraded,
                    last_error: error,
                    live: true,
                });
        }
        decide(&snapshot, runs);
        let written = finish_in(&mut tx, runs, worker, location).await?;
        tx.commit().await?;
        Ok(written)
    }
}

/// What [`CheckStore::finish_batch_with`] read of the checks in its quorum
/// set, under their row locks.
#[derive(Debug, Clone, Default)]
pub struct QuorumSnapshot {
    /// Each check's incident state (`incident_open`, `degraded_open`).
    pub incidents: std::collections::HashMap<Uuid, IncidentState>,
    /// Each check's active locations' streaks, as last written (`live` is
    /// left true: the caller knows which locations are live).
    pub streaks: std::collections::HashMap<Uuid, Vec<pulse_core::LocationStreak>>,
}

/// The finish statement of [`CheckStore::finish_batch`], on `conn`.
async fn finish_in(
    conn: &mut sqlx::PgConnection,
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
            UPDATE check_schedules s SET last_status = i.status, last_run_at = i.run_at, \
                last_latency_ms = i.latency, last_status_code = i.code, last_error = i.error, \
                consecutive_fails = i.fails, consecutive_degraded = i.degraded, \
                lease_token = NULL, lease_slot = NULL, lease_expires_at = NULL \
            FROM input i \
            WHERE s.check_id = i.id AND s.location = $22 AND s.lease_token = i.token \
            RETURNING s.check_id AS id, i.token), \
         incident AS ( \
            UPDATE checks c SET incident_open = i.open, degraded_open = i.degraded_open \
            FROM input i JOIN upd ON upd.id = i.id AND upd.token = i.token \
            WHERE c.id = i.id \
              AND (c.incident_open <> i.open OR c.degraded_open <> i.degraded_open)), \
         ins AS ( \
            INSERT INTO alerts (id, check_id, kind, status, error, consecutive_fails, payload, \
                webhook_url, delivery_state) \
            SELECT i.alert_id, i.id, i.alert_kind, i.status, i.error, i.fails, i.payload, \
                i.webhook_url, CASE WHEN i.webhook_url IS NULL THEN 'skipped' ELSE 'pending' END \
            FROM input i JOIN upd ON upd.id = i.id AND upd.token = i.token WHERE i.alert_kind IS NOT NULL), \
         res AS ( \
            INSERT INTO run_result_batches (ids, check_ids, run_at, scheduled_at_ms, status, \
                failure_reason, latency_ms, status_code, error, worker, attempts, details, \
                location) \
            SELECT array_agg(i.result_id), array_agg(i.id), array_agg(i.run_at), \
                array_agg(i.slot_ms), array_agg(i.status), array_agg(i.reason), \
                array_agg(i.latency), array_agg(COALESCE(i.code, 0)), array_agg(i.error), \
                array_agg($18::text), array_agg(i.attempts), array_agg(i.details), \
                array_agg($22::text) \
            FROM input i JOIN upd ON upd.id = i.id AND upd.token = i.token HAVING count(*) > 0) \
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
    .fetch_all(conn)
    .await?;
    Ok(written.into_iter().map(|(id,)| id).collect())
}
