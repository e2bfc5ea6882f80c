//! The finisher: writes finished runs' state to Postgres in batches (one
//! fenced statement per batch, alerts and results included), wakes the
//! alerter, and acknowledges the jobs in Redis (one round trip per batch).
//!
//! If the worker dies before a batch is written, the leases of its runs
//! expire and the scheduler re-queues those slots; once it is written, the
//! results are in the Postgres outbox: nothing is lost either way.

use std::time::Duration;

use pulse_store::pg::checks::Finish;
use pulse_store::{CheckStore, ConsumerHandle};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::alerter::Alerter;

/// Longest a finished run waits for its batch.
const LINGER: Duration = Duration::from_millis(20);
const MAX_BATCH: usize = 500;

pub enum Done {
    Ran {
        raw: String,
        finish: Box<Finish>,
    },
    /// Not run: it waited in the queue past its lease. Recorded `missed`
    /// under its lease token (check, token).
    Late {
        raw: String,
        lease: (Uuid, Uuid),
    },
    Skip {
        raw: String,
    },
}

pub struct Finisher {
    pub worker_id: String,
    pub location: String,
    pub checks: CheckStore,
    pub queue: ConsumerHandle,
    pub alerter: Alerter,
    pub live: LiveLocations,
}

/// The locations with a live worker, as last read (each heartbeat): a
/// stale location neither opens nor holds an incident.
#[derive(Clone, Default)]
pub struct LiveLocations(std::sync::Arc<std::sync::RwLock<Vec<String>>>);

impl LiveLocations {
    pub fn set(&self, live: Vec<String>) {
        if let Ok(mut l) = self.0.write() {
            *l = live;
        }
    }

    pub fn get(&self) -> Vec<String> {
        self.0.read().map(|l| l.clone()).unwrap_or_default()
    }
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
        let mut late = Vec::new();
        for item in batch {
            match item {
                Done::Ran { raw, finish } => {
                    raws.push(raw);
                    ran.push(*finish);
                }
                Done::Late { raw, lease } => {
                    raws.push(raw);
                    late.push(lease);
                }
                Done::Skip { raw } => raws.push(raw),
            }
        }
        match self.checks.record_late(&late, &self.location).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                runs = n,
                "runs that waited in the queue past their lease recorded missed"
            ),
            // Their leases expire and the scheduler queues them again.
            Err(e) => tracing::warn!(error = %e, runs = late.len(), "recording late runs failed"),
        }
        let written: std::collections::HashSet<Uuid> =
            self.write(&mut ran).await.into_iter().collect();
        let mut alerts = false;
        for f in &ran {
            if !written.contains(&f.check_id) {
                tracing::warn!(check_id = %f.check_id, "lease lost before state write; result discarded");
                continue;
            }
            if let Some(a) = &f.alert {
                tracing::info!(check_id = %f.check_id, alert_id = %a.id, kind = a.kind.as_str(), "alert raised");
                alerts = true;
            }
        }
        let tls: Vec<(Uuid, &pulse_store::pg::checks::TlsAlert)> = ran
            .iter()
            .filter(|f| written.contains(&f.check_id))
            .filter_map(|f| f.tls_alert.as_ref().map(|t| (f.check_id, t)))
            .collect();
        match self.checks.record_tls_alerts(&tls).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(alerts = n, "certificate expiry alerts raised");
                alerts = true;
            }
            Err(e) => tracing::warn!(error = %e, "recording certificate alerts failed"),
        }
        if alerts {
            self.alerter.notify();
        }
        if let Err(e) = self.queue.ack(&raws).await {
            tracing::warn!(error = %e, jobs = raws.len(), "ack failed");
        }
    }

    /// The batch write, retried briefly; on failure the leases expire and
    /// the slots are re-queued. Runs of checks with several locations have
    /// their incident decided again from every location's streak, under
    /// the check's lock (see [`CheckStore::finish_batch_with`]). Returns the
    /// checks written.
    async fn write(&self, finishes: &mut [Finish]) -> Vec<Uuid> {
        let live = self.live.get();
        for attempt in 1..=3 {
            let written = self
                .checks
                .finish_batch_with(
                    finishes,
                    &self.worker_id,
                    &self.location,
                    |snapshot, runs| {
                        for f in runs.iter_mut() {
                            crate::runner::decide_quorum(f, snapshot, &live, &self.location);
                        }
                    },
                )
                .await;
            match written {
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
