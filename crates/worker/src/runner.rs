//! Running one queued job: check it may still start under its lease, make
//! the request, decide the alert, and hand the result to the finisher,
//! which writes state in batches.

use std::time::Duration;

use pulse_checker::{Checker, Probe};
use pulse_core::{AlertKind, AlertPayload, Job, RunOutcome};
use pulse_store::metrics::{Metrics, StatusLabel};
use pulse_store::pg::checks::{Finish, NewAlert};
use tokio::sync::mpsc;
use tracing::Instrument;
use uuid::Uuid;

use crate::finisher::Done;

/// What a worker needs to run jobs; cheap to clone.
#[derive(Clone)]
pub struct RunContext {
    pub checker: Checker,
    pub done: mpsc::Sender<Done>,
    pub metrics: Metrics,
}

/// Processes one raw queue entry.
pub async fn process_one(ctx: &RunContext, raw: String) {
    let Some(job) = Job::decode(&raw) else {
        tracing::warn!(raw, "malformed job dropped");
        let _ = ctx.done.send(Done::Skip { raw }).await;
        return;
    };
    let span = tracing::info_span!("run", check_id = %job.check_id, slot_ms = job.slot_ms);
    run_job(ctx, raw, job).instrument(span).await
}

async fn run_job(ctx: &RunContext, raw: String, job: Job) {
    let now_ms = chrono::Utc::now().timestamp_millis();
    if !job.can_start(now_ms) {
        tracing::warn!(check_id = %job.check_id, "job waited past its lease; left for re-queue");
        let _ = ctx.done.send(Done::Skip { raw }).await;
        return;
    }
    ctx.metrics.in_flight.inc();
    let outcome = run_with_retries(ctx, &job).await;
    ctx.metrics.in_flight.dec();
    let m = &ctx.metrics;
    m.runs
        .get_or_create(&StatusLabel {
            status: outcome.status.as_str().into(),
        })
        .inc();
    m.run_duration
        .observe(f64::from(outcome.latency_ms) / 1000.0);
    m.schedule_lag
        .observe((outcome.started_at.timestamp_millis() - job.slot_ms).max(0) as f64 / 1000.0);
    let (state, kind) = job
        .incident_state()
        .next(outcome.status.is_success(), job.check.alert_threshold);
    let alert = kind.map(|kind| new_alert(&job, kind, &outcome, state.consecutive_fails));
    tracing::debug!(check_id = %job.check_id, status = outcome.status.as_str(), latency_ms = outcome.latency_ms, "run done");
    let finish = Finish {
        check_id: job.check_id,
        token: job.token,
        slot_ms: job.slot_ms,
        outcome,
        state,
        alert,
    };
    let _ = ctx.done.send(Done::Ran { raw, finish }).await;
}

/// Runs the request, and again up to `retries` times while it fails, with a
/// short backoff, as long as each retry fits in the lease and ends before
/// the next slot. The outcome is the last attempt's, dated from the first.
async fn run_with_retries(ctx: &RunContext, job: &Job) -> RunOutcome {
    let probe = probe(job);
    let mut outcome = ctx.checker.run(&probe).await;
    let first_start = outcome.started_at;
    let mut n: u8 = 1;
    while !outcome.status.is_success() && job.can_retry(n, chrono::Utc::now().timestamp_millis()) {
        tokio::time::sleep(Duration::from_millis(Job::retry_backoff_ms(n) as u64)).await;
        tracing::debug!(check_id = %job.check_id, retry = n, "retrying failed run");
        outcome = ctx.checker.run(&probe).await;
        n += 1;
    }
    outcome.attempts = n;
    outcome.started_at = first_start;
    outcome
}

fn probe(job: &Job) -> Probe<'_> {
    let c = &job.check;
    Probe {
        method: &c.method,
        url: &c.url,
        headers: &c.headers,
        body: c.body.as_deref(),
        timeout: Duration::from_millis(c.timeout_ms.max(1) as u64),
        expected_status: c.expected_status,
        body_contains: c.body_contains.as_deref(),
    }
}

fn new_alert(job: &Job, kind: AlertKind, outcome: &RunOutcome, consecutive_fails: i32) -> NewAlert {
    let id = Uuid::new_v4();
    let payload = AlertPayload {
        alert_id: id,
        check_id: job.check_id,
        check_name: job.check.name.clone(),
        // The target's credentials stay out of the webhook.
        url: pulse_core::redact::redact_url_str(&job.check.url),
        kind,
        status: outcome.status.as_str().to_string(),
        error: outcome.error.clone(),
        consecutive_fails: if kind == AlertKind::Failure {
            consecutive_fails
        } else {
            job.check.consecutive_fails
        },
        timestamp: outcome.started_at,
    };
    NewAlert {
        id,
        kind,
        payload: serde_json::to_value(&payload).unwrap_or_default(),
        webhook_url: job.check.webhook_url.clone(),
    }
}
