//! The server's settings, from the environment (and `.env`).

use std::time::Duration;

use pulse_runtime::process::ServiceSettings;
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
    /// `TARGET_POLICY`, default `default` (`public-only` for shared
    /// deployments): a check whose `url` or `webhook_url` is an address the
    /// policy refuses is rejected when it is created or changed.
    pub target_policy: pulse_core::policy::TargetPolicy,
    /// `HTTP_HEADER_TIMEOUT_MS` (default 10000), `HTTP_MAX_CONNECTIONS`
    /// (default 10000), `HTTP_DRAIN_MS` (default 10000).
    pub http: crate::http::HttpLimits,
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
    /// `LOCATION_STALE_MS`, default 10000: how long a location may have no
    /// live worker before it is stale (its slots are then recorded
    /// `missed`; until then they wait for a worker).
    pub stale_after: Duration,
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
            http: crate::http::HttpLimits {
                header_read_timeout: Duration::from_secs(10),
                max_connections: 10_000,
                drain: Duration::from_secs(10),
            },
            limits: crate::api::Limits {
                per_key: 50,
                per_ip: 100,
            },
            scheduler: SchedulerSettings {
                poll: Duration::from_millis(500),
                batch: 1000,
                lease_margin_ms: 5000,
                stale_after: Duration::from_millis(10_000),
            },
        }
    }

    /// Settings from the command line and environment (see [`ServerArgs`]).
    pub fn from_args(a: &ServerArgs) -> Result<Settings, StoreError> {
        let d = Settings::with_services(a.services.settings()?);
        Ok(Settings {
            host: a.host.clone(),
            port: a.port,
            scheduler_enabled: a.scheduler_enabled,
            auth_required: a.api_auth == ApiAuth::Required,
            metrics_need_key: a.metrics_require_key,
            target_policy: a
                .target_policy
                .parse()
                .map_err(|e| StoreError::Config(format!("TARGET_POLICY={e}")))?,
            http: crate::http::HttpLimits {
                header_read_timeout: Duration::from_millis(a.http_header_timeout_ms),
                max_connections: a.http_max_connections.max(1),
                drain: Duration::from_millis(a.http_drain_ms),
            },
            limits: crate::api::Limits {
                per_key: a.api_rate_limit,
                per_ip: a.api_ip_rate_limit,
            },
            scheduler: SchedulerSettings {
                poll: Duration::from_millis(a.scheduler_poll_ms.max(1)),
                batch: a.scheduler_batch.max(1),
                lease_margin_ms: a.lease_margin_ms,
                stale_after: Duration::from_millis(a.location_stale_ms),
            },
            services: d.services,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ApiAuth {
    /// Every `/checks` route needs an API key.
    Required,
    /// Anyone who can reach the API may use it.
    Off,
}

/// `server`: the Pulse API and scheduler. Every setting is an environment
/// variable (a `.env` file is read too; the environment wins), or the flag
/// of the same name.
#[derive(Debug, clap::Parser)]
#[command(name = "server", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub args: ServerArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Creates an API key and prints it, alone, on stdout.
    CreateApiKey {
        #[arg(long)]
        name: String,
    },
    /// Revokes every live API key with this name.
    RevokeApiKey {
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub services: pulse_runtime::ServiceArgs,
    /// Listen address.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// API port.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// `required`: `/checks` needs an API key; `off`: open (trusted networks only).
    #[arg(long, env = "API_AUTH", value_enum, default_value = "required")]
    pub api_auth: ApiAuth,
    /// Requests per second per API key (bursts of twice that).
    #[arg(long, env = "API_RATE_LIMIT", default_value_t = 50)]
    pub api_rate_limit: u32,
    /// Requests per second per client IP, before authentication.
    #[arg(long, env = "API_IP_RATE_LIMIT", default_value_t = 100)]
    pub api_ip_rate_limit: u32,
    /// Whether `/metrics` on the API port needs an API key.
    #[arg(long, env = "METRICS_REQUIRE_KEY", default_value_t = false, action = clap::ArgAction::Set)]
    pub metrics_require_key: bool,
    /// A request's headers must arrive within this many ms (also the idle
    /// limit of a keep-alive connection).
    #[arg(long, env = "HTTP_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub http_header_timeout_ms: u64,
    /// API connections open at once; more are closed as they arrive.
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub http_max_connections: usize,
    /// On SIGTERM, how long (ms) open API requests may finish.
    #[arg(long, env = "HTTP_DRAIN_MS", default_value_t = 10_000)]
    pub http_drain_ms: u64,
    /// Run the scheduler in this server.
    #[arg(long, env = "SCHEDULER_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub scheduler_enabled: bool,
    /// How often (ms) due checks are claimed.
    #[arg(long, env = "SCHEDULER_POLL_MS", default_value_t = 500)]
    pub scheduler_poll_ms: u64,
    /// Checks claimed per statement.
    #[arg(long, env = "SCHEDULER_BATCH", default_value_t = 1000)]
    pub scheduler_batch: i64,
    /// A run's lease is its run budget plus this margin (ms), from the claim.
    #[arg(long, env = "LEASE_MARGIN_MS", default_value_t = 5000)]
    pub lease_margin_ms: i64,
    /// How long (ms) a location may have no live worker before it is stale
    /// and its slots are recorded missed.
    #[arg(long, env = "LOCATION_STALE_MS", default_value_t = 10_000)]
    pub location_stale_ms: u64,
    /// `default` (all but cloud metadata and link-local) or `public-only`;
    /// check and webhook URLs whose IP literal it refuses are invalid.
    #[arg(long, env = "TARGET_POLICY", default_value = "default")]
    pub target_policy: String,
}
