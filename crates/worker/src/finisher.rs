//! The finisher: writes finished runs' state to Postgres in batches (one
//! fenced statement per batch, alerts included), then passes the results of
//! the runs that held their lease to the ClickHouse writer, wakes the
//! alerter, and acknowledges the jobs in Redis (one round trip per batch).
//!
//! If the worker dies before a batch is written, the leases of its runs
//! expire and the scheduler re-queues those slots: nothing is lost.

use std::time::Duration;

use pulse_store::pg::checks::Finish;
use pulse_store::{CheckStore, ConsumerHandle, RunRow};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::alerter::Alerter;

/// Longest a finished run waits for its batch.
const LINGER: Duration = Duration::from_millis(20);
const MAX_BATCH: usize = 500;

pub enum Done {
    Ran {
        raw: String,
        slot_ms: i64,
        finish: Finish,
    },
    Skip {
        raw: String,
    },
}

pub struct Finisher {
    pub worker_id: String,
    pub checks: CheckStore,
    pub queue: ConsumerHandle,
    pub results: mpsc::Sender<RunRow>,
    pub alerter: Alerter,
}

impl Finisher {
    /// Runs until every sender is gone and the last batch is written.
    pub async fn run(self, mut rx: mpsc::Receiver<Done>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let Some(first) = rx.recv().await else { break };
            batch.push(first);
            let linger = tokio::time::sleep(LINGER);
            tokio::pin!(linger);
            while batch.len() < MAX_BATCH {
                tokio::select! {
                    item = rx.recv() => match item {
                        Some(item) => batch.push(item),
                        None => break,
                    },
                    _ = &mut linger => break,
                }
            }
            self.flush(std::mem::take(&mut batch)).await;
        }
    }

    async fn flush(&self, batch: Vec<Done>) {
        let mut raws = Vec::with_capacity(batch.len());
        let mut ran = Vec::new();
        for item in batch {
            match item {
                Done::Ran {
                    raw,
                    slot_ms,
                    finish,
                } => {
                    raws.push(raw);
                    ran.push((slot_ms, finish));
                }
                Done::Skip { raw } => raws.push(raw),
            }
        }
        let finishes: Vec<Finish> = ran.iter().map(|(_, f)| f.clone()).collect();
        let written: std::collections::HashSet<Uuid> =
            self.write(&finishes).await.into_iter().collect();
        let mut alerts = false;
        for (slot_ms, f) in ran {
            if !written.contains(&f.check_id) {
                tracing::warn!(check_id = %f.check_id, "lease lost before state write; result discarded");
                continue;
            }
            if let Some(a) = &f.alert {
                tracing::info!(check_id = %f.check_id, alert_id = %a.id, kind = a.kind.as_str(), "alert raised");
                alerts = true;
            }
            let row = run_row(&self.worker_id, slot_ms, &f);
            if self.results.send(row).await.is_err() {
                tracing::error!(check_id = %f.check_id, "results writer gone; result not stored");
            }
        }
        if alerts {
            self.alerter.notify();
        }
        if let Err(e) = self.queue.ack(&raws).await {
            tracing::warn!(error = %e, jobs = raws.len(), "ack failed");
        }
    }

    /// The batch write, retried briefly; on failure the leases expire and
    /// the slots are re-queued.
    async fn write(&self, finishes: &[Finish]) -> Vec<Uuid> {
        for attempt in 1..=3 {
            match self.checks.finish_batch(finishes).await {
                Ok(ids) => return ids,
                Err(e) => {
                    tracing::warn!(error = %e, attempt, runs = finishes.len(), "state write failed");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
            }
        }
        tracing::error!(
            runs = finishes.len(),
            "state write abandoned; slots will be re-run after lease expiry"
        );
        Vec::new()
    }
}

fn run_row(worker: &str, slot_ms: i64, f: &Finish) -> RunRow {
    let o = &f.outcome;
    RunRow {
        id: Uuid::new_v4(),
        check_id: f.check_id,
        run_at: o.started_at,
        run_at_ms: o.started_at.timestamp_millis(),
        scheduled_at_ms: slot_ms,
        status: o.status.as_str().to_string(),
        failure_reason: o.failure_reason.map(|r| r.as_str().to_string()),
        latency_ms: o.latency_ms,
        status_code: o.status_code.unwrap_or(0),
        error: o.error.clone(),
        worker: worker.to_string(),
        attempts: o.attempts,
    }
}
