//! The report figures the pages show: uptime, p95, the 90-bucket bars,
//! latency over time, the SLO budget, incidents and the status page's
//! daily uptime. They come from the report queries the API answers with
//! (`GET /checks/:id/stats`, `/series`, `GET /stats`; issue 10), called
//! from here only, so the pages never hold a second copy of that logic.
//!
//! Until those queries are on this branch every figure is `None` or empty,
//! and the pages say "no data" where they would be.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::svg::{Bucket, DayUptime, LatencyPoint, Span};
use crate::api::AppState;

/// Buckets in a list row's bar, and days on the status page.
pub const BUCKETS: usize = 90;

/// What a list row shows of a check's reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListFigures {
    /// Share of up runs in the last 24 h.
    pub uptime_24h: Option<f64>,
    /// p95 latency over the last 24 h.
    pub p95_ms: Option<f64>,
    /// The last [`BUCKETS`] buckets, oldest first (empty: no data).
    pub buckets: Vec<Bucket>,
}

/// An error budget: how much of the allowed downtime is left.
#[derive(Debug, Clone, PartialEq)]
pub struct SloBudget {
    /// The objective, e.g. 0.999.
    pub target: f64,
    /// Over this many days.
    pub window_days: u32,
    /// Uptime so far in the window.
    pub uptime: f64,
    /// Share of the budget left (negative once overspent).
    pub remaining: f64,
}

/// What a check's page shows of its reports.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckFigures {
    /// Uptime over 24 h, 7 d, 30 d and 90 d.
    pub uptime: [(&'static str, Option<f64>); 4],
    /// Latency over the last 24 h, oldest first.
    pub latency: Vec<LatencyPoint>,
    pub slo: Option<SloBudget>,
    /// Incidents in the timeline's window, oldest first.
    pub incidents: Vec<Span>,
    pub window: (DateTime<Utc>, DateTime<Utc>),
}

impl CheckFigures {
    fn none(now: DateTime<Utc>) -> CheckFigures {
        CheckFigures {
            uptime: [
                ("24 h", None),
                ("7 d", None),
                ("30 d", None),
                ("90 d", None),
            ],
            latency: Vec::new(),
            slo: None,
            incidents: Vec::new(),
            window: (now - Duration::days(30), now),
        }
    }
}

/// An incident as the public page shows it: which check, when. No error.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicIncident {
    pub check_name: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// What the status page shows of a public check's reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublicFigures {
    /// The last [`BUCKETS`] days, oldest first (empty: no data).
    pub days: Vec<DayUptime>,
    pub uptime_90d: Option<f64>,
}

/// The report queries, as the pages call them.
#[derive(Clone)]
pub struct Reports {
    #[allow(dead_code)]
    state: AppState,
}

impl Reports {
    pub fn new(state: AppState) -> Reports {
        Reports { state }
    }

    /// Figures for each list row, by check; a check missing from the map
    /// has no data.
    pub async fn list(&self, _ids: &[Uuid]) -> pulse_store::Result<HashMap<Uuid, ListFigures>> {
        Ok(HashMap::new())
    }

    pub async fn check(&self, _id: Uuid) -> pulse_store::Result<CheckFigures> {
        Ok(CheckFigures::none(Utc::now()))
    }

    /// Figures for each public check, by check.
    pub async fn public(&self, _ids: &[Uuid]) -> pulse_store::Result<HashMap<Uuid, PublicFigures>> {
        Ok(HashMap::new())
    }

    /// Open and recent incidents of the given checks (named by `names`),
    /// newest first.
    pub async fn public_incidents(
        &self,
        _names: &HashMap<Uuid, String>,
    ) -> pulse_store::Result<Vec<PublicIncident>> {
        Ok(Vec::new())
    }
}
