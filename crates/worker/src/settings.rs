//! The worker's settings: [`Cli`] declares each variable once (flag, `env`,
//! doc comment, default); [`Settings`] is what the worker runs with.

use std::time::Duration;

use pulse_runtime::process::ServiceSettings;
use pulse_store::StoreError;

#[derive(Debug, Clone)]
pub struct Settings {
    pub services: ServiceSettings,
    /// `WORKER_ID`, default `<hostname>-<random>`: names this worker's
    /// processing list in Redis.
    pub worker_id: String,
    /// `HOST`, default `0.0.0.0`.
    pub host: String,
    /// `WORKER_PORT`, default 8081: `/health` and `/ready`.
    pub port: u16,
    /// `WORKER_CONCURRENCY`, default 1000: runs in flight at once. Runs
    /// wait on the network, not the CPU, so a worker holds many (about
    /// 900 in 43 MB).
    pub concurrency: usize,
    /// `RESPONSE_BODY_LIMIT`, default 1048576: bytes of a response body read.
    pub body_limit: usize,
    /// `CLICKHOUSE_BATCH_SIZE`, default 20000: rows per insert at most; a
    /// full batch is written without waiting for the interval.
    pub batch_size: usize,
    /// `CLICKHOUSE_FLUSH_MS`, default 5000: ClickHouse gets one insert per
    /// interval from all workers together; the longest a result waits.
    pub flush_interval: Duration,
    /// `CLICKHOUSE_MAX_BUFFER`, default 100000: rows kept while ClickHouse
    /// is down; beyond it the oldest are dropped and counted.
    pub max_buffer: usize,
    /// `WEBHOOK_TIMEOUT_MS`, default 5000: one delivery attempt.
    pub webhook_timeout: Duration,
    /// `WEBHOOK_RETRY_FOR_SECS`, default 86400: how long a failing delivery
    /// is retried, from the alert's creation.
    pub webhook_retry_for: Duration,
    /// `WEBHOOK_BACKOFF_MS`, default 1000: the first retry's delay; each
    /// next one doubles (capped at 1 h), times a random 0.5 to 1.5.
    pub webhook_backoff: Duration,
    /// `WEBHOOK_SECRET`: the global signing key, `whsec_` + base64.
    pub webhook_secret: Option<pulse_core::webhook::WebhookKey>,
    /// `ALERTER_POLL_MS`, default 1000: how often the outbox is read.
    pub alerter_poll: Duration,
    /// `TARGET_POLICY`: `default` (everything but cloud metadata and
    /// link-local addresses) or `public-only`; applies to checks and
    /// webhooks.
    pub target_policy: pulse_core::policy::TargetPolicy,
    /// `SHUTDOWN_GRACE_MS`, default 15000: how long in-flight runs may take
    /// to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// `OVERLOAD_LAG_MS` (default 5000), `OVERLOAD_FOR_SECS` (default 60),
    /// `SYSTEM_WEBHOOK_URL` (optional): when the scheduling lag p99 stays
    /// over the threshold that long, the worker reports overload (metric,
    /// `/ready`, and a webhook to the operator).
    pub overload: crate::overload::OverloadSettings,
    /// `EXTRA_CA_FILE`: a PEM file of CA certificates checks trust beside
    /// the system store and the built-in roots (intranet CAs).
    pub extra_ca: pulse_checker::ExtraRoots,
    /// `RESULTS_RETENTION_DAYS`, default 30: days of runs kept in
    /// ClickHouse (plus today); older days are dropped hourly. 0 keeps all.
    pub results_retention_days: u32,
    /// `ROLLUP_RETENTION_DAYS`, default 400: days of the report rollups
    /// (per minute and per hour) kept in ClickHouse. 0 keeps all.
    pub rollup_retention_days: u32,
    /// `LOCATION`, default `default`: the location this worker serves (it
    /// takes that location's queue and its runs are recorded there).
    pub location: String,
    /// `WORKER_SOURCE_ADDRESS`: the local IP address outgoing check
    /// connections bind to.
    pub source_address: Option<std::net::IpAddr>,
}

impl Settings {
    /// Defaults around the given services; port 0 picks a free port.
    pub fn with_services(services: ServiceSettings) -> Settings {
        Settings {
            services,
            worker_id: format!(
                "{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into()),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            host: "127.0.0.1".into(),
            port: 0,
            concurrency: 1000,
            body_limit: pulse_checker::DEFAULT_BODY_LIMIT,
            batch_size: 20_000,
            flush_interval: Duration::from_millis(5000),
            max_buffer: 100_000,
            webhook_timeout: Duration::from_millis(5000),
            webhook_retry_for: Duration::from_secs(86_400),
            webhook_backoff: Duration::from_millis(1000),
            webhook_secret: None,
            alerter_poll: Duration::from_millis(1000),
            shutdown_grace: Duration::from_millis(15_000),
            target_policy: Default::default(),
            overload: crate::overload::OverloadSettings {
                lag_threshold: Duration::from_millis(5000),
                sustained: Duration::from_secs(60),
                webhook_url: None,
                secret: None,
            },
            extra_ca: Default::default(),
            results_retention_days: 30,
            rollup_retention_days: 400,
            location: pulse_core::location::DEFAULT_LOCATION.into(),
            source_address: None,
        }
    }

    /// Settings from the command line and environment (see [`Cli`]).
    pub fn from_args(a: &Cli) -> Result<Settings, StoreError> {
        let d = Settings::with_services(a.services.settings()?);
        let config = |name: &str, e: String| StoreError::Config(format!("{name} {e}"));
        let webhook_secret = match a.webhook_secret.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() => Some(
                pulse_core::webhook::WebhookKey::parse(v)
                    .map_err(|e| config("WEBHOOK_SECRET", e))?,
            ),
            _ => None,
        };
        let extra_ca = match a.extra_ca_file.as_deref().map(str::trim) {
            Some(path) if !path.is_empty() => {
                pulse_checker::ExtraRoots::from_pem_file(path.as_ref())
                    .map_err(|e| config("EXTRA_CA_FILE", e.to_string()))?
            }
            _ => Default::default(),
        };
        let location = a.location.trim().to_string();
        pulse_core::location::valid_name(&location).map_err(|e| config("LOCATION", e))?;
        let source_address = match a.worker_source_address.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() => Some(v.parse().map_err(|_| {
                config(
                    "WORKER_SOURCE_ADDRESS",
                    format!("must be an IP address, e.g. 127.0.0.2 (got {v:?})"),
                )
            })?),
            _ => None,
        };
        Ok(Settings {
            location,
            source_address,
            worker_id: a.worker_id.clone().unwrap_or(d.worker_id),
            host: a.host.clone(),
            port: a.worker_port,
            concurrency: a.worker_concurrency.max(1),
            body_limit: a.response_body_limit,
            batch_size: a.clickhouse_batch_size.max(1),
            flush_interval: Duration::from_millis(a.clickhouse_flush_ms.max(1)),
            max_buffer: a.clickhouse_max_buffer,
            webhook_timeout: Duration::from_millis(a.webhook_timeout_ms),
            webhook_retry_for: Duration::from_secs(a.webhook_retry_for_secs),
            webhook_backoff: Duration::from_millis(a.webhook_backoff_ms),
            alerter_poll: Duration::from_millis(a.alerter_poll_ms.max(1)),
            shutdown_grace: Duration::from_millis(a.shutdown_grace_ms),
            target_policy: a
                .target_policy
                .parse()
                .map_err(|e| config("TARGET_POLICY", e))?,
            overload: crate::overload::OverloadSettings {
                lag_threshold: Duration::from_millis(a.overload_lag_ms),
                sustained: Duration::from_secs(a.overload_for_secs),
                webhook_url: a
                    .system_webhook_url
                    .as_deref()
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string),
                secret: webhook_secret.clone(),
            },
            webhook_secret,
            extra_ca,
            results_retention_days: a.results_retention_days,
            rollup_retention_days: a.rollup_retention_days,
            services: d.services,
        })
    }
}

/// `worker`: runs Pulse's checks. Every setting is an environment variable
/// (a `.env` file is read too; the environment wins), or the flag of the
/// same name.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "worker", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub services: pulse_runtime::ServiceArgs,
    /// Names this worker's processing list in Redis [default: <hostname>-<random>].
    #[arg(long, env = "WORKER_ID")]
    pub worker_id: Option<String>,
    /// Listen address of `/health`, `/ready` and `/metrics`.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Port of `/health`, `/ready` and `/metrics`.
    #[arg(long, env = "WORKER_PORT", default_value_t = 8081)]
    pub worker_port: u16,
    /// Runs in flight at once (runs wait on the network: about 900 fit in 43 MB).
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 1000)]
    pub worker_concurrency: usize,
    /// Bytes of a response body read; a run is judged on those.
    #[arg(long, env = "RESPONSE_BODY_LIMIT", default_value_t = pulse_checker::DEFAULT_BODY_LIMIT)]
    pub response_body_limit: usize,
    /// Rows per ClickHouse insert at most (a full batch goes at once).
    #[arg(long, env = "CLICKHOUSE_BATCH_SIZE", default_value_t = 20_000)]
    pub clickhouse_batch_size: usize,
    /// One ClickHouse insert per this many ms, from all workers together:
    /// the longest a result waits before it is written.
    #[arg(long, env = "CLICKHOUSE_FLUSH_MS", default_value_t = 5000)]
    pub clickhouse_flush_ms: u64,
    /// Results kept while ClickHouse is down; beyond it the oldest are dropped.
    #[arg(long, env = "CLICKHOUSE_MAX_BUFFER", default_value_t = 100_000)]
    pub clickhouse_max_buffer: usize,
    /// One webhook delivery attempt (ms).
    #[arg(long, env = "WEBHOOK_TIMEOUT_MS", default_value_t = 5000)]
    pub webhook_timeout_ms: u64,
    /// Global webhook signing key, `whsec_` + base64.
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// How long (s) a failing delivery is retried, from the alert.
    #[arg(long, env = "WEBHOOK_RETRY_FOR_SECS", default_value_t = 86_400)]
    pub webhook_retry_for_secs: u64,
    /// First retry delay (ms); doubles per attempt, capped at 1 h, with jitter.
    #[arg(long, env = "WEBHOOK_BACKOFF_MS", default_value_t = 1000)]
    pub webhook_backoff_ms: u64,
    /// How often (ms) the webhook outbox is read (new alerts also wake it).
    #[arg(long, env = "ALERTER_POLL_MS", default_value_t = 1000)]
    pub alerter_poll_ms: u64,
    /// `default` (all but cloud metadata and link-local) or `public-only`.
    #[arg(long, env = "TARGET_POLICY", default_value = "default")]
    pub target_policy: String,
    /// PEM file of CA certificates checks trust beside the system store.
    #[arg(long, env = "EXTRA_CA_FILE")]
    pub extra_ca_file: Option<String>,
    /// Time (ms) in-flight runs get to finish after SIGTERM.
    #[arg(long, env = "SHUTDOWN_GRACE_MS", default_value_t = 15_000)]
    pub shutdown_grace_ms: u64,
    /// Scheduling lag p99 (ms, over 30 s) above which the worker is overloaded.
    #[arg(long, env = "OVERLOAD_LAG_MS", default_value_t = 5000)]
    pub overload_lag_ms: u64,
    /// How long (s) the lag must stay above it before overload is reported.
    #[arg(long, env = "OVERLOAD_FOR_SECS", default_value_t = 60)]
    pub overload_for_secs: u64,
    /// Days of runs kept in ClickHouse (plus today); older days are dropped
    /// hourly. 0 keeps everything.
    #[arg(long, env = "RESULTS_RETENTION_DAYS", default_value_t = 30)]
    pub results_retention_days: u32,
    /// Days of report rollups (per minute and per hour) kept in ClickHouse
    /// (plus today); older days are dropped hourly. 0 keeps everything.
    #[arg(long, env = "ROLLUP_RETENTION_DAYS", default_value_t = 400)]
    pub rollup_retention_days: u32,
    /// Operator webhook for `overload` and `overload_resolved` alerts.
    #[arg(long, env = "SYSTEM_WEBHOOK_URL")]
    pub system_webhook_url: Option<String>,
    /// The location this worker serves (a-z, 0-9, '-', '_', '.').
    #[arg(long, env = "LOCATION", default_value = "default")]
    pub location: String,
    /// Local IP address outgoing check connections bind to.
    #[arg(long, env = "WORKER_SOURCE_ADDRESS")]
    pub worker_source_address: Option<String>,
}
