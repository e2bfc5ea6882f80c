//! `/checks`: create, list, read, change, delete checks, and read their runs
//! (from ClickHouse) and alerts.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use pulse_core::{Check, CheckInput, RunStatus, INPUT_FIELDS};
use pulse_store::pg::checks::CheckFilter;
use serde::Deserialize;
use uuid::Uuid;

use super::views::{AlertView, RunView};
use super::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/checks", get(list).post(create))
        .route("/checks/{id}", get(read).patch(update).delete(remove))
        .route("/checks/{id}/runs", get(runs))
        .route("/checks/{id}/alerts", get(alerts))
}

pub(super) fn parse_id(raw: Result<Path<String>, PathRejection>) -> Result<Uuid, ApiError> {
    let Path(raw) =
        raw.map_err(|r| ApiError::field(StatusCode::BAD_REQUEST, "id", r.body_text()))?;
    Uuid::parse_str(&raw).map_err(|_| {
        ApiError::field(
            StatusCode::BAD_REQUEST,
            "id",
            format!("{raw:?} is not a valid UUID"),
        )
    })
}

/// Reads a check body: JSON syntax and media type as axum checks them, then
/// a JSON object whose every key is a known field, then each field's type.
/// Every mistake names its field.
fn parse_input(
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<CheckInput, ApiError> {
    let Json(value) = body?;
    let Some(object) = value.as_object() else {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "body",
            "must be a JSON object",
        ));
    };
    if let Some(unknown) = object.keys().find(|k| !INPUT_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            unknown,
            format!("{unknown}: unknown field"),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        let field = field
            .split(['.', '['])
            .next()
            .unwrap_or_default()
            .to_string();
        let message = format!("{field}: {}", e.inner());
        ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, &field, message)
    })
}

/// `"<version>"`, the check's ETag.
fn etag(check: &Check) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}\"", check.version))
        .unwrap_or(HeaderValue::from_static("\"0\""))
}

fn with_etag(status: StatusCode, check: Check) -> Response {
    let tag = etag(&check);
    let mut resp = (status, Json(check)).into_response();
    resp.headers_mut().insert(header::ETAG, tag);
    resp
}

/// The version an `If-Match` header asks for: `None` without one (or with
/// `*`), and a version no check has when it is not one of our ETags.
fn if_match(headers: &HeaderMap) -> Option<i64> {
    let raw = headers
        .get(header::IF_MATCH)?
        .to_str()
        .unwrap_or_default()
        .trim();
    if raw == "*" {
        return None;
    }
    let tag = raw.strip_prefix("W/").unwrap_or(raw).trim_matches('"');
    Some(tag.parse().unwrap_or(-1))
}

async fn create(
    State(state): State<AppState>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let input = parse_input(body)?;
    crate::app::checks::precompile(&input).await;
    let spec = input.create(state.target_policy)?;
    let check = state.checks.create(&spec).await?;
    tracing::info!(check_id = %check.id, "check created");
    Ok(with_etag(StatusCode::CREATED, check))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    enabled: Option<bool>,
    status: Option<String>,
    q: Option<String>,
}

/// Default and largest page of `GET /checks`.
const CHECKS_DEFAULT_LIMIT: i64 = 100;
const CHECKS_MAX_LIMIT: i64 = 1000;

/// Whether `s` is a status a check's last run can have: `unknown` before
/// the first run, else a run status (`missed` is never a last status).
fn is_last_status(s: &str) -> bool {
    s == "unknown" || RunStatus::parse(s).is_some_and(|st| st != RunStatus::Missed)
}

/// A `limit` query parameter: `default` when absent, else 1 to `max`.
pub(super) fn limit(raw: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    let limit = raw.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(bad_query("limit", format!("must be between 1 and {max}")));
    }
    Ok(limit)
}

/// A `cursor` query parameter, as [`encode_cursor`] wrote it.
pub(super) fn cursor(raw: Option<&str>) -> Result<Option<(i64, Uuid)>, ApiError> {
    raw.map(|raw| {
        decode_cursor(raw).ok_or_else(|| bad_query("cursor", "is not a cursor this API gave"))
    })
    .transpose()
}

pub(super) fn bad_query(field: &str, message: impl Into<String>) -> ApiError {
    let message = message.into();
    ApiError::field(
        StatusCode::BAD_REQUEST,
        field,
        format!("{field}: {message}"),
    )
}

pub(super) fn encode_cursor(ms_or_us: i64, id: Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{ms_or_us}:{id}"))
}

fn decode_cursor(raw: &str) -> Option<(i64, Uuid)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (t, id) = text.split_once(':')?;
    Some((t.parse().ok()?, id.parse().ok()?))
}

/// A page of checks, oldest first. The next page's cursor is in the
/// `X-Next-Cursor` header and a `Link: <...>; rel="next"` header; the last
/// page has neither.
async fn list(
    State(state): State<AppState>,
    q: Result<Query<CheckListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q?;
    let limit = limit(q.limit, CHECKS_DEFAULT_LIMIT, CHECKS_MAX_LIMIT)?;
    if q.status.as_deref().is_some_and(|s| !is_last_status(s)) {
        return Err(bad_query(
            "status",
            "must be unknown, success, degraded, fail, timeout or error",
        ));
    }
    if q.q
        .as_deref()
        .is_some_and(|s| s.contains('\0') || s.len() > 200)
    {
        return Err(bad_query(
            "q",
            "must be at most 200 characters, without NUL",
        ));
    }
    let after = match cursor(q.cursor.as_deref())? {
        None => None,
        Some((us, id)) => Some((
            DateTime::from_timestamp_micros(us)
                .ok_or_else(|| bad_query("cursor", "is not a cursor this API gave"))?,
            id,
        )),
    };
    let checks = state
        .checks
        .page(&CheckFilter {
            enabled: q.enabled,
            status: q.status.clone(),
            name_contains: q.q.clone(),
            after,
            limit,
            public: None,
        })
        .await?;
    let next = (checks.len() as i64 == limit)
        .then(|| {
            checks
                .last()
                .map(|c| encode_cursor(c.created_at.timestamp_micros(), c.id))
        })
        .flatten();
    let mut resp = Json(checks).into_response();
    if let Some(cursor) = next {
        let mut link = format!("/checks?limit={limit}&cursor={cursor}");
        for (k, v) in [
            ("enabled", q.enabled.map(|b| b.to_string())),
            ("status", q.status),
            ("q", q.q),
        ] {
            if let Some(v) = v {
                link.push_str(&format!("&{k}={}", url_escape(&v)));
            }
        }
        if let Ok(v) = HeaderValue::from_str(&cursor) {
            resp.headers_mut().insert("x-next-cursor", v);
        }
        if let Ok(v) = HeaderValue::from_str(&format!("<{link}>; rel=\"next\"")) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(resp)
}

/// Percent-encodes a query value.
fn url_escape(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn read(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let check = state.checks.get(parse_id(id)?).await?;
    Ok(with_etag(StatusCode::OK, check))
}

/// Applies only the fields sent, atomically (under a row lock, over the
/// current definition). With `If-Match`, a stale version is 412.
async fn update(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = parse_id(id)?;
    let input = parse_input(body)?;
    crate::app::checks::precompile(&input).await;
    let check = state
        .checks
        .update_with(id, if_match(&headers), |current| {
            Ok::<_, ApiError>(input.apply(current, state.target_policy)?)
        })
        .await?;
    if !check.spec.enabled {
        state.cancel_queued(id).await;
    }
    tracing::info!(check_id = %id, version = check.version, "check updated");
    Ok(with_etag(StatusCode::OK, check))
}

async fn remove(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(id)?;
    state.checks.delete(id).await?;
    state.cancel_queued(id).await;
    tracing::info!(check_id = %id, "check deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunsQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    from: Option<String>,
    to: Option<String>,
    location: Option<String>,
}

/// Default and largest `limit` for runs and alerts.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 1000;

pub(super) fn rfc3339(field: &str, raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    raw.map(|s| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc).timestamp_millis())
            .map_err(|_| bad_query(field, "must be an RFC 3339 time, e.g. 2026-11-28T17:00:00Z"))
    })
    .transpose()
}

/// Runs, newest first, a page at a time: `from`/`to` (RFC 3339) bound the
/// start time, `cursor` (from `X-Next-Cursor`) continues a listing. Runs of
/// a deleted check stay readable.
async fn runs(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = parse_id(id)?;
    let Query(q) = q?;
    let limit = limit(q.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let from = rfc3339("from", q.from.as_deref())?.unwrap_or(0);
    let to = rfc3339("to", q.to.as_deref())?.unwrap_or(i64::MAX);
    if from > to {
        return Err(bad_query("from", "must not be after `to`"));
    }
    let before = cursor(q.cursor.as_deref())?;
    if let Some(l) = &q.location {
        pulse_core::location::valid_name(l).map_err(|m| bad_query("location", m))?;
    }
    state.checks.ever_existed(id).await?;
    let rows = state
        .services
        .results
        .page(id, from, to, before, q.location.as_deref(), limit as u32)
        .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| encode_cursor(r.run_at_ms, r.id)))
        .flatten();
    let views: Vec<RunView> = rows.into_iter().map(RunView::from).collect();
    let mut resp = Json(views).into_response();
    if let Some(cursor) = next.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert("x-next-cursor", cursor);
    }
    Ok(resp)
}

/// Alerts with their delivery state, newest first.
async fn alerts(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<AlertView>>, ApiError> {
    let id = parse_id(id)?;
    let Query(q) = q?;
    let limit = limit(q.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    state.checks.ever_existed(id).await?;
    let alerts = state.alerts.for_check(id, limit).await?;
    Ok(Json(alerts.into_iter().map(AlertView::from).collect()))
}
