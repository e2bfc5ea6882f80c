//! `worker`: runs checks; `worker --help` lists every setting.

use anyhow::Context;
use clap::Parser;
use pulse_worker::settings::Cli;
use pulse_worker::{Settings, Worker};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let settings = Settings::from_args(&cli).context("reading settings")?;
    pulse_runtime::process::init_tracing("worker", &settings.services.log_format);
    tracing::info!(
        binary = "worker",
        version = env!("CARGO_PKG_VERSION"),
        ?settings,
        "starting"
    );
    let shutdown = pulse_runtime::process::shutdown_on_signal();
    let worker = match Worker::build(settings, &shutdown).await {
        Ok(worker) => worker,
        // SIGTERM while waiting for a service: a clean stop, not a failure.
        Err(e) if shutdown.is_cancelled() => {
            tracing::info!(error = %e, "stopped before start finished");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    worker.run(shutdown).await
}
