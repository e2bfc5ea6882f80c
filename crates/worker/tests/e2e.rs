//! End to end: real server, scheduler, workers, Postgres, Redis and
//! ClickHouse, against local targets and webhook receivers.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{check, Stack};
use pulse_testkit::{wait_until, Receiver, Target};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_one_second_check_runs_once_a_second_and_lands_in_clickhouse() {
    let target = Target::start().await;
    let stack = Stack::start(1).await;
    let created = stack
        .create(check("ok", &target.url("/ok"), json!({})))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    wait_until(LIMIT, "5 runs in clickhouse", || async {
        stack.runs(&id).await.len() >= 5
    })
    .await;
    let runs = stack.runs(&id).await;
    // The first run is immediate: due at creation.
    let created_at = chrono::DateTime::parse_from_rfc3339(created["created_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert!(runs[0].run_at_ms - created_at < 1500, "first run late");
    // Consecutive slots, exactly 1 s apart, each run once, each started
    // within a second of its due time.
    for pair in runs.windows(2) {
        assert_eq!(
            pair[1].scheduled_at_ms - pair[0].scheduled_at_ms,
            1000,
            "{runs:?}"
        );
    }
    for run in &runs {
        assert_eq!(run.status, "success");
        assert_eq!(run.status_code, 200);
        let lag = run.run_at_ms - run.scheduled_at_ms;
        assert!((0..1000).contains(&lag), "lag {lag} ms");
    }
    assert!(target.hits("/ok") >= runs.len());
    let state = stack.get(&format!("/checks/{id}")).await;
    assert_eq!(state["last_status"], "success");
    assert_eq!(state["last_status_code"], 200);
    let api_runs = stack.get(&format!("/checks/{id}/runs?limit=2")).await;
    let api_runs = api_runs.as_array().unwrap();
    assert_eq!(api_runs.len(), 2);
    assert!(
        api_runs[0]["run_at"].as_str() > api_runs[1]["run_at"].as_str(),
        "newest first"
    );
}

#[tokio::test]
async fn one_failure_webhook_per_incident_then_a_recovery() {
    let target = Target::start().await;
    let hook = Receiver::start().await;
    let stack = Stack::start(1).await;
    target.set_toggle(500);
    let created = stack
        .create(check(
            "flaky",
            &target.url("/toggle"),
            json!({"alert_threshold": 2, "webhook_url": hook.url()}),
        ))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    wait_until(LIMIT, "failure webhook", || async {
        !hook.received().is_empty()
    })
    .await;
    // Keep failing well past the threshold: still one alert.
    let fails_at_alert = stack.runs(&id).await.len();
    wait_until(LIMIT, "three more failed runs", || async {
        stack.runs(&id).await.len() >= fails_at_alert + 3
    })
    .await;
    assert_eq!(hook.received().len(), 1, "{:?}", hook.received());
    let failure = &hook.received()[0];
    assert_eq!(failure["type"], "failure");
    assert_eq!(failure["check_id"], id.as_str());
    assert_eq!(failure["check_name"], "flaky");
    assert_eq!(failure["status"], "fail");
    assert_eq!(failure["consecutive_fails"], 2);
    assert_eq!(failure["url"], target.url("/toggle"));
    assert!(failure["error"].as_str().unwrap().contains("500"));
    assert!(failure["timestamp"].is_string());
    assert!(failure["alert_id"].is_string());

    target.set_toggle(200);
    wait_until(LIMIT, "recovery webhook", || async {
        hook.received().len() >= 2
    })
    .await;
    let recovery = &hook.received()[1];
    assert_eq!(recovery["type"], "recovery");
    assert_eq!(recovery["status"], "success");
    // Stays recovered: no more alerts.
    let runs_at_recovery = stack.runs(&id).await.len();
    wait_until(LIMIT, "two more good runs", || async {
        stack.runs(&id).await.len() >= runs_at_recovery + 2
    })
    .await;
    assert_eq!(hook.received().len(), 2);

    let alerts = stack.get(&format!("/checks/{id}/alerts")).await;
    let alerts = alerts.as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0]["type"], "recovery", "newest first");
    assert_eq!(alerts[1]["type"], "failure");
    for a in alerts {
        assert_eq!(a["delivery_state"], "delivered");
        assert_eq!(a["attempts"], 1);
        assert_eq!(a["last_response_code"], 204);
    }
}

#[tokio::test]
async fn a_slow_webhook_does_not_hold_up_checks() {
    // The webhook points at a listener that accepts and never answers.
    let black_hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole = format!("http://{}/hook", black_hole.local_addr().unwrap());
    let target = Target::start().await;
    let stack = Stack::start(1).await;
    let failing = stack
        .create(check(
            "down",
            &target.url("/fail"),
            json!({"alert_threshold": 1, "webhook_url": hole}),
        ))
        .await;
    let healthy = stack
        .create(check("up", &target.url("/ok"), json!({})))
        .await;
    let (f, h) = (
        failing["id"].as_str().unwrap().to_string(),
        healthy["id"].as_str().unwrap().to_string(),
    );
    wait_until(LIMIT, "both checks keep running", || async {
        stack.runs(&f).await.len() >= 4 && stack.runs(&h).await.len() >= 4
    })
    .await;
    let alerts = stack.get(&format!("/checks/{f}/alerts")).await;
    assert_eq!(
        alerts.as_array().unwrap().len(),
        1,
        "one incident, one alert"
    );
}

#[tokio::test]
async fn a_slow_target_is_a_timeout_within_timeout_ms_plus_a_margin() {
    let target = Target::start().await;
    let stack = Stack::start(1).await;
    let created = stack
        .create(check(
            "slow",
            &target.url("/slow?ms=5000"),
            json!({"timeout_ms": 500, "interval_seconds": 60}),
        ))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    wait_until(LIMIT, "a run", || async {
        !stack.runs(&id).await.is_empty()
    })
    .await;
    let run = &stack.runs(&id).await[0];
    assert_eq!(run.status, "timeout");
    assert_eq!(run.failure_reason.as_deref(), Some("timeout"));
    assert!(
        (500..800).contains(&run.latency_ms),
        "latency {}",
        run.latency_ms
    );
    let state = stack.get(&format!("/checks/{id}")).await;
    assert_eq!(state["last_status"], "timeout");
    assert_eq!(state["consecutive_fails"], 1);
}

#[tokio::test]
async fn body_contains_passes_and_fails_as_it_should() {
    let target = Target::start().await;
    let stack = Stack::start(1).await;
    let good = stack
        .create(check(
            "good",
            &target.url("/ok"),
            json!({"body_contains": "healthy"}),
        ))
        .await;
    let bad = stack
        .create(check(
            "bad",
            &target.url("/ok"),
            json!({"body_contains": "on fire"}),
        ))
        .await;
    let (g, b) = (
        good["id"].as_str().unwrap().to_string(),
        bad["id"].as_str().unwrap().to_string(),
    );
    wait_until(LIMIT, "runs of both", || async {
        !stack.runs(&g).await.is_empty() && !stack.runs(&b).await.is_empty()
    })
    .await;
    assert_eq!(stack.runs(&g).await[0].status, "success");
    let bad_run = &stack.runs(&b).await[0];
    assert_eq!(bad_run.status, "fail");
    assert_eq!(bad_run.failure_reason.as_deref(), Some("body_mismatch"));
    assert_eq!(bad_run.status_code, 200);
}

/// Asserts that no slot of each check ran twice or was skipped, and that the
/// target saw one request per stored run (plus at most one in flight).
async fn assert_each_slot_once(stack: &Stack, target: &Target, ids: &[(String, String)]) {
    for (id, path) in ids {
        let runs = stack.runs(id).await;
        let slots: HashSet<i64> = runs.iter().map(|r| r.scheduled_at_ms).collect();
        assert_eq!(slots.len(), runs.len(), "a slot ran twice for {id}");
        // Every slot between the first and last ran (none missed).
        let (first, last) = (
            runs.first().unwrap().scheduled_at_ms,
            runs.last().unwrap().scheduled_at_ms,
        );
        assert_eq!(
            ((last - first) / 1000 + 1) as usize,
            runs.len(),
            "missed slots"
        );
        let hits = target.hits(path);
        assert!(
            hits == runs.len() || hits == runs.len() + 1,
            "{hits} requests for {} stored runs",
            runs.len()
        );
    }
}

#[tokio::test]
async fn two_workers_and_two_schedulers_never_double_a_run() {
    let target = Target::start().await;
    let mut stack = Stack::start(2).await;
    stack.add_server(true).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let path = format!("/hit/c{i}");
        let c = stack
            .create(check(&format!("c{i}"), &target.url(&path), json!({})))
            .await;
        ids.push((c["id"].as_str().unwrap().to_string(), path));
    }
    wait_until(LIMIT, "4 runs of every check", || async {
        for (id, _) in &ids {
            if stack.runs(id).await.len() < 4 {
                return false;
            }
        }
        true
    })
    .await;
    assert_each_slot_once(&stack, &target, &ids).await;
}

#[tokio::test]
async fn a_sigkilled_worker_does_not_stop_the_check() {
    let target = Target::start().await;
    let mut stack = Stack::start(0).await;
    let mut victim = stack.spawn_worker_process();
    let created = stack
        .create(check(
            "survivor",
            &target.url("/slow?ms=1500"),
            json!({"timeout_ms": 2000, "interval_seconds": 60}),
        ))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    wait_until(LIMIT, "the run to start in the victim", || async {
        target.hits("/slow") == 1
    })
    .await;
    victim.start_kill().unwrap(); // SIGKILL
    victim.wait().await.unwrap();
    let killed_at = std::time::Instant::now();
    assert!(
        stack.runs(&id).await.is_empty(),
        "the killed run recorded nothing"
    );
    stack.add_worker().await;
    wait_until(
        LIMIT,
        "the interrupted run to complete elsewhere",
        || async { !stack.runs(&id).await.is_empty() },
    )
    .await;
    let recovered_in = killed_at.elapsed();
    let runs = stack.runs(&id).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, "success");
    assert_eq!(
        runs[0].scheduled_at_ms,
        chrono::DateTime::parse_from_rfc3339(created["next_run_at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis(),
        "the same slot was re-run"
    );
    assert_eq!(target.hits("/slow"), 2, "one extra execution for the kill");
    // Lease: timeout 2 s + margin 1 s from the start, plus the re-run.
    assert!(recovered_in < Duration::from_secs(8), "{recovered_in:?}");
    let state = stack.get(&format!("/checks/{id}")).await;
    assert_eq!(state["last_status"], "success");
}

#[tokio::test]
async fn deleted_and_disabled_checks_stop_running() {
    let target = Target::start().await;
    let stack = Stack::start(1).await;
    let del = stack
        .create(check("del", &target.url("/hit/del"), json!({})))
        .await;
    let off = stack
        .create(check("off", &target.url("/hit/off"), json!({})))
        .await;
    let (d, o) = (
        del["id"].as_str().unwrap().to_string(),
        off["id"].as_str().unwrap().to_string(),
    );
    wait_until(LIMIT, "two runs each", || async {
        stack.runs(&d).await.len() >= 2 && stack.runs(&o).await.len() >= 2
    })
    .await;
    stack.delete(&d).await;
    stack.patch(&o, json!({"enabled": false})).await;
    let (hd, ho) = (target.hits("/hit/del"), target.hits("/hit/off"));
    // Three more intervals of a control check prove time has passed.
    let control = stack
        .create(check("control", &target.url("/hit/control"), json!({})))
        .await;
    let c = control["id"].as_str().unwrap().to_string();
    wait_until(LIMIT, "three control runs", || async {
        stack.runs(&c).await.len() >= 3
    })
    .await;
    assert!(
        target.hits("/hit/del") <= hd + 1,
        "deleted check kept running"
    );
    assert!(
        target.hits("/hit/off") <= ho + 1,
        "disabled check kept running"
    );
    // Re-enabled, it runs again.
    let before = target.hits("/hit/off");
    stack.patch(&o, json!({"enabled": true})).await;
    wait_until(LIMIT, "re-enabled check to run", || async {
        target.hits("/hit/off") > before
    })
    .await;
}

#[tokio::test]
async fn the_worker_serves_health_ready_and_metrics() {
    let mut stack = Stack::start(0).await;
    let (port, _stop) = stack.add_worker().await;
    let health: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok"}));
    let ready = reqwest::get(format!("http://127.0.0.1:{port}/ready"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    // Metrics reflect real runs.
    let target = Target::start().await;
    let c = stack
        .create(check("m", &target.url("/ok"), json!({})))
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    wait_until(LIMIT, "two stored runs", || async {
        stack.runs(&id).await.len() >= 2
    })
    .await;
    let metrics = || async {
        reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    wait_until(LIMIT, "metrics to count the runs", || async {
        let text = metrics().await;
        let value = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        value(r#"pulse_runs_total{status="success"}"#) >= 2.0
            && value("pulse_schedule_lag_seconds_count") >= 2.0
            && value("pulse_run_duration_seconds_count") >= 2.0
            && value("pulse_results_written_total") >= 2.0
    })
    .await;
    let text = metrics().await;
    for name in [
        "pulse_queue_depth",
        "pulse_runs_in_flight",
        "pulse_results_dropped_total",
        "pulse_results_buffered",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
}

#[tokio::test]
async fn sigterm_lets_the_run_in_flight_finish_flushes_and_exits_zero() {
    let target = Target::start().await;
    let stack = Stack::start(0).await;
    let mut worker = stack.spawn_worker_process();
    let created = stack
        .create(check(
            "drain",
            &target.url("/slow?ms=1000"),
            json!({"timeout_ms": 3000, "interval_seconds": 60}),
        ))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    wait_until(LIMIT, "the run to start", || async {
        target.hits("/slow") == 1
    })
    .await;
    let pid = worker.id().unwrap().to_string();
    let sent = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(10), worker.wait())
        .await
        .expect("worker exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    // The in-flight run was finished and its result flushed before exit.
    let runs = stack.runs(&id).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].status, "success");
    assert_eq!(target.hits("/slow"), 1);
}

#[tokio::test]
async fn retries_turn_a_blip_into_a_success_and_are_recorded() {
    let target = Target::start().await;
    let stack = Stack::start(1).await;
    let blip = stack
        .create(check(
            "blip",
            &target.url("/flaky/blip?fail=2"),
            json!({"retries": 2, "interval_seconds": 60, "timeout_ms": 1000, "alert_threshold": 1}),
        ))
        .await;
    let down = stack
        .create(check(
            "down",
            &target.url("/hit/x"),
            json!({"retries": 1, "interval_seconds": 60, "timeout_ms": 1000, "expected_status": 201}),
        ))
        .await;
    let (b, d) = (
        blip["id"].as_str().unwrap().to_string(),
        down["id"].as_str().unwrap().to_string(),
    );
    assert_eq!(blip["retries"], 2);
    wait_until(LIMIT, "both runs", || async {
        !stack.runs(&b).await.is_empty() && !stack.runs(&d).await.is_empty()
    })
    .await;
    let run = &stack.runs(&b).await[0];
    assert_eq!(
        run.status, "success",
        "two failures then a success within the retries"
    );
    assert_eq!(run.attempts, 3);
    assert_eq!(target.hits("/flaky/blip"), 3);
    let alerts = stack.get(&format!("/checks/{b}/alerts")).await;
    assert_eq!(alerts, json!([]), "a blip raises no alert");
    let run = &stack.runs(&d).await[0];
    assert_eq!(run.status, "fail", "still failing after its retry");
    assert_eq!(run.attempts, 2);
    assert_eq!(target.hits("/hit/x"), 2);
    let api = stack.get(&format!("/checks/{d}/runs")).await;
    assert_eq!(api[0]["attempts"], 2);
}

#[tokio::test]
async fn a_retry_gets_the_time_left_before_the_next_slot() {
    // The issue's example: every 2 s, timeout 3 s, 1 retry, a target that
    // answers 500 then 200 in turn. The full timeout does not fit before the
    // next slot; the time left does, so every run ends in a success.
    let target = Target::start().await;
    let hook = Receiver::start().await;
    let stack = Stack::start(1).await;
    let c = stack
        .create(check(
            "alt",
            &target.url("/alternate/r"),
            json!({"interval_seconds": 2, "timeout_ms": 3000, "retries": 1,
                   "alert_threshold": 1, "webhook_url": hook.url()}),
        ))
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    wait_until(LIMIT, "3 runs", || async {
        stack.runs(&id).await.len() >= 3
    })
    .await;
    for run in stack.runs(&id).await {
        assert_eq!(run.status, "success", "{run:?}");
        assert_eq!(run.attempts, 2, "{run:?}");
    }
    let alerts = stack.get(&format!("/checks/{id}/alerts")).await;
    assert_eq!(alerts, json!([]), "no failure, no recovery");
}

#[tokio::test]
async fn a_retry_with_no_time_left_is_skipped_and_the_run_says_so() {
    // Every second, a target that fails slowly (900 ms): no time is left for
    // the retry before the next slot.
    let target = Target::start().await;
    let stack = Stack::start(1).await;
    let c = stack
        .create(check(
            "late",
            &target.url("/slow?ms=5000"),
            json!({"interval_seconds": 1, "timeout_ms": 900, "retries": 2}),
        ))
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    wait_until(LIMIT, "2 runs", || async {
        stack.runs(&id).await.len() >= 2
    })
    .await;
    let run = &stack.runs(&id).await[0];
    assert_eq!(run.status, "timeout");
    assert_eq!(run.attempts, 1);
    let error = run.error.clone().unwrap_or_default();
    assert!(error.contains("retry 1 skipped"), "{error}");
}

#[tokio::test]
async fn deleting_or_pausing_a_check_stops_its_queued_runs() {
    let target = Target::start().await;
    // The default lease margin (5 s): jobs wait in the queue behind the slow
    // check, and must still be startable when their turn comes.
    let mut stack = Stack::start_full(pulse_testkit::TestEnv::new().await, 0, 5000).await;
    // One run at a time, held by a slow check: the others wait in the queue.
    let mut settings = common::worker_settings(&stack.env);
    settings.concurrency = 1;
    stack.add_worker_with(settings).await;
    stack
        .create(check(
            "hog",
            &target.url("/work/hog?ms=1500"),
            json!({"timeout_ms": 3000}),
        ))
        .await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let c = stack
            .create(check(
                &format!("q{i}"),
                &target.url(&format!("/hit/q{i}")),
                json!({}),
            ))
            .await;
        ids.push(c["id"].as_str().unwrap().to_string());
    }
    wait_until(LIMIT, "the hog to run", || async {
        target.hits("/work/hog") >= 2
    })
    .await;
    for (i, id) in ids.iter().enumerate() {
        if i < 3 {
            stack.delete(id).await;
        } else {
            stack.patch(id, json!({"enabled": false})).await;
        }
    }
    let before: Vec<usize> = (0..5).map(|i| target.hits(&format!("/hit/q{i}"))).collect();
    // Long enough for the hog to finish twice and the worker to take what
    // was queued.
    wait_until(LIMIT, "the hog to run twice more", || async {
        target.hits("/work/hog") >= 4
    })
    .await;
    let after: Vec<usize> = (0..5).map(|i| target.hits(&format!("/hit/q{i}"))).collect();
    assert_eq!(
        before, after,
        "a deleted or paused check's queued run hit its target"
    );
    // A resumed check runs again.
    stack.patch(&ids[4], json!({"enabled": true})).await;
    wait_until(LIMIT, "the resumed check to run", || async {
        target.hits("/hit/q4") > after[4]
    })
    .await;
}

#[tokio::test]
async fn overload_is_loud_metric_ready_and_an_operator_webhook() {
    let target = Target::start().await;
    let operator = Receiver::start().await;
    let mut stack = Stack::start(0).await;
    let mut settings = common::worker_settings(&stack.env);
    // Two runs at a time against ten slow 1-second checks: lag grows.
    settings.concurrency = 2;
    settings.overload.lag_threshold = Duration::from_millis(1000);
    settings.overload.sustained = Duration::from_secs(2);
    settings.overload.webhook_url = Some(operator.url());
    let (port, _stop) = stack.add_worker_with(settings).await;
    for i in 0..10 {
        stack
            .create(check(
                &format!("slow{i}"),
                &target.url("/slow?ms=1500"),
                json!({"timeout_ms": 3000}),
            ))
            .await;
    }
    wait_until(Duration::from_secs(40), "an overload webhook", || async {
        operator.received().iter().any(|b| b["type"] == "overload")
    })
    .await;
    let alert = operator.received()[0].clone();
    assert!(
        alert["schedule_lag_p99_ms"].as_u64().unwrap() > 1000,
        "{alert}"
    );
    assert_eq!(alert["threshold_ms"], 1000);
    let ready: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/ready"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["overloaded"], true, "{ready}");
    assert!(ready["warning"].as_str().unwrap().contains("overloaded"));
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("pulse_overloaded 1"), "{metrics}");
    assert_eq!(
        operator
            .received()
            .iter()
            .filter(|b| b["type"] == "overload")
            .count(),
        1,
        "one alert per overload"
    );
}

#[tokio::test]
async fn slow_checks_do_not_starve_the_others_with_default_settings() {
    // The issue's case: 200 one-second checks against a target that answers
    // in 5 s, beside five unrelated 2-second checks, on one worker with the
    // default concurrency.
    let target = Target::start().await;
    let mut stack = Stack::start(0).await;
    let defaults = pulse_worker::Settings::with_services(common::services(&stack.env));
    let mut settings = common::worker_settings(&stack.env);
    settings.concurrency = defaults.concurrency;
    stack.add_worker_with(settings).await;
    for i in 0..200 {
        stack
            .create(check(
                &format!("slow{i}"),
                &target.url("/slow?ms=5000"),
                json!({"timeout_ms": 6000}),
            ))
            .await;
    }
    let mut fast = Vec::new();
    for i in 0..5 {
        let c = stack
            .create(check(
                &format!("fast{i}"),
                &target.url(&format!("/hit/f{i}")),
                json!({"interval_seconds": 2}),
            ))
            .await;
        fast.push(c["id"].as_str().unwrap().to_string());
    }
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let elapsed = started.elapsed().as_secs_f64();
    for (i, id) in fast.iter().enumerate() {
        let hits = target.hits(&format!("/hit/f{i}"));
        assert!(
            hits as f64 >= (elapsed / 2.0).floor() - 1.0,
            "fast{i}: {hits} runs in {elapsed:.1} s"
        );
        for run in stack.runs(id).await {
            let lag = run.run_at_ms - run.scheduled_at_ms;
            assert!(lag < 1000, "fast{i}: lag {lag} ms");
        }
    }
}

#[tokio::test]
async fn a_failed_assertion_is_named_with_the_value_seen_and_every_run_shows_its_phases() {
    let target = Target::start().await;
    let stack = Stack::start(1).await;
    let assertions = json!([
        {"source": "status_code", "comparison": "equals", "target": 200},
        {"source": "header", "property": "X-Version", "comparison": "greater_or_equal", "target": "5"},
        {"source": "json_body", "property": "$.count", "comparison": "equals", "target": 3},
        {"source": "json_body", "property": "$.status", "comparison": "equals", "target": "ok"}
    ]);
    let good = stack
        .create(check(
            "good",
            &target.url("/json/ok"),
            json!({"assertions": assertions}),
        ))
        .await;
    let bad = stack
        .create(check(
            "bad",
            &target.url("/json/down"),
            json!({"assertions": assertions}),
        ))
        .await;
    let good = good["id"].as_str().unwrap().to_string();
    let bad = bad["id"].as_str().unwrap().to_string();
    wait_until(LIMIT, "runs of both", || async {
        !stack.runs(&good).await.is_empty() && !stack.runs(&bad).await.is_empty()
    })
    .await;
    let runs = stack.get(&format!("/checks/{bad}/runs")).await;
    let run = &runs[0];
    assert_eq!(run["status"], "fail", "{run}");
    assert_eq!(run["failure_reason"], "assertion");
    assert_eq!(
        run["error"],
        r#"json_body $.status equals "ok": got "down""#
    );
    let results = run["assertions"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[1]["actual"], "7");
    assert_eq!(
        results[3],
        json!({"index": 3, "passed": false, "actual": "down"})
    );
    let excerpt = run["excerpt"].as_str().unwrap();
    assert!(excerpt.starts_with("HTTP 200 OK\n"), "{excerpt}");
    assert!(excerpt.contains("\"status\": \"down\""), "{excerpt}");
    let phases = &run["phases"];
    let sum: u64 = ["dns_ms", "connect_ms", "tls_ms", "ttfb_ms", "download_ms"]
        .iter()
        .map(|k| phases[k].as_u64().unwrap())
        .sum();
    assert_eq!(sum, run["latency_ms"].as_u64().unwrap(), "{run}");

    let runs = stack.get(&format!("/checks/{good}/runs")).await;
    assert_eq!(runs[0]["status"], "success", "{}", runs[0]);
    assert!(runs[0]["excerpt"].is_null(), "no excerpt for a passing run");
    let check = stack.get(&format!("/checks/{bad}")).await;
    assert!(check["last_error"].as_str().unwrap().contains("$.status"));
}

#[tokio::test]
async fn a_slow_passing_run_is_degraded_and_opens_no_incident() {
    let target = Target::start().await;
    let hook = Receiver::start().await;
    let stack = Stack::start(1).await;
    let c = stack
        .create(check(
            "slowish",
            &target.url("/slow?ms=300"),
            json!({"degraded_ms": 100, "alert_threshold": 1, "webhook_url": hook.url()}),
        ))
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    wait_until(LIMIT, "two runs", || async {
        stack.runs(&id).await.len() >= 2
    })
    .await;
    for run in stack.runs(&id).await {
        assert_eq!(run.status, "degraded");
    }
    let check = stack.get(&format!("/checks/{id}")).await;
    assert_eq!(check["last_status"], "degraded");
    assert_eq!(check["consecutive_fails"], 0);
    assert_eq!(stack.get(&format!("/checks/{id}/alerts")).await, json!([]));
}

#[tokio::test]
async fn a_degraded_streak_alerts_once_and_fast_runs_recover_it() {
    let target = Target::start().await;
    let hook = Receiver::start().await;
    let stack = Stack::start(1).await;
    let c = stack
        .create(check(
            "laggy",
            &target.url("/slow?ms=300"),
            json!({"degraded_ms": 100, "alert_on_degraded": true, "alert_threshold": 2,
                   "webhook_url": hook.url()}),
        ))
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    wait_until(LIMIT, "a degraded alert", || async {
        hook.received().iter().any(|b| b["type"] == "degraded")
    })
    .await;
    // It stays one alert while the runs stay slow.
    wait_until(LIMIT, "two more runs", || async {
        stack.runs(&id).await.len() >= 4
    })
    .await;
    assert_eq!(hook.received().len(), 1, "{:?}", hook.received());
    // Fast again (the threshold moves above the latency): one recovery.
    stack.patch(&id, json!({"degraded_ms": 5000})).await;
    wait_until(LIMIT, "a recovery", || async {
        hook.received().iter().any(|b| b["type"] == "recovery")
    })
    .await;
    let kinds: Vec<String> = hook
        .received()
        .iter()
        .map(|b| b["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, vec!["degraded", "recovery"]);
}

#[tokio::test]
async fn a_certificate_expiring_soon_raises_one_alert_per_certificate() {
    let tls = pulse_testkit::TlsTarget::start(5).await;
    let hook = Receiver::start().await;
    let stack = Stack::start(1).await;
    let c = stack
        .create(check(
            "expiring",
            &tls.url(),
            json!({"tls_verify": false, "tls_expiry_days": 14, "webhook_url": hook.url()}),
        ))
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    wait_until(LIMIT, "three runs", || async {
        stack.runs(&id).await.len() >= 3
    })
    .await;
    wait_until(LIMIT, "the expiry alert", || async {
        !hook.received().is_empty()
    })
    .await;
    let runs = stack.get(&format!("/checks/{id}/runs")).await;
    let cert = &runs[0]["certificate"];
    assert!(
        (4..=5).contains(&cert["days_left"].as_i64().unwrap()),
        "{cert}"
    );
    assert_eq!(
        runs[0]["status"], "success",
        "verification off: {}",
        runs[0]
    );
    let alerts = stack.get(&format!("/checks/{id}/alerts")).await;
    assert_eq!(
        alerts.as_array().unwrap().len(),
        1,
        "one per certificate: {alerts}"
    );
    assert_eq!(alerts[0]["type"], "tls_expiry");
    let sent = &hook.received()[0];
    assert_eq!(sent["type"], "tls_expiry");
    assert!(
        sent["error"].as_str().unwrap().contains("expires in"),
        "{sent}"
    );
    assert_eq!(sent["certificate"]["fingerprint"], cert["fingerprint"]);
}

#[tokio::test]
async fn a_tcp_check_runs_end_to_end_with_its_phases() {
    let target = Target::start().await;
    let stack = Stack::start(1).await;
    let port: u16 = target
        .url("/")
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let c = stack
        .create(
            json!({"name": "raw", "type": "tcp", "host": "127.0.0.1", "port": port,
                       "interval_seconds": 1, "send": "GET /ok HTTP/1.0\r\n\r\n",
                       "expect": "all systems healthy"}),
        )
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    wait_until(LIMIT, "two runs", || async {
        stack.runs(&id).await.len() >= 2
    })
    .await;
    let runs = stack.get(&format!("/checks/{id}/runs")).await;
    assert_eq!(runs[0]["status"], "success", "{}", runs[0]);
    assert!(runs[0]["phases"]["connect_ms"].is_u64());
    assert!(target.hits("/ok") >= 2);
}

#[tokio::test]
async fn with_default_settings_two_workers_write_results_about_every_5_s_and_no_later() {
    let target = Target::start().await;
    let mut stack = Stack::start(0).await;
    let defaults = pulse_worker::Settings::with_services(common::services(&stack.env));
    assert_eq!(defaults.flush_interval, Duration::from_secs(5));
    for _ in 0..2 {
        let mut settings = common::worker_settings(&stack.env);
        settings.flush_interval = defaults.flush_interval;
        settings.batch_size = defaults.batch_size;
        stack.add_worker_with(settings).await;
    }
    let id = stack
        .create(check("fresh", &target.url("/ok"), json!({})))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Watch the runs API for 16 s: when each run first shows, and how
    // many times new runs appeared (each time is one insert or more).
    let started = std::time::Instant::now();
    let mut first_seen: std::collections::HashMap<String, i64> = Default::default();
    let mut appearances = 0;
    while started.elapsed() < Duration::from_secs(16) {
        let runs = stack.get(&format!("/checks/{id}/runs?limit=100")).await;
        let now = chrono::Utc::now().timestamp_millis();
        let mut new = false;
        for r in runs.as_array().unwrap() {
            let run_id = r["id"].as_str().unwrap().to_string();
            if let std::collections::hash_map::Entry::Vacant(e) = first_seen.entry(run_id) {
                let ended = chrono::DateTime::parse_from_rfc3339(r["run_at"].as_str().unwrap())
                    .unwrap()
                    .timestamp_millis()
                    + r["latency_ms"].as_i64().unwrap();
                e.insert(now - ended);
                new = true;
            }
        }
        appearances += usize::from(new);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(first_seen.len() >= 10, "{} runs seen", first_seen.len());
    // One insert per 5 s for both workers together (16 s: at most 4).
    assert!(appearances <= 4, "runs appeared {appearances} times");
    // No run waited much past the interval (plus the writer's 1 s look).
    let latest = first_seen.values().max().unwrap();
    assert!(*latest <= 7_500, "a run showed {latest} ms after it ended");
}
