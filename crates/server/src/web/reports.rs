//! The report figures the pages show: uptime, p95, the 90-bucket bars,
//! latency over time, the SLO budget, incidents and the status page's
//! daily uptime. Each comes from the report functions the API answers
//! with (`crate::api::reports`: `GET /stats`, `/checks/:id/stats`,
//! `/checks/:id/series`, `/incidents`), called from here, so the pages
//! never hold a second copy of that logic. The list's bars read runs by
//! status per check and hour (`ResultsStore::status_hours`), the one
//! report query the API has no route for.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use pulse_core::report::{uptime_buckets, Uptime};
use pulse_core::Check;
use pulse_store::pg::incidents::{IncidentFilter, IncidentStore};
use pulse_store::reports::Range;
use uuid::Uuid;

use super::svg::{Bucket, ChartWindow, DayUptime, LatencyPoint, Span};
use super::WebError;
use crate::api::reports as api;
use crate::api::AppState;

/// Buckets in a list row's bar, and days on the status page.
pub const BUCKETS: usize = 90;
/// A list bar's bucket: an hour, so the bar covers the last 90 hours.
pub const BAR_BUCKET_SECS: i64 = 3600;
/// The latency chart's bucket: 15 minutes over the last 24 h.
const CHART_BUCKET_SECS: i64 = 900;
/// Incidents the status page lists at most.
pub const PUBLIC_INCIDENTS: i64 = 200;
/// Incidents on a check's timeline: the last 30 days.
const TIMELINE_DAYS: i64 = 30;

/// What a list row shows of a check's reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListFigures {
    /// Share of minutes up in the last 24 h (as `GET /stats`).
    pub uptime_24h: Option<f64>,
    /// p95 latency over the last 24 h.
    pub p95_ms: Option<f64>,
    /// The last [`BUCKETS`] hours, oldest first (empty: no data).
    pub buckets: Vec<Bucket>,
}

/// An error budget: how much of the allowed failures are left.
#[derive(Debug, Clone, PartialEq)]
pub struct SloBudget {
    /// The objective, a percentage (e.g. 99.9).
    pub target: f64,
    /// Over this many days.
    pub window_days: u32,
    /// Failed runs so far in the window, and how many the objective allows.
    pub failed: u64,
    pub allowed: f64,
    /// Share of the budget left (negative once overspent); `None` before
    /// any run.
    pub remaining: Option<f64>,
}

/// What a check's page shows of its reports.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckFigures {
    /// Uptime over 24 h, 7 d, 30 d and 90 d.
    pub uptime: [(&'static str, Option<f64>); 4],
    /// Latency over the last 24 h, oldest first, and the chart's window.
    pub latency: Vec<LatencyPoint>,
    pub latency_window: ChartWindow,
    pub slo: Option<SloBudget>,
    /// Incidents in the timeline's window, oldest first.
    pub incidents: Vec<Span>,
    pub window: (DateTime<Utc>, DateTime<Utc>),
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

/// The report functions, as the pages call them.
#[derive(Clone)]
pub struct Reports {
    state: AppState,
}

impl From<crate::api::ApiError> for WebError {
    fn from(e: crate::api::ApiError) -> Self {
        match e {
            crate::api::ApiError::NotFound(_) => WebError::NotFound,
            crate::api::ApiError::Unavailable(cause) => WebError::Unavailable(cause),
            other => WebError::Internal(format!("{other:?}")),
        }
    }
}

fn window(name: &str, now: DateTime<Utc>, align: i64) -> Result<Range, WebError> {
    Ok(api::range(Some(name), None, None, now, align)?)
}

impl Reports {
    pub fn new(state: AppState) -> Reports {
        Reports { state }
    }

    /// Figures for each list row, by check; a check missing from the map
    /// has no runs in the windows.
    pub async fn list(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, ListFigures>, WebError> {
        let now = Utc::now();
        let day = window("24h", now, 60)?;
        let end = now.timestamp().div_euclid(BAR_BUCKET_SECS) * BAR_BUCKET_SECS + BAR_BUCKET_SECS;
        let bars = Range {
            from: end - BUCKETS as i64 * BAR_BUCKET_SECS,
            to: end,
        };
        let (stats, rows) = tokio::join!(
            api::every_check(&self.state, day),
            self.state.services.results.status_hours(bars)
        );
        let mut out: HashMap<Uuid, ListFigures> = HashMap::with_capacity(ids.len());
        for s in stats? {
            out.entry(s.check_id).or_default();
            if let Some(f) = out.get_mut(&s.check_id) {
                f.uptime_24h = s.uptime;
                f.p95_ms = s.p95_ms;
            }
        }
        for r in rows? {
            let f = out.entry(r.check_id).or_default();
            f.buckets = vec![Bucket::Empty; BUCKETS];
            for (i, hour) in r.hours.iter().enumerate() {
                let at = (i64::from(*hour) - bars.from) / BAR_BUCKET_SECS;
                if (0..BUCKETS as i64).contains(&at) {
                    f.buckets[at as usize] = Bucket::from_counts(
                        r.success.get(i).copied().unwrap_or(0),
                        r.degraded.get(i).copied().unwrap_or(0),
                        r.down.get(i).copied().unwrap_or(0),
                    );
                }
            }
        }
        out.retain(|id, _| ids.contains(id));
        Ok(out)
    }

    pub async fn check(&self, check: &Check) -> Result<CheckFigures, WebError> {
        let now = Utc::now();
        let id = check.id;
        let created = check.created_at.timestamp();
        let mut uptime = [
            ("24 h", None),
            ("7 d", None),
            ("30 d", None),
            ("90 d", None),
        ];
        for (slot, name) in uptime.iter_mut().zip(["24h", "7d", "30d", "90d"]) {
            let range = window(name, now, 60)?;
            slot.1 = api::check_uptime(&self.state, id, None, range, created)
                .await?
                .ratio();
        }
        let range = window("24h", now, CHART_BUCKET_SECS)?;
        let buckets =
            api::series_buckets(&self.state, id, created, None, range, CHART_BUCKET_SECS).await?;
        let latency = buckets
            .iter()
            .filter(|b| !b.empty)
            .filter_map(|b| {
                let p = b.figures.latency_ms.as_ref()?;
                let phase = |name: &str| {
                    b.figures
                        .phases
                        .get(name)
                        .and_then(|v| v.get("p50"))
                        .and_then(serde_json::Value::as_f64)
                        .unwrap_or(0.0)
                };
                Some(LatencyPoint {
                    at: b.start,
                    p50_ms: p.p50,
                    p95_ms: p.p95,
                    p99_ms: p.p99,
                    phases: [
                        ("dns", phase("dns_ms")),
                        ("connect", phase("connect_ms")),
                        ("tls", phase("tls_ms")),
                        ("ttfb", phase("ttfb_ms")),
                        ("download", phase("download_ms")),
                    ],
                })
            })
            .collect();
        let slo = match &check.spec.slo {
            Some(slo) => {
                let v = api::slo_view(&self.state, id, None, slo, now).await?;
                Some(SloBudget {
                    target: v.objective,
                    window_days: v.window_days,
                    failed: v.error_budget.failed,
                    allowed: v.error_budget.allowed_failures,
                    remaining: v.error_budget.remaining_ratio,
                })
            }
            None => None,
        };
        let from = now - Duration::days(TIMELINE_DAYS);
        let mut incidents: Vec<Span> = IncidentStore::new(self.state.services.pool.clone())
            .list(&IncidentFilter {
                check_id: Some(id),
                limit: 200,
                ..Default::default()
            })
            .await?
            .into_iter()
            .filter(|i| i.resolved_at.is_none_or(|end| end >= from))
            .map(|i| Span {
                start: i.opened_at.max(from),
                end: i.resolved_at,
                label: match (&i.first_error, i.resolved_at) {
                    (Some(e), Some(_)) => {
                        format!("down from {}: {e}", i.opened_at.format("%b %-d %H:%M"))
                    }
                    (Some(e), None) => {
                        format!("down since {}: {e}", i.opened_at.format("%b %-d %H:%M"))
                    }
                    (None, _) => format!("down from {}", i.opened_at.format("%b %-d %H:%M")),
                },
            })
            .collect();
        incidents.reverse();
        Ok(CheckFigures {
            uptime,
            latency,
            latency_window: ChartWindow {
                from: api::time(range.from),
                to: api::time(range.to),
                bucket_secs: CHART_BUCKET_SECS,
            },
            slo,
            incidents,
            window: (from, now),
        })
    }

    /// Figures for each public check (id, created), by check: 90 days of
    /// daily uptime from one query for all of them, as
    /// `/checks/:id/series?bucket=1d` and `/checks/:id/stats` count it.
    pub async fn public(
        &self,
        checks: &[(Uuid, DateTime<Utc>)],
    ) -> Result<HashMap<Uuid, PublicFigures>, WebError> {
        let now = Utc::now();
        let today = now.timestamp().div_euclid(86_400) * 86_400;
        let range = Range {
            from: today - (BUCKETS as i64 - 1) * 86_400,
            to: today + 86_400,
        };
        let ids: Vec<Uuid> = checks.iter().map(|c| c.0).collect();
        let mut minutes = self
            .state
            .services
            .results
            .checks_minutes(&ids, range)
            .await
            .map_err(crate::api::ApiError::from)?;
        let mut out = HashMap::with_capacity(checks.len());
        for &(id, created) in checks {
            let m = minutes.remove(&id).unwrap_or_default();
            let prior = m.prior.and_then(|p| p.state());
            let created = created.timestamp();
            let days = uptime_buckets(&m.minutes, prior, range.from, range.to, created, 86_400);
            let mut total = Uptime::default();
            for d in &days {
                total.up_minutes += d.up_minutes;
                total.counted_minutes += d.counted_minutes;
            }
            let days = days
                .iter()
                .enumerate()
                .map(|(i, up)| DayUptime {
                    day: api::time(range.from + i as i64 * 86_400).date_naive(),
                    uptime: up.ratio(),
                })
                .collect();
            out.insert(
                id,
                PublicFigures {
                    days,
                    uptime_90d: total.ratio(),
                },
            );
        }
        Ok(out)
    }

    /// Open incidents and those of the last 90 days of the given checks,
    /// newest first (at most [`PUBLIC_INCIDENTS`]): names and times only.
    pub async fn public_incidents(
        &self,
        names: &HashMap<Uuid, String>,
    ) -> Result<Vec<PublicIncident>, WebError> {
        let since = Utc::now() - Duration::days(BUCKETS as i64);
        let store = IncidentStore::new(self.state.services.pool.clone());
        let ids: Vec<Uuid> = names.keys().copied().collect();
        Ok(store
            .of_checks_since(&ids, since, PUBLIC_INCIDENTS)
            .await?
            .into_iter()
            .map(|i| PublicIncident {
                check_name: names.get(&i.check_id).cloned().unwrap_or(i.check_name),
                started_at: i.opened_at,
                ended_at: i.resolved_at,
            })
            .collect())
    }
}
