//! The worker's `/health`, `/ready` and `/metrics`, on `WORKER_PORT`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use pulse_runtime::process::Services;
use pulse_runtime::WorkerMetrics as Metrics;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::overload::Overload;

pub async fn serve(
    listener: TcpListener,
    services: Services,
    metrics: Metrics,
    overload: Overload,
    stop: CancellationToken,
) {
    let app = Router::new()
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/ready", get(ready))
        .with_state((services, overload))
        .route(
            "/metrics",
            get(move |headers: axum::http::HeaderMap| async move {
                let format = pulse_runtime::Format::from_accept(
                    headers
                        .get(axum::http::header::ACCEPT)
                        .and_then(|v| v.to_str().ok()),
                );
                (
                    [("content-type", format.content_type())],
                    metrics.render(format),
                )
            }),
        );
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
}

/// 503 while a backing service is down. Overload does not make the worker
/// unready (taking it out would only add to the load), but the body says
/// so: `overloaded`, the lag p99, and a `warning` line.
async fn ready(
    State((services, overload)): State<(Services, Overload)>,
) -> (StatusCode, Json<Value>) {
    let o = overload.state();
    let mut body = match services.first_unready().await {
        None => json!({ "status": "ready" }),
        Some(down) => json!({ "error": format!("{down} is unreachable"), "down": down }),
    };
    body["overloaded"] = json!(o.overloaded);
    body["schedule_lag_p99_ms"] = json!(o.lag_p99_ms);
    if o.overloaded {
        body["warning"] = json!(format!(
            "overloaded: scheduling lag p99 is {} ms; add workers or raise WORKER_CONCURRENCY",
            o.lag_p99_ms
        ));
    }
    let status = if body.get("down").is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(body))
}
