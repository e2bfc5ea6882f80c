use anyhow::Context;
use pulse_server::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let settings = Settings::from_env().context("reading settings")?;
    pulse_store::runtime::init_tracing(&settings.services.log_format);
    tracing::info!(?settings, "starting server");
    let shutdown = pulse_store::runtime::shutdown_on_signal();
    let app = Application::build(settings, &shutdown).await?;
    app.run(shutdown).await
}
