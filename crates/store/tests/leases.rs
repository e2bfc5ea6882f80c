//! Scheduling and leases against a real Postgres: claims advance from the
//! due slot, skip missed slots, never hand one slot out twice; run tokens
//! are single-use and fence the state write.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use pulse_core::{CheckInput, IncidentState, Job, RunOutcome, RunStatus};
use pulse_store::pg::checks::{Finish, NewAlert};
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
    .create(pulse_core::policy::TargetPolicy::Default)
    .unwrap();
    store.create(&spec).await.unwrap().id
}

async fn set_next_run(store: &CheckStore, id: Uuid, at: DateTime<Utc>) {
    sqlx::query("UPDATE check_schedules SET next_run_at = $2 WHERE check_id = $1")
        .bind(id)
        .bind(at)
        .execute(store.pool())
        .await
        .unwrap();
}

/// Expires every lease of `id` now.
async fn expire_lease(store: &CheckStore, id: Uuid) {
    sqlx::query(
        "UPDATE check_schedules SET lease_expires_at = now() - interval '1 second' \
         WHERE check_id = $1",
    )
    .bind(id)
    .execute(store.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn a_new_check_is_due_at_once() {
    let store = store().await;
    let id = check(&store, 60).await;
    let jobs = store.claim_due(100, 1000, &here()).await.unwrap();
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
    let jobs = store.claim_due(100, 1000, &here()).await.unwrap();
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
    assert_eq!(store.claim_due(100, 1000, &here()).await.unwrap().len(), 1);
    let next = store.get(id).await.unwrap().next_run_at;
    assert_eq!(next.timestamp_millis(), due.timestamp_millis() + 100_000);
    assert!(next > Utc::now());
    // Nothing else is due: no burst of the nine missed slots.
    sqlx::query("UPDATE check_schedules SET lease_token = NULL WHERE check_id = $1")
        .bind(id)
        .execute(store.pool())
        .await
        .unwrap();
    assert!(store
        .claim_due(100, 1000, &here())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_leased_check_is_not_claimed_again_until_the_lease_expires() {
    let store = store().await;
    let id = check(&store, 60).await;
    let first = store.claim_due(100, 0, &here()).await.unwrap();
    assert_eq!(first.len(), 1);
    set_next_run(&store, id, Utc::now() - Duration::seconds(5)).await;
    assert!(store.claim_due(100, 0, &here()).await.unwrap().is_empty());
    // The next slot is a period away again, so the slot is re-run.
    set_next_run(&store, id, Utc::now() + Duration::seconds(60)).await;
    // Expire the lease: the same slot comes back under a new token.
    expire_lease(&store, id).await;
    let again = store.reclaim_expired(100, 0, &here()).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].slot_ms, first[0].slot_ms);
    assert_ne!(again[0].token, first[0].token);
    // The old token can no longer write; the new one can.
    assert!(store
        .finish_batch(&[finish(&first[0])], "w", "default")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .finish_batch(&[finish(&again[0])], "w", "default")
            .await
            .unwrap(),
        vec![id]
    );
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
        let live = here();
        let (ja, jb) = tokio::join!(
            a.claim_due(50, 60_000, &live),
            b.claim_due(50, 60_000, &live)
        );
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

fn answered(code: u16) -> RunOutcome {
    let response = pulse_core::assertion::Response {
        status: code,
        headers: &[],
        body: b"",
        latency_ms: 3,
    };
    RunOutcome::judge(
        Utc::now(),
        &response,
        &pulse_core::run::Expectations::status(200, None),
    )
}

fn outcome() -> RunOutcome {
    answered(200)
}

fn finish(job: &Job) -> Finish {
    Finish {
        check_id: job.check_id,
        token: job.token,
        slot_ms: job.slot_ms,
        outcome: outcome(),
        state: IncidentState::default(),
        alert: None,
        tls_alert: None,
        quorum: None,
    }
}

#[tokio::test]
async fn the_claim_hands_over_the_check_and_its_alert_state() {
    let store = store().await;
    let id = check(&store, 60).await;
    let job = &store.claim_due(10, 1000, &here()).await.unwrap()[0];
    assert_eq!(job.check_id, id);
    assert_eq!(job.check.spec.url, "http://127.0.0.1:9/");
    assert_eq!(job.check.spec.timeout_ms, 10_000);
    assert_eq!(job.check.consecutive_fails, 0);
    // Lease: timeout 10 s + margin 1 s from the claim.
    let lease = job.lease_expires_ms - Utc::now().timestamp_millis();
    assert!((10_000..=11_000).contains(&lease), "lease {lease} ms");
}

#[tokio::test]
async fn the_state_write_is_fenced_by_the_lease_token() {
    let store = store().await;
    let id = check(&store, 60).await;
    let job: Job = store.claim_due(10, 1000, &here()).await.unwrap()[0].clone();
    // A writer without the lease cannot write state.
    let mut stranger = finish(&job);
    stranger.token = Uuid::new_v4();
    assert!(store
        .finish_batch(&[stranger], "w", "default")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.get(id).await.unwrap().last_status, None);
    // The holder can, once: the write releases the lease.
    assert_eq!(
        store
            .finish_batch(&[finish(&job)], "w", "default")
            .await
            .unwrap(),
        vec![id]
    );
    assert!(store
        .finish_batch(&[finish(&job)], "w", "default")
        .await
        .unwrap()
        .is_empty());
    let check = store.get(id).await.unwrap();
    assert_eq!(check.last_status, Some(RunStatus::Success));
    assert_eq!(check.last_status_code, Some(200));
}

#[tokio::test]
async fn a_batch_writes_each_run_and_its_alert_atomically() {
    let store = store().await;
    let a = check(&store, 60).await;
    let b = check(&store, 60).await;
    let jobs = store.claim_due(10, 1000, &here()).await.unwrap();
    let mut runs: Vec<Finish> = jobs.iter().map(finish).collect();
    let failing = runs.iter_mut().find(|r| r.check_id == a).unwrap();
    failing.outcome = answered(500);
    failing.state = IncidentState {
        consecutive_fails: 1,
        incident_open: true,
        ..Default::default()
    };
    failing.alert = Some(NewAlert {
        id: Uuid::new_v4(),
        kind: pulse_core::AlertKind::Failure,
        payload: json!({"type": "failure"}),
        webhook_url: None,
    });
    let mut written = store.finish_batch(&runs, "w", "default").await.unwrap();
    written.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(written, want);
    assert_eq!(store.get(a).await.unwrap().consecutive_fails, 1);
    assert_eq!(
        store.get(b).await.unwrap().last_status,
        Some(RunStatus::Success)
    );
    let alerts = pulse_store::AlertStore::new(store.pool().clone())
        .for_check(a, 10)
        .await
        .unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, pulse_core::AlertKind::Failure);
    assert_eq!(
        alerts[0].delivery_state,
        pulse_core::delivery::DeliveryState::Skipped,
        "no webhook configured"
    );
    // Their results wait in the outbox, written in the same statement.
    let outbox = pulse_store::pg::outbox::ResultOutbox::new(store.pool().clone());
    assert_eq!(outbox.len().await.unwrap(), 2);
}

#[tokio::test]
async fn deleted_and_disabled_checks_are_not_claimed_and_deleted_ones_not_written() {
    let store = store().await;
    let gone = check(&store, 1).await;
    let paused = check(&store, 1).await;
    let job = store.claim_due(10, 1000, &here()).await.unwrap();
    assert_eq!(job.len(), 2);
    store.delete(gone).await.unwrap();
    store
        .update_with(paused, None, |mut spec| {
            spec.enabled = false;
            Ok::<_, pulse_store::StoreError>(spec)
        })
        .await
        .unwrap();
    let gone_job = job.iter().find(|j| j.check_id == gone).unwrap();
    assert!(store
        .finish_batch(&[finish(gone_job)], "w", "default")
        .await
        .unwrap()
        .is_empty());
    sqlx::query(
        "UPDATE check_schedules SET lease_token = NULL, next_run_at = now() - interval '1 second'",
    )
    .execute(store.pool())
    .await
    .unwrap();
    assert!(store.claim_due(10, 1000, &here()).await.unwrap().is_empty());
}

async fn missed_rows(store: &CheckStore, id: Uuid) -> Vec<(i64, String, String)> {
    sqlx::query_as(
        "SELECT r.scheduled_at_ms, r.status, r.failure_reason FROM run_result_batches b, \
            unnest(b.check_ids, b.scheduled_at_ms, b.status, b.failure_reason) \
            AS r(check_id, scheduled_at_ms, status, failure_reason) \
         WHERE r.check_id = $1 AND r.status = 'missed' ORDER BY r.scheduled_at_ms",
    )
    .bind(id)
    .fetch_all(store.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn after_a_lost_worker_the_slot_reruns_once_and_later_ones_are_recorded_missed() {
    let store = store().await;
    let id = check(&store, 2).await;
    let due = Utc::now() - Duration::milliseconds(100);
    set_next_run(&store, id, due).await;
    store.claim_due(10, 0, &here()).await.unwrap();
    // Its worker dies: the lease expires and the slot is re-queued.
    expire_lease(&store, id).await;
    let again = store.reclaim_expired(10, 0, &here()).await.unwrap();
    assert_eq!(again[0].slot_ms, due.timestamp_millis());
    // Nothing else of the check is claimed while it is catching up.
    assert!(store.claim_due(10, 0, &here()).await.unwrap().is_empty());
    store
        .finish_batch(&[finish(&again[0])], "w", "default")
        .await
        .unwrap();
    // Meanwhile three more slots came due (simulated by moving time back).
    let first = due - Duration::seconds(4);
    set_next_run(&store, id, first).await;
    let missed = store.skip_missed_slots(100).await.unwrap();
    let rows = missed_rows(&store, id).await;
    assert_eq!(missed as usize, rows.len());
    // The re-run started "now": every slot before now + half an interval is
    // missed, no burst of late runs.
    assert!((3..=4).contains(&rows.len()), "{rows:?}");
    for (k, (slot, status, reason)) in rows.iter().enumerate() {
        assert_eq!(*slot, first.timestamp_millis() + k as i64 * 2000);
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("missed", "worker_lost")
        );
    }
    let next = store.get(id).await.unwrap().next_run_at;
    assert!(next > Utc::now(), "back on the schedule");
    assert_eq!(
        (next.timestamp_millis() - first.timestamp_millis()) % 2000,
        0,
        "on the same grid"
    );
    assert!(
        store.claim_due(10, 0, &here()).await.unwrap().is_empty(),
        "no burst"
    );
    assert_eq!(store.skip_missed_slots(100).await.unwrap(), 0, "once");
}

#[tokio::test]
async fn an_interrupted_run_whose_next_slot_is_close_is_recorded_missed_not_run_again() {
    let store = store().await;
    // Two 4-second checks: one lost after 3 s (its next slot 1 s away),
    // one lost at once (its next slot 4 s away), by lease expiry and by
    // the lost worker's tokens alike.
    for by_token in [false, true] {
        let late = check(&store, 4).await;
        let early = check(&store, 4).await;
        set_next_run(&store, late, Utc::now() - Duration::seconds(3)).await;
        let jobs = store.claim_due(10, 60_000, &here()).await.unwrap();
        assert_eq!(jobs.len(), 2);
        let again = if by_token {
            let held: Vec<(Uuid, Uuid)> = jobs.iter().map(|j| (j.check_id, j.token)).collect();
            store.relet(&held, 1000).await.unwrap()
        } else {
            expire_lease(&store, late).await;
            expire_lease(&store, early).await;
            store.reclaim_expired(10, 1000, &here()).await.unwrap()
        };
        let ids: Vec<Uuid> = again.iter().map(|j| j.check_id).collect();
        assert_eq!(
            ids,
            vec![early],
            "only the run with time to spare is re-run"
        );
        let late_job = jobs.iter().find(|j| j.check_id == late).unwrap();
        assert_eq!(
            missed_rows(&store, late).await,
            vec![(late_job.slot_ms, "missed".into(), "worker_lost".into())],
            "the interrupted slot is recorded once, missed"
        );
        assert!(missed_rows(&store, early).await.is_empty());
        // Its lease is released and its old token fenced; the schedule goes
        // on with the next slot, which is claimed as usual.
        assert!(store
            .finish_batch(&[finish(late_job)], "w", "default")
            .await
            .unwrap()
            .is_empty());
        let next = store.get(late).await.unwrap().next_run_at;
        assert_eq!(next.timestamp_millis(), late_job.slot_ms + 4000);
        // No slot fell due while it was leased: nothing more is missed.
        assert_eq!(store.skip_missed_slots(100).await.unwrap(), 0);
        set_next_run(&store, late, Utc::now()).await;
        let claimed = store.claim_due(10, 1000, &here()).await.unwrap();
        assert_eq!(
            claimed.iter().map(|j| j.check_id).collect::<Vec<_>>(),
            vec![late]
        );
        assert_eq!(missed_rows(&store, late).await.len(), 1, "once");
        store.delete(late).await.unwrap();
        store.delete(early).await.unwrap();
    }
}

#[tokio::test]
async fn a_lost_workers_leases_are_reissued_at_once_by_token() {
    let store = store().await;
    let a = check(&store, 60).await;
    let b = check(&store, 60).await;
    let jobs = store.claim_due(10, 60_000, &here()).await.unwrap();
    assert_eq!(jobs.len(), 2);
    let ja = jobs.iter().find(|j| j.check_id == a).unwrap();
    let jb = jobs.iter().find(|j| j.check_id == b).unwrap();
    // b's run finished before its worker died: its old token is spent.
    store
        .finish_batch(&[finish(jb)], "w", "default")
        .await
        .unwrap();
    let relet = store
        .relet(&[(a, ja.token), (b, jb.token), (a, Uuid::new_v4())], 1000)
        .await
        .unwrap();
    assert_eq!(relet.len(), 1, "only the live lease is re-issued");
    assert_eq!(relet[0].check_id, a);
    assert_eq!(relet[0].slot_ms, ja.slot_ms, "the same slot");
    assert_ne!(relet[0].token, ja.token);
    // The lost worker's late write is fenced; the new holder's is not.
    assert!(store
        .finish_batch(&[finish(ja)], "w", "default")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .finish_batch(&[finish(&relet[0])], "w", "default")
            .await
            .unwrap(),
        vec![a]
    );
}

#[tokio::test]
async fn the_sql_run_budget_is_the_jobs_run_budget() {
    let store = store().await;
    let id = check(&store, 60).await;
    let mut job = store.claim_due(10, 0, &here()).await.unwrap()[0].clone();
    assert_eq!(job.check_id, id);
    for timeout in [1, 999, 10_000, 120_000] {
        for retries in 0..=5 {
            let (sql,): (i64,) = sqlx::query_as("SELECT pulse_run_budget_ms($1, $2)")
                .bind(timeout)
                .bind(retries)
                .fetch_one(store.pool())
                .await
                .unwrap();
            job.check.spec.timeout_ms = timeout;
            job.check.spec.retries = retries;
            assert_eq!(
                sql,
                job.run_budget_ms(),
                "timeout {timeout}, retries {retries}"
            );
        }
    }
}

#[tokio::test]
async fn the_results_outbox_reaches_clickhouse_exactly_once_even_after_a_crash() {
    let (pool, store, results, outbox) = outbox_fixture().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(check(&store, 60).await);
    }
    results_waiting(&store, &ids).await;
    // A worker marks the batch as sent, inserts its first result into
    // ClickHouse, and dies before deleting it.
    let all: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT r.check_id, r.id FROM run_result_batches b, \
            unnest(b.check_ids, b.ids) AS r(check_id, id)",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(all.len(), 3);
    let row: (Uuid, Uuid, i64) = sqlx::query_as(
        "UPDATE run_results_sent SET upto = b.seq FROM run_result_batches b \
         RETURNING b.check_ids[1], b.ids[1], b.scheduled_at_ms[1]",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let now = Utc::now();
    results
        .insert(&[pulse_store::RunRow {
            id: row.1,
            check_id: row.0,
            run_at: now,
            run_at_ms: now.timestamp_millis(),
            scheduled_at_ms: row.2,
            status: "success".into(),
            failure_reason: None,
            latency_ms: 3,
            status_code: 200,
            error: None,
            worker: "dead".into(),
            attempts: 1,
            ..pulse_store::RunRow::with_details(None)
        }])
        .await
        .unwrap();
    // The next flush moves all three, the half-done one not twice.
    assert_eq!(outbox.flush(&results, 100).await.unwrap(), 3);
    assert_eq!(outbox.len().await.unwrap(), 0);
    for (check_id, id) in all {
        let stored = results.since(check_id, 0).await.unwrap();
        assert_eq!(stored.len(), 1, "exactly one row for {id}");
        assert_eq!(stored[0].id, id);
    }
}

/// The locations with a live worker in these tests.
fn here() -> Vec<String> {
    vec!["default".to_string()]
}

#[tokio::test]
async fn a_batch_holding_the_old_and_the_new_lease_of_a_slot_records_it_once() {
    // A run that outlived its lease and its re-run finish in one batch (a
    // slow worker took the re-queued job too): one state write, one result.
    let store = store().await;
    let id = check(&store, 10).await;
    let first = store.claim_due(100, 0, &here()).await.unwrap();
    expire_lease(&store, id).await;
    let again = store.reclaim_expired(100, 0, &here()).await.unwrap();
    let mut late = finish(&first[0]);
    late.alert = Some(pulse_store::pg::checks::NewAlert {
        id: uuid::Uuid::new_v4(),
        kind: pulse_core::AlertKind::Failure,
        payload: serde_json::json!({}),
        webhook_url: None,
    });
    let written = store
        .finish_batch(&[late, finish(&again[0])], "w", "default")
        .await
        .unwrap();
    assert_eq!(written, vec![id]);
    let outbox = pulse_store::pg::outbox::ResultOutbox::new(store.pool().clone());
    assert_eq!(outbox.len().await.unwrap(), 1, "one result for the slot");
    let alerts: i64 = sqlx::query_scalar("SELECT count(*) FROM alerts WHERE check_id = $1")
        .bind(id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(alerts, 0, "the stale run's alert is not recorded");
}

/// Postgres and ClickHouse migrated, with a store and one worker's outbox.
async fn outbox_fixture() -> (
    sqlx::PgPool,
    CheckStore,
    pulse_store::ResultsStore,
    pulse_store::pg::outbox::ResultOutbox,
) {
    let env = TestEnv::new().await;
    let pool = pg::pool(&env.database_url, 5).unwrap();
    pg::migrate(&pool).await.unwrap();
    let results = pulse_store::ResultsStore::new(
        &pulse_store::ClickHouseDsn::parse(&env.clickhouse_dsn).unwrap(),
    );
    results.migrate().await.unwrap();
    let outbox = pulse_store::pg::outbox::ResultOutbox::new(pool.clone());
    (pool.clone(), CheckStore::new(pool), results, outbox)
}

/// Finishes one run of each check now (their next slots made due first).
async fn results_waiting(store: &CheckStore, ids: &[Uuid]) {
    for id in ids {
        set_next_run(store, *id, Utc::now() - Duration::seconds(1)).await;
    }
    let jobs = store.claim_due(100, 1000, &here()).await.unwrap();
    let runs: Vec<Finish> = jobs.iter().map(finish).collect();
    assert_eq!(
        store
            .finish_batch(&runs, "w", "default")
            .await
            .unwrap()
            .len(),
        ids.len()
    );
}

#[tokio::test]
async fn workers_share_one_clickhouse_insert_per_interval_unless_a_batch_is_full() {
    let (pool, store, results, a) = outbox_fixture().await;
    // Two workers' writers.
    let b = pulse_store::pg::outbox::ResultOutbox::new(pool.clone());
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(check(&store, 60).await);
    }
    let every = std::time::Duration::from_secs(1);

    results_waiting(&store, &ids).await;
    let started = std::time::Instant::now();
    assert_eq!(a.flush_paced(&results, 100, every).await.unwrap(), 3);

    // Within the interval neither worker inserts a part-batch...
    results_waiting(&store, &ids).await;
    assert_eq!(b.flush_paced(&results, 100, every).await.unwrap(), 0);
    assert_eq!(a.flush_paced(&results, 100, every).await.unwrap(), 0);
    assert_eq!(a.len().await.unwrap(), 3);
    // ...but a full batch goes at once.
    let last = std::time::Instant::now();
    assert_eq!(b.flush_paced(&results, 3, every).await.unwrap(), 3);

    // The next part-batch goes once the interval since the last insert
    // (by either worker) has passed, and not before.
    results_waiting(&store, &ids).await;
    let moved = loop {
        let n = b.flush_paced(&results, 100, every).await.unwrap();
        if n > 0 {
            break n;
        }
        assert!(started.elapsed() < every * 10, "never flushed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(moved, 3);
    assert!(
        last.elapsed() >= every,
        "flushed {:?} after the previous insert",
        last.elapsed()
    );
    // A forced flush (shutdown) ignores the pace.
    results_waiting(&store, &ids).await;
    assert_eq!(a.flush(&results, 100).await.unwrap(), 3);
    for id in &ids {
        assert_eq!(results.since(*id, 0).await.unwrap().len(), 4);
    }
}

#[tokio::test]
async fn results_a_dead_flusher_may_have_sent_are_looked_up_only_once_its_insert_is_over() {
    let (pool, store, results, outbox) = outbox_fixture().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(check(&store, 60).await);
    }
    results_waiting(&store, &ids).await;
    // A flusher marked the rows sent and died with its insert in flight.
    let upto: i64 = sqlx::query_scalar(
        "UPDATE run_results_sent SET upto = (SELECT max(seq) FROM run_result_batches), \
            marked_at = now() RETURNING upto",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    // A fresh mark: its insert may not have landed yet.
    assert_eq!(outbox.flush(&results, 100).await.unwrap(), 0);
    assert_eq!(outbox.len().await.unwrap(), 3);
    // An old mark, but ClickHouse is still running that insert (a query
    // under its id stands in for it).
    sqlx::query("UPDATE run_results_sent SET marked_at = now() - interval '1 minute'")
        .execute(&pool)
        .await
        .unwrap();
    let query_id = outbox.query_id(&results, upto);
    let base = std::env::var("PULSE_TEST_CLICKHOUSE_URL").unwrap();
    let http = reqwest::Client::new();
    let running = {
        let (http, base, query_id) = (http.clone(), base.clone(), query_id.clone());
        tokio::spawn(async move {
            http.post(&base)
                .query(&[("query_id", query_id.as_str())])
                .body("SELECT sleep(2)")
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let seen = http
            .post(&base)
            .body(format!(
                "SELECT count() FROM system.processes WHERE query_id = '{query_id}'"
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if seen.trim() == "1" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stand-in never ran"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(outbox.flush(&results, 100).await.unwrap(), 0);
    assert_eq!(outbox.len().await.unwrap(), 3);
    // Once it is over, the rows are looked up and sent, once.
    running.await.unwrap();
    assert_eq!(outbox.flush(&results, 100).await.unwrap(), 3);
    assert_eq!(outbox.len().await.unwrap(), 0);
    for id in &ids {
        assert_eq!(results.since(*id, 0).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn finishing_a_run_writes_no_index_entry() {
    // The finish (state written, lease released) changes no indexed
    // column, so Postgres can keep the new row version beside the old one
    // (a heap-only update) instead of adding an entry to every index: the
    // claim's scan of the due index has no dead entries of finishes to
    // step over. One connection, so its statistics are the ones flushed.
    let env = TestEnv::new().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&env.database_url)
        .await
        .unwrap();
    pg::migrate(&pool).await.unwrap();
    let store = CheckStore::new(pool);
    for _ in 0..20 {
        check(&store, 60).await;
    }
    let jobs = store.claim_due(100, 1000, &here()).await.unwrap();
    assert_eq!(jobs.len(), 20);
    let hot_before = hot_updates(&store).await;
    let finishes: Vec<Finish> = jobs.iter().map(finish).collect();
    let written = store.finish_batch(&finishes, "w", "default").await.unwrap();
    assert_eq!(written.len(), 20);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let hot = hot_updates(&store).await - hot_before;
        if hot >= 20 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{hot} of 20 finishes were heap-only updates"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Heap-only updates of `check_schedules` so far, as the statistics show
/// them once this connection's are flushed.
async fn hot_updates(store: &CheckStore) -> i64 {
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'check_schedules'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn a_run_that_waited_past_its_lease_is_recorded_missed_once_under_its_token() {
    let store = store().await;
    let id = check(&store, 10).await;
    let due = Utc::now() - Duration::milliseconds(300);
    set_next_run(&store, id, due).await;
    let job = store.claim_due(10, 1000, &here()).await.unwrap().remove(0);
    // A stale token records nothing.
    assert_eq!(
        store
            .record_late(&[(id, Uuid::new_v4())], "default")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .record_late(&[(id, job.token)], "default")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        missed_rows(&store, id).await,
        vec![(
            due.timestamp_millis(),
            "missed".to_string(),
            "queued_too_long".to_string()
        )]
    );
    // The lease is released and the schedule goes on from the next slot:
    // the late slot is neither queued again nor recorded twice.
    let lease: Option<Uuid> =
        sqlx::query_scalar("SELECT lease_token FROM check_schedules WHERE check_id = $1")
            .bind(id)
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(lease, None);
    assert_eq!(
        store.get(id).await.unwrap().next_run_at.timestamp_millis(),
        due.timestamp_millis() + 10_000
    );
    assert_eq!(
        store
            .record_late(&[(id, job.token)], "default")
            .await
            .unwrap(),
        0
    );
    assert!(store
        .reclaim_expired(10, 0, &here())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(missed_rows(&store, id).await.len(), 1);
}
