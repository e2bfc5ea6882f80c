//! The server's settings, from the environment (and `.env`).

use std::time::Duration;

use pulse_store::runtime::{env_or, ServiceSettings};
use pulse_store::StoreError;

#[derive(Debug, Clone)]
pub struct Settings {
    pub services: ServiceSettings,
    /// `HOST`, default `0.0.0.0`.
    pub host: String,
    /// `PORT`, default 8080.
    pub port: u16,
    /// `SCHEDULER_ENABLED`, default true: run the scheduler in this server.
    pub scheduler_enabled: bool,
    pub scheduler: SchedulerSettings,
    /// `API_AUTH`, default `required`: every `/checks` route needs an API
    /// key. `off` opens the API to anyone who can reach it.
    pub auth_required: bool,
    /// `API_RATE_LIMIT` (per key, default 50/s) and `API_IP_RATE_LIMIT`
    /// (per client IP, default 100/s); bursts of twice that.
    pub limits: crate::api::Limits,
    /// `METRICS_REQUIRE_KEY`, default false: whether `/metrics` needs an
    /// API key.
    pub metrics_need_key: bool,
    /// `TARGET_POLICY`, default `default`: the workers' policy; a check or
    /// webhook URL whose IP literal it refuses is invalid (422).
    pub target_policy: pulse_core::policy::TargetPolicy,
}

#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// `SCHEDULER_POLL_MS`, default 500: how often due checks are claimed.
    pub poll: Duration,
    /// `SCHEDULER_BATCH`, default 1000: checks claimed per statement.
    pub batch: i64,
    /// `LEASE_MARGIN_MS`, default 5000: a run's lease is its `timeout_ms`
    /// plus this margin; a run whose worker died is re-queued after it.
    pub lease_margin_ms: i64,
}

impl Settings {
    /// Defaults around the given services; port 0 picks a free port.
    pub fn with_services(services: ServiceSettings) -> Settings {
        Settings {
            services,
            host: "127.0.0.1".into(),
            port: 0,
            scheduler_enabled: true,
            auth_required: true,
            metrics_need_key: false,
            target_policy: Default::default(),
            limits: crate::api::Limits {
                per_key: 50,
                per_ip: 100,
            },
            scheduler: SchedulerSettings {
                poll: Duration::from_millis(500),
                batch: 1000,
                lease_margin_ms: 5000,
            },
        }
    }

    pub fn from_env() -> Result<Settings, StoreError> {
        let d = Settings::with_services(ServiceSettings::from_env()?);
        Ok(Settings {
            host: env_or("HOST", "0.0.0.0".to_string())?,
            port: env_or("PORT", 8080)?,
            scheduler_enabled: env_or("SCHEDULER_ENABLED", d.scheduler_enabled)?,
            auth_required: match env_or("API_AUTH", "required".to_string())?.as_str() {
                "required" => true,
                "off" => false,
                other => {
                    return Err(StoreError::Config(format!(
                        "API_AUTH={other:?}: use required or off"
                    )))
                }
            },
            metrics_need_key: env_or("METRICS_REQUIRE_KEY", d.metrics_need_key)?,
            limits: crate::api::Limits {
                per_key: env_or("API_RATE_LIMIT", d.limits.per_key)?,
                per_ip: env_or("API_IP_RATE_LIMIT", d.limits.per_ip)?,
            },
            scheduler: SchedulerSettings {
                poll: Duration::from_millis(env_or(
                    "SCHEDULER_POLL_MS",
                    d.scheduler.poll.as_millis() as u64,
                )?),
                batch: env_or("SCHEDULER_BATCH", d.scheduler.batch)?,
                lease_margin_ms: env_or("LEASE_MARGIN_MS", d.scheduler.lease_margin_ms)?,
            },
            target_policy: env_or("TARGET_POLICY", "default".to_string())?
                .parse()
                .map_err(|e| StoreError::Config(format!("TARGET_POLICY={e}")))?,
            services: d.services,
        })
    }
}
