//! The scheduler's one step (`tick`) against real Postgres and Redis, driven
//! directly: what it queues, and how it takes back a lost worker's runs.

use std::time::Duration;

use pulse_core::{CheckInput, Job};
use pulse_server::scheduler::{tick, Presence};
use pulse_server::settings::SchedulerSettings;
use pulse_store::{pg, CheckStore, Queue};
use pulse_testkit::TestEnv;
use serde_json::json;

struct Fixture {
    env: TestEnv,
    store: CheckStore,
    queue: Queue,
    settings: SchedulerSettings,
}

async fn fixture() -> Fixture {
    let env = TestEnv::new().await;
    let pool = pg::pool(&env.database_url, 5).unwrap();
    pg::migrate(&pool).await.unwrap();
    let queue = Queue::connect(&env.redis_url, &env.redis_prefix)
        .await
        .unwrap();
    Fixture {
        store: CheckStore::new(pool),
        queue,
        settings: SchedulerSettings {
            poll: Duration::from_millis(100),
            batch: 100,
            // A long lease: only the heartbeat can free these runs early.
            lease_margin_ms: 60_000,
            stale_after: Duration::from_millis(300),
        },
        env,
    }
}

async fn create(store: &CheckStore) -> uuid::Uuid {
    create_with(store, json!({})).await
}

async fn create_with(store: &CheckStore, extra: serde_json::Value) -> uuid::Uuid {
    let mut body = json!({
        "name": "c", "url": "http://127.0.0.1:9/", "interval_seconds": 60
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let spec = serde_json::from_value::<CheckInput>(body)
        .unwrap()
        .create(Default::default())
        .unwrap();
    store.create(&spec).await.unwrap().id
}

/// A scheduler that has run past the stale grace, so locations without a
/// worker are stale at once.
fn up() -> Presence {
    Presence::new(std::time::Instant::now() - Duration::from_secs(3600))
}

/// A consumer in `location` with one heartbeat (alive for 3 s).
async fn worker(f: &Fixture, id: &str, location: &str) -> pulse_store::Consumer {
    let consumer = f
        .queue
        .consumer(&f.env.redis_url, id, location)
        .await
        .unwrap();
    consumer.handle().heartbeat(0).await.unwrap();
    consumer
}

#[tokio::test]
async fn a_tick_queues_each_due_check_once() {
    let f = fixture().await;
    let a = create(&f.store).await;
    let b = create(&f.store).await;
    let mut consumer = worker(&f, "w1", "default").await;
    assert_eq!(
        tick(&f.store, &f.queue, &f.settings, &mut up())
            .await
            .unwrap(),
        2
    );
    assert_eq!(f.queue.len("default").await.unwrap(), 2);
    assert_eq!(
        tick(&f.store, &f.queue, &f.settings, &mut up())
            .await
            .unwrap(),
        0,
        "leased"
    );
    let jobs: Vec<Job> = consumer
        .take(10, Duration::from_millis(100))
        .await
        .unwrap()
        .iter()
        .filter_map(|r| Job::decode(r))
        .collect();
    let mut ids: Vec<_> = jobs.iter().map(|j| j.check_id).collect();
    ids.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(ids, want);
}

#[tokio::test]
async fn a_tick_re_leases_the_runs_of_a_worker_whose_heartbeat_expired() {
    let f = fixture().await;
    let id = create(&f.store).await;
    // A worker takes the job, heartbeats once, then dies; another one in
    // its location stays alive.
    let mut consumer = worker(&f, "doomed", "default").await;
    tick(&f.store, &f.queue, &f.settings, &mut up())
        .await
        .unwrap();
    let taken = consumer.take(1, Duration::from_millis(100)).await.unwrap();
    let old = Job::decode(&taken[0]).unwrap();
    let mut other = worker(&f, "w2", "default").await;
    // While it is alive, nothing is taken from it.
    assert_eq!(
        tick(&f.store, &f.queue, &f.settings, &mut up())
            .await
            .unwrap(),
        0
    );
    // Its heartbeat expires (TTL 3 s), well before the 60 s lease.
    pulse_testkit::wait_until(Duration::from_secs(10), "the run re-leased", || async {
        other.handle().heartbeat(0).await.unwrap();
        tick(&f.store, &f.queue, &f.settings, &mut up())
            .await
            .unwrap()
            == 1
    })
    .await;
    let again = Job::decode(&other.take(1, Duration::from_millis(100)).await.unwrap()[0]).unwrap();
    assert_eq!(again.check_id, id);
    assert_eq!(again.slot_ms, old.slot_ms, "the same slot");
    assert_ne!(again.token, old.token, "under a new lease");
    // The dead worker's late write is refused.
    let finish = |job: &Job| pulse_store::pg::checks::Finish {
        check_id: job.check_id,
        token: job.token,
        slot_ms: job.slot_ms,
        outcome: pulse_core::RunOutcome::failed(
            chrono::Utc::now(),
            1,
            pulse_core::FailureReason::Connect,
            "x".into(),
        ),
        state: Default::default(),
        alert: None,
        tls_alert: None,
        quorum: None,
    };
    assert!(f
        .store
        .finish_batch(&[finish(&old)], "doomed", "default")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        f.store
            .finish_batch(&[finish(&again)], "w2", "default")
            .await
            .unwrap(),
        vec![id]
    );
}

fn decode(raws: Vec<String>) -> Vec<Job> {
    raws.iter().filter_map(|r| Job::decode(r)).collect()
}

#[tokio::test]
async fn each_location_gets_its_slot_on_its_own_queue() {
    let f = fixture().await;
    let id = create_with(&f.store, json!({"locations": ["eu", "us"]})).await;
    let mut eu = worker(&f, "w-eu", "eu").await;
    let mut us = worker(&f, "w-us", "us").await;
    assert_eq!(
        tick(&f.store, &f.queue, &f.settings, &mut up())
            .await
            .unwrap(),
        2
    );
    assert_eq!(f.queue.len("eu").await.unwrap(), 1);
    assert_eq!(f.queue.len("us").await.unwrap(), 1);
    assert_eq!(f.queue.len("default").await.unwrap(), 0);
    let from_eu = decode(eu.take(10, Duration::from_millis(100)).await.unwrap());
    let from_us = decode(us.take(10, Duration::from_millis(100)).await.unwrap());
    assert_eq!(from_eu.len(), 1);
    assert_eq!(from_us.len(), 1);
    assert_eq!(
        (from_eu[0].check_id, from_eu[0].location.as_str()),
        (id, "eu")
    );
    assert_eq!(
        (from_us[0].check_id, from_us[0].location.as_str()),
        (id, "us")
    );
    assert_eq!(
        from_eu[0].slot_ms, from_us[0].slot_ms,
        "the same slot in each"
    );
    assert_ne!(from_eu[0].token, from_us[0].token, "leased apart");
    // Each location's lease is fenced on its own: eu's token does not
    // write us's state, and each writes its own.
    let finish = |job: &Job| pulse_store::pg::checks::Finish {
        check_id: job.check_id,
        token: job.token,
        slot_ms: job.slot_ms,
        outcome: pulse_core::RunOutcome::failed(
            chrono::Utc::now(),
            1,
            pulse_core::FailureReason::Connect,
            format!("refused in {}", job.location),
        ),
        state: pulse_core::IncidentState {
            consecutive_fails: 1,
            ..Default::default()
        },
        alert: None,
        tls_alert: None,
        quorum: None,
    };
    assert!(f
        .store
        .finish_batch(&[finish(&from_eu[0])], "w-eu", "us")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        f.store
            .finish_batch(&[finish(&from_eu[0])], "w-eu", "eu")
            .await
            .unwrap(),
        vec![id]
    );
    let check = f.store.get(id).await.unwrap();
    let eu_state = &check.by_location[0];
    assert_eq!(eu_state.location, "eu");
    assert_eq!(eu_state.last_status, "error");
    assert_eq!(eu_state.last_error.as_deref(), Some("refused in eu"));
    assert_eq!(check.by_location[1].last_status, "unknown");
    assert_eq!(
        check.last_status.map(|s| s.as_str()),
        Some("error"),
        "the worst location's"
    );
}

#[tokio::test]
async fn round_robin_lays_the_slots_out_one_location_at_a_time() {
    let f = fixture().await;
    let id = create_with(
        &f.store,
        json!({"locations": ["a", "b", "c"], "location_strategy": "round_robin"}),
    )
    .await;
    let check = f.store.get(id).await.unwrap();
    let next: Vec<i64> = check
        .by_location
        .iter()
        .map(|l| l.next_run_at.timestamp_millis())
        .collect();
    // One interval (60 s) apart, in the order listed.
    assert!((next[1] - next[0] - 60_000).abs() < 1000, "{next:?}");
    assert!((next[2] - next[1] - 60_000).abs() < 1000, "{next:?}");
    let _a = worker(&f, "w-a", "a").await;
    let _b = worker(&f, "w-b", "b").await;
    let _c = worker(&f, "w-c", "c").await;
    assert_eq!(
        tick(&f.store, &f.queue, &f.settings, &mut up())
            .await
            .unwrap(),
        1
    );
    assert_eq!(f.queue.len("a").await.unwrap(), 1);
    assert_eq!(f.queue.len("b").await.unwrap(), 0);
    // Each location's next slot is three intervals after its last.
    let check = f.store.get(id).await.unwrap();
    let a_next = check.by_location[0].next_run_at.timestamp_millis();
    assert!((a_next - next[0] - 180_000).abs() < 1000);
}

#[tokio::test]
async fn slots_of_a_location_without_a_worker_are_recorded_missed_after_the_grace() {
    let f = fixture().await;
    let id = create_with(&f.store, json!({"locations": ["live", "gone"]})).await;
    let _live = worker(&f, "w-live", "live").await;
    // A scheduler that has just started waits for a first worker.
    let mut fresh = Presence::new(std::time::Instant::now());
    assert_eq!(
        tick(&f.store, &f.queue, &f.settings, &mut fresh)
            .await
            .unwrap(),
        1
    );
    let outbox = pulse_store::pg::outbox::ResultOutbox::new(f.store.pool().clone());
    assert_eq!(outbox.len().await.unwrap(), 0, "nothing missed yet");
    // Past the grace, the slot of the location nobody serves is missed.
    assert_eq!(
        tick(&f.store, &f.queue, &f.settings, &mut up())
            .await
            .unwrap(),
        0
    );
    let missed: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT s, r, l FROM run_result_batches, \
         unnest(status, failure_reason, location) AS t(s, r, l)",
    )
    .fetch_all(f.store.pool())
    .await
    .unwrap();
    assert_eq!(
        missed,
        vec![("missed".into(), "location_stale".into(), "gone".into())]
    );
    let check = f.store.get(id).await.unwrap();
    assert!(
        check.by_location[1].next_run_at > chrono::Utc::now(),
        "moved on"
    );
    assert_eq!(
        f.queue.len("gone").await.unwrap(),
        0,
        "nothing queued there"
    );
}

#[tokio::test]
async fn a_location_seen_live_is_not_stale_at_once_when_redis_forgets_it() {
    let f = fixture().await;
    let _w = worker(&f, "w-a", "a").await;
    let mut seen = up();
    let workers = f.queue.presence().await.unwrap();
    let now = seen.now(&workers, Duration::from_secs(5));
    assert_eq!(now.live, ["a"]);
    // Redis restarted empty: no worker, no memory of the location.
    let empty = pulse_store::queue::Presence::default();
    let now = seen.now(&empty, Duration::from_secs(5));
    assert!(now.live.is_empty());
    assert!(now.stale.is_empty(), "within the grace: {now:?}");
    assert_eq!(
        now.known,
        ["a"],
        "still known, so not counted as never seen"
    );
    let now = seen.now(&empty, Duration::ZERO);
    assert_eq!(now.stale, ["a"], "past the grace");
}

#[tokio::test]
async fn expired_leases_are_swept_once_a_second_not_every_poll() {
    // Finding expired leases takes a scan of the schedules (no index keeps
    // them, so a finish is a heap-only update): a scheduler sweeps on its
    // first pass, then once a `LEASE_SWEEP`, however often it polls.
    let f = fixture().await;
    let id = create(&f.store).await;
    let _consumer = worker(&f, "w1", "default").await;
    let mut seen = up();
    let swept = std::time::Instant::now();
    assert_eq!(
        tick(&f.store, &f.queue, &f.settings, &mut seen)
            .await
            .unwrap(),
        1
    );
    // Its run is lost without its worker being lost: the lease expires.
    sqlx::query(
        "UPDATE check_schedules SET lease_expires_at = now() - interval '1 second' \
         WHERE check_id = $1",
    )
    .bind(id)
    .execute(f.store.pool())
    .await
    .unwrap();
    let requeued = tick(&f.store, &f.queue, &f.settings, &mut seen)
        .await
        .unwrap();
    if swept.elapsed() < pulse_server::scheduler::LEASE_SWEEP {
        assert_eq!(requeued, 0, "swept again within a second");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while tick(&f.store, &f.queue, &f.settings, &mut seen)
        .await
        .unwrap()
        == 0
    {
        assert!(std::time::Instant::now() < deadline, "never re-queued");
        tokio::time::sleep(f.settings.poll).await;
    }
    assert!(swept.elapsed() >= pulse_server::scheduler::LEASE_SWEEP);
}
