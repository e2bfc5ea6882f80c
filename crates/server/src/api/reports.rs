//! Reports: a check's figures over a window (`/checks/:id/stats`), per
//! bucket (`/checks/:id/series`), every check's at once (`/stats`), and
//! incidents (`/checks/:id/incidents`, `/incidents`). Figures come from the
//! ClickHouse rollups, incidents from Postgres.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use pulse_core::report::{availability, uptime, uptime_buckets, MinuteRuns, Uptime};
use pulse_core::slo::{ErrorBudget, Slo, WindowCounts, BURN_WINDOWS};
use pulse_store::pg::incidents::{IncidentFilter, IncidentRecord, IncidentStore};
use pulse_store::reports::{Aggregate, Group, Range, Scope};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::checks::{bad_query, cursor, encode_cursor, limit, parse_id, rfc3339};
use super::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/checks/{id}/stats", get(stats))
        .route("/checks/{id}/series", get(series))
        .route("/checks/{id}/incidents", get(check_incidents))
        .route("/stats", get(all_stats))
        .route("/incidents", get(incidents))
}

/// Windows a report may name, and their length in seconds.
const WINDOWS: [(&str, i64); 5] = [
    ("1h", 3600),
    ("24h", 86_400),
    ("7d", 7 * 86_400),
    ("30d", 30 * 86_400),
    ("90d", 90 * 86_400),
];
/// Longest `from`/`to` range.
const MAX_RANGE_SECS: i64 = 90 * 86_400 + 3600;
/// Buckets a series may use, and their length in seconds.
const BUCKETS: [(&str, i64); 4] = [("1m", 60), ("5m", 300), ("1h", 3600), ("1d", 86_400)];
/// Most buckets one series answers: a week of minutes, plus the partial
/// bucket at each end of a range aligned to bucket edges (`window=7d`
/// with `bucket=1m` is 10,081 buckets).
const MAX_BUCKETS: i64 = 7 * 1440 + 2;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    window: Option<String>,
    from: Option<String>,
    to: Option<String>,
    location: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesQuery {
    window: Option<String>,
    from: Option<String>,
    to: Option<String>,
    location: Option<String>,
    bucket: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllStatsQuery {
    window: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncidentsQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    open: Option<bool>,
}

/// The range a query asks for, in epoch seconds: `window` (default 24h,
/// ending now) or `from` and optional `to` (default now), at most 90 days.
/// `from` is rounded down to its minute (or `align` seconds), `to` up.
pub(crate) fn range(
    window: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    now: DateTime<Utc>,
    align: i64,
) -> Result<Range, ApiError> {
    let now_s = now.timestamp();
    let (from, to) = match (window, from) {
        (Some(_), Some(_)) => {
            return Err(bad_query(
                "window",
                "give either window or from/to, not both",
            ))
        }
        (Some(_), None) if to.is_some() => {
            return Err(bad_query("to", "give either window or from/to, not both"))
        }
        (None, None) if to.is_some() => return Err(bad_query("from", "is required with to")),
        (w, None) => {
            let w = w.unwrap_or("24h");
            let secs = WINDOWS
                .iter()
                .find(|(name, _)| *name == w)
                .map(|(_, s)| *s)
                .ok_or_else(|| bad_query("window", "must be 1h, 24h, 7d, 30d or 90d"))?;
            (now_s - secs, now_s)
        }
        (None, Some(f)) => {
            let from = rfc3339("from", Some(f))?
                .unwrap_or_default()
                .div_euclid(1000);
            let to = rfc3339("to", to)?.map_or(now_s, |ms| ms.div_euclid(1000));
            if from >= to {
                return Err(bad_query("from", "must be before `to`"));
            }
            if to - from > MAX_RANGE_SECS {
                return Err(bad_query("from", "the range is at most 90 days"));
            }
            if from < 0 {
                return Err(bad_query("from", "must be after 1970"));
            }
            (from, to)
        }
    };
    let align = align.max(60);
    Ok(Range {
        from: from.div_euclid(align) * align,
        to: (to + align - 1).div_euclid(align) * align,
    })
}

fn location(raw: Option<&str>) -> Result<Option<&str>, ApiError> {
    if let Some(l) = raw {
        pulse_core::location::valid_name(l).map_err(|m| bad_query("location", m))?;
    }
    Ok(raw)
}

pub(crate) fn time(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

/// Runs by status.
#[derive(Debug, Serialize, Default)]
struct Runs {
    /// Every run, `missed` included.
    total: u64,
    /// Runs made (not `missed`): availability's denominator.
    made: u64,
    success: u64,
    degraded: u64,
    fail: u64,
    timeout: u64,
    error: u64,
    missed: u64,
}

/// p50, p95, p99 in milliseconds (quantileTiming: exact below 1,024 ms,
/// within 16 ms above).
#[derive(Debug, Serialize)]
pub(crate) struct Percentiles {
    pub(crate) p50: f64,
    pub(crate) p95: f64,
    pub(crate) p99: f64,
}

fn percentiles(q: &[f64], made: u64) -> Option<Percentiles> {
    match q {
        [p50, p95, p99] if made > 0 && p50.is_finite() => Some(Percentiles {
            p50: *p50,
            p95: *p95,
            p99: *p99,
        }),
        _ => None,
    }
}

/// The figures of a window, a bucket or a location.
#[derive(Debug, Serialize)]
pub(crate) struct Figures {
    runs: Runs,
    /// Runs up (`success`, `degraded`) over runs made; `null` without runs.
    availability: Option<f64>,
    /// Minutes up over minutes counted; `null` when none counted.
    pub(crate) uptime: Option<f64>,
    uptime_minutes: UptimeMinutes,
    /// The whole run's latency; `null` without runs made.
    pub(crate) latency_ms: Option<Percentiles>,
    /// Each phase's latency: `dns_ms`, `connect_ms`, `tls_ms`, `ttfb_ms`,
    /// `download_ms` (0 for runs without that phase).
    pub(crate) phases: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Serialize)]
struct UptimeMinutes {
    up: u64,
    counted: u64,
}

fn figures(a: Option<&Aggregate>, up: Uptime) -> Figures {
    let runs = a.map_or_else(Runs::default, |a| Runs {
        total: a.runs(),
        made: a.made(),
        success: a.success,
        degraded: a.degraded,
        fail: a.fail,
        timeout: a.timeout,
        error: a.error,
        missed: a.missed,
    });
    let mut phases = serde_json::Map::new();
    let mut latency = None;
    if let Some(a) = a {
        for (name, q) in a.latencies() {
            let p = percentiles(q, a.made());
            if name == "latency_ms" {
                latency = p;
            } else {
                phases.insert(
                    name.to_string(),
                    serde_json::to_value(p).unwrap_or_default(),
                );
            }
        }
    }
    Figures {
        availability: availability(runs.success + runs.degraded, runs.made),
        uptime: up.ratio(),
        uptime_minutes: UptimeMinutes {
            up: up.up_minutes,
            counted: up.counted_minutes,
        },
        latency_ms: latency,
        phases,
        runs,
    }
}

#[derive(Serialize)]
struct LocationFigures {
    location: String,
    #[serde(flatten)]
    figures: Figures,
}

#[derive(Serialize)]
pub(crate) struct SloView {
    pub(crate) objective: f64,
    pub(crate) window_days: u32,
    /// Over the last `window_days` days, counted in runs.
    pub(crate) error_budget: ErrorBudget,
    /// Burn rate over the last 5m, 30m, 1h, 6h and 3d (`null` without runs).
    burn_rates: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
struct StatsView {
    check_id: Uuid,
    #[serde(serialize_with = "pulse_core::time::ms")]
    from: DateTime<Utc>,
    #[serde(serialize_with = "pulse_core::time::ms")]
    to: DateTime<Utc>,
    location: Option<String>,
    #[serde(flatten)]
    figures: Figures,
    /// Each location's figures, when the check has several.
    #[serde(skip_serializing_if = "Option::is_none")]
    locations: Option<Vec<LocationFigures>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    slo: Option<SloView>,
}

/// A check's uptime over `range` from its minutes.
pub(crate) async fn check_uptime(
    state: &AppState,
    id: Uuid,
    location: Option<&str>,
    range: Range,
    created: i64,
) -> Result<Uptime, ApiError> {
    let (minutes, prior) = state.services.results.minutes(id, location, range).await?;
    let minutes: Vec<MinuteRuns> = minutes.into_iter().map(Into::into).collect();
    let prior = prior.and_then(|m| MinuteRuns::from(m).state());
    Ok(uptime(&minutes, prior, range.from, range.to, created))
}

async fn stats(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Json<StatsView>, ApiError> {
    let id = parse_id(id)?;
    let Query(q) = q?;
    let now = Utc::now();
    let range = range(
        q.window.as_deref(),
        q.from.as_deref(),
        q.to.as_deref(),
        now,
        60,
    )?;
    let location = location(q.location.as_deref())?;
    let check = state.checks.get(id).await?;
    let created = check.created_at.timestamp();
    let results = &state.services.results;
    let scope = Scope::Check(id, location);
    let overall = results.aggregate(scope, Group::Overall, range).await?;
    let up = check_uptime(&state, id, location, range, created).await?;
    let mut view = StatsView {
        check_id: id,
        from: time(range.from),
        to: time(range.to),
        location: location.map(str::to_string),
        figures: figures(overall.first(), up),
        locations: None,
        slo: None,
    };
    if location.is_none() && check.spec.locations.len() > 1 {
        let by = results.aggregate(scope, Group::ByLocation, range).await?;
        let mut names: Vec<String> = check.spec.locations.clone();
        for a in &by {
            if !names.contains(&a.key) {
                names.push(a.key.clone());
            }
        }
        let mut each = Vec::new();
        for name in names {
            let up = check_uptime(&state, id, Some(&name), range, created).await?;
            let a = by.iter().find(|a| a.key == name);
            each.push(LocationFigures {
                location: name,
                figures: figures(a, up),
            });
        }
        view.locations = Some(each);
    }
    if let Some(slo) = check.spec.slo {
        view.slo = Some(slo_view(&state, id, location, &slo, now).await?);
    }
    Ok(Json(view))
}

pub(crate) async fn slo_view(
    state: &AppState,
    id: Uuid,
    location: Option<&str>,
    slo: &Slo,
    now: DateTime<Utc>,
) -> Result<SloView, ApiError> {
    let results = &state.services.results;
    let end = now.timestamp().div_euclid(60) * 60 + 60;
    let window = Range {
        from: end - i64::from(slo.window_days) * 86_400,
        to: end,
    };
    let total = results
        .aggregate(Scope::Check(id, location), Group::Overall, window)
        .await?;
    let (made, failed) = total
        .first()
        .map_or((0, 0), |a| (a.made(), a.made() - a.up()));
    let counts = burn_counts(state, id, now).await?;
    let mut burn_rates = serde_json::Map::new();
    for (i, (name, _)) in BURN_WINDOWS.iter().enumerate() {
        let rate = slo.burn_rate(counts.made[i], counts.failed[i]);
        burn_rates.insert(name.to_string(), serde_json::json!(rate));
    }
    Ok(SloView {
        objective: slo.objective,
        window_days: slo.window_days,
        error_budget: slo.budget(made, failed),
        burn_rates,
    })
}

/// A check's runs made and failed over each burn window ending now.
pub(crate) async fn burn_counts(
    state: &AppState,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<WindowCounts, ApiError> {
    let rows = state.services.results.burn_counts(&[id], now).await?;
    Ok(rows.first().map(window_counts).unwrap_or_default())
}

pub(crate) fn window_counts(r: &pulse_store::reports::BurnRow) -> WindowCounts {
    let mut c = WindowCounts::default();
    for i in 0..c.made.len() {
        c.made[i] = r.made.get(i).copied().unwrap_or(0);
        c.failed[i] = r.down.get(i).copied().unwrap_or(0);
    }
    c
}

#[derive(Serialize)]
pub(crate) struct Bucket {
    #[serde(serialize_with = "pulse_core::time::ms")]
    pub(crate) start: DateTime<Utc>,
    /// No run in this bucket.
    pub(crate) empty: bool,
    #[serde(flatten)]
    pub(crate) figures: Figures,
}

#[derive(Serialize)]
struct SeriesView {
    check_id: Uuid,
    #[serde(serialize_with = "pulse_core::time::ms")]
    from: DateTime<Utc>,
    #[serde(serialize_with = "pulse_core::time::ms")]
    to: DateTime<Utc>,
    location: Option<String>,
    bucket: String,
    bucket_seconds: i64,
    buckets: Vec<Bucket>,
}

async fn series(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<SeriesQuery>, QueryRejection>,
) -> Result<Json<SeriesView>, ApiError> {
    let id = parse_id(id)?;
    let Query(q) = q?;
    let name = q.bucket.as_deref().unwrap_or("5m");
    let bucket = BUCKETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .ok_or_else(|| bad_query("bucket", "must be 1m, 5m, 1h or 1d"))?;
    let range = range(
        q.window.as_deref(),
        q.from.as_deref(),
        q.to.as_deref(),
        Utc::now(),
        bucket,
    )?;
    let count = (range.to - range.from) / bucket;
    if count > MAX_BUCKETS {
        return Err(bad_query(
            "bucket",
            format!("{count} buckets asked; at most {MAX_BUCKETS}: use a larger bucket"),
        ));
    }
    let location = location(q.location.as_deref())?;
    let check = state.checks.get(id).await?;
    let created = check.created_at.timestamp();
    let buckets = series_buckets(&state, id, created, location, range, bucket).await?;
    Ok(Json(SeriesView {
        check_id: id,
        from: time(range.from),
        to: time(range.to),
        location: location.map(str::to_string),
        bucket: name.to_string(),
        bucket_seconds: bucket,
        buckets,
    }))
}

/// A check's figures per bucket of `bucket` seconds over `range` (aligned
/// to it): every bucket, empty ones included. `created` is the check's
/// creation (epoch seconds): no minute before it counts.
pub(crate) async fn series_buckets(
    state: &AppState,
    id: Uuid,
    created: i64,
    location: Option<&str>,
    range: Range,
    bucket: i64,
) -> Result<Vec<Bucket>, ApiError> {
    let results = &state.services.results;
    let rows = results.series(id, location, range, bucket).await?;
    let (minutes, prior) = results.minutes(id, location, range).await?;
    let minutes: Vec<MinuteRuns> = minutes.into_iter().map(Into::into).collect();
    let prior = prior.and_then(|m| MinuteRuns::from(m).state());
    let ups = uptime_buckets(&minutes, prior, range.from, range.to, created, bucket);
    let mut rows = rows.into_iter().peekable();
    let mut buckets = Vec::with_capacity(ups.len());
    for (i, up) in ups.into_iter().enumerate() {
        let start = range.from + i as i64 * bucket;
        let key = start.to_string();
        let row = rows.next_if(|r| r.key == key);
        buckets.push(Bucket {
            start: time(start),
            empty: row.as_ref().is_none_or(|r| r.runs() == 0),
            figures: figures(row.as_ref(), up),
        });
    }
    Ok(buckets)
}

#[derive(Serialize)]
pub(crate) struct CheckStats {
    pub(crate) check_id: Uuid,
    name: String,
    last_status: String,
    runs: u64,
    availability: Option<f64>,
    /// Minutes with runs that had no failed run, over minutes with runs
    /// (each minute with runs weighs the same; see docs/reports.md).
    pub(crate) uptime: Option<f64>,
    pub(crate) p95_ms: Option<f64>,
}

#[derive(Serialize)]
struct AllStatsView {
    #[serde(serialize_with = "pulse_core::time::ms")]
    from: DateTime<Utc>,
    #[serde(serialize_with = "pulse_core::time::ms")]
    to: DateTime<Utc>,
    checks: Vec<CheckStats>,
}

/// Every check's figures over `range` (whole hours), as `GET /stats`
/// answers them.
pub(crate) async fn every_check(
    state: &AppState,
    range: Range,
) -> Result<Vec<CheckStats>, ApiError> {
    let store = IncidentStore::new(state.services.pool.clone());
    let (checks, rows) = tokio::try_join!(
        async { store.check_summaries().await.map_err(ApiError::from) },
        async {
            state
                .services
                .results
                .all_checks(range)
                .await
                .map_err(ApiError::from)
        },
    )?;
    let rows: std::collections::HashMap<&str, &Aggregate> =
        rows.iter().map(|a| (a.key.as_str(), a)).collect();
    Ok(checks
        .into_iter()
        .map(|c| {
            let a = rows.get(c.id.to_string().as_str()).copied();
            CheckStats {
                check_id: c.id,
                name: c.name,
                last_status: c.last_status,
                runs: a.map_or(0, Aggregate::runs),
                availability: a.and_then(|a| availability(a.up(), a.made())),
                uptime: a.and_then(|a| {
                    (a.minutes_made > 0).then(|| {
                        (a.minutes_made - a.minutes_down.min(a.minutes_made)) as f64
                            / a.minutes_made as f64
                    })
                }),
                p95_ms: a
                    .and_then(|a| percentiles(&a.latency_ms, a.made()))
                    .map(|p| p.p95),
            }
        })
        .collect())
}

async fn all_stats(
    State(state): State<AppState>,
    q: Result<Query<AllStatsQuery>, QueryRejection>,
) -> Result<Json<AllStatsView>, ApiError> {
    let Query(q) = q?;
    // Whole hours: read from the time-ordered hourly rollup.
    let range = range(
        q.window.as_deref(),
        q.from.as_deref(),
        q.to.as_deref(),
        Utc::now(),
        3600,
    )?;
    let checks = every_check(&state, range).await?;
    Ok(Json(AllStatsView {
        from: time(range.from),
        to: time(range.to),
        checks,
    }))
}

/// An incident as the API shows it.
#[derive(Serialize)]
struct IncidentView {
    id: Uuid,
    check_id: Uuid,
    check_name: String,
    #[serde(serialize_with = "pulse_core::time::ms")]
    opened_at: DateTime<Utc>,
    #[serde(serialize_with = "pulse_core::time::ms_opt")]
    resolved_at: Option<DateTime<Utc>>,
    open: bool,
    /// Until resolved, or until now while open.
    duration_ms: i64,
    first_error: Option<String>,
    /// The failing locations, `[{"location", "error"}]`, when known.
    locations: serde_json::Value,
    opened_alert_id: Uuid,
    resolved_alert_id: Option<Uuid>,
}

impl From<IncidentRecord> for IncidentView {
    fn from(r: IncidentRecord) -> Self {
        let end = r.resolved_at.unwrap_or_else(Utc::now);
        IncidentView {
            id: r.id,
            check_id: r.check_id,
            check_name: r.check_name,
            opened_at: r.opened_at,
            resolved_at: r.resolved_at,
            open: r.resolved_at.is_none(),
            duration_ms: (end - r.opened_at).num_milliseconds().max(0),
            first_error: r.first_error,
            locations: r.locations,
            opened_alert_id: r.opened_alert_id,
            resolved_alert_id: r.resolved_alert_id,
        }
    }
}

/// Default and largest page of incidents.
const INCIDENTS_DEFAULT_LIMIT: i64 = 50;
const INCIDENTS_MAX_LIMIT: i64 = 1000;

async fn list_incidents(
    state: &AppState,
    check_id: Option<Uuid>,
    q: IncidentsQuery,
) -> Result<Response, ApiError> {
    let limit = limit(q.limit, INCIDENTS_DEFAULT_LIMIT, INCIDENTS_MAX_LIMIT)?;
    let before = match cursor(q.cursor.as_deref())? {
        None => None,
        Some((us, id)) => Some((
            DateTime::from_timestamp_micros(us)
                .ok_or_else(|| bad_query("cursor", "is not a cursor this API gave"))?,
            id,
        )),
    };
    let store = IncidentStore::new(state.services.pool.clone());
    let rows = store
        .list(&IncidentFilter {
            check_id,
            open: q.open,
            before,
            limit,
        })
        .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| {
            rows.last()
                .map(|r| encode_cursor(r.opened_at.timestamp_micros(), r.id))
        })
        .flatten();
    let views: Vec<IncidentView> = rows.into_iter().map(Into::into).collect();
    let mut resp = Json(views).into_response();
    if let Some(c) = next.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert("x-next-cursor", c);
    }
    Ok(resp)
}

/// A check's incidents, newest first (`open`, `limit`, `cursor`).
async fn check_incidents(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<IncidentsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = parse_id(id)?;
    let Query(q) = q?;
    state.checks.ever_existed(id).await?;
    list_incidents(&state, Some(id), q).await
}

/// Every check's incidents, newest first.
async fn incidents(
    State(state): State<AppState>,
    q: Result<Query<IncidentsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q?;
    list_incidents(&state, None, q).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_window_ends_now_and_is_rounded_out_to_whole_minutes() {
        let now = at("2026-11-28T12:34:56Z");
        let r = range(Some("1h"), None, None, now, 60).unwrap();
        assert_eq!(time(r.from), at("2026-11-28T11:34:00Z"));
        assert_eq!(time(r.to), at("2026-11-28T12:35:00Z"));
        let r = range(None, None, None, now, 3600).unwrap();
        assert_eq!(time(r.from), at("2026-11-27T12:00:00Z"));
        assert_eq!(time(r.to), at("2026-11-28T13:00:00Z"));
    }

    #[test]
    fn from_and_to_are_checked() {
        let now = at("2026-11-28T12:00:00Z");
        let field =
            |w: Option<&str>, f: Option<&str>, t: Option<&str>| match range(w, f, t, now, 60) {
                Err(ApiError::Field { field, .. }) => field,
                other => panic!("{:?}", other.map(|_| ())),
            };
        assert_eq!(field(Some("2d"), None, None), "window");
        assert_eq!(
            field(Some("1h"), Some("2026-11-28T10:00:00Z"), None),
            "window"
        );
        assert_eq!(field(None, None, Some("2026-11-28T10:00:00Z")), "from");
        assert_eq!(field(None, Some("yesterday"), None), "from");
        assert_eq!(
            field(
                None,
                Some("2026-11-28T10:00:00Z"),
                Some("2026-11-28T09:00:00Z")
            ),
            "from"
        );
        assert_eq!(field(None, Some("2026-01-01T00:00:00Z"), None), "from");
        let r = range(None, Some("2026-11-28T10:00:30Z"), None, now, 60).unwrap();
        assert_eq!(time(r.from), at("2026-11-28T10:00:00Z"));
    }
}
