//! The REST API: one module per resource, each with its own router.

mod checks;
mod error;
mod health;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use pulse_store::runtime::Services;
use pulse_store::{AlertStore, CheckStore};

pub use error::ApiError;

/// Largest request body the API reads; larger ones get 413.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub checks: CheckStore,
    pub alerts: AlertStore,
    pub services: Services,
}

impl AppState {
    pub fn new(services: &Services) -> AppState {
        AppState {
            checks: CheckStore::new(services.pool.clone()),
            alerts: AlertStore::new(services.pool.clone()),
            services: services.clone(),
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(checks::router())
        .merge(health::router())
        .fallback(|| async { ApiError::NotFound("no such route") })
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state)
}
