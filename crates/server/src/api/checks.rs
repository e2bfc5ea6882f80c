//! `/checks`: create, list, read, change, delete checks, and read their runs
//! (from ClickHouse) and alerts.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use pulse_core::{Check, CheckInput};
use pulse_store::pg::alerts::AlertRecord;
use pulse_store::results::RunView;
use serde::Deserialize;
use uuid::Uuid;

use super::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/checks", get(list).post(create))
        .route("/checks/{id}", get(read).patch(update).delete(remove))
        .route("/checks/{id}/runs", get(runs))
        .route("/checks/{id}/alerts", get(alerts))
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::BadRequest(format!("id: {raw:?} is not a valid UUID")))
}

async fn create(
    State(state): State<AppState>,
    body: Result<Json<CheckInput>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(input) = body?;
    let spec = input.create(state.target_policy)?;
    let check = state.checks.create(&spec).await?;
    tracing::info!(check_id = %check.id, "check created");
    Ok((StatusCode::CREATED, Json(check)))
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<Check>>, ApiError> {
    Ok(Json(state.checks.list().await?))
}

async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Check>, ApiError> {
    Ok(Json(state.checks.get(parse_id(&id)?).await?))
}

async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<CheckInput>, JsonRejection>,
) -> Result<Json<Check>, ApiError> {
    let id = parse_id(&id)?;
    let Json(input) = body?;
    let current = state.checks.get(id).await?;
    let spec = input.apply(current.spec, state.target_policy)?;
    let check = state.checks.update(id, &spec).await?;
    tracing::info!(check_id = %id, "check updated");
    Ok(Json(check))
}

async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    state.checks.delete(id).await?;
    tracing::info!(check_id = %id, "check deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
}

/// Default and largest `limit` for runs and alerts.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 1000;

fn limit(q: Result<Query<ListQuery>, QueryRejection>) -> Result<i64, ApiError> {
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit: must be between 1 and {MAX_LIMIT}"
        )));
    }
    Ok(limit)
}

/// Latest runs, newest first. Runs of a deleted check stay readable.
async fn runs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<RunView>>, ApiError> {
    let id = parse_id(&id)?;
    let limit = limit(q)?;
    state.checks.ever_existed(id).await?;
    let rows = state.services.results.latest(id, limit as u32).await?;
    Ok(Json(rows.into_iter().map(RunView::from).collect()))
}

/// Alerts with their delivery state, newest first.
async fn alerts(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<AlertRecord>>, ApiError> {
    let id = parse_id(&id)?;
    let limit = limit(q)?;
    state.checks.ever_existed(id).await?;
    Ok(Json(state.alerts.for_check(id, limit).await?))
}
