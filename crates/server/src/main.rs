//! `server`: the API and scheduler. Also manages API keys:
//!
//!   server create-api-key --name NAME   prints a new key alone on stdout
//!   server revoke-api-key --name NAME   revokes every key with that name

use anyhow::{bail, Context};
use pulse_server::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => serve().await,
        Some(cmd @ ("create-api-key" | "revoke-api-key")) => {
            let name = match args.get(1..).unwrap_or_default() {
                [flag, name] if flag == "--name" && !name.trim().is_empty() => name.trim(),
                _ => bail!("usage: server {cmd} --name <name>"),
            };
            api_keys(cmd, name).await
        }
        Some(other) => bail!(
            "unknown command {other:?}; usage: server [create-api-key --name <name> | revoke-api-key --name <name>]"
        ),
    }
}

async fn serve() -> anyhow::Result<()> {
    let settings = Settings::from_env().context("reading settings")?;
    pulse_store::runtime::init_tracing(&settings.services.log_format);
    tracing::info!(?settings, "starting server");
    let shutdown = pulse_store::runtime::shutdown_on_signal();
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

async fn api_keys(cmd: &str, name: &str) -> anyhow::Result<()> {
    let url = pulse_store::runtime::env_required("DATABASE_URL")?;
    let pool = pulse_store::pg::pool(&url, 1)?;
    pulse_store::pg::migrate(&pool)
        .await
        .context("connecting to postgres")?;
    let keys = pulse_store::pg::api_keys::ApiKeyStore::new(pool);
    if cmd == "create-api-key" {
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
