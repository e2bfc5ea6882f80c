//! The worker's `/health`, `/ready` and `/metrics`, on `WORKER_PORT`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use pulse_store::metrics::Metrics;
use pulse_store::runtime::Services;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub async fn serve(
    listener: TcpListener,
    services: Services,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let app = Router::new()
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/ready", get(ready))
        .with_state(services)
        .route(
            "/metrics",
            get(move || async move {
                (
                    [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                    metrics.render(),
                )
            }),
        );
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
}

async fn ready(State(services): State<Services>) -> (StatusCode, Json<Value>) {
    match services.first_unready().await {
        None => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Some(down) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": format!("{down} is unreachable"), "down": down })),
        ),
    }
}
