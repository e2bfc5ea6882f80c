//! The worker's one step, `process_one`, driven directly: no queue, no
//! scheduler, no database; a hand-made job against a local target.

use std::time::{Duration, Instant};

use pulse_core::{CheckSpec, Job, JobCheck};
use pulse_testkit::Target;
use pulse_worker::finisher::Done;
use pulse_worker::liveness::Liveness;
use pulse_worker::overload::Overload;
use pulse_worker::{process_one, RunContext};
use tokio::sync::mpsc;

fn job(url: String, retries: i32) -> Job {
    let now = chrono::Utc::now().timestamp_millis();
    Job {
        location: "default".into(),
        check_id: uuid::Uuid::new_v4(),
        token: uuid::Uuid::new_v4(),
        slot_ms: now,
        claimed_ms: now,
        lease_expires_ms: now + 60_000,
        check: JobCheck {
            spec: CheckSpec {
                name: "step".into(),
                url,
                timeout_ms: 2000,
                alert_threshold: 1,
                retries,
                ..CheckSpec::defaults()
            },
            consecutive_fails: 0,
            incident_open: false,
            consecutive_degraded: 0,
            degraded_open: false,
        },
    }
}

fn context(alive: Liveness) -> (RunContext, mpsc::Receiver<Done>) {
    let (tx, rx) = mpsc::channel(8);
    let ctx = RunContext {
        checker: pulse_checker::Checker::new(1 << 20, Default::default(), &Default::default())
            .unwrap(),
        done: tx,
        metrics: pulse_runtime::WorkerMetrics::new(),
        alive,
        overload: Overload::new(),
    };
    (ctx, rx)
}

fn alive() -> Liveness {
    let alive = Liveness::new(Duration::from_secs(3));
    alive.renewed(Instant::now());
    alive
}

#[tokio::test]
async fn a_run_that_fails_then_passes_on_retry_is_a_success_with_two_attempts() {
    let target = Target::start().await;
    let (ctx, mut rx) = context(alive());
    let job = job(target.url("/flaky/step?fail=1"), 1);
    process_one(&ctx, job.encode()).await;
    let Some(Done::Ran { finish, .. }) = rx.recv().await else {
        panic!("no run");
    };
    assert_eq!(finish.check_id, job.check_id);
    assert_eq!(finish.token, job.token);
    assert!(finish.outcome.status.is_success(), "{:?}", finish.outcome);
    assert_eq!(finish.outcome.attempts, 2);
    assert!(finish.alert.is_none());
}

#[tokio::test]
async fn a_failing_run_at_the_threshold_raises_an_alert() {
    let target = Target::start().await;
    let (ctx, mut rx) = context(alive());
    process_one(&ctx, job(target.url("/fail"), 0).encode()).await;
    let Some(Done::Ran { finish, .. }) = rx.recv().await else {
        panic!("no run");
    };
    assert!(!finish.outcome.status.is_success());
    assert_eq!(
        finish.alert.map(|a| a.kind),
        Some(pulse_core::AlertKind::Failure)
    );
}

#[tokio::test]
async fn a_worker_that_is_not_alive_runs_nothing() {
    let target = Target::start().await;
    let (ctx, mut rx) = context(Liveness::new(Duration::from_secs(3)));
    process_one(&ctx, job(target.url("/hit/nobody"), 0).encode()).await;
    assert!(matches!(rx.recv().await, Some(Done::Skip { .. })));
    assert_eq!(target.hits("/hit/nobody"), 0, "no request was made");
}

#[tokio::test]
async fn garbage_on_the_queue_is_skipped() {
    let (ctx, mut rx) = context(alive());
    process_one(&ctx, "not a job".into()).await;
    assert!(matches!(rx.recv().await, Some(Done::Skip { .. })));
}

/// A job claimed `waited` ago whose lease (2 s of timeout + 5 s margin)
/// ran from the claim.
fn queued_for(url: String, waited: Duration) -> Job {
    let mut job = job(url, 0);
    job.claimed_ms -= waited.as_millis() as i64;
    job.slot_ms = job.claimed_ms;
    job.lease_expires_ms = job.claimed_ms + 2000 + 5000;
    job
}

#[tokio::test]
async fn a_job_that_waited_in_the_queue_past_its_lease_is_not_run_but_recorded_late() {
    let target = Target::start().await;
    let (ctx, mut rx) = context(alive());
    // 2.5 s of the 5 s margin is all a job may wait; this one waited 3 s.
    let job = queued_for(target.url("/hit/late"), Duration::from_secs(3));
    process_one(&ctx, job.encode()).await;
    let Some(Done::Late { lease, .. }) = rx.recv().await else {
        panic!("not recorded late");
    };
    assert_eq!(lease, (job.check_id, job.token));
    assert_eq!(target.hits("/hit/late"), 0, "no request was made");
    // One that waited 2 s still runs.
    let job = queued_for(target.url("/hit/in-time"), Duration::from_secs(2));
    process_one(&ctx, job.encode()).await;
    assert!(matches!(rx.recv().await, Some(Done::Ran { .. })));
    assert_eq!(target.hits("/hit/in-time"), 1);
}

#[tokio::test]
async fn a_cut_off_worker_leaves_a_late_job_to_the_scheduler() {
    // Its lease has likely been handed to another worker already: that
    // run, not a `missed` record, decides the slot.
    let target = Target::start().await;
    let (ctx, mut rx) = context(Liveness::new(Duration::from_secs(3)));
    let job = queued_for(target.url("/hit/cut-off"), Duration::from_secs(3));
    process_one(&ctx, job.encode()).await;
    assert!(matches!(rx.recv().await, Some(Done::Skip { .. })));
    assert_eq!(target.hits("/hit/cut-off"), 0);
}
