//! The server alone (scheduler off) on throwaway services, for the API and
//! dashboard tests.

#![allow(dead_code)]

use pulse_runtime::process::{ServiceSettings, Services};
use pulse_server::{Application, Settings};
use pulse_store::pg::api_keys::ApiKeyStore;
use pulse_testkit::TestEnv;
use tokio_util::sync::{CancellationToken, DropGuard};

/// A running server and what a test needs of it. It stops when dropped.
pub struct Running {
    pub base: String,
    /// A valid API key.
    pub key: String,
    pub services: Services,
    pub database_url: String,
    pub stop: DropGuard,
}

/// Starts the API on a free port with the scheduler off, `tweak`ed, and
/// creates an API key named `key_name`.
pub async fn start(key_name: &str, tweak: impl FnOnce(&mut Settings)) -> Running {
    let env = TestEnv::new().await;
    let services = ServiceSettings::new(
        &env.database_url,
        &env.redis_url,
        &env.clickhouse_dsn,
        &env.redis_prefix,
    )
    .unwrap();
    let mut settings = Settings::with_services(services);
    settings.scheduler_enabled = false;
    tweak(&mut settings);
    let stop = CancellationToken::new();
    let app = Application::build(settings, &stop).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let services = app.services().clone();
    let key = ApiKeyStore::new(services.pool.clone())
        .create(key_name)
        .await
        .unwrap();
    tokio::spawn(app.run(stop.clone()));
    Running {
        base,
        key,
        services,
        database_url: env.database_url,
        stop: stop.drop_guard(),
    }
}
