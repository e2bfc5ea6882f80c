//! The scheduler: every poll it re-queues the runs of lost workers (their
//! heartbeat expired) and runs whose lease expired, records the slots a lost
//! worker made them miss, then claims due checks in batches and pushes
//! their jobs onto the queue.
//!
//! Safe to run in several servers at once: claims use `FOR UPDATE SKIP
//! LOCKED`, so each due slot is claimed by exactly one of them. A crash
//! between claim and push loses nothing: the lease expires and the slot is
//! re-queued.

use pulse_runtime::ServerMetrics as Metrics;
use pulse_store::{CheckStore, Queue};
use tokio_util::sync::CancellationToken;

use crate::settings::SchedulerSettings;

pub async fn run(
    store: CheckStore,
    queue: Queue,
    settings: SchedulerSettings,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    tracing::info!(
        poll_ms = settings.poll.as_millis() as u64,
        "scheduler started"
    );
    loop {
        match tick(&store, &queue, &settings).await {
            Ok(n) => {
                metrics.jobs_scheduled.inc_by(n as u64);
            }
            Err(e) => tracing::warn!(error = %e, "scheduler tick failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.poll) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    tracing::info!("scheduler stopped");
}

/// One pass: re-queue expired leases, then claim and queue everything due.
/// Returns how many jobs were queued.
pub async fn tick(
    store: &CheckStore,
    queue: &Queue,
    settings: &SchedulerSettings,
) -> pulse_store::Result<usize> {
    let mut queued = 0;
    store.release_idle_leases().await?;
    let lost: Vec<(uuid::Uuid, uuid::Uuid)> = queue
        .take_lost_jobs()
        .await?
        .iter()
        .filter_map(|raw| pulse_core::Job::decode(raw))
        .map(|j| (j.check_id, j.token))
        .collect();
    if !lost.is_empty() {
        let relet = store.relet(&lost, settings.lease_margin_ms).await?;
        tracing::info!(
            held = lost.len(),
            requeued = relet.len(),
            "re-queued runs of a lost worker"
        );
        queue.push(&relet).await?;
        queued += relet.len();
    }
    let stale = store
        .reclaim_expired(settings.batch, settings.lease_margin_ms)
        .await?;
    if !stale.is_empty() {
        tracing::info!(count = stale.len(), "re-queued runs with expired leases");
        queue.push(&stale).await?;
        queued += stale.len();
    }
    let missed = store.skip_missed_slots(settings.batch).await?;
    if missed > 0 {
        tracing::info!(
            missed,
            "slots missed while a worker was lost recorded as missed"
        );
    }
    loop {
        let jobs = store
            .claim_due(settings.batch, settings.lease_margin_ms)
            .await?;
        queue.push(&jobs).await?;
        queued += jobs.len();
        if (jobs.len() as i64) < settings.batch {
            break;
        }
    }
    Ok(queued)
}
