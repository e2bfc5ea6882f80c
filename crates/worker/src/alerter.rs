//! The alerter: delivers the webhook outbox. Alerts are recorded in Postgres
//! with the state change that raised them; this loop claims due deliveries,
//! POSTs them, and records each attempt. It runs beside the check runs, so
//! a slow or dead webhook endpoint never delays a check.
//!
//! A 2xx is delivered. 410 Gone stops retrying, and so does a URL the
//! target policy refuses (an IP literal, or a name that resolves only to
//! refused addresses): retrying cannot help. Anything else is retried
//! with exponential backoff and jitter (`WEBHOOK_BACKOFF_MS` doubled per
//! attempt, capped at 1 h, times 0.5 to 1.5) for `WEBHOOK_RETRY_FOR_SECS`
//! from the alert's creation. Every attempt is recorded.
//!
//! Deliveries are signed as the Standard Webhooks spec describes:
//! `webhook-id` (the alert id, the same on every retry), `webhook-timestamp`
//! (seconds) and `webhook-signature` (`v1,<base64 HMAC-SHA256>` of
//! `id.timestamp.body`, one per key: the global `WEBHOOK_SECRET` and the
//! check's own `webhook_secret`).
//!
//! A webhook URL may carry a token in its path, so logs and recorded
//! errors show its origin (scheme, host, port) only.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use pulse_core::delivery;
use pulse_core::policy::TargetPolicy;
use pulse_core::redact::webhook_origin;
use pulse_core::webhook::{signature_header, WebhookKey};
use pulse_runtime::metrics::OutcomeLabel;
use pulse_runtime::WorkerMetrics as Metrics;
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

/// How deliveries are retried and signed.
#[derive(Clone, Debug)]
pub struct DeliveryPolicy {
    pub timeout: Duration,
    pub retry_for: Duration,
    pub backoff: Duration,
    pub secret: Option<WebhookKey>,
    pub target_policy: TargetPolicy,
}

#[derive(Clone)]
pub struct Alerter {
    store: AlertStore,
    client: reqwest::Client,
    policy: DeliveryPolicy,
    poll: Duration,
    wake: Arc<Notify>,
    metrics: Metrics,
}

impl Alerter {
    pub fn new(
        store: AlertStore,
        metrics: Metrics,
        policy: DeliveryPolicy,
        poll: Duration,
    ) -> Result<Alerter, reqwest::Error> {
        let client = pulse_checker::guarded_client(policy.target_policy, 3)
            .timeout(policy.timeout)
            .user_agent(concat!("pulse-webhook/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Alerter {
            store,
            client,
            policy,
            poll,
            wake: Arc::new(Notify::new()),
            metrics,
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
        let started = std::time::Instant::now();
        let blocked = reqwest::Url::parse(&d.webhook_url)
            .ok()
            .and_then(|u| self.policy.target_policy.blocks_url(&u));
        let attempt = match blocked {
            // Retrying cannot help: the URL itself is refused.
            Some(why) => Attempt::Failed {
                code: None,
                error: why,
                retry_at: None,
            },
            None => self.send(&d).await,
        };
        let duration_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
        let outcome = match &attempt {
            Attempt::Delivered { .. } => "delivered",
            Attempt::Failed {
                retry_at: Some(_), ..
            } => "retry",
            Attempt::Failed { .. } => "failed",
        };
        self.metrics
            .webhooks
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc();
        let webhook = webhook_origin(&d.webhook_url);
        match &attempt {
            Attempt::Delivered { code } => {
                tracing::info!(alert_id = %d.id, %webhook, code, attempts = d.attempts, "webhook delivered")
            }
            Attempt::Failed {
                error, retry_at, ..
            } => {
                tracing::warn!(alert_id = %d.id, %webhook, %error, attempts = d.attempts, retrying = retry_at.is_some(), "webhook failed")
            }
        }
        if let Err(e) = self
            .store
            .record_attempt(d.id, d.attempts, duration_ms, &attempt)
            .await
        {
            // The claim expires and the delivery is tried again.
            tracing::warn!(alert_id = %d.id, error = %e, "recording webhook attempt failed");
        }
    }

    /// One signed POST of the alert, judged.
    async fn send(&self, d: &Delivery) -> Attempt {
        let body = d.payload.to_string();
        let id = d.id.to_string();
        let timestamp = Utc::now().timestamp();
        let own = d.webhook_secret.as_ref();
        let keys: Vec<&WebhookKey> = self.policy.secret.iter().chain(own).collect();
        let mut req = self
            .client
            .post(&d.webhook_url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string());
        if !keys.is_empty() {
            req = req.header(
                "webhook-signature",
                signature_header(&keys, &id, timestamp, &body),
            );
        }
        match req.body(body).send().await {
            Ok(resp) => {
                let code = resp.status().as_u16();
                match delivery::judge(code) {
                    delivery::Answer::Delivered => Attempt::Delivered { code },
                    answer => Attempt::Failed {
                        code: Some(code),
                        error: format!("webhook answered {code}"),
                        retry_at: (answer == delivery::Answer::Retry)
                            .then(|| self.retry_at(d.attempts, d.created_at))
                            .flatten(),
                    },
                }
            }
            Err(e) => Attempt::Failed {
                code: None,
                retry_at: if pulse_checker::is_blocked(&e) {
                    None
                } else {
                    self.retry_at(d.attempts, d.created_at)
                },
                // Without the URL: its path may be a token.
                error: format!(
                    "{}: {}",
                    webhook_origin(&d.webhook_url),
                    pulse_checker::error_chain(&e.without_url())
                ),
            },
        }
    }

    /// When to try again after `attempts` attempts, or None when the retry
    /// period (from `created_at`) would be over.
    fn retry_at(
        &self,
        attempts: i32,
        created_at: chrono::DateTime<Utc>,
    ) -> Option<chrono::DateTime<Utc>> {
        let pause = delivery::backoff(self.policy.backoff, attempts, rand::random_range(0.5..1.5));
        delivery::next_attempt(Utc::now(), created_at, self.policy.retry_for, pause)
    }
}
