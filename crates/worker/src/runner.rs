//! Running one queued job: check it may still start under its lease, make
//! the request, decide the alert, and hand the result to the finisher,
//! which writes state in batches.

use std::time::Duration;

use pulse_checker::{Checker, Probe};
use pulse_core::alert::AlertLocation;
use pulse_core::{
    AlertKind, AlertPayload, IncidentState, Job, LocationStreak, RetrySkipped, RunOutcome,
};
use pulse_runtime::metrics::StatusLabel;
use pulse_runtime::WorkerMetrics as Metrics;
use pulse_store::pg::checks::{Finish, NewAlert, QuorumSnapshot, TlsAlert};
use tokio::sync::mpsc;
use tracing::Instrument;
use uuid::Uuid;

use crate::finisher::Done;
use crate::liveness::Liveness;

/// What a worker needs to run jobs; cheap to clone.
#[derive(Clone)]
pub struct RunContext {
    pub checker: Checker,
    pub done: mpsc::Sender<Done>,
    pub metrics: Metrics,
    /// Whether this worker may still run what it took (see [`Liveness`]).
    pub alive: Liveness,
    /// Scheduling lag, watched for overload.
    pub overload: crate::overload::Overload,
}

/// Processes one raw queue entry.
pub async fn process_one(ctx: &RunContext, raw: String) {
    let job = Job::decode(&raw);
    process_job(ctx, raw, job).await
}

/// Processes a queue entry already decoded (`None`: it was not a job).
pub async fn process_job(ctx: &RunContext, raw: String, job: Option<Job>) {
    let Some(job) = job else {
        tracing::warn!(raw, "malformed job dropped");
        let _ = ctx.done.send(Done::Skip { raw }).await;
        return;
    };
    let span = tracing::info_span!("run", check_id = %job.check_id, slot_ms = job.slot_ms);
    run_job(ctx, raw, job).instrument(span).await
}

/// Counts a run (made, or recorded `missed`) by status, and its scheduling
/// lag (start, or the decision not to start, minus due time), which the
/// overload watch reads.
fn count_run(ctx: &RunContext, status: pulse_core::RunStatus, lag_ms: i64) {
    ctx.metrics
        .runs
        .get_or_create(&StatusLabel {
            status: status.as_str().into(),
        })
        .inc();
    let lag_ms = lag_ms.max(0);
    ctx.metrics.schedule_lag.observe(lag_ms as f64 / 1000.0);
    ctx.overload.record(lag_ms as u64);
}

async fn run_job(ctx: &RunContext, raw: String, job: Job) {
    let now_ms = chrono::Utc::now().timestamp_millis();
    if !job.can_start(now_ms) {
        if !ctx.alive.is_alive() {
            // This worker was cut off: the scheduler has re-leased the
            // slot, and runs it again.
            tracing::warn!(check_id = %job.check_id, "job waited past its lease while this worker was cut off; left for re-queue");
            let _ = ctx.done.send(Done::Skip { raw }).await;
            return;
        }
        // Recorded `missed` (reason `queued_too_long`), and the check goes
        // on with its next slot; its lag counts, so overload shows.
        tracing::debug!(check_id = %job.check_id, "job waited past its lease; recorded missed");
        count_run(ctx, pulse_core::RunStatus::Missed, now_ms - job.slot_ms);
        let lease = (job.check_id, job.token);
        let _ = ctx.done.send(Done::Late { raw, lease }).await;
        return;
    }
    let epoch = ctx.alive.epoch();
    ctx.metrics.in_flight.inc();
    let outcome = run_with_retries(ctx, &job, epoch).await;
    ctx.metrics.in_flight.dec();
    let Some(outcome) = outcome.filter(|_| ctx.alive.holds(epoch)) else {
        tracing::warn!(check_id = %job.check_id, "worker liveness lapsed; run abandoned to its new lease");
        let _ = ctx.done.send(Done::Skip { raw }).await;
        return;
    };
    count_run(
        ctx,
        outcome.status,
        outcome.started_at.timestamp_millis() - job.slot_ms,
    );
    let m = &ctx.metrics;
    m.run_duration
        .observe(f64::from(outcome.latency_ms) / 1000.0);
    if let Some(p) = &outcome.phases {
        for (phase, ms) in p.by_name() {
            m.run_phase
                .get_or_create(&pulse_runtime::metrics::PhaseLabel {
                    phase: phase.into(),
                })
                .observe(f64::from(ms) / 1000.0);
        }
    }
    // This location's streak; the check's incident follows from it here
    // for a check in one location, and in the finisher (from every
    // location's streak, under the check's lock) for one in several.
    let (streak, _) = job.incident_state().next_run(
        outcome.status,
        job.check.spec.alert_threshold,
        job.check.spec.alert_on_degraded,
    );
    let several = job.check.spec.locations.len() > 1;
    let (state, alert) = if several {
        (streak, None)
    } else {
        decide_run(&job, &outcome, streak, job.incident_state(), Vec::new())
    };
    let tls_alert = tls_expiry_alert(&job, &outcome);
    tracing::debug!(check_id = %job.check_id, status = outcome.status.as_str(), latency_ms = outcome.latency_ms, "run done");
    let finish = Finish {
        check_id: job.check_id,
        token: job.token,
        slot_ms: job.slot_ms,
        outcome,
        state,
        alert,
        tls_alert,
        quorum: several.then(|| Box::new(job)),
    };
    let _ = ctx
        .done
        .send(Done::Ran {
            raw,
            finish: Box::new(finish),
        })
        .await;
}

/// The check's incident after a run in `job`'s location whose streak is now
/// `streak`: decided over this location and `others` (the check's other
/// locations, `live` said of each) from the incident state `was`, with the
/// alert it raises.
pub(crate) fn decide_run(
    job: &Job,
    outcome: &RunOutcome,
    streak: IncidentState,
    was: IncidentState,
    mut others: Vec<LocationStreak>,
) -> (IncidentState, Option<NewAlert>) {
    let spec = &job.check.spec;
    others.push(LocationStreak {
        location: job.location.clone(),
        consecutive_fails: streak.consecutive_fails,
        consecutive_degraded: streak.consecutive_degraded,
        last_error: outcome.error.clone(),
        live: true,
    });
    let d = pulse_core::alert::decide(
        was,
        &others,
        spec.alert_threshold,
        spec.alert_on_degraded,
        spec.alert_locations,
    );
    let state = IncidentState {
        incident_open: d.incident_open,
        degraded_open: d.degraded_open,
        ..streak
    };
    let alert = d
        .alert
        .map(|kind| new_alert(job, kind, outcome, state.consecutive_fails, d.locations));
    (state, alert)
}

/// A finished run of a check with several locations, its incident decided
/// again from what the finisher read under the check's lock: the incident
/// state and every other location's streak (`live`: the locations with a
/// live worker; `own`: this worker's), set in place.
pub(crate) fn decide_quorum(f: &mut Finish, snapshot: &QuorumSnapshot, live: &[String], own: &str) {
    let Some(job) = f.quorum.as_deref() else {
        return;
    };
    let was = snapshot
        .incidents
        .get(&f.check_id)
        .copied()
        .unwrap_or_else(|| job.incident_state());
    let others: Vec<LocationStreak> = snapshot
        .streaks
        .get(&f.check_id)
        .map(|all| {
            all.iter()
                .filter(|s| s.location != own)
                .map(|s| LocationStreak {
                    live: live.contains(&s.location),
                    ..s.clone()
                })
                .collect()
        })
        .unwrap_or_default();
    // Only the incident flags of `f.state` change here, so deciding again
    // (a retried write) gives the same answer.
    let (state, alert) = decide_run(job, &f.outcome, f.state, was, others);
    f.state = state;
    f.alert = alert;
}

/// Runs the request, and again up to `retries` times while it fails, with a
/// short backoff; each retry gets the time left before the next slot (see
/// [`Job::retry_window`]), and a retry skipped for lack of time is noted in
/// the run's error. The outcome is the last attempt's, dated from the first.
/// `None` when this worker lost its liveness meanwhile: the run is
/// abandoned, since another worker now holds its slot.
async fn run_with_retries(ctx: &RunContext, job: &Job, epoch: u64) -> Option<RunOutcome> {
    let mut probe = probe(job);
    let mut outcome = ctx.alive.guard(epoch, ctx.checker.run(&probe)).await?;
    let first_start = outcome.started_at;
    let mut n: u8 = 1;
    while !outcome.status.is_up() {
        match job.retry_window(n, chrono::Utc::now().timestamp_millis()) {
            Ok(window_ms) => {
                let pause = Duration::from_millis(Job::retry_backoff_ms(n) as u64);
                ctx.alive.guard(epoch, tokio::time::sleep(pause)).await?;
                tracing::debug!(check_id = %job.check_id, retry = n, window_ms, "retrying failed run");
                probe.timeout = Duration::from_millis(window_ms.max(1) as u64);
                outcome = ctx.alive.guard(epoch, ctx.checker.run(&probe)).await?;
                n += 1;
            }
            Err(RetrySkipped::NoneLeft) => break,
            Err(skipped) => {
                tracing::info!(check_id = %job.check_id, %skipped, "retry skipped");
                let error = outcome.error.take().unwrap_or_default();
                outcome.error = Some(format!("{error} ({skipped})"));
                break;
            }
        }
    }
    outcome.attempts = n;
    outcome.started_at = first_start;
    Some(outcome)
}

fn probe(job: &Job) -> Probe<'_> {
    let c = &job.check.spec;
    Probe {
        method: &c.method,
        url: &c.url,
        headers: &c.headers,
        body: c.body.as_deref(),
        timeout: Duration::from_millis(c.timeout_ms.max(1) as u64),
        expect: pulse_core::run::Expectations {
            expected_status: (c.check_type == pulse_core::check::CheckType::Http)
                .then_some(c.expected_status),
            body_contains: c.body_contains.as_deref(),
            assertions: &c.assertions,
            degraded_ms: c.degraded_ms,
            max_response_ms: c.max_response_ms,
        },
        verify_tls: c.tls_verify,
        kind: match c.check_type {
            pulse_core::check::CheckType::Http => pulse_checker::ProbeKind::Http,
            pulse_core::check::CheckType::Tcp => pulse_checker::ProbeKind::Tcp {
                host: c.host.as_deref().unwrap_or_default(),
                port: c.port.unwrap_or_default(),
                tls: c.tls,
                send: c.send.as_deref(),
                expect: c.expect.as_deref(),
            },
            pulse_core::check::CheckType::Dns => pulse_checker::ProbeKind::Dns {
                host: c.host.as_deref().unwrap_or_default(),
                record_type: c.record_type.unwrap_or(pulse_core::check::RecordType::A),
                resolver: c.resolver.as_deref(),
            },
        },
    }
}

/// A `tls_expiry` alert when the certificate expires within the check's
/// `tls_expiry_days` (the finisher sends it once per certificate).
fn tls_expiry_alert(job: &Job, outcome: &RunOutcome) -> Option<TlsAlert> {
    let days = job.check.spec.tls_expiry_days;
    let cert = outcome.certificate.as_ref()?;
    if days <= 0 || cert.days_left >= i64::from(days) {
        return None;
    }
    let mut alert = new_alert(
        job,
        AlertKind::TlsExpiry,
        outcome,
        job.check.consecutive_fails,
        Vec::new(),
    );
    let error = if cert.days_left < 0 {
        format!(
            "certificate for {} expired on {}",
            cert.subject,
            pulse_core::time::format(&cert.not_after)
        )
    } else {
        format!(
            "certificate for {} expires in {} days, on {}",
            cert.subject,
            cert.days_left,
            pulse_core::time::format(&cert.not_after)
        )
    };
    if let Some(obj) = alert.payload.as_object_mut() {
        obj.insert("error".into(), serde_json::Value::String(error));
        obj.insert(
            "certificate".into(),
            serde_json::to_value(cert).unwrap_or_default(),
        );
    }
    Some(TlsAlert {
        fingerprint: cert.fingerprint.clone(),
        alert,
    })
}

fn new_alert(
    job: &Job,
    kind: AlertKind,
    outcome: &RunOutcome,
    consecutive_fails: i32,
    locations: Vec<AlertLocation>,
) -> NewAlert {
    let id = Uuid::new_v4();
    let payload = AlertPayload {
        alert_id: id,
        check_id: job.check_id,
        check_name: job.check.spec.name.clone(),
        // The target's credentials stay out of the webhook.
        url: pulse_core::redact::redact_url_str(&job.check.spec.url),
        kind,
        status: outcome.status.as_str().to_string(),
        error: outcome.error.clone(),
        consecutive_fails: if kind == AlertKind::Failure {
            consecutive_fails
        } else {
            job.check.consecutive_fails
        },
        timestamp: outcome.started_at,
        location: Some(job.location.clone()),
        locations,
    };
    NewAlert {
        id,
        kind,
        payload: serde_json::to_value(&payload).unwrap_or_default(),
        webhook_url: job.check.spec.webhook_url.clone(),
    }
}
