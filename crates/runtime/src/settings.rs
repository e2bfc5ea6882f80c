//! The settings both binaries read: where the services are, and how to log.
//! Declared once, as clap fields with `env`: each variable's doc comment and
//! default live here, and `--help` lists them.

use crate::process::ServiceSettings;
use pulse_store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `DATABASE_URL`, `REDIS_URL`, `CLICKHOUSE_DSN` and the settings that go
/// with them.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceArgs {
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Redis/Valkey URL (`host:port` alone works too).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// ClickHouse HTTP interface, `http(s)://[user[:password]@]host:port[/database]`;
    /// a native `clickhouse://user@host:9000/db` DSN is translated to port 8123.
    #[arg(long, env = "CLICKHOUSE_DSN", hide_env_values = true)]
    pub clickhouse_dsn: Option<String>,
    /// Prefix of every Redis key.
    #[arg(long, env = "REDIS_PREFIX", default_value = "pulse")]
    pub redis_prefix: String,
    /// PostgreSQL pool size.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    /// Log lines as text, or one JSON object per line.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

fn required(name: &str, v: &Option<String>) -> Result<String, StoreError> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .ok_or_else(|| StoreError::Config(format!("{name} is required")))
}

impl ServiceArgs {
    /// The services to connect to; each URL is required here.
    pub fn settings(&self) -> Result<ServiceSettings, StoreError> {
        let mut s = ServiceSettings::new(
            &required("DATABASE_URL", &self.database_url)?,
            &required("REDIS_URL", &self.redis_url)?,
            &required("CLICKHOUSE_DSN", &self.clickhouse_dsn)?,
            &self.redis_prefix,
        )?;
        s.database_max_connections = self.database_max_connections;
        s.log_format = match self.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
        .to_string();
        Ok(s)
    }
}
