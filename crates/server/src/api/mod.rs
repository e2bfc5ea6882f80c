//! The REST API: one module per resource, each with its own router.

mod auth;
mod checks;
mod error;
mod health;
pub mod locations;
mod metrics;
pub mod reports;
mod views;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::Router;
use pulse_core::policy::TargetPolicy;
use pulse_runtime::process::Services;
use pulse_runtime::ServerMetrics as Metrics;
use pulse_store::pg::api_keys::ApiKeyStore;
use pulse_store::{AlertStore, CheckStore};

pub use auth::Limits;
pub use error::ApiError;
pub(crate) use reports::window_counts;

/// Largest request body the API reads; larger ones get 413.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub checks: CheckStore,
    pub alerts: AlertStore,
    pub keys: ApiKeyStore,
    pub services: Services,
    pub auth_required: bool,
    pub metrics: Metrics,
    /// `TARGET_POLICY`: check and webhook URLs it refuses are invalid.
    pub target_policy: TargetPolicy,
    limits: Arc<auth::RateLimits>,
}

impl AppState {
    pub fn new(
        services: &Services,
        auth_required: bool,
        limits: Limits,
        metrics: Metrics,
        target_policy: TargetPolicy,
    ) -> AppState {
        AppState {
            checks: CheckStore::new(services.pool.clone()),
            alerts: AlertStore::new(services.pool.clone()),
            keys: ApiKeyStore::new(services.pool.clone()),
            services: services.clone(),
            auth_required,
            metrics,
            target_policy,
            limits: auth::RateLimits::new(limits),
        }
    }

    /// Makes sure no queued run of a deleted or paused check starts: workers
    /// skip jobs claimed before this moment. Best effort: if Redis is down
    /// the change still stands, and the run's state write is refused.
    pub async fn cancel_queued(&self, check_id: uuid::Uuid) {
        if let Err(e) = self.services.queue.cancel(check_id).await {
            tracing::warn!(%check_id, error = %e, "could not cancel queued runs");
        }
    }
}

/// The API. With `metrics_need_key`, `/metrics` sits behind the API key
/// like `/checks`; otherwise it is open like `/health`.
pub fn router(state: AppState, metrics_need_key: bool) -> Router {
    let key = axum::middleware::from_fn_with_state(state.clone(), auth::require_key);
    let mut protected = checks::router()
        .merge(locations::router())
        .merge(reports::router());
    let mut open = health::router();
    if metrics_need_key {
        protected = protected.merge(metrics::router());
    } else {
        open = open.merge(metrics::router());
    }
    Router::new()
        .merge(protected.route_layer(key))
        .merge(open)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count_requests,
        ))
        .fallback(|| async { ApiError::NotFound("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::field(
                StatusCode::METHOD_NOT_ALLOWED,
                "method",
                "method not allowed on this route",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(axum::middleware::from_fn(error::uri_limit))
        // The access log: one line per request with method, path (not the
        // query: it may carry a cursor or a name), status and latency.
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(|req: &axum::extract::Request| {
                    tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
                })
                .on_request(())
                .on_response(
                    tower_http::trace::DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(tower_http::LatencyUnit::Millis),
                ),
        )
        .layer(axum::middleware::map_response(error::json_errors))
        .with_state(state)
}
