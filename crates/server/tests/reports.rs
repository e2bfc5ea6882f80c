//! Reports through the API against real Postgres and ClickHouse: a check's
//! stats and series from runs written as the worker writes them, every
//! check's stats, incidents opened and closed by alerts, SLO budgets and
//! burn alerts, and bad input answered with a 4xx naming the field.

mod common;

use chrono::{DateTime, Duration, Utc};
use pulse_runtime::process::Services;
use pulse_store::pg::incidents::IncidentStore;
use pulse_store::RunRow;
use pulse_testkit::keyed_client;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

struct TestApp {
    base: String,
    http: reqwest::Client,
    services: Services,
    _stop: tokio_util::sync::DropGuard,
}

impl TestApp {
    async fn spawn() -> TestApp {
        let app = common::start("tests", |_| {}).await;
        TestApp {
            base: app.base,
            http: keyed_client(&app.key),
            services: app.services,
            _stop: app.stop,
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    /// A check (not scheduled: paused) created `hours_ago`.
    async fn check(&self, body: Value, hours_ago: i64) -> Uuid {
        let resp = self
            .http
            .post(format!("{}/checks", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let v: Value = resp.json().await.unwrap();
        let id: Uuid = v["id"].as_str().unwrap().parse().unwrap();
        sqlx::query("UPDATE checks SET created_at = now() - $2 * interval '1 hour' WHERE id = $1")
            .bind(id)
            .bind(hours_ago as f64)
            .execute(&self.services.pool)
            .await
            .unwrap();
        id
    }
}

fn run(check: Uuid, at: DateTime<Utc>, status: &str, latency: u32, location: &str) -> RunRow {
    RunRow {
        id: Uuid::new_v4(),
        check_id: check,
        run_at: at,
        run_at_ms: at.timestamp_millis(),
        scheduled_at_ms: at.timestamp_millis(),
        status: status.into(),
        failure_reason: None,
        latency_ms: latency,
        status_code: 200,
        error: None,
        worker: "w".into(),
        attempts: 1,
        dns_ms: latency / 10,
        connect_ms: latency / 10,
        tls_ms: 0,
        ttfb_ms: latency / 2,
        download_ms: latency / 10,
        details: "{}".into(),
        location: location.into(),
    }
}

fn minute(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp().div_euclid(60) * 60, 0).unwrap()
}

fn secs(v: &Value) -> i64 {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .timestamp()
}

#[tokio::test]
async fn stats_and_series_agree_with_the_runs_written() {
    let app = TestApp::spawn().await;
    let check = app
        .check(
            json!({"name": "r", "url": "http://127.0.0.1:9/", "enabled": false,
                   "locations": ["loc-0", "loc-1"], "slo": {"objective": 99.0, "window_days": 7}}),
            3,
        )
        .await;
    // Two hours of runs, one a minute in each location; loc-0 fails for
    // minutes 60 to 69, one run is missed. The current minute has none.
    let t0 = minute(Utc::now()) - Duration::minutes(120);
    let mut rows = Vec::new();
    for m in 0..120 {
        let at = t0 + Duration::minutes(m) + Duration::seconds(10);
        let bad = (60..70).contains(&m);
        rows.push(run(
            check,
            at,
            if bad { "fail" } else { "success" },
            100 + m as u32 * 10,
            "loc-0",
        ));
        let status = match m {
            5 => "missed",
            7 => "degraded",
            _ => "success",
        };
        rows.push(run(
            check,
            at,
            status,
            if status == "missed" { 0 } else { 50 },
            "loc-1",
        ));
    }
    app.services.results.insert(&rows).await.unwrap();

    let (status, v) = app.get(&format!("/checks/{check}/stats?window=24h")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["runs"]["total"], 240);
    assert_eq!(v["runs"]["made"], 239);
    assert_eq!(v["runs"]["fail"], 10);
    assert_eq!(v["runs"]["missed"], 1);
    assert_eq!(v["runs"]["degraded"], 1);
    assert!((v["availability"].as_f64().unwrap() - 229.0 / 239.0).abs() < 1e-9);
    // From the first run to the window's end, the current minute carried.
    let counted = (secs(&v["to"]) - t0.timestamp()) / 60;
    assert_eq!(v["uptime_minutes"]["counted"], counted);
    assert_eq!(v["uptime_minutes"]["up"], counted - 10);
    // Latency percentiles within quantileTiming's precision of the exact.
    let mut lat: Vec<f64> = rows
        .iter()
        .filter(|r| r.status != "missed")
        .map(|r| f64::from(r.latency_ms))
        .collect();
    lat.sort_by(f64::total_cmp);
    let p95 = lat[(0.95 * lat.len() as f64).ceil() as usize - 1];
    assert!(
        (v["latency_ms"]["p95"].as_f64().unwrap() - p95).abs() <= 16.0,
        "{v}"
    );
    assert!(v["phases"]["ttfb_ms"]["p50"].as_f64().is_some());
    // Per location.
    let locs = v["locations"].as_array().unwrap();
    assert_eq!(locs.len(), 2);
    assert_eq!(locs[0]["location"], "loc-0");
    assert_eq!(locs[0]["uptime_minutes"]["up"], counted - 10);
    assert_eq!(locs[1]["uptime"], 1.0);
    assert_eq!(locs[1]["runs"]["missed"], 1);
    // The SLO: 1% of the 239 runs made may fail; 10 did.
    let slo = &v["slo"];
    assert!((slo["error_budget"]["allowed_failures"].as_f64().unwrap() - 2.39).abs() < 1e-9);
    assert_eq!(slo["error_budget"]["failed"], 10);
    assert!(slo["error_budget"]["remaining_ratio"].as_f64().unwrap() < 0.0);
    assert!(slo["burn_rates"]["3d"].as_f64().unwrap() > 4.0);
    // One location only.
    let (_, one) = app
        .get(&format!("/checks/{check}/stats?window=24h&location=loc-1"))
        .await;
    assert_eq!(one["runs"]["total"], 120);
    assert!(one.get("locations").is_none());

    // A week of minutes fits (10,081 aligned buckets).
    let (status, week) = app
        .get(&format!("/checks/{check}/series?window=7d&bucket=1m"))
        .await;
    assert_eq!(status, StatusCode::OK, "{week}");
    let n = week["buckets"].as_array().unwrap().len() as i64;
    assert!((10_080..=10_082).contains(&n), "{n} buckets");

    // A minute series: every bucket of the window, empty ones marked.
    let (status, s) = app
        .get(&format!("/checks/{check}/series?window=24h&bucket=1m"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let buckets = s["buckets"].as_array().unwrap();
    assert_eq!(
        buckets.len() as i64,
        (secs(&s["to"]) - secs(&s["from"])) / 60
    );
    let at = |t: DateTime<Utc>| {
        buckets
            .iter()
            .find(|b| secs(&b["start"]) == t.timestamp())
            .unwrap()
    };
    assert_eq!(buckets[0]["empty"], true);
    assert_eq!(buckets[0]["uptime"], Value::Null);
    let failing = at(t0 + Duration::minutes(65));
    assert_eq!(failing["empty"], false);
    assert_eq!(failing["runs"]["fail"], 1);
    assert_eq!(failing["uptime"], 0.0);
    assert_eq!(at(t0 + Duration::minutes(70))["uptime"], 1.0);
    let total: i64 = buckets
        .iter()
        .map(|b| b["runs"]["total"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 240);
    // Hourly buckets (from the hour rollup) hold the same runs.
    let (_, h) = app
        .get(&format!("/checks/{check}/series?window=24h&bucket=1h"))
        .await;
    let hours = h["buckets"].as_array().unwrap();
    assert_eq!(hours.len(), 25);
    let total: i64 = hours
        .iter()
        .map(|b| b["runs"]["total"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 240);

    // Every check at once.
    let other = app
        .check(
            json!({"name": "quiet", "url": "http://127.0.0.1:9/", "enabled": false}),
            1,
        )
        .await;
    let (status, all) = app.get("/stats?window=24h").await;
    assert_eq!(status, StatusCode::OK);
    let list = all["checks"].as_array().unwrap();
    let ours = list
        .iter()
        .find(|c| c["check_id"] == check.to_string())
        .unwrap();
    assert_eq!(ours["runs"], 240);
    assert!((ours["availability"].as_f64().unwrap() - 229.0 / 239.0).abs() < 1e-9);
    assert!((ours["uptime"].as_f64().unwrap() - 110.0 / 120.0).abs() < 1e-9);
    assert!(ours["p95_ms"].as_f64().is_some());
    let quiet = list
        .iter()
        .find(|c| c["check_id"] == other.to_string())
        .unwrap();
    assert_eq!(quiet["runs"], 0);
    assert_eq!(quiet["availability"], Value::Null);
    assert_eq!(quiet["last_status"], "unknown");
}

#[tokio::test]
async fn bad_report_queries_are_4xx_json_naming_the_field() {
    let app = TestApp::spawn().await;
    let check = app
        .check(
            json!({"name": "b", "url": "http://127.0.0.1:9/", "enabled": false}),
            0,
        )
        .await;
    for (path, code, field) in [
        (
            format!("/checks/{check}/stats?window=2d"),
            400,
            Some("window"),
        ),
        (format!("/checks/{check}/stats?windw=1h"), 400, None),
        (
            format!("/checks/{check}/stats?window=1h&from=2026-01-01T00:00:00Z"),
            400,
            Some("window"),
        ),
        (
            format!("/checks/{check}/stats?from=yesterday"),
            400,
            Some("from"),
        ),
        (
            format!("/checks/{check}/stats?to=2026-01-01T00:00:00Z"),
            400,
            Some("from"),
        ),
        (
            format!("/checks/{check}/stats?location=Not%20One"),
            400,
            Some("location"),
        ),
        (
            format!("/checks/{check}/series?bucket=7m"),
            400,
            Some("bucket"),
        ),
        (
            format!("/checks/{check}/series?window=30d&bucket=1m"),
            400,
            Some("bucket"),
        ),
        ("/checks/nope/stats".to_string(), 400, Some("id")),
        (format!("/checks/{}/series", Uuid::new_v4()), 404, None),
        ("/stats?window=1y".to_string(), 400, Some("window")),
        ("/stats?limit=3".to_string(), 400, None),
        ("/incidents?limit=0".to_string(), 400, Some("limit")),
        ("/incidents?open=maybe".to_string(), 400, None),
        (
            format!("/checks/{check}/incidents?cursor=zzz"),
            400,
            Some("cursor"),
        ),
        (format!("/checks/{}/incidents", Uuid::new_v4()), 404, None),
    ] {
        let (status, v) = app.get(&path).await;
        assert_eq!(status.as_u16(), code, "{path}: {v}");
        assert!(v["error"].is_string(), "{path}: {v}");
        if let Some(field) = field {
            assert_eq!(v["field"], field, "{path}: {v}");
        }
    }
}

async fn alert(
    app: &TestApp,
    check: Uuid,
    kind: &str,
    error: Option<&str>,
    payload: Value,
) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO alerts (id, check_id, kind, status, error, consecutive_fails, payload, \
            delivery_state) VALUES ($1, $2, $3, 'fail', $4, 3, $5, 'skipped')",
    )
    .bind(id)
    .bind(check)
    .bind(kind)
    .bind(error)
    .bind(payload)
    .execute(&app.services.pool)
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn failure_alerts_open_incidents_and_recoveries_close_them() {
    let app = TestApp::spawn().await;
    let a = app
        .check(
            json!({"name": "a", "url": "http://127.0.0.1:9/", "enabled": false}),
            0,
        )
        .await;
    let b = app
        .check(
            json!({"name": "b", "url": "http://127.0.0.1:9/", "enabled": false}),
            0,
        )
        .await;
    let locations =
        json!([{"location": "eu", "error": "503"}, {"location": "us", "error": "timeout"}]);
    let opened = alert(
        &app,
        a,
        "failure",
        Some("503"),
        json!({"locations": locations}),
    )
    .await;
    // A degraded alert opens nothing; a second failure while open neither.
    alert(&app, a, "degraded", None, json!({})).await;
    alert(&app, a, "failure", Some("later"), json!({})).await;
    let (_, open) = app.get(&format!("/checks/{a}/incidents")).await;
    let open = open.as_array().unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["open"], true);
    assert_eq!(open[0]["first_error"], "503");
    assert_eq!(open[0]["locations"], locations);
    assert_eq!(open[0]["opened_alert_id"], opened.to_string());
    assert_eq!(open[0]["resolved_at"], Value::Null);

    let resolved = alert(&app, a, "recovery", None, json!({})).await;
    alert(&app, b, "failure", Some("refused"), json!({})).await;
    let (_, list) = app.get(&format!("/checks/{a}/incidents")).await;
    let first = &list.as_array().unwrap()[0];
    assert_eq!(first["open"], false);
    assert_eq!(first["resolved_alert_id"], resolved.to_string());
    assert!(first["duration_ms"].as_i64().unwrap() >= 0);
    assert_eq!(first["locations"], locations);

    let (_, all) = app.get("/incidents").await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(all[0]["check_name"], "b");
    let (_, only_open) = app.get("/incidents?open=true").await;
    assert_eq!(only_open.as_array().unwrap().len(), 1);
    assert_eq!(only_open[0]["check_id"], b.to_string());
    // Paging: one at a time, the cursor continues.
    let resp = app
        .http
        .get(format!("{}/incidents?limit=1", app.base))
        .send()
        .await
        .unwrap();
    let cursor = resp.headers()["x-next-cursor"]
        .to_str()
        .unwrap()
        .to_string();
    let (_, next) = app
        .get(&format!("/incidents?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(next[0]["check_id"], a.to_string());
}

#[tokio::test]
async fn a_fast_burn_raises_one_slo_alert_and_its_end_one_recovery() {
    let app = TestApp::spawn().await;
    let store = IncidentStore::new(app.services.pool.clone());
    let results = &app.services.results;
    let check = app
        .check(
            json!({"name": "s", "url": "http://127.0.0.1:9/", "enabled": false,
                   "slo": {"objective": 99.9}, "slo_alerts": true}),
            1,
        )
        .await;
    let quiet = app
        .check(
            json!({"name": "q", "url": "http://127.0.0.1:9/", "enabled": false,
                   "slo": {"objective": 99.9}, "slo_alerts": true}),
            1,
        )
        .await;
    // The last hour: a run every 10 s, every 20th failing (5%: a burn of 50).
    let now = Utc::now();
    let rows: Vec<RunRow> = (0..360)
        .map(|i| {
            let at = now - Duration::seconds(i * 10);
            let status = if i % 20 == 0 { "fail" } else { "success" };
            run(check, at, status, 20, "default")
        })
        .chain((0..360).map(|i| {
            run(
                quiet,
                now - Duration::seconds(i * 10),
                "success",
                20,
                "default",
            )
        }))
        .collect();
    results.insert(&rows).await.unwrap();

    let round = pulse_server::slo::evaluate_once(&store, results, now)
        .await
        .unwrap();
    assert_eq!((round.evaluated, round.opened, round.closed), (2, 1, 0));
    // Still burning: no second alert.
    let round = pulse_server::slo::evaluate_once(&store, results, now)
        .await
        .unwrap();
    assert_eq!((round.opened, round.closed), (0, 0));
    // Another process evaluating meanwhile is skipped.
    let held = store.begin_slo_round().await.unwrap().unwrap();
    let round = pulse_server::slo::evaluate_once(&store, results, now)
        .await
        .unwrap();
    assert!(round.skipped);
    held.rollback().await.unwrap();
    // Two hours on, the short windows are quiet: one recovery.
    let later = now + Duration::hours(2);
    let round = pulse_server::slo::evaluate_once(&store, results, later)
        .await
        .unwrap();
    assert_eq!((round.opened, round.closed), (0, 1));
    let round = pulse_server::slo::evaluate_once(&store, results, later)
        .await
        .unwrap();
    assert_eq!((round.opened, round.closed), (0, 0));

    let (_, alerts) = app.get(&format!("/checks/{check}/alerts")).await;
    let kinds: Vec<&str> = alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["slo_recovered", "slo_burn"]);
    let burn = &alerts[1]["payload"];
    assert_eq!(burn["type"], "slo_burn");
    assert_eq!(burn["rule"], "fast");
    assert!(burn["burn_rates"]["1h"].as_f64().unwrap() > 14.4);
    let (_, quiet_alerts) = app.get(&format!("/checks/{quiet}/alerts")).await;
    assert_eq!(quiet_alerts.as_array().unwrap().len(), 0);
    // The stats show the burn.
    let (_, v) = app.get(&format!("/checks/{check}/stats?window=1h")).await;
    assert!(v["slo"]["burn_rates"]["1h"].as_f64().unwrap() > 14.4, "{v}");
}
