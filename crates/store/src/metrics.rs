//! Prometheus metrics for both binaries, exported in the text format at
//! `/metrics` (server: on the API port; worker: on its health port).

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: String,
}

/// Every metric Pulse exports. Each process fills in the ones it owns.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Runs finished, by status (worker).
    pub runs: Family<StatusLabel, Counter>,
    /// Run duration in seconds (worker).
    pub run_duration: Histogram,
    /// Run start minus due time, in seconds (worker).
    pub schedule_lag: Histogram,
    /// Jobs waiting in the Redis queue (worker, sampled every few seconds).
    pub queue_depth: Gauge,
    /// Runs in flight (worker).
    pub in_flight: Gauge,
    /// Results waiting for ClickHouse (worker).
    pub results_buffered: Gauge,
    pub results_written: Counter,
    /// Results dropped because the buffer was full while ClickHouse was down.
    pub results_dropped: Counter,
    /// Webhook delivery attempts by outcome: delivered, retry, failed (worker).
    pub webhooks: Family<OutcomeLabel, Counter>,
    /// Jobs queued by the scheduler (server).
    pub jobs_scheduled: Counter,
    /// API requests by method, route and status (server).
    pub api_requests: Family<RequestLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("pulse");
        let runs = Family::<StatusLabel, Counter>::default();
        let run_duration = Histogram::new(exponential_buckets(0.005, 2.0, 15));
        let schedule_lag = Histogram::new(exponential_buckets(0.01, 2.0, 12));
        let queue_depth = Gauge::default();
        let in_flight = Gauge::default();
        let results_buffered = Gauge::default();
        let results_written = Counter::default();
        let results_dropped = Counter::default();
        let webhooks = Family::<OutcomeLabel, Counter>::default();
        let jobs_scheduled = Counter::default();
        let api_requests = Family::<RequestLabels, Counter>::default();
        r.register("runs", "Check runs finished, by status", runs.clone());
        r.register(
            "run_duration_seconds",
            "Check run duration",
            run_duration.clone(),
        );
        r.register(
            "schedule_lag_seconds",
            "Run start minus the slot's due time",
            schedule_lag.clone(),
        );
        r.register(
            "queue_depth",
            "Jobs waiting in the Redis queue",
            queue_depth.clone(),
        );
        r.register(
            "runs_in_flight",
            "Check runs in progress",
            in_flight.clone(),
        );
        r.register(
            "results_buffered",
            "Results waiting to be written to ClickHouse",
            results_buffered.clone(),
        );
        r.register(
            "results_written",
            "Results written to ClickHouse",
            results_written.clone(),
        );
        r.register(
            "results_dropped",
            "Results dropped: buffer full while ClickHouse was unavailable",
            results_dropped.clone(),
        );
        r.register(
            "webhook_deliveries",
            "Webhook delivery attempts by outcome",
            webhooks.clone(),
        );
        r.register(
            "jobs_scheduled",
            "Jobs queued by the scheduler",
            jobs_scheduled.clone(),
        );
        r.register(
            "api_requests",
            "API requests by method, route and status",
            api_requests.clone(),
        );
        Metrics {
            registry: Arc::new(r),
            runs,
            run_duration,
            schedule_lag,
            queue_depth,
            in_flight,
            results_buffered,
            results_written,
            results_dropped,
            webhooks,
            jobs_scheduled,
            api_requests,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}
