//! API errors: every one answers `{"error": "...", "field": "..."?}`.
//! Client mistakes are 4xx naming the field; our own failures are 5xx
//! without internals (the cause is logged once, here). Responses that
//! axum or a layer produced with another body (405, 413, ...) are given the
//! same shape by [`json_errors`].

use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pulse_core::ValidationError;
use pulse_store::StoreError;
use serde_json::json;

#[derive(Debug)]
pub enum ApiError {
    /// 400: malformed request (bad JSON syntax, bad query).
    BadRequest(String),
    /// 422 (or the given 4xx): a field the client got wrong.
    Field {
        status: StatusCode,
        field: String,
        message: String,
    },
    /// 404: unknown check or route.
    NotFound(&'static str),
    /// 412: `If-Match` named a version that is no longer current.
    Stale { current: i64 },
    /// 413, 415 and friends, as axum's extractors report them.
    Rejected(StatusCode, String),
    /// 503: a dependency is down.
    Unavailable(String),
    /// 500: anything else on our side.
    Internal(String),
}

impl ApiError {
    pub fn field(status: StatusCode, field: &str, message: impl Into<String>) -> ApiError {
        ApiError::Field {
            status,
            field: field.to_string(),
            message: message.into(),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, &e.field, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("check not found"),
            StoreError::VersionMismatch { current } => ApiError::Stale { current },
            e if e.is_unavailable() => ApiError::Unavailable(e.to_string()),
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
            ApiError::Field {
                status,
                field,
                message,
            } => (status, json!({ "error": message, "field": field })),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, json!({ "error": m })),
            ApiError::Stale { current } => (
                StatusCode::PRECONDITION_FAILED,
                json!({
                    "error": format!("the check changed: version \"{current}\" is current; read it again"),
                    "field": "If-Match",
                }),
            ),
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

/// Gives every error response the JSON shape: one whose body is not JSON
/// (axum's plain-text rejections, an empty 405) is replaced by
/// `{"error": <its text or the status's reason>}`.
pub async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("error")
                .to_ascii_lowercase()
        });
    let body = json!({ "error": text }).to_string();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// Longest request target (path and query) the API reads.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// 414 for a request target longer than [`MAX_URI_BYTES`]. (Past 64 KiB
/// hyper answers 414 itself, before any of this runs.)
pub async fn uri_limit(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if len > MAX_URI_BYTES {
        return ApiError::Rejected(
            StatusCode::URI_TOO_LONG,
            format!("the request URI is {len} bytes; at most {MAX_URI_BYTES} are read"),
        )
        .into_response();
    }
    next.run(req).await
}
