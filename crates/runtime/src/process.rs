//! Process plumbing shared by the `server` and `worker` binaries: logging
//! setup, signals, binding, readiness probes and waiting for dependencies at
//! start.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use pulse_store::{pg, Queue, ResultsStore, StoreError};
use secrecy::{ExposeSecret, SecretString};

/// Logs to stdout: human-readable by default, one JSON object per line with
/// `LOG_FORMAT=json`. `RUST_LOG` filters (default `info`). Every line names
/// the binary that wrote it (`server`, `worker`).
pub fn init_tracing(binary: &'static str, format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if format.eq_ignore_ascii_case("json") {
        builder
            .event_format(Tagged {
                binary,
                inner: tracing_subscriber::fmt::format().json(),
                json: true,
            })
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .try_init()
    } else {
        builder
            .event_format(Tagged {
                binary,
                inner: tracing_subscriber::fmt::format(),
                json: false,
            })
            .try_init()
    };
}

/// An event format that names the binary: `binary=server ...` in text, a
/// `"binary"` key in JSON.
struct Tagged<F> {
    binary: &'static str,
    inner: F,
    json: bool,
}

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for Tagged<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if !self.json {
            write!(writer, "{} ", self.binary)?;
            return self.inner.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.inner.format_event(
            ctx,
            tracing_subscriber::fmt::format::Writer::new(&mut line),
            event,
        )?;
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{\"binary\":\"{}\",{rest}", self.binary),
            None => writer.write_str(&line),
        }
    }
}

/// Names the first dependency that does not answer within 2 s, if any.
pub async fn first_unready(
    pool: &sqlx::PgPool,
    queue: &Queue,
    results: &ResultsStore,
) -> Option<&'static str> {
    let limit = Duration::from_secs(2);
    let (p, r, c) = tokio::join!(
        tokio::time::timeout(limit, pg::ping(pool)),
        tokio::time::timeout(limit, queue.ping()),
        tokio::time::timeout(limit, results.ping()),
    );
    if !matches!(p, Ok(Ok(()))) {
        Some("postgres")
    } else if !matches!(r, Ok(Ok(()))) {
        Some("redis")
    } else if !matches!(c, Ok(Ok(()))) {
        Some("clickhouse")
    } else {
        None
    }
}

/// `host:port` of a service URL, for messages (never its password).
pub fn host_port(url: &str, default_port: u16) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}",
            u.host_str().unwrap_or("?"),
            u.port().unwrap_or(default_port)
        ),
        Err(_) => "?".to_string(),
    }
}

/// Retries `attempt` once a second until it succeeds, `limit` passes or
/// `shutdown` fires: dependencies may still be starting (docker compose).
/// A permanent error (see [`is_permanent`]) fails at once. Every retry is
/// logged with `what`, `target` (`host:port`) and the cause; the error
/// returned names them too. Shutdown interrupts an attempt as well as the
/// pause between attempts.
pub async fn retry_start<T, F, Fut>(
    what: &'static str,
    target: &str,
    limit: Duration,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let deadline = Instant::now() + limit;
    let failed = |e: StoreError| StoreError::Start {
        what,
        target: target.to_string(),
        source: Box::new(e),
    };
    loop {
        let result = tokio::select! {
            r = attempt() => r,
            _ = shutdown.cancelled() => return Err(StoreError::Shutdown(what)),
        };
        match result {
            Ok(v) => return Ok(v),
            Err(e) if e.is_permanent() => return Err(failed(e)),
            Err(e) if Instant::now() < deadline => {
                tracing::warn!(what, addr = target, error = %e, "dependency not ready, retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => return Err(StoreError::Shutdown(what)),
                }
            }
            Err(e) => return Err(failed(e)),
        }
    }
}

/// A token cancelled on the first SIGTERM or Ctrl-C.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let signal = token.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown signal received");
        signal.cancel();
    });
    token
}

/// Binds `host:port` (port 0 picks a free one), returning the listener and
/// the address actually bound.
pub async fn bind(
    host: &str,
    port: u16,
) -> std::io::Result<(tokio::net::TcpListener, std::net::SocketAddr)> {
    let listener = tokio::net::TcpListener::bind((host, port)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// The settings every process shares: where the services are.
#[derive(Clone)]
pub struct ServiceSettings {
    /// Secrets (they carry passwords): never printed, wiped when dropped.
    pub database_url: SecretString,
    pub redis_url: SecretString,
    pub clickhouse: pulse_store::ClickHouseDsn,
    /// Prefix of every Redis key (`REDIS_PREFIX`, default `pulse`).
    pub redis_prefix: String,
    /// Postgres pool size (`DATABASE_MAX_CONNECTIONS`, default 10).
    pub database_max_connections: u32,
    /// `LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: String,
}

impl std::fmt::Debug for ServiceSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceSettings")
            .field(
                "database_url",
                &pulse_store::Redacted(self.database_url.expose_secret()).to_string(),
            )
            .field(
                "redis_url",
                &pulse_store::Redacted(self.redis_url.expose_secret()).to_string(),
            )
            .field("clickhouse", &self.clickhouse)
            .field("redis_prefix", &self.redis_prefix)
            .field("database_max_connections", &self.database_max_connections)
            .field("log_format", &self.log_format)
            .finish()
    }
}

impl ServiceSettings {
    /// Settings for the given services, other fields at their defaults.
    pub fn new(
        database_url: &str,
        redis_url: &str,
        clickhouse_dsn: &str,
        redis_prefix: &str,
    ) -> Result<ServiceSettings, StoreError> {
        Ok(ServiceSettings {
            database_url: database_url.into(),
            redis_url: redis_url.into(),
            clickhouse: pulse_store::ClickHouseDsn::parse(clickhouse_dsn)?,
            redis_prefix: redis_prefix.to_string(),
            database_max_connections: 10,
            log_format: "text".to_string(),
        })
    }
}

/// Resolves the addresses of Postgres, Redis and ClickHouse from the
/// settings and adds them to the targets no check may reach
/// ([`pulse_core::policy::protect_own`]). A name that does not resolve now
/// is skipped: the connection just made used it, so that is rare.
pub async fn protect_own_services(settings: &ServiceSettings) {
    let redis_url = pulse_store::config::normalize_redis_url(settings.redis_url.expose_secret());
    let targets = [
        host_port(settings.database_url.expose_secret(), 5432),
        host_port(&redis_url, 6379),
        host_port(&settings.clickhouse.url, 8123),
    ];
    for target in targets {
        let host = target.rsplit_once(':').map_or("", |(h, _)| h);
        if host.is_empty() || host == "?" {
            continue;
        }
        match tokio::net::lookup_host(&target).await {
            Ok(addrs) => pulse_core::policy::protect_own(addrs).forever(),
            Err(e) => {
                tracing::warn!(%target, error = %e, "could not resolve a service to protect it")
            }
        }
    }
}

/// Connected handles to all three services.
#[derive(Clone)]
pub struct Services {
    pub pool: sqlx::PgPool,
    pub queue: Queue,
    pub results: ResultsStore,
}

/// How long a process waits for its dependencies at start.
pub const STARTUP_LIMIT: Duration = Duration::from_secs(60);

impl Services {
    /// Connects, waiting up to [`STARTUP_LIMIT`] for each service, applies
    /// the Postgres migrations and makes sure the ClickHouse table exists.
    /// Both server and worker do this: sqlx's advisory lock and `IF NOT
    /// EXISTS` make it safe when several start together.
    pub async fn connect(
        settings: &ServiceSettings,
        shutdown: &CancellationToken,
    ) -> Result<Services, StoreError> {
        let database_url = settings.database_url.expose_secret();
        let pool = pg::pool(database_url, settings.database_max_connections)?;
        let target = host_port(database_url, 5432);
        retry_start("postgres", &target, STARTUP_LIMIT, shutdown, || async {
            pg::probe(database_url).await?;
            pg::ping(&pool).await
        })
        .await?;
        tokio::select! {
            r = pg::migrate(&pool) => r?,
            _ = shutdown.cancelled() => return Err(StoreError::Shutdown("postgres")),
        }
        let redis_url =
            pulse_store::config::normalize_redis_url(settings.redis_url.expose_secret());
        let target = host_port(&redis_url, 6379);
        let queue = retry_start("redis", &target, STARTUP_LIMIT, shutdown, || {
            Queue::connect(settings.redis_url.expose_secret(), &settings.redis_prefix)
        })
        .await?;
        let results = ResultsStore::new(&settings.clickhouse);
        let target = host_port(&settings.clickhouse.url, 8123);
        retry_start("clickhouse", &target, STARTUP_LIMIT, shutdown, || {
            results.migrate()
        })
        .await?;
        protect_own_services(settings).await;
        Ok(Services {
            pool,
            queue,
            results,
        })
    }

    pub async fn first_unready(&self) -> Option<&'static str> {
        first_unready(&self.pool, &self.queue, &self.results).await
    }
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    #[test]
    fn service_settings_never_print_their_passwords() {
        let s = ServiceSettings::new(
            "postgres://pulse:pg-s3cret@db:5432/pulse",
            "redis://:redis-s3cret@cache:6379",
            "http://pulse:ch-s3cret@ch:8123/pulse",
            "pulse",
        )
        .unwrap();
        let shown = format!("{s:?}");
        for secret in ["pg-s3cret", "redis-s3cret", "ch-s3cret"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        // The hosts still show, for whoever reads the logs.
        assert!(
            shown.contains("db:5432") && shown.contains("cache:6379"),
            "{shown}"
        );
        assert_eq!(
            s.database_url.expose_secret(),
            "postgres://pulse:pg-s3cret@db:5432/pulse"
        );
        assert_eq!(s.clickhouse.password.expose_secret(), "ch-s3cret");
    }
}
