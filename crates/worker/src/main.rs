use anyhow::Context;
use pulse_worker::{Settings, Worker};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let settings = Settings::from_env().context("reading settings")?;
    pulse_store::runtime::init_tracing(&settings.services.log_format);
    tracing::info!(?settings, "starting worker");
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        pulse_store::runtime::shutdown_signal().await;
        tracing::info!("shutdown signal received");
        signal.cancel();
    });
    let worker = Worker::build(settings, &shutdown).await?;
    worker.run(shutdown).await
}
