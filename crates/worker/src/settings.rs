//! The worker's settings, from the environment (and `.env`).

use std::time::Duration;

use pulse_store::runtime::{env_or, ServiceSettings};
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
    /// `WORKER_CONCURRENCY`, default 100: runs in flight at once.
    pub concurrency: usize,
    /// `RESPONSE_BODY_LIMIT`, default 1048576: bytes of a response body read.
    pub body_limit: usize,
    /// `CLICKHOUSE_BATCH_SIZE`, default 1000: rows per insert at most.
    pub batch_size: usize,
    /// `CLICKHOUSE_FLUSH_MS`, default 1000: longest a result waits.
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
    /// `RESULTS_RETENTION_DAYS`, default 30: days of runs kept in
    /// ClickHouse (plus today); older days are dropped hourly. 0 keeps all.
    pub results_retention_days: u32,
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
            concurrency: 100,
            body_limit: pulse_checker::DEFAULT_BODY_LIMIT,
            batch_size: 1000,
            flush_interval: Duration::from_millis(1000),
            max_buffer: 100_000,
            webhook_timeout: Duration::from_millis(5000),
            webhook_retry_for: Duration::from_secs(86_400),
            webhook_backoff: Duration::from_millis(1000),
            webhook_secret: None,
            alerter_poll: Duration::from_millis(1000),
            shutdown_grace: Duration::from_millis(15_000),
            target_policy: Default::default(),
            results_retention_days: 30,
        }
    }

    pub fn from_env() -> Result<Settings, StoreError> {
        let d = Settings::with_services(ServiceSettings::from_env()?);
        let ms = |v: Duration| v.as_millis() as u64;
        Ok(Settings {
            worker_id: env_or("WORKER_ID", d.worker_id.clone())?,
            host: env_or("HOST", "0.0.0.0".to_string())?,
            port: env_or("WORKER_PORT", 8081)?,
            concurrency: env_or("WORKER_CONCURRENCY", d.concurrency)?.max(1),
            body_limit: env_or("RESPONSE_BODY_LIMIT", d.body_limit)?,
            batch_size: env_or("CLICKHOUSE_BATCH_SIZE", d.batch_size)?.max(1),
            flush_interval: Duration::from_millis(env_or(
                "CLICKHOUSE_FLUSH_MS",
                ms(d.flush_interval),
            )?),
            max_buffer: env_or("CLICKHOUSE_MAX_BUFFER", d.max_buffer)?,
            webhook_timeout: Duration::from_millis(env_or(
                "WEBHOOK_TIMEOUT_MS",
                ms(d.webhook_timeout),
            )?),
            webhook_retry_for: Duration::from_secs(env_or(
                "WEBHOOK_RETRY_FOR_SECS",
                d.webhook_retry_for.as_secs(),
            )?),
            webhook_backoff: Duration::from_millis(env_or(
                "WEBHOOK_BACKOFF_MS",
                ms(d.webhook_backoff),
            )?),
            webhook_secret: match std::env::var("WEBHOOK_SECRET") {
                Ok(v) if !v.trim().is_empty() => Some(
                    pulse_core::webhook::WebhookKey::parse(v.trim())
                        .map_err(|e| StoreError::Config(format!("WEBHOOK_SECRET {e}")))?,
                ),
                _ => None,
            },
            alerter_poll: Duration::from_millis(env_or("ALERTER_POLL_MS", ms(d.alerter_poll))?),
            shutdown_grace: Duration::from_millis(env_or(
                "SHUTDOWN_GRACE_MS",
                ms(d.shutdown_grace),
            )?),
            target_policy: env_or("TARGET_POLICY", "default".to_string())?
                .parse()
                .map_err(|e| StoreError::Config(format!("TARGET_POLICY={e}")))?,
            results_retention_days: env_or("RESULTS_RETENTION_DAYS", d.results_retention_days)?,
            services: d.services,
        })
    }
}
