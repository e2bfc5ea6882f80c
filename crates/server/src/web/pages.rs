//! The read-only pages: the list of checks (`/`), a check's page
//! (`/checks/:id`) and the public status page (`/status`). Each handler
//! gathers its data from the stores and the report queries into a view,
//! and the view's template renders it.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use pulse_core::{Check, RunStatus};
use pulse_store::pg::alerts::AlertRecord;
use pulse_store::pg::checks::CheckFilter;
use pulse_store::pg::overview::PublicCheck;
use pulse_store::RunRow;
use serde::Deserialize;
use uuid::Uuid;

use crate::api::locations::LocationView;

use super::reports::{CheckFigures, ListFigures, PublicFigures, PublicIncident, BUCKETS};
use super::session::{PeerIp, SignedIn};
use super::svg::{self, Bucket};
use super::{html, WebError, WebState};

/// What every page's frame needs: who is signed in (nobody on public
/// pages) and the CSRF token for the sign-out form.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    pub user: Option<String>,
    pub csrf: String,
}

impl Chrome {
    pub fn public() -> Chrome {
        Chrome::default()
    }
}

/// A status mark: a class (colour and icon, from the stylesheet) and a
/// word, so the state is never told by colour alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub class: &'static str,
    pub word: &'static str,
}

impl Mark {
    /// A check's mark from whether it runs and its last run.
    pub fn of_check(enabled: bool, last: Option<RunStatus>) -> Mark {
        if !enabled {
            return Mark {
                class: "paused",
                word: "Paused",
            };
        }
        match last {
            None => Mark {
                class: "pending",
                word: "Pending",
            },
            Some(RunStatus::Success) => Mark {
                class: "up",
                word: "Up",
            },
            Some(RunStatus::Degraded) => Mark {
                class: "deg",
                word: "Degraded",
            },
            Some(_) => Mark {
                class: "down",
                word: "Down",
            },
        }
    }

    /// A run's mark: its own status as the word.
    pub fn of_run(status: &str) -> Mark {
        match RunStatus::parse(status) {
            Some(RunStatus::Success) => Mark {
                class: "up",
                word: "Success",
            },
            Some(RunStatus::Degraded) => Mark {
                class: "deg",
                word: "Degraded",
            },
            Some(RunStatus::Fail) => Mark {
                class: "down",
                word: "Fail",
            },
            Some(RunStatus::Timeout) => Mark {
                class: "down",
                word: "Timeout",
            },
            Some(RunStatus::Error) => Mark {
                class: "down",
                word: "Error",
            },
            Some(RunStatus::Missed) => Mark {
                class: "pending",
                word: "Missed",
            },
            None => Mark {
                class: "pending",
                word: "Unknown",
            },
        }
    }

    /// Worse marks sort first on the list.
    fn rank(self) -> u8 {
        match self.class {
            "down" => 0,
            "deg" => 1,
            "pending" => 2,
            "up" => 3,
            _ => 4,
        }
    }
}

/// "12 s ago", "3 min ago", "5 h ago", "2 d ago".
pub fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - t).num_seconds().max(0);
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn uptime_text(u: Option<f64>) -> String {
    u.map_or_else(|| "no data".into(), svg::percent)
}

fn ms_text(ms: Option<f64>) -> String {
    ms.map_or_else(|| "no data".into(), |v| format!("{v:.0} ms"))
}

/// The target a check probes, as shown to signed-in users.
fn target(check: &Check) -> String {
    match check.spec.check_type {
        pulse_core::check::CheckType::Http => format!("{} {}", check.spec.method, check.spec.url),
        _ => check.spec.url.clone(),
    }
}

// ---------------------------------------------------------------- list

/// One row of the list.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: Uuid,
    pub name: String,
    pub mark: Mark,
    pub last_run: String,
    pub uptime: String,
    pub p95: String,
    pub bar: String,
}

impl Row {
    pub fn new(check: &Check, figures: Option<&ListFigures>, now: DateTime<Utc>) -> Row {
        let empty = ListFigures::default();
        let f = figures.unwrap_or(&empty);
        let buckets = if f.buckets.is_empty() {
            vec![Bucket::Empty; BUCKETS]
        } else {
            f.buckets.clone()
        };
        Row {
            id: check.id,
            name: check.spec.name.clone(),
            mark: Mark::of_check(check.spec.enabled, check.last_status),
            last_run: check
                .last_run_at
                .map_or_else(|| "never".into(), |t| ago(t, now)),
            uptime: uptime_text(f.uptime_24h),
            p95: ms_text(f.p95_ms),
            bar: svg::status_bar(&buckets),
        }
    }
}

#[derive(Template)]
#[template(path = "list.html")]
pub struct ListPage {
    pub chrome: Chrome,
    pub q: String,
    pub rows: Vec<Row>,
    /// "12 checks: 10 up, 1 down, 1 paused".
    pub summary: String,
    pub banners: Vec<String>,
    /// More checks than shown.
    pub truncated: bool,
}

/// Most checks the list shows at once (search narrows it).
pub const LIST_LIMIT: i64 = 1000;
/// A scheduler this far behind gets a banner.
const LAG_BANNER_MS: i64 = 30_000;

impl ListPage {
    pub fn new(
        chrome: Chrome,
        q: String,
        checks: &[Check],
        figures: &HashMap<Uuid, ListFigures>,
        health: &Health,
        now: DateTime<Utc>,
    ) -> ListPage {
        let mut rows: Vec<Row> = checks
            .iter()
            .take(LIST_LIMIT as usize)
            .map(|c| Row::new(c, figures.get(&c.id), now))
            .collect();
        rows.sort_by(|a, b| {
            (a.mark.rank(), a.name.to_lowercase()).cmp(&(b.mark.rank(), b.name.to_lowercase()))
        });
        let mut counts: BTreeMap<u8, (&str, usize)> = BTreeMap::new();
        for r in &rows {
            counts.entry(r.mark.rank()).or_insert((r.mark.word, 0)).1 += 1;
        }
        let parts: Vec<String> = counts
            .values()
            .map(|(w, n)| format!("{n} {}", w.to_lowercase()))
            .collect();
        let summary = match rows.len() {
            0 => "No checks.".to_string(),
            1 => format!("1 check: {}", parts.join(", ")),
            n => format!("{n} checks: {}", parts.join(", ")),
        };
        let banners = health.banners(now);
        ListPage {
            chrome,
            q,
            truncated: checks.len() as i64 > LIST_LIMIT,
            rows,
            summary,
            banners,
        }
    }
}

/// What the banners of the list page are made of: the scheduler's lag and
/// each location's state, as `GET /locations` reports it.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// How long the most overdue slot has waited to be queued.
    pub scheduler_lag_ms: i64,
    pub locations: Vec<LocationView>,
}

impl Health {
    pub fn banners(&self, now: DateTime<Utc>) -> Vec<String> {
        let mut banners = Vec::new();
        if self.scheduler_lag_ms >= LAG_BANNER_MS {
            banners.push(format!(
                "The scheduler is behind: a due check has waited {} s to be queued.",
                self.scheduler_lag_ms / 1000
            ));
        }
        for l in &self.locations {
            if l.status == "stale" && l.checks > 0 {
                let since = l
                    .last_heartbeat
                    .map_or_else(|| "ever".to_string(), |t| ago(t, now));
                banners.push(format!(
                    "Location {} is stale: no worker has reported {since}, and {} check{} run there.",
                    l.location,
                    l.checks,
                    if l.checks == 1 { "" } else { "s" }
                ));
            } else if l.lag_p99_ms as i64 >= LAG_BANNER_MS {
                banners.push(format!(
                    "Location {} lags: its workers start runs up to {} s late (p99).",
                    l.location,
                    l.lag_p99_ms / 1000
                ));
            }
        }
        banners
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
}

pub async fn list(
    State(state): State<WebState>,
    signed_in: SignedIn,
    Query(query): Query<ListQuery>,
) -> Result<Response, WebError> {
    let q = query
        .q
        .map(|q| q.trim().replace('\0', ""))
        .filter(|q| !q.is_empty());
    let checks = state
        .app
        .checks
        .page(&CheckFilter {
            name_contains: q.clone(),
            limit: LIST_LIMIT + 1,
            ..Default::default()
        })
        .await?;
    let ids: Vec<Uuid> = checks.iter().map(|c| c.id).collect();
    let (figures, lag, locations) = tokio::join!(
        state.reports.list(&ids),
        state.overview.scheduler_lag_ms(),
        crate::api::locations::overview(&state.app),
    );
    let health = Health {
        scheduler_lag_ms: lag?,
        locations: locations.map_err(|e| WebError::Unavailable(format!("{e:?}")))?,
    };
    let page = ListPage::new(
        signed_in.chrome(),
        q.unwrap_or_default(),
        &checks,
        &figures?,
        &health,
        Utc::now(),
    );
    html(&page)
}

// ---------------------------------------------------------------- check

/// A failed assertion of a run: what was expected and what was seen.
#[derive(Debug, Clone)]
pub struct FailedAssertion {
    pub expected: String,
    pub actual: String,
}

#[derive(Debug, Clone)]
pub struct RunLine {
    pub at: String,
    pub ago: String,
    pub location: String,
    pub mark: Mark,
    pub latency: String,
    pub code: String,
    pub error: Option<String>,
    pub failed: Vec<FailedAssertion>,
    pub excerpt: Option<String>,
    pub attempts: u8,
}

impl RunLine {
    pub fn new(run: &RunRow, check: &Check, now: DateTime<Utc>) -> RunLine {
        let at = DateTime::from_timestamp_millis(run.run_at_ms).unwrap_or_default();
        let details = run.details();
        let failed = details
            .assertions
            .iter()
            .filter(|r| !r.passed)
            .map(|r| FailedAssertion {
                expected: check
                    .spec
                    .assertions
                    .get(r.index)
                    .map_or_else(|| format!("assertion {}", r.index + 1), |a| a.describe()),
                actual: r.actual.clone().unwrap_or_else(|| "nothing".into()),
            })
            .collect();
        RunLine {
            at: when(at),
            ago: ago(at, now),
            location: run.location.clone(),
            mark: Mark::of_run(&run.status),
            latency: format!("{} ms", run.latency_ms),
            code: if run.status_code == 0 {
                "none".into()
            } else {
                run.status_code.to_string()
            },
            error: run.error.clone(),
            failed,
            excerpt: details.excerpt,
            attempts: run.attempts,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DeliveryLine {
    pub attempt: String,
    pub at: String,
    pub code: String,
    pub error: String,
    pub duration: String,
}

#[derive(Debug, Clone)]
pub struct AlertLine {
    pub kind: String,
    pub status: String,
    pub at: String,
    pub delivery: String,
    pub attempts: i32,
    pub last_code: String,
    pub last_error: Option<String>,
    pub deliveries: Vec<DeliveryLine>,
}

impl AlertLine {
    pub fn new(a: &AlertRecord) -> AlertLine {
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::Null => "none".to_string(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let deliveries = a
            .deliveries
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|d| DeliveryLine {
                        attempt: text(&d["attempt"]),
                        at: text(&d["attempted_at"]),
                        code: text(&d["response_code"]),
                        error: text(&d["error"]),
                        duration: format!("{} ms", text(&d["duration_ms"])),
                    })
                    .collect()
            })
            .unwrap_or_default();
        AlertLine {
            kind: a.kind.as_str().to_string(),
            status: a.status.clone(),
            at: when(a.created_at),
            delivery: serde_json::to_value(a.delivery_state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            attempts: a.attempts,
            last_code: a
                .last_response_code
                .map_or_else(|| "none".into(), |c| c.to_string()),
            last_error: a.last_error.clone(),
            deliveries,
        }
    }
}

/// A check's state in one location.
#[derive(Debug, Clone)]
pub struct LocationLine {
    pub name: String,
    pub mark: Mark,
    pub last_run: String,
    pub latency: String,
    /// "no live worker", "no longer listed", or "".
    pub note: &'static str,
}

/// Each location the check lists or ran in, with its last run there and whether a worker serves it (`stale`: the locations
/// without a live worker).
pub fn locations(check: &Check, stale: &[String], now: DateTime<Utc>) -> Vec<LocationLine> {
    let states = &check.by_location;
    let mut names: Vec<String> = check.spec.locations.clone();
    for s in states {
        if !names.contains(&s.location) {
            names.push(s.location.clone());
        }
    }
    names
        .into_iter()
        .map(|name| {
            let state = states.iter().find(|s| s.location == name);
            let listed = check.spec.locations.contains(&name);
            let note = if !listed {
                "no longer listed"
            } else if stale.contains(&name) {
                "no live worker"
            } else {
                ""
            };
            match state.filter(|s| s.last_run_at.is_some()) {
                Some(s) => LocationLine {
                    mark: Mark::of_run(&s.last_status),
                    last_run: s
                        .last_run_at
                        .map_or_else(|| "never".into(), |t| ago(t, now)),
                    latency: s
                        .last_latency_ms
                        .map_or_else(|| "no data".into(), |ms| format!("{ms} ms")),
                    note,
                    name,
                },
                None => LocationLine {
                    name,
                    mark: Mark {
                        class: "pending",
                        word: "No runs",
                    },
                    last_run: "never".into(),
                    latency: "no data".into(),
                    note,
                },
            }
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct CertLine {
    pub days_left: i64,
    pub not_after: String,
    pub subject: String,
    pub issuer: String,
    /// Within the check's `tls_expiry_days`, or expired.
    pub warn: bool,
}

#[derive(Template)]
#[template(path = "check.html")]
pub struct CheckPage {
    pub chrome: Chrome,
    pub id: Uuid,
    pub name: String,
    pub check_description: String,
    pub enabled: bool,
    pub public: bool,
    pub mark: Mark,
    pub target: String,
    pub last_error: Option<String>,
    pub last_run: String,
    pub uptime: Vec<(&'static str, String)>,
    pub latency_svg: String,
    pub has_latency: bool,
    pub slo: Option<String>,
    pub timeline_svg: String,
    pub incident_count: usize,
    pub cert: Option<CertLine>,
    pub locations: Vec<LocationLine>,
    pub runs: Vec<RunLine>,
    pub alerts: Vec<AlertLine>,
    pub settings: Vec<(&'static str, String)>,
    pub assertions: Vec<String>,
}

/// Runs shown on a check's page.
const RUNS_SHOWN: usize = 20;

impl CheckPage {
    pub fn new(
        chrome: Chrome,
        check: &Check,
        runs: &[RunRow],
        alerts: &[AlertRecord],
        figures: &CheckFigures,
        stale: &[String],
        now: DateTime<Utc>,
    ) -> CheckPage {
        let s = &check.spec;
        let cert = runs
            .iter()
            .find_map(|r| r.details().certificate)
            .map(|c| CertLine {
                days_left: c.days_left,
                not_after: when(c.not_after),
                subject: c.subject,
                issuer: c.issuer,
                warn: c.days_left < i64::from(s.tls_expiry_days.max(0)) || c.days_left < 0,
            });
        let mut settings = vec![
            ("Type", s.check_type.as_str().to_string()),
            ("Every", format!("{} s", s.interval_seconds)),
            ("Timeout", format!("{} ms", s.timeout_ms)),
            ("Retries", s.retries.to_string()),
            ("Alert after", format!("{} failed runs", s.alert_threshold)),
            ("Locations", s.locations.join(", ")),
        ];
        if s.check_type == pulse_core::check::CheckType::Http {
            settings.insert(1, ("Expected status", s.expected_status.to_string()));
        }
        if let Some(d) = s.degraded_ms {
            settings.push(("Degraded over", format!("{d} ms")));
        }
        if let Some(m) = s.max_response_ms {
            settings.push(("Fails over", format!("{m} ms")));
        }
        settings.push((
            "Webhook",
            if s.webhook_url.is_some() {
                "set"
            } else {
                "none"
            }
            .into(),
        ));
        let slo = figures.slo.as_ref().map(|b| match b.remaining {
            Some(left) => format!(
                "{} of the error budget left: {} failed runs of the {:.0} that a {}% objective allows over {} days",
                svg::percent(left.max(0.0)),
                b.failed,
                b.allowed,
                b.target,
                b.window_days
            ),
            None => format!(
                "a {}% objective over {} days; no runs yet",
                b.target, b.window_days
            ),
        });
        CheckPage {
            chrome,
            id: check.id,
            name: s.name.clone(),
            check_description: s.description.clone(),
            enabled: s.enabled,
            public: s.public,
            mark: Mark::of_check(s.enabled, check.last_status),
            target: target(check),
            last_error: check.last_error.clone(),
            last_run: check.last_run_at.map_or_else(
                || "never".into(),
                |t| format!("{} ({})", ago(t, now), when(t)),
            ),
            uptime: figures
                .uptime
                .iter()
                .map(|(label, u)| (*label, uptime_text(*u)))
                .collect(),
            latency_svg: svg::latency_chart(&figures.latency, figures.latency_window),
            has_latency: !figures.latency.is_empty(),
            slo,
            timeline_svg: svg::timeline(&figures.incidents, figures.window.0, figures.window.1),
            incident_count: figures.incidents.len(),
            cert,
            locations: locations(check, stale, now),
            runs: runs
                .iter()
                .take(RUNS_SHOWN)
                .map(|r| RunLine::new(r, check, now))
                .collect(),
            alerts: alerts.iter().map(AlertLine::new).collect(),
            settings,
            assertions: s.assertions.iter().map(|a| a.describe()).collect(),
        }
    }
}

pub async fn check(
    State(state): State<WebState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let id = Uuid::parse_str(&id).map_err(|_| WebError::NotFound)?;
    let check = state.app.checks.get(id).await?;
    let (runs, alerts, figures, places) = tokio::join!(
        state.app.services.results.latest(id, RUNS_SHOWN as u32),
        state.app.alerts.for_check(id, 20),
        state.reports.check(&check),
        crate::api::locations::overview(&state.app),
    );
    let stale: Vec<String> = places
        .map_err(|e| WebError::Unavailable(format!("{e:?}")))?
        .into_iter()
        .filter(|l| l.status == "stale")
        .map(|l| l.location)
        .collect();
    let page = CheckPage::new(
        signed_in.chrome(),
        &check,
        &runs?,
        &alerts?,
        &figures?,
        &stale,
        Utc::now(),
    );
    html(&page)
}

// ---------------------------------------------------------------- status

/// A public check's line: its name, mark and days. Built from
/// [`PublicCheck`], which holds no URL, header or error.
#[derive(Debug, Clone)]
pub struct PublicLine {
    pub name: String,
    pub mark: Mark,
    pub bars: String,
    pub uptime: String,
}

#[derive(Debug, Clone)]
pub struct IncidentLine {
    pub check: String,
    pub started: String,
    pub ended: Option<String>,
}

#[derive(Template)]
#[template(path = "status.html")]
pub struct StatusPage {
    pub chrome: Chrome,
    pub overall: Mark,
    pub headline: String,
    pub checks: Vec<PublicLine>,
    pub open: Vec<IncidentLine>,
    pub recent: Vec<IncidentLine>,
    pub updated: String,
}

impl StatusPage {
    pub fn new(
        checks: &[PublicCheck],
        figures: &HashMap<Uuid, PublicFigures>,
        incidents: &[PublicIncident],
        now: DateTime<Utc>,
    ) -> StatusPage {
        let lines: Vec<PublicLine> = checks
            .iter()
            .map(|c| {
                let f = figures.get(&c.id).cloned().unwrap_or_default();
                let days = if f.days.is_empty() {
                    let today = now.date_naive();
                    (0..BUCKETS as i64)
                        .rev()
                        .map(|back| svg::DayUptime {
                            day: today - chrono::Duration::days(back),
                            uptime: None,
                        })
                        .collect()
                } else {
                    f.days
                };
                PublicLine {
                    name: c.name.clone(),
                    mark: Mark::of_check(c.enabled, RunStatus::parse(&c.last_status)),
                    bars: svg::daily_bars(&days),
                    uptime: uptime_text(f.uptime_90d),
                }
            })
            .collect();
        let down = lines.iter().filter(|l| l.mark.class == "down").count();
        let degraded = lines.iter().filter(|l| l.mark.class == "deg").count();
        let (overall, headline) = if lines.is_empty() {
            (
                Mark {
                    class: "pending",
                    word: "No data",
                },
                "No public checks yet.".to_string(),
            )
        } else if down > 0 {
            (
                Mark {
                    class: "down",
                    word: "Outage",
                },
                format!("{down} of {} services down", lines.len()),
            )
        } else if degraded > 0 {
            (
                Mark {
                    class: "deg",
                    word: "Degraded",
                },
                format!("{degraded} of {} services degraded", lines.len()),
            )
        } else {
            (
                Mark {
                    class: "up",
                    word: "Operational",
                },
                "All systems operational".to_string(),
            )
        };
        let line = |i: &PublicIncident| IncidentLine {
            check: i.check_name.clone(),
            started: when(i.started_at),
            ended: i.ended_at.map(when),
        };
        StatusPage {
            chrome: Chrome::public(),
            overall,
            headline,
            checks: lines,
            open: incidents
                .iter()
                .filter(|i| i.ended_at.is_none())
                .map(line)
                .collect(),
            recent: incidents
                .iter()
                .filter(|i| i.ended_at.is_some())
                .map(line)
                .collect(),
            updated: when(now),
        }
    }
}

/// Most checks the status page shows.
const STATUS_LIMIT: i64 = 1000;

/// How long one rendering of the status page is shown to every visitor.
pub const STATUS_CACHE: std::time::Duration = std::time::Duration::from_secs(5);
/// Status page loads per client IP: a steady rate, and a burst.
pub const STATUS_PER_IP_PER_SEC: std::num::NonZeroU32 = std::num::NonZeroU32::new(2).unwrap();
pub const STATUS_PER_IP_BURST: std::num::NonZeroU32 = std::num::NonZeroU32::new(20).unwrap();

/// The status page as rendered at a time.
pub struct RenderedStatus {
    at: std::time::Instant,
    /// The page, shared without copying by every response for it.
    html: axum::body::Bytes,
}

/// `/status`, public: rendered at most once per [`STATUS_CACHE`] for all
/// visitors (one render at a time; the others wait for it), limited per
/// client IP, and cacheable by browsers and proxies for as long.
pub async fn status(
    State(state): State<WebState>,
    PeerIp(peer): PeerIp,
) -> Result<Response, WebError> {
    if let Some(ip) = peer {
        if state.status_loads.check_key(&ip).is_err() {
            return Err(WebError::TooMany);
        }
    }
    let html = {
        let mut cached = state.status_page.lock().await;
        match cached.as_ref() {
            Some(c) if c.at.elapsed() < STATUS_CACHE => c.html.clone(),
            _ => {
                let html = axum::body::Bytes::from(render_status(&state).await?);
                *cached = Some(RenderedStatus {
                    at: std::time::Instant::now(),
                    html: html.clone(),
                });
                html
            }
        }
    };
    let max_age = format!("public, max-age={}", STATUS_CACHE.as_secs());
    let mut resp = Html(html).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&max_age) {
        resp.headers_mut()
            .insert(axum::http::header::CACHE_CONTROL, v);
    }
    Ok(resp)
}

async fn render_status(state: &WebState) -> Result<String, WebError> {
    let mut checks: Vec<PublicCheck> = state
        .app
        .checks
        .page(&CheckFilter {
            public: Some(true),
            limit: STATUS_LIMIT,
            ..Default::default()
        })
        .await?
        .iter()
        .map(PublicCheck::of)
        .collect();
    checks.sort_by_key(|c| (c.name.to_lowercase(), c.id));
    let ids: Vec<(Uuid, DateTime<Utc>)> = checks.iter().map(|c| (c.id, c.created_at)).collect();
    let names: HashMap<Uuid, String> = checks.iter().map(|c| (c.id, c.name.clone())).collect();
    let (figures, incidents) = tokio::join!(
        state.reports.public(&ids),
        state.reports.public_incidents(&names)
    );
    Ok(StatusPage::new(&checks, &figures?, &incidents?, Utc::now()).render()?)
}

// ---------------------------------------------------------------- errors

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub chrome: Chrome,
    pub status: u16,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use pulse_core::delivery::DeliveryState;
    use pulse_core::{AlertKind, CheckSpec};
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
    }

    #[test]
    fn the_status_page_never_says_no_incidents_under_an_open_one() {
        let open = PublicIncident {
            check_name: "API".into(),
            started_at: now() - chrono::Duration::minutes(5),
            ended_at: None,
        };
        let html = StatusPage::new(&[], &HashMap::new(), &[open], now())
            .render()
            .unwrap();
        assert!(html.contains("Open incidents"), "{html}");
        assert!(!html.contains("No incidents"), "{html}");
        let html = StatusPage::new(&[], &HashMap::new(), &[], now())
            .render()
            .unwrap();
        assert!(html.contains("No incidents in the last 90 days"), "{html}");
    }

    fn check(name: &str, enabled: bool, last: Option<RunStatus>) -> Check {
        let mut spec = CheckSpec::defaults();
        spec.name = name.into();
        spec.url = format!("https://{}.example/health", name.to_lowercase());
        spec.enabled = enabled;
        Check {
            id: Uuid::new_v4(),
            spec,
            last_status: last,
            last_run_at: last.map(|_| now() - chrono::Duration::seconds(90)),
            last_latency_ms: Some(120),
            last_status_code: Some(200),
            last_error: None,
            consecutive_fails: 0,
            next_run_at: now(),
            created_at: now(),
            updated_at: now(),
            version: 1,
            incident_open: false,
            by_location: vec![],
        }
    }

    fn render(t: &impl Template) -> String {
        t.render().unwrap()
    }

    #[test]
    fn the_list_shows_each_check_with_a_word_its_figures_and_bar_worst_first() {
        let checks = vec![
            check("Shop", true, Some(RunStatus::Success)),
            check("Billing", true, Some(RunStatus::Timeout)),
            check("Archive", false, Some(RunStatus::Success)),
        ];
        let mut buckets = vec![Bucket::Up; BUCKETS];
        buckets[89] = Bucket::Down;
        let figures = HashMap::from([(
            checks[0].id,
            ListFigures {
                uptime_24h: Some(0.9995),
                p95_ms: Some(123.4),
                buckets,
            },
        )]);
        let health = Health {
            scheduler_lag_ms: 45_000,
            locations: vec![LocationView {
                location: "eu-west".into(),
                status: "stale",
                live_workers: 0,
                workers: vec![],
                last_heartbeat: Some(now() - chrono::Duration::minutes(5)),
                queue_depth: 7,
                lag_p99_ms: 0,
                checks: 3,
            }],
        };
        let page = ListPage::new(
            Chrome::default(),
            String::new(),
            &checks,
            &figures,
            &health,
            now(),
        );
        let html = render(&page);
        assert!(html.contains("3 checks: 1 down, 1 up, 1 paused"), "{html}");
        let (billing, shop, archive) = (
            html.find(">Billing<").unwrap(),
            html.find(">Shop<").unwrap(),
            html.find(">Archive<").unwrap(),
        );
        assert!(billing < shop && shop < archive, "down first, paused last");
        assert!(html.contains(&format!(
            "<tr><td class=down>Down<td><a href=/checks/{}>Billing</a><td>1 min ago<td>no data<td>no data",
            checks[1].id
        )), "{html}");
        assert!(
            html.contains(">Shop</a><td>1 min ago<td>99.95%<td>123 ms<td><svg class=bar"),
            "{html}"
        );
        assert!(html.contains("aria-label=\"89 up, 1 down\""), "{html}");
        assert!(html.contains("<td class=paused>Paused"), "{html}");
        assert!(html.contains("The scheduler is behind: a due check has waited 45 s to be queued."));
        assert!(html.contains("Location eu-west is stale: no worker has reported 5 min ago, and 3 checks run there."), "{html}");
    }

    #[test]
    fn a_search_without_matches_says_so() {
        let page = ListPage::new(
            Chrome::default(),
            "zzz".into(),
            &[],
            &HashMap::new(),
            &Health::default(),
            now(),
        );
        let html = render(&page);
        assert!(html.contains("No check’s name contains “zzz”."), "{html}");
        assert!(html.contains("value=\"zzz\""), "{html}");
        assert!(
            !html.contains("class=\"banner\""),
            "no banner when all is well: {html}"
        );
    }

    fn run(details: serde_json::Value, status: &str, location: &str) -> RunRow {
        RunRow {
            id: Uuid::new_v4(),
            status: status.into(),
            run_at_ms: (now() - chrono::Duration::seconds(30)).timestamp_millis(),
            latency_ms: 321,
            status_code: 200,
            error: Some("json_body $.status equals \"ok\": got \"degraded\"".into()),
            attempts: 2,
            location: location.into(),
            ..RunRow::with_details(Some(details.to_string()))
        }
    }

    #[test]
    fn a_check_page_shows_failed_assertions_the_excerpt_the_certificate_alerts_and_locations() {
        let mut c = check("Orders", true, Some(RunStatus::Fail));
        c.spec.description = "Checkout's <orders> API; page #shop".into();
        c.spec.assertions = vec![serde_json::from_value(
            json!({"source": "json_body", "property": "$.status", "comparison": "equals", "target": "ok"}),
        )
        .unwrap()];
        c.spec.locations = vec!["default".into(), "eu-west".into()];
        let runs = vec![run(
            json!({
                "assertions": [{"index": 0, "passed": false, "actual": "degraded"}],
                "excerpt": "HTTP 200 OK\ncontent-type: application/json\n\n{\"status\": \"degraded\"}",
                "certificate": {
                    "not_after": "2026-12-08T00:00:00Z", "days_left": 9, "issuer": "Test CA",
                    "subject": "orders.example", "sans": [], "chain_not_after": "2026-12-08T00:00:00Z",
                    "fingerprint": "ab"
                }
            }),
            "fail",
            "default",
        )];
        let alert = AlertRecord {
            id: Uuid::new_v4(),
            check_id: c.id,
            kind: AlertKind::Failure,
            status: "fail".into(),
            error: None,
            consecutive_fails: 3,
            payload: json!({}),
            delivery_state: DeliveryState::Delivered,
            attempts: 2,
            last_response_code: Some(204),
            last_error: None,
            delivered_at: Some(now()),
            created_at: now(),
            deliveries: json!([
                {"attempt": 1, "attempted_at": "2026-11-28T11:59:00.000Z", "response_code": 503, "error": "status 503", "duration_ms": 12},
                {"attempt": 2, "attempted_at": "2026-11-28T11:59:02.000Z", "response_code": 204, "error": null, "duration_ms": 8}
            ]),
        };
        c.by_location = vec![pulse_core::check::LocationState {
            location: "default".into(),
            last_status: "fail".into(),
            last_run_at: Some(now() - chrono::Duration::seconds(30)),
            last_latency_ms: Some(321),
            last_status_code: Some(200),
            last_error: None,
            consecutive_fails: 1,
            next_run_at: now(),
        }];
        let figures = CheckFigures {
            uptime: [
                ("24 h", Some(0.75)),
                ("7 d", None),
                ("30 d", None),
                ("90 d", None),
            ],
            latency: vec![],
            latency_window: svg::ChartWindow {
                from: now() - chrono::Duration::hours(24),
                to: now(),
                bucket_secs: 900,
            },
            slo: Some(super::super::reports::SloBudget {
                target: 99.9,
                window_days: 30,
                failed: 5,
                allowed: 10.0,
                remaining: Some(0.5),
            }),
            incidents: vec![],
            window: (now() - chrono::Duration::days(30), now()),
        };
        let page = CheckPage::new(
            Chrome {
                user: Some("ops".into()),
                csrf: "tok".into(),
            },
            &c,
            &runs,
            &[alert],
            &figures,
            &["eu-west".to_string()],
            now(),
        );
        let html = render(&page);
        assert!(
            html.contains("<span class=\"mark down\" id=\"status\">Down</span> Orders"),
            "{html}"
        );
        assert!(html.contains("<strong>Failed assertion:</strong> json_body $.status equals &#34;ok&#34;; got <code>degraded</code>"), "{html}");
        assert!(
            html.contains("<summary>Response excerpt</summary><pre>HTTP 200 OK"),
            "{html}"
        );
        assert!(
            html.contains(
                "<p class=\"description\">Checkout&#39;s &#60;orders&#62; API; page #shop</p>"
            ),
            "{html}"
        );
        assert!(html.contains("9 days left"), "{html}");
        assert!(html.contains("value warn"), "9 days is within 14: {html}");
        assert!(
            html.contains("<span class=\"value\">75.0%</span>"),
            "{html}"
        );
        assert!(html.contains("SLO: 50.0% of the error budget left: 5 failed runs of the 10 that a 99.9% objective allows over 30 days"), "{html}");
        assert!(
            html.contains("Attempt 1 at 2026-11-28T11:59:00.000Z: code 503, 12 ms, status 503"),
            "{html}"
        );
        assert!(
            html.contains("Attempt 2 at 2026-11-28T11:59:02.000Z: code 204, 8 ms</li>"),
            "{html}"
        );
        assert!(
            html.contains("<td>failure (fail)<td>2026-11-28 12:00:00 UTC<td>delivered"),
            "{html}"
        );
        assert!(
            html.contains("<td>default<td class=\"down\">Fail<td>30 s ago<td>321 ms"),
            "{html}"
        );
        assert!(html.contains("<td>eu-west <span class=\"tag\">no live worker</span><td class=\"pending\">No runs<td>never"), "{html}");
        assert!(html.contains("2 attempts"), "{html}");
        assert!(html.contains("name=\"csrf\" value=\"tok\""), "{html}");
        assert!(html.contains(">Pause</button>"), "{html}");
    }

    #[test]
    fn the_status_page_shows_names_states_and_incidents_and_nothing_else() {
        let checks = vec![
            PublicCheck {
                id: Uuid::new_v4(),
                name: "Website".into(),
                enabled: true,
                last_status: "success".into(),
                last_run_at: Some(now()),
                incident_open: false,
                created_at: now(),
            },
            PublicCheck {
                id: Uuid::new_v4(),
                name: "API".into(),
                enabled: true,
                last_status: "timeout".into(),
                last_run_at: Some(now()),
                incident_open: true,
                created_at: now(),
            },
        ];
        let day = |back: i64| (now() - chrono::Duration::days(back)).date_naive();
        let figures = HashMap::from([(
            checks[0].id,
            PublicFigures {
                days: (0..90)
                    .rev()
                    .map(|b| svg::DayUptime {
                        day: day(b),
                        uptime: Some(if b == 3 { 0.98 } else { 1.0 }),
                    })
                    .collect(),
                uptime_90d: Some(0.9997),
            },
        )]);
        let incidents = vec![
            PublicIncident {
                check_name: "API".into(),
                started_at: now() - chrono::Duration::minutes(10),
                ended_at: None,
            },
            PublicIncident {
                check_name: "Website".into(),
                started_at: now() - chrono::Duration::days(3),
                ended_at: Some(now() - chrono::Duration::days(3) + chrono::Duration::minutes(20)),
            },
        ];
        let html = render(&StatusPage::new(&checks, &figures, &incidents, now()));
        assert!(
            html.contains("<span class=\"mark down\">Outage</span> 1 of 2 services down"),
            "{html}"
        );
        assert!(
            html.contains("<h2>Website</h2><span class=\"mark up\">Up</span>"),
            "{html}"
        );
        assert!(
            html.contains("<h2>API</h2><span class=\"mark down\">Down</span>"),
            "{html}"
        );
        assert!(html.contains("90-day uptime: 99.97%"), "{html}");
        assert!(
            html.contains(&format!(
                "<title>{}: 98.0%</title>",
                day(3).format("%Y-%m-%d")
            )),
            "{html}"
        );
        assert!(
            html.contains("<strong>API</strong>: down since 2026-11-28 11:50:00 UTC"),
            "{html}"
        );
        assert!(
            html.contains(
                "<strong>Website</strong>: 2026-11-25 12:00:00 UTC to 2026-11-25 12:20:00 UTC"
            ),
            "{html}"
        );
        assert!(!html.contains("Sign out"));
        assert!(!html.contains("http"), "no URL of any kind: {html}");
    }

    #[test]
    fn times_read_as_how_long_ago() {
        assert_eq!(ago(now() - chrono::Duration::seconds(5), now()), "5 s ago");
        assert_eq!(
            ago(now() - chrono::Duration::seconds(150), now()),
            "2 min ago"
        );
        assert_eq!(ago(now() - chrono::Duration::hours(5), now()), "5 h ago");
        assert_eq!(ago(now() - chrono::Duration::days(3), now()), "3 d ago");
    }
}
