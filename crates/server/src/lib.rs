//! The Pulse server: the REST API for checks, the dashboard, and the
//! scheduler that queues due runs. `Application::build` connects and binds (port 0 in tests);
//! `Application::run` serves until the shutdown token fires.

pub mod api;
pub mod app;
pub mod http;
pub mod scheduler;
pub mod settings;
pub mod slo;
pub mod web;

use std::net::SocketAddr;

use anyhow::Context;
use pulse_runtime::process::Services;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use settings::Settings;

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    services: Services,
    settings: Settings,
    /// Keeps the listening address off the targets checks may reach.
    _protected: pulse_core::policy::Protected,
}

impl Application {
    /// Connects to the services (waiting for them to come up), applies the
    /// Postgres migrations and the ClickHouse schema, and binds the port.
    pub async fn build(settings: Settings, shutdown: &CancellationToken) -> anyhow::Result<Self> {
        let services = Services::connect(&settings.services, shutdown)
            .await
            .context("connecting to services")?;
        let (listener, addr) = pulse_runtime::process::bind(&settings.host, settings.port)
            .await
            .with_context(|| format!("binding {}:{}", settings.host, settings.port))?;
        // The API (or health port) is never a check's target while it runs.
        let protected = pulse_core::policy::protect_own([addr]);
        Ok(Application {
            listener,
            addr,
            services,
            settings,
            _protected: protected,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Serves the API and runs the scheduler until `shutdown` fires, then
    /// stops the scheduler and drains HTTP.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.addr, "api listening");
        let metrics = pulse_runtime::ServerMetrics::new();
        let scheduler = self.settings.scheduler_enabled.then(|| {
            tokio::spawn(scheduler::run(
                pulse_store::CheckStore::new(self.services.pool.clone()),
                self.services.queue.clone(),
                self.settings.scheduler.clone(),
                metrics.clone(),
                shutdown.clone(),
            ))
        });
        // SLO alerts run where the scheduler runs (an advisory lock keeps
        // several servers from alerting twice).
        let slo = self.settings.scheduler_enabled.then(|| {
            tokio::spawn(slo::run(
                pulse_store::pg::incidents::IncidentStore::new(self.services.pool.clone()),
                self.services.results.clone(),
                shutdown.clone(),
            ))
        });
        let state = api::AppState::new(
            &self.services,
            self.settings.auth_required,
            self.settings.limits,
            metrics,
            self.settings.target_policy,
        );
        let api = api::router(state.clone(), self.settings.metrics_need_key);
        let app = web::app(api, web::router(web::WebState::new(state)));
        http::serve(self.listener, app, self.settings.http, shutdown).await;
        if let Some(handle) = scheduler {
            let _ = handle.await;
        }
        if let Some(handle) = slo {
            let _ = handle.await;
        }
        tracing::info!("server stopped");
        Ok(())
    }
}
