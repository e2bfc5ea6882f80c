//! Reports on real runs: a check runs against the local target through the
//! whole stack (scheduler, worker, outbox, ClickHouse), fails long enough
//! to open an incident, recovers; then its stats from the rollups agree
//! with its raw runs, and the incident was opened and closed by its alerts.

mod common;

use std::time::Duration;

use common::{check, Stack};
use pulse_testkit::{wait_until, Target};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn stats_of_real_runs_agree_with_the_raw_runs_and_incidents_follow_alerts() {
    let target = Target::start().await;
    let stack = Stack::start(1).await;
    target.set_toggle(503);
    let created = stack
        .create(check(
            "real",
            &target.url("/toggle"),
            json!({"alert_threshold": 2}),
        ))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    wait_until(LIMIT, "an open incident", || async {
        let v = stack.get(&format!("/checks/{id}/incidents")).await;
        v.as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    target.set_toggle(200);
    wait_until(LIMIT, "the incident resolved", || async {
        let v = stack.get(&format!("/checks/{id}/incidents")).await;
        v[0]["open"] == false
    })
    .await;
    // Pause, and wait until the last runs have landed.
    stack.patch(&id, json!({"enabled": false})).await;
    let seen = std::sync::atomic::AtomicUsize::new(usize::MAX);
    wait_until(LIMIT, "no more runs landing", || async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let n = stack.runs(&id).await.len();
        seen.swap(n, std::sync::atomic::Ordering::SeqCst) == n
    })
    .await;

    let runs = stack.runs(&id).await;
    let v = stack.get(&format!("/checks/{id}/stats?window=1h")).await;
    let count = |status: &str| runs.iter().filter(|r| r.status == status).count() as u64;
    assert_eq!(v["runs"]["total"], runs.len() as u64, "{v}");
    for status in ["success", "fail", "timeout", "error", "degraded", "missed"] {
        assert_eq!(v["runs"][status], count(status), "{status}: {v}");
    }
    assert!(count("fail") >= 2 && count("success") >= 1, "{v}");
    let made: Vec<u32> = {
        let mut l: Vec<u32> = runs
            .iter()
            .filter(|r| r.status != "missed")
            .map(|r| r.latency_ms)
            .collect();
        l.sort_unstable();
        l
    };
    // quantileTiming: exact below 1,024 ms, within 16 ms above; its rank
    // may be one off the nearest rank.
    let rank = ((0.5 * made.len() as f64).ceil() as usize).max(1) - 1;
    let low = f64::from(made[rank.saturating_sub(1)]) - 16.0;
    let high = f64::from(made[(rank + 1).min(made.len() - 1)]) + 16.0;
    let got = v["latency_ms"]["p50"].as_f64().unwrap();
    assert!((low..=high).contains(&got), "p50 {got}: {made:?}");
    // The minute the check failed is down; it ends up.
    assert!(v["uptime"].as_f64().unwrap() < 1.0, "{v}");

    let incidents = stack.get(&format!("/checks/{id}/incidents")).await;
    let incident = &incidents[0];
    assert_eq!(incident["open"], false);
    assert!(
        incident["first_error"].as_str().unwrap().contains("503"),
        "{incident}"
    );
    let alerts = stack.get(&format!("/checks/{id}/alerts")).await;
    let kinds: Vec<&str> = alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["recovery", "failure"]);
    assert_eq!(incident["opened_alert_id"], alerts[1]["id"]);
    assert_eq!(incident["resolved_alert_id"], alerts[0]["id"]);
    let (opened, resolved) = (
        chrono::DateTime::parse_from_rfc3339(incident["opened_at"].as_str().unwrap()).unwrap(),
        chrono::DateTime::parse_from_rfc3339(incident["resolved_at"].as_str().unwrap()).unwrap(),
    );
    // Shown times are cut to milliseconds; the duration is not.
    let shown = (resolved - opened).num_milliseconds();
    assert!((incident["duration_ms"].as_i64().unwrap() - shown).abs() <= 1);
}
