//! `GET /locations`: every location seen (served by a worker now or
//! before, or named by a check), with its live workers, last heartbeat,
//! queue depth, scheduling lag and whether it is stale. The same figures
//! go to `/metrics` at each scrape.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use pulse_runtime::metrics::LocationLabel;
use serde::Serialize;

use super::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/locations", get(list))
}

/// One location as `GET /locations` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LocationView {
    pub location: String,
    /// `live` (at least one worker's heartbeat is current) or `stale`.
    pub status: &'static str,
    pub live_workers: usize,
    /// The live workers' ids.
    pub workers: Vec<String>,
    /// The last heartbeat of any of its workers; `null` if none ever came.
    #[serde(serialize_with = "pulse_core::time::ms_opt")]
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// Jobs waiting in its queue.
    pub queue_depth: i64,
    /// The highest scheduling lag p99 (last 30 s) its live workers report.
    pub lag_p99_ms: u64,
    /// Live checks that run there.
    pub checks: i64,
}

/// Every location seen, by name.
pub async fn overview(state: &AppState) -> Result<Vec<LocationView>, ApiError> {
    let queue = &state.services.queue;
    let presence = queue.presence().await?;
    let in_use = state.checks.locations_in_use().await?;
    let mut names: Vec<String> = presence
        .seen
        .keys()
        .cloned()
        .chain(in_use.iter().map(|(l, _)| l.clone()))
        .collect();
    names.sort();
    names.dedup();
    let mut views = Vec::with_capacity(names.len());
    for location in names {
        let workers: Vec<_> = presence
            .alive
            .iter()
            .filter(|w| w.location == location)
            .collect();
        views.push(LocationView {
            status: if workers.is_empty() { "stale" } else { "live" },
            live_workers: workers.len(),
            lag_p99_ms: workers.iter().map(|w| w.lag_p99_ms).max().unwrap_or(0),
            workers: workers.iter().map(|w| w.worker.clone()).collect(),
            last_heartbeat: presence
                .seen
                .get(&location)
                .and_then(|ms| DateTime::from_timestamp_millis(*ms)),
            queue_depth: queue.len(&location).await?,
            checks: in_use
                .iter()
                .find(|(l, _)| *l == location)
                .map_or(0, |(_, n)| *n),
            location,
        });
    }
    Ok(views)
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<LocationView>>, ApiError> {
    Ok(Json(overview(&state).await?))
}

/// Sets the location gauges of `/metrics` from the overview.
pub async fn export(state: &AppState) {
    let Ok(views) = overview(state).await else {
        return;
    };
    let m = &state.metrics;
    let now = Utc::now();
    for v in views {
        let label = LocationLabel {
            location: v.location.clone(),
        };
        m.location_workers
            .get_or_create(&label)
            .set(v.live_workers as i64);
        m.location_stale
            .get_or_create(&label)
            .set(i64::from(v.status == "stale"));
        m.location_queue_depth
            .get_or_create(&label)
            .set(v.queue_depth);
        if let Some(beat) = v.last_heartbeat {
            m.location_heartbeat_age
                .get_or_create(&label)
                .set((now - beat).num_milliseconds() as f64 / 1000.0);
        }
    }
}
