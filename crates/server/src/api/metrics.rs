//! `GET /metrics` (Prometheus text, or OpenMetrics when asked) and the request counter and timer.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use pulse_runtime::metrics::{RequestLabels, RouteLabels};
use pulse_runtime::Format;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(render))
}

/// The classic Prometheus text format, or OpenMetrics when `Accept` asks.
async fn render(State(state): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    super::locations::export(&state).await;
    let format = Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    (
        [("content-type", format.content_type())],
        state.metrics.render(format),
    )
}

/// Counts every request by method, route template (not the raw path, so
/// ids do not explode the label set) and status.
pub async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    state
        .metrics
        .api_duration
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .api_requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: resp.status().as_u16().to_string(),
        })
        .inc();
    resp
}
