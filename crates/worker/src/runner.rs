//! Running one queued job: start the run under a lease, make the request,
//! write the fenced state (and any alert) to Postgres, hand the result to
//! the ClickHouse writer, acknowledge the job.

use std::time::Duration;

use pulse_checker::{Checker, Probe};
use pulse_core::{AlertKind, AlertPayload, Job, RunOutcome};
use pulse_store::pg::checks::{NewAlert, RunnableCheck};
use pulse_store::{CheckStore, RunRow};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::alerter::Alerter;

/// What a worker needs to process jobs; cheap to clone.
#[derive(Clone)]
pub struct RunContext {
    pub worker_id: String,
    pub checks: CheckStore,
    pub checker: Checker,
    pub results: mpsc::Sender<RunRow>,
    pub alerter: Alerter,
    pub lease_margin_ms: i64,
}

/// How processing a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// Ran and recorded.
    Ran {
        outcome: RunOutcome,
        alert: Option<AlertKind>,
    },
    /// Not run: the job was stale (already started, or its lease was
    /// re-issued) or the check is deleted or disabled.
    Skipped,
    /// Ran, but the lease was lost before the state write; nothing recorded.
    LeaseLost,
    /// Not a job at all.
    Malformed,
}

/// Processes one raw queue entry. Our own failures (Postgres down) are
/// returned as errors; the job is then left to lease expiry.
pub async fn process_one(ctx: &RunContext, raw: &str) -> pulse_store::Result<Processed> {
    let Some(job) = Job::decode(raw) else {
        tracing::warn!(raw, "malformed job dropped");
        return Ok(Processed::Malformed);
    };
    let run_token = Uuid::new_v4();
    let Some(check) = ctx
        .checks
        .start_run(&job, run_token, ctx.lease_margin_ms)
        .await?
    else {
        tracing::debug!(check_id = %job.check_id, "stale or inactive job skipped");
        return Ok(Processed::Skipped);
    };
    let outcome = ctx.checker.run(&probe(&check)).await;
    let (state, alert_kind) = check
        .incident_state()
        .next(outcome.status.is_success(), check.alert_threshold);
    let alert = alert_kind.map(|kind| new_alert(&check, kind, &outcome, state.consecutive_fails));
    let recorded = ctx
        .checks
        .finish_run(check.id, run_token, &outcome, state, alert.as_ref())
        .await?;
    if !recorded {
        tracing::warn!(check_id = %check.id, "lease lost before state write; result discarded");
        return Ok(Processed::LeaseLost);
    }
    let row = run_row(&ctx.worker_id, &job, &outcome);
    if ctx.results.send(row).await.is_err() {
        tracing::error!(check_id = %check.id, "results writer gone; result not stored");
    }
    if let Some(a) = &alert {
        tracing::info!(check_id = %check.id, alert_id = %a.id, kind = a.kind.as_str(), "alert raised");
        ctx.alerter.notify();
    }
    tracing::debug!(check_id = %check.id, status = outcome.status.as_str(), latency_ms = outcome.latency_ms, "run recorded");
    Ok(Processed::Ran {
        outcome,
        alert: alert_kind,
    })
}

fn probe(check: &RunnableCheck) -> Probe<'_> {
    Probe {
        method: &check.method,
        url: &check.url,
        headers: &check.headers.0,
        body: check.body.as_deref(),
        timeout: Duration::from_millis(check.timeout_ms.max(1) as u64),
        expected_status: check.expected_status as u16,
        body_contains: check.body_contains.as_deref(),
    }
}

fn new_alert(
    check: &RunnableCheck,
    kind: AlertKind,
    outcome: &RunOutcome,
    consecutive_fails: i32,
) -> NewAlert {
    let id = Uuid::new_v4();
    let payload = AlertPayload {
        alert_id: id,
        check_id: check.id,
        check_name: check.name.clone(),
        url: check.url.clone(),
        kind,
        status: outcome.status.as_str().to_string(),
        error: outcome.error.clone(),
        consecutive_fails: if kind == AlertKind::Failure {
            consecutive_fails
        } else {
            check.consecutive_fails
        },
        timestamp: outcome.started_at,
    };
    NewAlert {
        id,
        kind,
        payload: serde_json::to_value(&payload).unwrap_or_default(),
        webhook_url: check.webhook_url.clone(),
    }
}

fn run_row(worker: &str, job: &Job, outcome: &RunOutcome) -> RunRow {
    RunRow {
        id: Uuid::new_v4(),
        check_id: job.check_id,
        run_at: outcome.started_at,
        run_at_ms: outcome.started_at.timestamp_millis(),
        scheduled_at_ms: job.slot_ms,
        status: outcome.status.as_str().to_string(),
        failure_reason: outcome.failure_reason.map(|r| r.as_str().to_string()),
        latency_ms: outcome.latency_ms,
        status_code: outcome.status_code.unwrap_or(0),
        error: outcome.error.clone(),
        worker: worker.to_string(),
    }
}
