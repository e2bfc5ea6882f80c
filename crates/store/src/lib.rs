//! Pulse's storage layer. Every query lives here: PostgreSQL holds checks,
//! their schedule, run leases and alerts; Redis carries the job queue;
//! ClickHouse keeps every run's result.

pub mod config;
pub mod pg;
pub mod queue;
pub mod reports;
pub mod results;

pub use config::{ClickHouseDsn, Redacted};
pub use pg::{alerts::AlertStore, checks::CheckStore};
pub use queue::{Consumer, ConsumerHandle, Queue};
pub use results::{ResultsStore, RunRow};

/// Storage failures. `NotFound` is the caller's business; the rest are
/// ours (a service down, a bad query, bad configuration).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The caller's `If-Match` names a version that is no longer current.
    #[error("version {current} is current")]
    VersionMismatch { current: i64 },
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("postgres migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("configuration: {0}")]
    Config(String),
    /// A service that could not be reached at start; the cause is the
    /// source. `target` is `host:port`, never a password.
    #[error("{what} at {target}")]
    Start {
        what: &'static str,
        target: String,
        #[source]
        source: Box<StoreError>,
    },
    /// Shutdown was requested while waiting for a service at start.
    #[error("shutdown requested while waiting for {0}")]
    Shutdown(&'static str),
}

impl StoreError {
    /// Whether an error at start is one that waiting cannot fix: a wrong
    /// password or user, a database that does not exist, bad configuration.
    pub fn is_permanent(&self) -> bool {
        match self {
            // invalid_password, invalid_authorization_specification (unknown
            // role, no pg_hba entry), invalid_catalog_name (no such database).
            StoreError::Postgres(sqlx::Error::Database(db)) => {
                matches!(db.code().as_deref(), Some("28P01" | "28000" | "3D000"))
            }
            StoreError::Redis(r) => {
                r.kind() == redis::ErrorKind::AuthenticationFailed
                    || matches!(r.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
            }
            StoreError::Config(_) => true,
            StoreError::Start { source, .. } => source.is_permanent(),
            _ => false,
        }
    }

    /// Whether a backing service is down or unreachable (try again later),
    /// as opposed to a bug or a bad request.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Postgres(e) => matches!(
                e,
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed
            ),
            StoreError::Redis(_) | StoreError::ClickHouse(_) => true,
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
