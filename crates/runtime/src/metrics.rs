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

/// The OpenMetrics exposition's media type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic Prometheus text format's media type.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which exposition format a scrape gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0, for a scraper that asks for it in `Accept`.
    OpenMetrics,
    /// The classic Prometheus text format (0.0.4): what `promtool check
    /// metrics`, curl and older scrapers read, and the default.
    Prometheus,
}

impl Format {
    /// OpenMetrics when `Accept` names `application/openmetrics-text`,
    /// the classic format otherwise (none, `*/*`, `text/plain`).
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => CONTENT_TYPE,
            Format::Prometheus => PROMETHEUS_CONTENT_TYPE,
        }
    }
}
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

fn render(registry: &Registry, format: Format) -> String {
    let mut out = String::new();
    let _ = encode(&mut out, registry);
    match format {
        Format::OpenMetrics => out,
        Format::Prometheus => classic(&out),
    }
}

/// OpenMetrics text as the classic Prometheus format: a counter's HELP and
/// TYPE name its `_total` samples, and there is no `# UNIT` or `# EOF`.
fn classic(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 64 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{suffix} {tail}"));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
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
        for status in pulse_core::RunStatus::ALL.map(pulse_core::RunStatus::as_str) {
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

    /// The text exposition in `format`.
    pub fn render(&self, format: Format) -> String {
        render(&self.registry, format)
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

    /// The text exposition in `format`.
    pub fn render(&self, format: Format) -> String {
        render(&self.registry, format)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_binary_exports_only_its_own_series_and_its_build() {
        let worker = WorkerMetrics::new().render(Format::OpenMetrics);
        let server = ServerMetrics::new().render(Format::OpenMetrics);
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

    #[test]
    fn every_run_status_has_a_series_from_the_start() {
        let worker = WorkerMetrics::new().render(Format::Prometheus);
        for status in pulse_core::RunStatus::ALL {
            let series = format!("pulse_runs_total{{status=\"{}\"}} 0", status.as_str());
            assert!(worker.contains(&series), "{series} missing:\n{worker}");
        }
        assert!(worker.contains("status=\"degraded\"") && worker.contains("status=\"missed\""));
    }

    /// What `promtool check metrics` requires of the classic format: every
    /// sample's family has HELP and TYPE under the sample's own name (a
    /// histogram's `_bucket`, `_sum` and `_count` under the base name), each
    /// once and before its samples, and no OpenMetrics-only lines.
    fn assert_classic(text: &str) {
        let mut help = std::collections::HashSet::new();
        let mut types = std::collections::HashMap::new();
        for line in text.lines() {
            assert_ne!(line, "# EOF");
            assert!(!line.starts_with("# UNIT"), "{line}");
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                assert!(help.insert(name.to_string()), "HELP twice for {name}");
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(help.contains(name), "TYPE before HELP for {name}");
                assert!(types.insert(name.to_string(), kind.to_string()).is_none());
                continue;
            }
            let name = line.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|s| name.strip_suffix(s))
                .find(|base| types.get(*base).is_some_and(|k| k == "histogram"))
                .unwrap_or(name);
            let kind = types
                .get(family)
                .unwrap_or_else(|| panic!("no TYPE for {name}"));
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter {name} without _total");
            }
        }
    }

    #[test]
    fn the_classic_format_is_what_promtool_reads() {
        let worker = WorkerMetrics::new();
        worker
            .runs
            .get_or_create(&StatusLabel {
                status: "fail".into(),
            })
            .inc();
        worker.run_duration.observe(0.2);
        let text = worker.render(Format::Prometheus);
        assert!(text.contains("# HELP pulse_runs_total "), "{text}");
        assert!(text.contains("# TYPE pulse_runs_total counter"), "{text}");
        assert!(
            text.contains("pulse_runs_total{status=\"fail\"} 1"),
            "{text}"
        );
        assert_classic(&text);
        assert_classic(&ServerMetrics::new().render(Format::Prometheus));
        let open = worker.render(Format::OpenMetrics);
        assert!(open.contains("# TYPE pulse_runs counter") && open.ends_with("# EOF\n"));
    }

    #[test]
    fn the_format_follows_accept() {
        assert_eq!(Format::from_accept(None), Format::Prometheus);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Prometheus);
        assert_eq!(
            Format::from_accept(Some("text/plain; version=0.0.4")),
            Format::Prometheus
        );
        let prometheus =
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
        assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
    }
}
