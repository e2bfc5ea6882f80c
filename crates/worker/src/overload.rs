//! Making overload loud. Every run's scheduling lag (start minus due time)
//! goes into a 30-second window; once a second the window's p99 is
//! exported (`pulse_schedule_lag_p99_seconds`), and when it has stayed over
//! `OVERLOAD_LAG_MS` for `OVERLOAD_FOR_SECS` the worker says so: the
//! `pulse_overloaded` gauge, a warning in `/ready`'s body, and one
//! `overload` webhook to `SYSTEM_WEBHOOK_URL` (then one `overload_resolved`
//! when the lag is back under the threshold).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use pulse_core::webhook::{signature_header, WebhookKey};
use pulse_runtime::WorkerMetrics as Metrics;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Seconds of lag samples the p99 is taken over.
const WINDOW_SECS: usize = 30;
/// Bucket upper bounds grow by 1.25x from 10 ms (to ~10 min).
const BUCKETS: usize = 50;

fn bucket_of(lag_ms: u64) -> usize {
    let mut bound = 10.0f64;
    for i in 0..BUCKETS {
        if lag_ms as f64 <= bound {
            return i;
        }
        bound *= 1.25;
    }
    BUCKETS - 1
}

fn bucket_bound_ms(i: usize) -> u64 {
    (10.0 * 1.25f64.powi(i as i32)).round() as u64
}

#[derive(Debug, Clone)]
pub struct OverloadSettings {
    pub lag_threshold: Duration,
    pub sustained: Duration,
    pub webhook_url: Option<String>,
    pub secret: Option<WebhookKey>,
}

/// What `/ready` reports.
#[derive(Debug, Clone, Default)]
pub struct OverloadState {
    pub lag_p99_ms: u64,
    pub overloaded: bool,
    pub since: Option<chrono::DateTime<Utc>>,
}

#[derive(Clone)]
pub struct Overload {
    inner: Arc<Mutex<Window>>,
    state: Arc<Mutex<OverloadState>>,
}

struct Window {
    origin: Instant,
    /// Per second (ring, by second since origin): bucket counts.
    seconds: Vec<(u64, [u32; BUCKETS])>,
}

impl Default for Overload {
    fn default() -> Self {
        Overload::new()
    }
}

impl Overload {
    pub fn new() -> Overload {
        Overload {
            inner: Arc::new(Mutex::new(Window {
                origin: Instant::now(),
                seconds: vec![(u64::MAX, [0; BUCKETS]); WINDOW_SECS],
            })),
            state: Arc::new(Mutex::new(OverloadState::default())),
        }
    }

    /// Records one run's scheduling lag.
    pub fn record(&self, lag_ms: u64) {
        let Ok(mut w) = self.inner.lock() else { return };
        let sec = w.origin.elapsed().as_secs();
        let slot = &mut w.seconds[sec as usize % WINDOW_SECS];
        if slot.0 != sec {
            *slot = (sec, [0; BUCKETS]);
        }
        slot.1[bucket_of(lag_ms)] += 1;
    }

    /// The p99 lag over the window, rounded up to its bucket's bound (0
    /// with no runs).
    pub fn p99_ms(&self) -> u64 {
        let Ok(w) = self.inner.lock() else { return 0 };
        let now = w.origin.elapsed().as_secs();
        let mut counts = [0u64; BUCKETS];
        for (sec, buckets) in &w.seconds {
            if *sec != u64::MAX && now.saturating_sub(*sec) < WINDOW_SECS as u64 {
                for (c, b) in counts.iter_mut().zip(buckets) {
                    *c += u64::from(*b);
                }
            }
        }
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = (total * 99).div_ceil(100).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_bound_ms(i);
            }
        }
        bucket_bound_ms(BUCKETS - 1)
    }

    pub fn state(&self) -> OverloadState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Once a second: exports the p99, decides overload, and tells the
    /// operator when it starts and ends.
    pub async fn monitor(
        self,
        settings: OverloadSettings,
        worker_id: String,
        client: reqwest::Client,
        metrics: Metrics,
        stop: CancellationToken,
    ) {
        let mut over_since: Option<Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            let p99 = self.p99_ms();
            metrics.schedule_lag_p99.set(p99 as f64 / 1000.0);
            let over = Duration::from_millis(p99) > settings.lag_threshold;
            over_since = if over {
                over_since.or(Some(Instant::now()))
            } else {
                None
            };
            let was = self.state().overloaded;
            let now = over_since.is_some_and(|t| t.elapsed() >= settings.sustained);
            if let Ok(mut s) = self.state.lock() {
                s.lag_p99_ms = p99;
                if now && !was {
                    s.since = Some(Utc::now());
                }
                s.overloaded = now || (was && over);
                if !s.overloaded {
                    s.since = None;
                }
            }
            let state = self.state();
            metrics.overloaded.set(i64::from(state.overloaded));
            if state.overloaded != was {
                let kind = if state.overloaded {
                    "overload"
                } else {
                    "overload_resolved"
                };
                if state.overloaded {
                    tracing::error!(
                        worker_id,
                        lag_p99_ms = p99,
                        threshold_ms = settings.lag_threshold.as_millis() as u64,
                        "worker overloaded: scheduling lag p99 over the threshold"
                    );
                } else {
                    tracing::info!(worker_id, lag_p99_ms = p99, "overload resolved");
                }
                if let Some(url) = &settings.webhook_url {
                    let body = json!({
                        "type": kind,
                        "worker": worker_id,
                        "schedule_lag_p99_ms": p99,
                        "threshold_ms": settings.lag_threshold.as_millis() as u64,
                        "timestamp": pulse_core::time::format(&Utc::now()),
                    });
                    let (client, url, secret) =
                        (client.clone(), url.clone(), settings.secret.clone());
                    tokio::spawn(send_system_alert(client, url, secret, body));
                }
            }
        }
    }
}

/// POSTs an operator alert, signed like check alerts, retried briefly.
async fn send_system_alert(
    client: reqwest::Client,
    url: String,
    secret: Option<WebhookKey>,
    body: serde_json::Value,
) {
    let id = format!("sys_{}", uuid::Uuid::new_v4().simple());
    let text = body.to_string();
    for attempt in 0..5u32 {
        let ts = Utc::now().timestamp();
        let mut req = client
            .post(&url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", ts.to_string())
            .body(text.clone());
        if let Some(key) = &secret {
            req = req.header(
                "webhook-signature",
                signature_header(&[key], &id, ts, &text),
            );
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => tracing::warn!(
                status = r.status().as_u16(),
                attempt,
                "system webhook refused"
            ),
            Err(e) => {
                tracing::warn!(error = %pulse_checker::error_chain(&e), attempt, "system webhook failed")
            }
        }
        tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_is_the_bucket_bound_over_the_ninety_ninth_sample() {
        let o = Overload::new();
        assert_eq!(o.p99_ms(), 0);
        for _ in 0..990 {
            o.record(5);
        }
        for _ in 0..10 {
            o.record(14_700);
        }
        // 990 fast, 10 slow: p99 is within the fast bucket.
        assert_eq!(o.p99_ms(), 10);
        for _ in 0..20 {
            o.record(14_700);
        }
        let p99 = o.p99_ms();
        assert!((14_700..=14_700 * 5 / 4).contains(&p99), "{p99}");
    }
}
