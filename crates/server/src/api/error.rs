//! API errors: every one answers `{"error": "..."}`. Client mistakes are 4xx
//! naming the field; our own failures are 5xx without internals (the cause
//! is logged once, here).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pulse_core::ValidationError;
use pulse_store::StoreError;
use serde_json::json;

#[derive(Debug)]
pub enum ApiError {
    /// 400: malformed request (bad JSON syntax, bad id, bad query).
    BadRequest(String),
    /// 422: well-formed but invalid field.
    Invalid(ValidationError),
    /// 404: unknown check or route.
    NotFound(&'static str),
    /// 413, 415 and friends, as axum's extractors report them.
    Rejected(StatusCode, String),
    /// 503: a dependency is down.
    Unavailable(String),
    /// 500: anything else on our side.
    Internal(String),
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::Invalid(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("check not found"),
            StoreError::Postgres(sqlx::Error::PoolTimedOut)
            | StoreError::Postgres(sqlx::Error::Io(_)) => {
                ApiError::Unavailable(format!("postgres unavailable: {e}"))
            }
            StoreError::Redis(_) | StoreError::ClickHouse(_) => {
                ApiError::Unavailable(e.to_string())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let text = r.body_text();
        match r {
            JsonRejection::JsonSyntaxError(_) => ApiError::BadRequest(text),
            JsonRejection::JsonDataError(_) => {
                ApiError::Rejected(StatusCode::UNPROCESSABLE_ENTITY, text)
            }
            _ => ApiError::Rejected(status, text),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, json!({ "error": m })),
            ApiError::Invalid(e) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "error": e.to_string(), "field": e.field }),
            ),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, json!({ "error": m })),
            ApiError::Rejected(s, m) => (s, json!({ "error": m })),
            ApiError::Unavailable(cause) => {
                tracing::warn!(%cause, "dependency unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({ "error": "a backing service is unavailable, try again" }),
                )
            }
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "error": "internal error" }),
                )
            }
        };
        (status, Json(body)).into_response()
    }
}
