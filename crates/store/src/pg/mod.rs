//! PostgreSQL: connecting, migrating, and the stores for checks and alerts.

pub mod alerts;
pub mod api_keys;
pub mod checks;
pub mod incidents;
pub mod outbox;
pub mod overview;
pub mod sessions;

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::Result;

/// Opens a pool. Connections are made lazily, so a process can start (and
/// report "not ready") while Postgres is still down, and reconnects by
/// itself when it returns.
pub fn pool(url: &str, max_connections: u32) -> Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(url)?)
}

/// Applies `migrations/`. sqlx takes an advisory lock, so servers starting
/// together apply each migration once.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    sqlx::migrate!("../../migrations").run(pool).await?;
    Ok(())
}

/// One direct connection, closed at once. At start this tells why Postgres
/// cannot be reached (refused, wrong password, no such database), where the
/// pool would only say it timed out.
pub async fn probe(url: &str) -> Result<()> {
    use sqlx::Connection;
    let connect = sqlx::PgConnection::connect(url);
    let conn = tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .map_err(|_| {
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer within 5 s",
            ))
        })??;
    conn.close().await?;
    Ok(())
}

/// `SELECT 1`, for readiness probes.
pub async fn ping(pool: &PgPool) -> Result<()> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}
