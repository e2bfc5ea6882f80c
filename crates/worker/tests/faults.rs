//! Faults injected into real processes: workers SIGKILLed over and over,
//! Redis restarted empty, ClickHouse stopped for 30 s, Postgres restarted.
//! Each test is bounded in time and stops by itself.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{check, worker_url, Stack};
use pulse_testkit::{wait_until, PrivateServices, Receiver, Target};
use serde_json::{json, Value};

/// A cheap pseudo-random duration in `lo..hi` ms (no RNG crate needed in
/// tests; uuid v4 is random).
fn random_ms(lo: u64, hi: u64) -> Duration {
    let r = u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap());
    Duration::from_millis(lo + r % (hi - lo))
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn repeated_sigkills_lose_no_run_and_never_overlap_or_double_alert() {
    // `make soak` raises this.
    let kills: usize = std::env::var("PULSE_FAULT_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    const INTERVAL_MS: i64 = 2000;
    let target = Target::start().await;
    let hook = Receiver::start().await;
    // Lease: timeout 0.8 s + margin 2 s, so a job may wait 1 s for a worker
    // that is just starting.
    let mut stack = Stack::start_full(pulse_testkit::TestEnv::new().await, 0, 2000).await;
    let mut checks = Vec::new();
    for i in 0..6 {
        let name = format!("k{i}");
        let c = stack
            .create(check(
                &name,
                &target.url(&format!("/work/{name}?ms=300")),
                json!({"interval_seconds": 2, "timeout_ms": 800}),
            ))
            .await;
        checks.push((id(&c), name));
    }
    let failing = stack
        .create(check(
            "down",
            &target.url("/fail"),
            json!({"interval_seconds": 2, "timeout_ms": 800, "alert_threshold": 3, "webhook_url": hook.url()}),
        ))
        .await;
    let lease = [("SHUTDOWN_GRACE_MS", "1000")];
    let started = Instant::now();
    // Worker processes with overlapping lives: each is killed at a random
    // point shortly after its successor starts, so there is always one
    // worker and the kills land on runs in flight.
    let mut current = stack.spawn_worker_process_with(&lease);
    let mut kill_times = Vec::new();
    for _ in 0..kills {
        tokio::time::sleep(random_ms(500, 2000)).await;
        let next = stack.spawn_worker_process_with(&lease);
        current.start_kill().unwrap(); // SIGKILL
        kill_times.push(Instant::now());
        current.wait().await.unwrap();
        current = next;
    }
    stack.add_worker().await;
    current.start_kill().unwrap();
    current.wait().await.unwrap();
    let kills_done = Instant::now();
    // Every check runs a slot due after the last kill plus a lease.
    let caught_up_at = chrono::Utc::now().timestamp_millis() + 3000;
    wait_until(Duration::from_secs(30), "every check caught up", || async {
        for (c, _) in &checks {
            let runs = stack.runs(c).await;
            if runs.last().is_none_or(|r| r.scheduled_at_ms < caught_up_at) {
                return false;
            }
        }
        true
    })
    .await;
    let mut extra = 0;
    let mut missed = 0;
    let mut close = 0;
    let mut to_next_run = Vec::new();
    for (c, name) in &checks {
        let all = stack.runs(c).await;
        let slots: Vec<i64> = all.iter().map(|r| r.scheduled_at_ms).collect();
        let distinct: HashSet<i64> = slots.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            all.len(),
            "{name}: a slot was recorded twice"
        );
        // Slots a lost worker made the check miss are recorded, not run.
        let runs: Vec<_> = all.iter().filter(|r| r.status != "missed").collect();
        for r in all.iter().filter(|r| r.status == "missed") {
            assert_eq!(r.failure_reason.as_deref(), Some("worker_lost"));
            missed += 1;
        }
        let mut sorted = slots.clone();
        sorted.sort();
        for w in sorted.windows(2) {
            assert_eq!(
                w[1] - w[0],
                INTERVAL_MS,
                "{name}: a due run was lost: {sorted:?}"
            );
        }
        assert_eq!(
            target.overlaps(name),
            0,
            "{name}: two executions overlapped"
        );
        let hit_times = target.hit_times(&format!("/work/{name}"));
        let hits = hit_times.len();
        assert!(hits >= runs.len());
        // No burst of late runs: consecutive requests at least a third of
        // an interval apart.
        for w in hit_times.windows(2) {
            if w[1] - w[0] < Duration::from_millis(INTERVAL_MS as u64 / 2) {
                close += 1;
            }
            assert!(
                w[1] - w[0] >= Duration::from_millis(INTERVAL_MS as u64 / 3),
                "{name}: two runs {:?} apart",
                w[1] - w[0]
            );
        }
        for k in &kill_times {
            if let Some(next) = hit_times.iter().find(|t| *t > k) {
                to_next_run.push(*next - *k);
            }
        }
        // Runs interrupted by a kill were executed again; the last one may
        // still be in flight.
        let per_check = hits - runs.len();
        assert!(
            per_check <= kills + 1,
            "{name}: {per_check} extra executions"
        );
        extra += per_check;
    }
    let alerts = stack.get(&format!("/checks/{}/alerts", id(&failing))).await;
    assert_eq!(
        alerts.as_array().unwrap().len(),
        1,
        "one incident, one alert: {alerts}"
    );
    wait_until(Duration::from_secs(10), "the failure webhook", || async {
        !hook.received().is_empty()
    })
    .await;
    assert_eq!(hook.received().len(), 1);
    to_next_run.sort();
    let p99 = to_next_run[(to_next_run.len() * 99 / 100).min(to_next_run.len() - 1)];
    eprintln!(
        "faults: {kills} kills in {:?}, caught up {:?} after; {extra} extra executions, \
         {missed} slots recorded missed, 0 lost, 0 duplicated, 0 overlapping, \
         {close} runs within half an interval of the one before; \
         SIGKILL to next run of each check: p50 {:?}, p99 {:?}",
        kills_done - started,
        kills_done.elapsed(),
        to_next_run[to_next_run.len() / 2],
        p99,
    );
    assert!(
        p99 <= Duration::from_secs(5),
        "SIGKILL to next run p99 {p99:?}"
    );
}

/// Sends `signal` (`STOP`, `CONT`) to a child process.
fn signal(child: &tokio::process::Child, signal: &str) {
    let pid = child.id().unwrap().to_string();
    let ok = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal}");
}

#[tokio::test]
async fn a_stalled_worker_is_replaced_within_seconds_and_never_overlaps_its_replacement() {
    let target = Target::start().await;
    // Default lease margin (5 s): the takeover comes from the heartbeat,
    // not from lease expiry.
    let stack = Stack::start_full(pulse_testkit::TestEnv::new().await, 0, 5000).await;
    let mut checks = Vec::new();
    for i in 0..6 {
        let name = format!("s{i}");
        let c = stack
            .create(check(
                &name,
                &target.url(&format!("/work/{name}?ms=400")),
                json!({"interval_seconds": 1, "timeout_ms": 2000}),
            ))
            .await;
        checks.push((id(&c), name));
    }
    let stalled = stack.spawn_worker_process();
    let other = stack.spawn_worker_process();
    wait_until(Duration::from_secs(20), "every check running", || async {
        checks
            .iter()
            .all(|(_, name)| target.hits(&format!("/work/{name}")) >= 3)
    })
    .await;
    signal(&stalled, "STOP");
    let stopped_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    // Every check ran in the last 5 s of the stall: the other worker took
    // over within seconds.
    for (_, name) in &checks {
        let recent = target
            .hit_times(&format!("/work/{name}"))
            .iter()
            .filter(|t| **t > stopped_at + Duration::from_secs(5))
            .count();
        assert!(
            recent >= 3,
            "{name}: {recent} runs in the last 5 s of the stall"
        );
    }
    signal(&stalled, "CONT");
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (c, name) in &checks {
        assert_eq!(
            target.overlaps(name),
            0,
            "{name}: the stalled worker overlapped"
        );
        let runs = stack.runs(c).await;
        let slots: HashSet<i64> = runs.iter().map(|r| r.scheduled_at_ms).collect();
        assert_eq!(
            slots.len(),
            runs.len(),
            "{name}: a late write was not fenced"
        );
    }
    drop(other);
}

#[tokio::test]
async fn redis_restarted_empty_and_every_check_runs_again_within_lease_and_poll() {
    let services = PrivateServices::start();
    let target = Target::start().await;
    let stack = Stack::start_on(services.env.clone(), 1).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let c = stack
            .create(check(
                &format!("r{i}"),
                &target.url("/ok"),
                json!({"timeout_ms": 1000}),
            ))
            .await;
        ids.push(id(&c));
    }
    wait_until(Duration::from_secs(20), "first runs", || async {
        for c in &ids {
            if stack.runs(c).await.is_empty() {
                return false;
            }
        }
        true
    })
    .await;
    services.stop("redis");
    services.start_again("redis");
    let back = chrono::Utc::now().timestamp_millis();
    let t = Instant::now();
    wait_until(
        Duration::from_secs(20),
        "every check to run after the restart",
        || async {
            for c in &ids {
                if stack
                    .runs(c)
                    .await
                    .last()
                    .is_none_or(|r| r.run_at_ms < back)
                {
                    return false;
                }
            }
            true
        },
    )
    .await;
    let took = t.elapsed();
    // Lease (timeout 1 s + margin 1 s) + poll (0.1 s), plus the worker's 1 s
    // reconnect pause and the 100 ms result flush.
    assert!(took < Duration::from_millis(4500), "took {took:?}");
    eprintln!("faults: redis restarted empty, all checks running again after {took:?}");
}

#[tokio::test]
async fn a_30_second_clickhouse_outage_loses_no_result() {
    let services = PrivateServices::start();
    let target = Target::start().await;
    let mut stack = Stack::start_on(services.env.clone(), 0).await;
    let (worker_port, worker_stop) = stack.add_worker().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let name = format!("c{i}");
        let c = stack
            .create(check(
                &name,
                &target.url(&format!("/hit/{name}")),
                json!({}),
            ))
            .await;
        ids.push((id(&c), name));
    }
    wait_until(Duration::from_secs(20), "first runs", || async {
        !stack.runs(&ids[0].0).await.is_empty()
    })
    .await;
    services.stop("ch");
    let ready = reqwest::get(worker_url(worker_port, "/ready"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["down"], "clickhouse");
    let during: Vec<usize> = ids
        .iter()
        .map(|(_, n)| target.hits(&format!("/hit/{n}")))
        .collect();
    tokio::time::sleep(Duration::from_secs(30)).await;
    for (i, (_, n)) in ids.iter().enumerate() {
        assert!(
            target.hits(&format!("/hit/{n}")) >= during[i] + 25,
            "checks kept running"
        );
    }
    services.start_again("ch");
    // Stop the worker cleanly (it flushes), then every execution has its row.
    worker_stop.cancel();
    wait_until(
        Duration::from_secs(30),
        "all results in clickhouse",
        || async {
            for (c, n) in &ids {
                if stack.runs(c).await.len() != target.hits(&format!("/hit/{n}")) {
                    return false;
                }
            }
            true
        },
    )
    .await;
    let total: usize = ids
        .iter()
        .map(|(_, n)| target.hits(&format!("/hit/{n}")))
        .sum();
    eprintln!("faults: clickhouse down 30 s, {total} runs, 0 lost");
}

#[tokio::test]
async fn a_postgres_restart_is_survived_and_ready_tells_the_truth() {
    let services = PrivateServices::start();
    let target = Target::start().await;
    let mut stack = Stack::start_on(services.env.clone(), 0).await;
    let (worker_port, _stop) = stack.add_worker().await;
    let c = stack
        .create(check("p", &target.url("/ok"), json!({})))
        .await;
    let c = id(&c);
    wait_until(Duration::from_secs(20), "first run", || async {
        !stack.runs(&c).await.is_empty()
    })
    .await;
    services.stop("pg");
    for url in [
        format!("{}/ready", stack.base),
        worker_url(worker_port, "/ready"),
    ] {
        let resp = reqwest::get(&url).await.unwrap();
        assert_eq!(resp.status(), 503, "{url}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["down"], "postgres", "{url}");
    }
    let api = stack
        .http
        .get(format!("{}/checks", stack.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        api.status(),
        503,
        "the API says its database is unavailable"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    services.start_again("pg");
    let back = chrono::Utc::now().timestamp_millis();
    let t = Instant::now();
    for url in [
        format!("{}/ready", stack.base),
        worker_url(worker_port, "/ready"),
    ] {
        wait_until(Duration::from_secs(20), "ready again", || async {
            reqwest::get(&url).await.is_ok_and(|r| r.status() == 200)
        })
        .await;
    }
    wait_until(Duration::from_secs(20), "runs again", || async {
        stack
            .runs(&c)
            .await
            .last()
            .is_some_and(|r| r.run_at_ms > back)
    })
    .await;
    let created = stack
        .create(check("after", &target.url("/ok"), json!({})))
        .await;
    assert!(created["id"].is_string());
    eprintln!(
        "faults: postgres restarted, running again after {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn when_the_result_buffer_overflows_drops_are_counted_and_exported() {
    let services = PrivateServices::start();
    let target = Target::start().await;
    let mut stack = Stack::start_on(services.env.clone(), 0).await;
    let mut settings = common::worker_settings(&stack.env);
    settings.batch_size = 2;
    settings.max_buffer = 2;
    let (port, _stop) = stack.add_worker_with(settings).await;
    for i in 0..3 {
        stack
            .create(check(&format!("b{i}"), &target.url("/ok"), json!({})))
            .await;
    }
    services.stop("ch");
    let dropped = || async {
        let text = reqwest::get(worker_url(port, "/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|l| l.starts_with("pulse_results_dropped_total"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    wait_until(
        Duration::from_secs(20),
        "dropped results to be counted",
        || async { dropped().await >= 3.0 },
    )
    .await;
    services.start_again("ch");
}
