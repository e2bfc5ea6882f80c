//! `server`: the API and scheduler; `server --help` lists every setting.
//! Also manages API keys:
//!
//!   server create-api-key --name NAME   prints a new key alone on stdout
//!   server revoke-api-key --name NAME   revokes every key with that name

use anyhow::{bail, Context};
use clap::Parser;
use pulse_server::settings::{Cli, Command};
use pulse_server::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    match cli.command {
        None => serve(&cli.args).await,
        Some(Command::CreateApiKey { name }) => api_keys(&cli.args, true, &name).await,
        Some(Command::RevokeApiKey { name }) => api_keys(&cli.args, false, &name).await,
    }
}

async fn serve(args: &pulse_server::settings::ServerArgs) -> anyhow::Result<()> {
    let settings = Settings::from_args(args).context("reading settings")?;
    pulse_runtime::process::init_tracing("server", &settings.services.log_format);
    tracing::info!(
        binary = "server",
        version = env!("CARGO_PKG_VERSION"),
        ?settings,
        "starting"
    );
    let shutdown = pulse_runtime::process::shutdown_on_signal();
    let app = match Application::build(settings, &shutdown).await {
        Ok(app) => app,
        // SIGTERM while waiting for a service: a clean stop, not a failure.
        Err(e) if shutdown.is_cancelled() => {
            tracing::info!(error = %e, "stopped before start finished");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    app.run(shutdown).await
}

async fn api_keys(
    args: &pulse_server::settings::ServerArgs,
    create: bool,
    name: &str,
) -> anyhow::Result<()> {
    let name = name.trim();
    if name.is_empty() {
        bail!("--name must not be empty");
    }
    let url = args
        .services
        .database_url
        .clone()
        .context("DATABASE_URL is required")?;
    let pool = pulse_store::pg::pool(&url, 1)?;
    pulse_store::pg::migrate(&pool)
        .await
        .context("connecting to postgres")?;
    let keys = pulse_store::pg::api_keys::ApiKeyStore::new(pool);
    if create {
        println!("{}", keys.create(name).await?);
    } else {
        let n = keys.revoke(name).await?;
        if n == 0 {
            bail!("no live API key named {name:?}");
        }
        eprintln!("revoked {n} key(s) named {name:?}");
    }
    Ok(())
}
