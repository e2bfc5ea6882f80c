//! Locations on one machine: worker processes per location, each bound to
//! its own loopback source address (`WORKER_SOURCE_ADDRESS`), against a
//! target that fails only for some of those addresses.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{check, Stack};
use pulse_testkit::{wait_until, Receiver, Target};
use serde_json::{json, Value};

/// The source address of each location in these tests.
const SOURCES: [(&str, &str); 3] = [("a", "127.0.0.2"), ("b", "127.0.0.3"), ("c", "127.0.0.4")];

fn source(location: &str) -> &'static str {
    SOURCES.iter().find(|(l, _)| *l == location).unwrap().1
}

fn spawn(stack: &Stack, location: &str) -> tokio::process::Child {
    stack.spawn_worker_process_with(&[
        ("LOCATION", location),
        ("WORKER_SOURCE_ADDRESS", source(location)),
    ])
}

async fn stack() -> Stack {
    // A location without a worker for 2 s is stale.
    Stack::start_stale_after(
        pulse_testkit::TestEnv::new().await,
        0,
        1000,
        Duration::from_secs(2),
    )
    .await
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// The alerts the receiver got for a check, by type.
fn alerts(hook: &Receiver, check: &str) -> Vec<Value> {
    hook.received()
        .into_iter()
        .filter(|a| a["check_id"] == check)
        .collect()
}

fn locations_named(alert: &Value) -> Vec<String> {
    let mut named: Vec<String> = alert["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["location"].as_str().unwrap().to_string())
        .collect();
    named.sort();
    named
}

#[tokio::test]
async fn quorums_alert_on_any_majority_and_all_as_asked() {
    let target = Target::start().await;
    let hook = Receiver::start().await;
    let stack = stack().await;
    let _workers: Vec<_> = ["a", "b", "c"].iter().map(|l| spawn(&stack, l)).collect();
    let quorum_check = |name: &str, deny: &[&str], quorum: Value| {
        let ips: Vec<&str> = deny.iter().map(|l| source(l)).collect();
        check(
            name,
            &target.url(&format!("/deny/{}", ips.join(","))),
            json!({"locations": ["a", "b", "c"], "alert_locations": quorum,
                   "alert_threshold": 2, "webhook_url": hook.url()}),
        )
    };
    let any_one = id(&stack
        .create(quorum_check("any-1", &["b"], json!("any")))
        .await);
    let majority_one = id(&stack
        .create(quorum_check("majority-1", &["b"], json!("majority")))
        .await);
    let majority_two = id(&stack
        .create(quorum_check("majority-2", &["b", "c"], json!("majority")))
        .await);
    let all_two = id(&stack
        .create(quorum_check("all-2", &["b", "c"], json!("all")))
        .await);
    let all_three = id(&stack
        .create(quorum_check("all-3", &["a", "b", "c"], json!("all")))
        .await);
    let two_of_three = id(&stack
        .create(quorum_check("n-2", &["c", "a"], json!(2)))
        .await);
    wait_until(Duration::from_secs(30), "the quorum alerts", || async {
        [&any_one, &majority_two, &all_three, &two_of_three]
            .iter()
            .all(|c| !alerts(&hook, c).is_empty())
    })
    .await;
    let failure = |c: &str| {
        let got = alerts(&hook, c);
        assert_eq!(got.len(), 1, "one alert per incident: {got:?}");
        assert_eq!(got[0]["type"], "failure");
        got[0].clone()
    };
    assert_eq!(locations_named(&failure(&any_one)), ["b"]);
    assert_eq!(locations_named(&failure(&majority_two)), ["b", "c"]);
    assert_eq!(locations_named(&failure(&all_three)), ["a", "b", "c"]);
    assert_eq!(locations_named(&failure(&two_of_three)), ["a", "c"]);
    let named = failure(&majority_two);
    let b = named["locations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["location"] == "b")
        .unwrap();
    assert!(
        b["error"].as_str().unwrap().contains("503"),
        "each location's last error: {b}"
    );
    // The quorums not met stay silent while their failing locations keep
    // failing: wait until each has failed at least 4 times in a row there.
    wait_until(Duration::from_secs(20), "more failures", || async {
        for c in [&majority_one, &all_two] {
            let runs = stack.runs(c).await;
            if runs
                .iter()
                .filter(|r| r.location == "b" && r.status == "fail")
                .count()
                < 4
            {
                return false;
            }
        }
        true
    })
    .await;
    assert!(
        alerts(&hook, &majority_one).is_empty(),
        "1 of 3 is no majority"
    );
    assert!(alerts(&hook, &all_two).is_empty(), "2 of 3 is not all");
    // Each run names its location, and the target saw each location's
    // source address.
    let runs = stack.runs(&majority_two).await;
    for r in &runs {
        let want = if r.location == "a" { "success" } else { "fail" };
        assert_eq!(r.status, want, "{r:?}");
    }
    let peers: std::collections::HashSet<String> =
        target.peers().iter().map(|p| p.ip().to_string()).collect();
    for (_, ip) in SOURCES {
        assert!(peers.contains(ip), "{ip} in {peers:?}");
    }
    // The runs API filters by location; the check shows each location.
    let only_b: Vec<Value> = serde_json::from_value(
        stack
            .get(&format!("/checks/{majority_two}/runs?location=b"))
            .await,
    )
    .unwrap();
    assert!(!only_b.is_empty());
    assert!(only_b.iter().all(|r| r["location"] == "b"));
    let shown = stack.get(&format!("/checks/{majority_two}")).await;
    assert_eq!(shown["incident_open"], true);
    let states: HashMap<String, String> = shown["by_location"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["location"].as_str().unwrap().into(),
                l["last_status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(states["a"], "success");
    assert_eq!(states["b"], "fail");
    assert_eq!(shown["last_status"], "fail");
}

#[tokio::test]
async fn a_location_whose_workers_are_killed_goes_stale_and_its_slots_are_missed() {
    let target = Target::start().await;
    let hook = Receiver::start().await;
    let stack = stack().await;
    let _a = spawn(&stack, "a");
    let mut b = spawn(&stack, "b");
    // b alone fails, and opens the incident (`any`).
    let c = id(&stack
        .create(check(
            "b-is-down",
            &target.url(&format!("/deny/{}", source("b"))),
            json!({"locations": ["a", "b"], "alert_threshold": 2, "webhook_url": hook.url()}),
        ))
        .await);
    wait_until(Duration::from_secs(20), "b's incident", || async {
        !alerts(&hook, &c).is_empty()
    })
    .await;
    b.start_kill().unwrap(); // SIGKILL: b has no worker left
    b.wait().await.unwrap();
    let killed_at = chrono::Utc::now().timestamp_millis();
    // b goes stale: its slots are recorded missed, never failed, while a
    // goes on; a stale location no longer holds the incident.
    wait_until(Duration::from_secs(20), "b's slots missed", || async {
        stack
            .runs(&c)
            .await
            .iter()
            .filter(|r| r.location == "b" && r.status == "missed")
            .count()
            >= 3
    })
    .await;
    let runs = stack.runs(&c).await;
    for r in runs.iter().filter(|r| r.run_at_ms > killed_at + 500) {
        if r.location == "b" {
            assert_eq!(r.status, "missed", "{r:?}");
            let reason = r.failure_reason.as_deref().unwrap();
            assert!(["location_stale", "worker_lost"].contains(&reason), "{r:?}");
        } else {
            assert_eq!(r.status, "success", "{r:?}");
        }
    }
    // The missed slots carry on b's schedule: no two in one slot.
    let b_slots: Vec<i64> = runs
        .iter()
        .filter(|r| r.location == "b")
        .map(|r| r.scheduled_at_ms)
        .collect();
    let distinct: std::collections::HashSet<_> = b_slots.iter().collect();
    assert_eq!(
        distinct.len(),
        b_slots.len(),
        "a slot twice in b: {:#?}",
        runs.iter()
            .filter(|r| r.location == "b")
            .collect::<Vec<_>>()
    );
    wait_until(Duration::from_secs(10), "the recovery", || async {
        alerts(&hook, &c).len() == 2
    })
    .await;
    assert_eq!(alerts(&hook, &c)[1]["type"], "recovery");
    let locations: Vec<Value> = serde_json::from_value(stack.get("/locations").await).unwrap();
    let by_name: HashMap<&str, &Value> = locations
        .iter()
        .map(|l| (l["location"].as_str().unwrap(), l))
        .collect();
    assert_eq!(by_name["a"]["status"], "live");
    assert_eq!(by_name["a"]["live_workers"], 1);
    assert_eq!(by_name["b"]["status"], "stale");
    assert_eq!(by_name["b"]["live_workers"], 0);
    assert!(by_name["b"]["last_heartbeat"].is_string());
    assert_eq!(by_name["b"]["checks"], 1);
    let metrics = stack.get_text("/metrics").await;
    assert!(
        metrics.contains("pulse_location_stale{location=\"b\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("pulse_location_workers{location=\"a\"} 1"));
}

#[tokio::test]
async fn round_robin_spreads_the_slots_evenly_in_turn() {
    let target = Target::start().await;
    let stack = stack().await;
    let _workers: Vec<_> = ["a", "b", "c"].iter().map(|l| spawn(&stack, l)).collect();
    let c = id(&stack
        .create(check(
            "rr",
            &target.url("/ok"),
            json!({"locations": ["a", "b", "c"], "location_strategy": "round_robin"}),
        ))
        .await);
    wait_until(Duration::from_secs(30), "nine runs", || async {
        stack.runs(&c).await.len() >= 9
    })
    .await;
    let runs = stack.runs(&c).await;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for r in &runs {
        *counts.entry(r.location.as_str()).or_default() += 1;
        assert_eq!(r.status, "success", "{r:?}");
    }
    let (lo, hi) = (
        counts.values().min().unwrap(),
        counts.values().max().unwrap(),
    );
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(hi - lo <= 1, "even: {counts:?}");
    // One location per slot, in turn, one interval apart.
    let mut by_slot: Vec<(i64, &str)> = runs
        .iter()
        .map(|r| (r.scheduled_at_ms, r.location.as_str()))
        .collect();
    by_slot.sort();
    for w in by_slot.windows(2) {
        assert_eq!(w[1].0 - w[0].0, 1000, "{by_slot:?}");
        assert_ne!(w[1].1, w[0].1, "{by_slot:?}");
    }
    for w in by_slot.windows(4) {
        assert_eq!(w[3].1, w[0].1, "a, b, c, a, ...: {by_slot:?}");
    }
}

#[tokio::test]
async fn sigkills_in_two_locations_lose_and_double_no_run_in_either() {
    const INTERVAL_MS: i64 = 2000;
    let target = Target::start().await;
    let stack = Stack::start_full(pulse_testkit::TestEnv::new().await, 0, 2000).await;
    let mut checks = Vec::new();
    for i in 0..4 {
        let c = stack
            .create(check(
                &format!("k{i}"),
                &target.url(&format!("/work/k{i}?ms=300")),
                json!({"interval_seconds": 2, "timeout_ms": 800, "locations": ["a", "b"]}),
            ))
            .await;
        checks.push(id(&c));
    }
    let grace = ("SHUTDOWN_GRACE_MS", "1000");
    let worker = |location: &'static str| {
        stack.spawn_worker_process_with(&[
            ("LOCATION", location),
            ("WORKER_SOURCE_ADDRESS", source(location)),
            grace,
        ])
    };
    // In each location a worker always runs: each is SIGKILLed shortly
    // after its successor starts, so the kills land on runs in flight.
    let mut current = [worker("a"), worker("b")];
    for round in 0..8usize {
        tokio::time::sleep(Duration::from_millis(700 + 150 * (round as u64 % 4))).await;
        let at = round % 2;
        let next = worker(["a", "b"][at]);
        current[at].start_kill().unwrap();
        current[at].wait().await.unwrap();
        current[at] = next;
    }
    let caught_up_at = chrono::Utc::now().timestamp_millis() + 3000;
    wait_until(
        Duration::from_secs(30),
        "both locations caught up",
        || async {
            for c in &checks {
                let runs = stack.runs(c).await;
                for l in ["a", "b"] {
                    if !runs
                        .iter()
                        .any(|r| r.location == l && r.scheduled_at_ms >= caught_up_at)
                    {
                        return false;
                    }
                }
            }
            true
        },
    )
    .await;
    for c in &checks {
        let runs = stack.runs(c).await;
        for l in ["a", "b"] {
            let mut slots: Vec<i64> = runs
                .iter()
                .filter(|r| r.location == l)
                .map(|r| r.scheduled_at_ms)
                .collect();
            let n = slots.len();
            slots.sort();
            slots.dedup();
            assert_eq!(slots.len(), n, "{c} in {l}: a slot recorded twice");
            for w in slots.windows(2) {
                assert_eq!(
                    w[1] - w[0],
                    INTERVAL_MS,
                    "{c} in {l}: a slot lost: {slots:?}"
                );
            }
            for r in runs
                .iter()
                .filter(|r| r.location == l && r.status == "missed")
            {
                assert_eq!(r.failure_reason.as_deref(), Some("worker_lost"), "{r:?}");
            }
        }
        // Both locations ran the same slots.
        let slots_in = |l: &str| -> std::collections::BTreeSet<i64> {
            runs.iter()
                .filter(|r| r.location == l && r.scheduled_at_ms < caught_up_at)
                .map(|r| r.scheduled_at_ms)
                .collect()
        };
        assert_eq!(slots_in("a").first(), slots_in("b").first(), "{c}");
    }
}
