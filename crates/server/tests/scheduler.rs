//! The scheduler's one step (`tick`) against real Postgres and Redis, driven
//! directly: what it queues, and how it takes back a lost worker's runs.

use std::time::Duration;

use pulse_core::{CheckInput, Job};
use pulse_server::scheduler::tick;
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
        },
        env,
    }
}

async fn create(store: &CheckStore) -> uuid::Uuid {
    let spec = serde_json::from_value::<CheckInput>(json!({
        "name": "c", "url": "http://127.0.0.1:9/", "interval_seconds": 60
    }))
    .unwrap()
    .create(Default::default())
    .unwrap();
    store.create(&spec).await.unwrap().id
}

#[tokio::test]
async fn a_tick_queues_each_due_check_once() {
    let f = fixture().await;
    let a = create(&f.store).await;
    let b = create(&f.store).await;
    assert_eq!(tick(&f.store, &f.queue, &f.settings).await.unwrap(), 2);
    assert_eq!(f.queue.len().await.unwrap(), 2);
    assert_eq!(
        tick(&f.store, &f.queue, &f.settings).await.unwrap(),
        0,
        "leased"
    );
    let mut consumer = f.queue.consumer(&f.env.redis_url, "w1").await.unwrap();
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
    tick(&f.store, &f.queue, &f.settings).await.unwrap();
    // A worker takes the job, heartbeats once, then dies.
    let mut consumer = f.queue.consumer(&f.env.redis_url, "doomed").await.unwrap();
    let taken = consumer.take(1, Duration::from_millis(100)).await.unwrap();
    let old = Job::decode(&taken[0]).unwrap();
    consumer.handle().heartbeat().await.unwrap();
    // While it is alive, nothing is taken from it.
    assert_eq!(tick(&f.store, &f.queue, &f.settings).await.unwrap(), 0);
    // Its heartbeat expires (TTL 3 s), well before the 60 s lease.
    pulse_testkit::wait_until(Duration::from_secs(10), "the run re-leased", || async {
        tick(&f.store, &f.queue, &f.settings).await.unwrap() == 1
    })
    .await;
    let mut other = f.queue.consumer(&f.env.redis_url, "w2").await.unwrap();
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
