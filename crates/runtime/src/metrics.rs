//! Prometheus metrics, one registry per binary. Labelled series are created
//! up front for every known label value, so a dashboard sees zeros rather
//! than missing series before the first event.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// What [`ServerMetrics::render`] and [`WorkerMetrics::render`] produce.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every run status a worker records.
pub const RUN_STATUSES: &[&str] = &["success", "fail", "timeout", "error"];
/// Every webhook delivery outcome.
pub const WEBHOOK_OUTCOMES: &[&str] = &["delivered", "retry", "failed"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LocationLabel {
    pub location: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: String,
}

/// Every phase of an HTTP run.
pub const PHASES: &[&str] = &["dns", "connect", "tls", "ttfb", "download"];

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    binary: String,
    version: String,
}

fn registry(binary: &str) -> Registry {
    let mut r = Registry::with_prefix("pulse");
    let info = Family::<BuildLabels, Gauge>::default();
    info.get_or_create(&BuildLabels {
        binary: binary.into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
    .set(1);
    r.register("build_info", "The running binary and its version", info);
    r
}

fn render(registry: &Registry) -> String {
    let mut out = String::new();
    let _ = encode(&mut out, registry);
    out
}

/// The worker's metrics.
#[derive(Clone)]
pub struct WorkerMetrics {
    registry: Arc<Registry>,
    /// Runs finished, by status.
    pub runs: Family<StatusLabel, Counter>,
    /// Run duration in seconds.
    pub run_duration: Histogram,
    /// Time per phase of HTTP runs, in seconds.
    pub run_phase: Family<PhaseLabel, Histogram>,
    /// Run start minus due time, in seconds.
    pub schedule_lag: Histogram,
    /// Scheduling lag p99 over the recent window, in seconds.
    pub schedule_lag_p99: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// 1 while the lag p99 has stayed over the overload threshold.
    pub overloaded: Gauge,
    /// Jobs waiting in the Redis queue (sampled).
    pub queue_depth: Gauge,
    pub in_flight: Gauge,
    /// Results waiting for ClickHouse.
    pub results_buffered: Gauge,
    pub results_written: Counter,
    /// Results dropped because the buffer was full while ClickHouse was down.
    pub results_dropped: Counter,
    /// Webhook delivery attempts by outcome.
    pub webhooks: Family<OutcomeLabel, Counter>,
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        WorkerMetrics::new()
    }
}

impl WorkerMetrics {
    pub fn new() -> WorkerMetrics {
        let mut r = registry("worker");
        let m = WorkerMetrics {
            registry: Arc::new(Registry::default()),
            runs: Family::default(),
            run_duration: Histogram::new(exponential_buckets(0.005, 2.0, 15)),
            run_phase: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            }),
            schedule_lag: Histogram::new(exponential_buckets(0.01, 2.0, 12)),
            schedule_lag_p99: Gauge::default(),
            overloaded: Gauge::default(),
            queue_depth: Gauge::default(),
            in_flight: Gauge::default(),
            results_buffered: Gauge::default(),
            results_written: Counter::default(),
            results_dropped: Counter::default(),
            webhooks: Family::default(),
        };
        for status in RUN_STATUSES {
            let _ = m.runs.get_or_create(&StatusLabel {
                status: (*status).into(),
            });
        }
        for phase in PHASES {
            let _ = m.run_phase.get_or_create(&PhaseLabel {
                phase: (*phase).into(),
            });
        }
        for outcome in WEBHOOK_OUTCOMES {
            let _ = m.webhooks.get_or_create(&OutcomeLabel {
                outcome: (*outcome).into(),
            });
        }
        r.register("runs", "Check runs finished, by status", m.runs.clone());
        r.register(
            "run_duration_seconds",
            "Check run duration",
            m.run_duration.clone(),
        );
        r.register(
            "run_phase_seconds",
            "Time per phase of HTTP runs (dns, connect, tls, ttfb, download)",
            m.run_phase.clone(),
        );
        r.register(
            "schedule_lag_seconds",
            "Run start minus the slot's due time",
            m.schedule_lag.clone(),
        );
        r.register(
            "schedule_lag_p99_seconds",
            "Scheduling lag p99 over the last 30 s",
            m.schedule_lag_p99.clone(),
        );
        r.register(
            "overloaded",
            "1 while scheduling lag p99 stays over OVERLOAD_LAG_MS",
            m.overloaded.clone(),
        );
        r.register(
            "queue_depth",
            "Jobs waiting in the Redis queue",
            m.queue_depth.clone(),
        );
        r.register(
            "runs_in_flight",
            "Check runs in progress",
            m.in_flight.clone(),
        );
        r.register(
            "results_buffered",
            "Results waiting to be written to ClickHouse",
            m.results_buffered.clone(),
        );
        r.register(
            "results_written",
            "Results written to ClickHouse",
            m.results_written.clone(),
        );
        r.register(
            "results_dropped",
            "Results dropped: buffer full while ClickHouse was unavailable",
            m.results_dropped.clone(),
        );
        r.register(
            "webhook_deliveries",
            "Webhook delivery attempts by outcome",
            m.webhooks.clone(),
        );
        WorkerMetrics {
            registry: Arc::new(r),
            ..m
        }
    }

    /// The OpenMetrics text exposition ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

/// The server's metrics (API and scheduler).
#[derive(Clone)]
pub struct ServerMetrics {
    registry: Arc<Registry>,
    /// Jobs queued by the scheduler.
    pub jobs_scheduled: Counter,
    /// API requests by method, route and status.
    pub api_requests: Family<RequestLabels, Counter>,
    /// API request duration by method and route, in seconds.
    pub api_duration: Family<RouteLabels, Histogram>,
    /// Live workers per location (0: the location is stale).
    pub location_workers: Family<LocationLabel, Gauge>,
    /// 1 when a location has no live worker.
    pub location_stale: Family<LocationLabel, Gauge>,
    /// Seconds since a location's last heartbeat.
    pub location_heartbeat_age: Family<LocationLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Jobs waiting in each location's queue.
    pub location_queue_depth: Family<LocationLabel, Gauge>,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        ServerMetrics::new()
    }
}

impl ServerMetrics {
    pub fn new() -> ServerMetrics {
        let mut r = registry("server");
        let jobs_scheduled = Counter::default();
        let api_requests = Family::<RequestLabels, Counter>::default();
        let api_duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 14))
        });
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
        r.register(
            "http_request_duration_seconds",
            "API request duration by method and route",
            api_duration.clone(),
        );
        let location_workers = Family::<LocationLabel, Gauge>::default();
        let location_stale = Family::<LocationLabel, Gauge>::default();
        let location_heartbeat_age =
            Family::<LocationLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let location_queue_depth = Family::<LocationLabel, Gauge>::default();
        r.register(
            "location_workers",
            "Live workers per location (read at each scrape)",
            location_workers.clone(),
        );
        r.register(
            "location_stale",
            "1 when a location has no live worker",
            location_stale.clone(),
        );
        r.register(
            "location_heartbeat_age_seconds",
            "Seconds since the location's last worker heartbeat",
            location_heartbeat_age.clone(),
        );
        r.register(
            "location_queue_depth",
            "Jobs waiting in the location's queue",
            location_queue_depth.clone(),
        );
        ServerMetrics {
            registry: Arc::new(r),
            jobs_scheduled,
            api_requests,
            api_duration,
            location_workers,
            location_stale,
            location_heartbeat_age,
            location_queue_depth,
        }
    }

    /// The OpenMetrics text exposition ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_binary_exports_only_its_own_series_and_its_build() {
        let worker = WorkerMetrics::new().render();
        let server = ServerMetrics::new().render();
        assert!(
            worker.contains("pulse_runs_total{status=\"timeout\"} 0"),
            "{worker}"
        );
        assert!(worker.contains("pulse_webhook_deliveries_total{outcome=\"failed\"} 0"));
        assert!(worker.contains("pulse_build_info{binary=\"worker\""));
        assert!(
            worker.contains("pulse_run_phase_seconds_count{phase=\"ttfb\"} 0"),
            "{worker}"
        );
        assert!(!worker.contains("pulse_api_requests"));
        assert!(!worker.contains("pulse_jobs_scheduled"));
        assert!(server.contains("pulse_build_info{binary=\"server\""));
        assert!(server.contains("pulse_jobs_scheduled_total 0"));
        assert!(!server.contains("pulse_runs_total"));
        assert!(!server.contains("pulse_queue_depth"));
        assert!(worker.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    }
}
