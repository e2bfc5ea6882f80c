//! The alerter: delivers the webhook outbox. Alerts are recorded in Postgres
//! with the state change that raised them; this loop claims due deliveries,
//! POSTs them, and records each attempt. It runs beside the check runs, so
//! a slow or dead webhook endpoint never delays a check.
//!
//! A 2xx is delivered. 410 Gone stops retrying. Anything else is retried
//! with exponential backoff (1 s, 2 s, 4 s ... capped at 5 min) up to
//! `WEBHOOK_MAX_ATTEMPTS` attempts.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use pulse_store::pg::alerts::{Attempt, Delivery};
use pulse_store::AlertStore;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Deliveries in flight at once per worker.
const PARALLEL_DELIVERIES: usize = 16;
/// A claimed delivery is not claimed again for this long (it outlives any
/// attempt, so a crashed alerter's claim is retried by another).
const CLAIM_SECS: i64 = 60;

#[derive(Clone)]
pub struct Alerter {
    store: AlertStore,
    client: reqwest::Client,
    max_attempts: i32,
    poll: Duration,
    wake: Arc<Notify>,
}

impl Alerter {
    pub fn new(
        store: AlertStore,
        timeout: Duration,
        max_attempts: i32,
        poll: Duration,
    ) -> Result<Alerter, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("pulse-webhook/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()?;
        Ok(Alerter {
            store,
            client,
            max_attempts: max_attempts.max(1),
            poll,
            wake: Arc::new(Notify::new()),
        })
    }

    /// Wakes the loop now (a new alert was recorded).
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(PARALLEL_DELIVERIES));
        let tracker = TaskTracker::new();
        loop {
            let free = slots.available_permits() as i64;
            if free > 0 {
                match self.store.claim_deliveries(free, CLAIM_SECS).await {
                    Ok(batch) => {
                        for delivery in batch {
                            let Ok(permit) = slots.clone().acquire_owned().await else {
                                break;
                            };
                            let this = self.clone();
                            tracker.spawn(async move {
                                this.deliver(delivery).await;
                                drop(permit);
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "alert outbox read failed"),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.cancelled() => break,
            }
        }
        tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(10), tracker.wait()).await;
    }

    async fn deliver(&self, d: Delivery) {
        let sent = self
            .client
            .post(&d.webhook_url)
            .header("content-type", "application/json")
            .header("webhook-id", d.id.to_string())
            .body(d.payload.to_string())
            .send()
            .await;
        let attempt = match sent {
            Ok(resp) if resp.status().is_success() => Attempt::Delivered {
                code: resp.status().as_u16(),
            },
            Ok(resp) => {
                let code = resp.status().as_u16();
                Attempt::Failed {
                    code: Some(code),
                    error: format!("webhook answered {code}"),
                    retry_at: (code != 410).then(|| self.retry_at(d.attempts)).flatten(),
                }
            }
            Err(e) => Attempt::Failed {
                code: None,
                error: e.to_string(),
                retry_at: self.retry_at(d.attempts),
            },
        };
        match &attempt {
            Attempt::Delivered { code } => {
                tracing::info!(alert_id = %d.id, code, attempts = d.attempts, "webhook delivered")
            }
            Attempt::Failed {
                error, retry_at, ..
            } => {
                tracing::warn!(alert_id = %d.id, %error, attempts = d.attempts, retrying = retry_at.is_some(), "webhook failed")
            }
        }
        if let Err(e) = self.store.record_attempt(d.id, &attempt).await {
            // The claim expires and the delivery is tried again.
            tracing::warn!(alert_id = %d.id, error = %e, "recording webhook attempt failed");
        }
    }

    fn retry_at(&self, attempts: i32) -> Option<chrono::DateTime<Utc>> {
        (attempts < self.max_attempts).then(|| {
            let secs = 1i64 << (attempts - 1).clamp(0, 8);
            Utc::now() + chrono::Duration::seconds(secs.min(300))
        })
    }
}
