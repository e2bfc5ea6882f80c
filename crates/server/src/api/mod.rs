//! The REST API: one module per resource, each with its own router.

mod auth;
mod checks;
mod error;
mod health;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use pulse_store::pg::api_keys::ApiKeyStore;
use pulse_store::runtime::Services;
use pulse_store::{AlertStore, CheckStore};

pub use auth::Limits;
pub use error::ApiError;

/// Largest request body the API reads; larger ones get 413.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub checks: CheckStore,
    pub alerts: AlertStore,
    pub keys: ApiKeyStore,
    pub services: Services,
    pub auth_required: bool,
    limits: Arc<auth::RateLimits>,
}

impl AppState {
    pub fn new(services: &Services, auth_required: bool, limits: Limits) -> AppState {
        AppState {
            checks: CheckStore::new(services.pool.clone()),
            alerts: AlertStore::new(services.pool.clone()),
            keys: ApiKeyStore::new(services.pool.clone()),
            services: services.clone(),
            auth_required,
            limits: auth::RateLimits::new(limits),
        }
    }
}

pub fn router(state: AppState) -> Router {
    let protected = checks::router().route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::require_key,
    ));
    Router::new()
        .merge(protected)
        .merge(health::router())
        .fallback(|| async { ApiError::NotFound("no such route") })
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state)
}
