//! Scheduling and leases against a real Postgres: claims advance from the
//! due slot, skip missed slots, never hand one slot out twice; run tokens
//! are single-use and fence the state write.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use pulse_core::{CheckInput, IncidentState, Job, RunOutcome};
use pulse_store::{pg, CheckStore};
use pulse_testkit::TestEnv;
use serde_json::json;
use uuid::Uuid;

async fn store() -> CheckStore {
    let env = TestEnv::new().await;
    let pool = pg::pool(&env.database_url, 20).unwrap();
    pg::migrate(&pool).await.unwrap();
    CheckStore::new(pool)
}

async fn check(store: &CheckStore, interval: i64) -> Uuid {
    let spec = serde_json::from_value::<CheckInput>(json!({
        "name": "c", "url": "http://127.0.0.1:9/", "interval_seconds": interval
    }))
    .unwrap()
    .create()
    .unwrap();
    store.create(&spec).await.unwrap().id
}

async fn set_next_run(store: &CheckStore, id: Uuid, at: DateTime<Utc>) {
    sqlx::query("UPDATE checks SET next_run_at = $2 WHERE id = $1")
        .bind(id)
        .bind(at)
        .execute(store.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_new_check_is_due_at_once() {
    let store = store().await;
    let id = check(&store, 60).await;
    let jobs = store.claim_due(100, 1000).await.unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.check_id).collect::<Vec<_>>(),
        vec![id]
    );
}

#[tokio::test]
async fn the_next_slot_follows_the_due_slot_not_the_claim_time() {
    let store = store().await;
    let id = check(&store, 10).await;
    let due = Utc::now() - Duration::milliseconds(700);
    set_next_run(&store, id, due).await;
    let jobs = store.claim_due(100, 1000).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].slot_ms, due.timestamp_millis());
    let next = store.get(id).await.unwrap().next_run_at;
    assert_eq!(next.timestamp_millis(), due.timestamp_millis() + 10_000);
}

#[tokio::test]
async fn after_downtime_missed_slots_are_skipped_not_burst() {
    let store = store().await;
    let id = check(&store, 10).await;
    let due = Utc::now() - Duration::seconds(95);
    set_next_run(&store, id, due).await;
    assert_eq!(store.claim_due(100, 1000).await.unwrap().len(), 1);
    let next = store.get(id).await.unwrap().next_run_at;
    assert_eq!(next.timestamp_millis(), due.timestamp_millis() + 100_000);
    assert!(next > Utc::now());
    // Nothing else is due: no burst of the nine missed slots.
    sqlx::query("UPDATE checks SET lease_token = NULL WHERE id = $1")
        .bind(id)
        .execute(store.pool())
        .await
        .unwrap();
    assert!(store.claim_due(100, 1000).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_leased_check_is_not_claimed_again_until_the_lease_expires() {
    let store = store().await;
    let id = check(&store, 1).await;
    let first = store.claim_due(100, 0).await.unwrap();
    assert_eq!(first.len(), 1);
    set_next_run(&store, id, Utc::now() - Duration::seconds(5)).await;
    assert!(store.claim_due(100, 0).await.unwrap().is_empty());
    // Expire the lease: the same slot comes back under a new token.
    sqlx::query("UPDATE checks SET lease_expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(id)
        .execute(store.pool())
        .await
        .unwrap();
    let again = store.reclaim_expired(100, 0).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].slot_ms, first[0].slot_ms);
    assert_ne!(again[0].token, first[0].token);
    // The old token no longer starts a run.
    assert!(store
        .start_run(&first[0], Uuid::new_v4(), 0)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .start_run(&again[0], Uuid::new_v4(), 0)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn concurrent_schedulers_never_claim_a_slot_twice() {
    let env = TestEnv::new().await;
    let pool_a = pg::pool(&env.database_url, 10).unwrap();
    pg::migrate(&pool_a).await.unwrap();
    let a = CheckStore::new(pool_a);
    let b = CheckStore::new(pg::pool(&env.database_url, 10).unwrap());
    for _ in 0..300 {
        check(&a, 1).await;
    }
    let mut seen: HashSet<(Uuid, i64)> = HashSet::new();
    let mut total = 0;
    for _ in 0..5 {
        let (ja, jb) = tokio::join!(a.claim_due(50, 60_000), b.claim_due(50, 60_000));
        for job in ja.unwrap().into_iter().chain(jb.unwrap()) {
            total += 1;
            assert!(
                seen.insert((job.check_id, job.slot_ms)),
                "slot claimed twice: {job:?}"
            );
        }
    }
    assert_eq!(total, 300, "every due check claimed exactly once");
}

fn outcome() -> RunOutcome {
    RunOutcome::judge(Utc::now(), 3, 200, 200, None, b"")
}

#[tokio::test]
async fn a_run_token_starts_one_run_and_fences_the_state_write() {
    let store = store().await;
    let id = check(&store, 60).await;
    let job: Job = store.claim_due(10, 1000).await.unwrap()[0];
    let run = Uuid::new_v4();
    let started = store.start_run(&job, run, 1000).await.unwrap();
    assert_eq!(started.unwrap().id, id);
    // The same job again (a duplicate in the queue) does not start.
    assert!(store
        .start_run(&job, Uuid::new_v4(), 1000)
        .await
        .unwrap()
        .is_none());
    // A writer without the lease cannot write state.
    let state = IncidentState::default();
    assert!(!store
        .finish_run(id, Uuid::new_v4(), &outcome(), state, None)
        .await
        .unwrap());
    assert_eq!(store.get(id).await.unwrap().last_status, "unknown");
    // The holder can, once.
    assert!(store
        .finish_run(id, run, &outcome(), state, None)
        .await
        .unwrap());
    assert!(!store
        .finish_run(id, run, &outcome(), state, None)
        .await
        .unwrap());
    let check = store.get(id).await.unwrap();
    assert_eq!(check.last_status, "success");
    assert_eq!(check.last_status_code, Some(200));
}

#[tokio::test]
async fn deleted_and_disabled_checks_are_not_claimed_or_started() {
    let store = store().await;
    let gone = check(&store, 1).await;
    let paused = check(&store, 1).await;
    let job = store.claim_due(10, 1000).await.unwrap();
    assert_eq!(job.len(), 2);
    store.delete(gone).await.unwrap();
    let mut spec = store.get(paused).await.unwrap().spec;
    spec.enabled = false;
    store.update(paused, &spec).await.unwrap();
    for j in &job {
        assert!(store
            .start_run(j, Uuid::new_v4(), 0)
            .await
            .unwrap()
            .is_none());
    }
    sqlx::query("UPDATE checks SET lease_token = NULL, next_run_at = now() - interval '1 second'")
        .execute(store.pool())
        .await
        .unwrap();
    assert!(store.claim_due(10, 1000).await.unwrap().is_empty());
}
