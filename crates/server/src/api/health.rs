//! `GET /health` (the process is alive) and `GET /ready` (Postgres, Redis
//! and ClickHouse all answer).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
}

async fn health() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match state.services.first_unready().await {
        None => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Some(down) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": format!("{down} is unreachable"), "down": down })),
        ),
    }
}
