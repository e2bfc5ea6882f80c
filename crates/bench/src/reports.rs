//! `bench reports`: the reports benchmark. Starts throwaway services and the
//! real `server`, creates C checks in Postgres, loads N generated runs over
//! D days straight into ClickHouse (`INSERT ... SELECT` from `numbers()`,
//! through the rollup views as any insert), waits for ClickHouse's merges
//! to settle, then times each report endpoint through the HTTP API.
//!
//! Usage: `bench reports --help`.

use std::time::{Duration, Instant};

use anyhow::Context;
use pulse_store::reports::{generated_check_id, CHECKS_TABLE, HOUR_TABLE, MINUTE_TABLE};
use pulse_store::{ClickHouseDsn, ResultsStore};

use crate::run::{bin, free_port, spawn, terminate, wait_ready, Services};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Runs generated.
    #[arg(long, default_value_t = 100_000_000)]
    pub runs: u64,
    /// Checks the runs belong to.
    #[arg(long, default_value_t = 10_000)]
    pub checks: u64,
    /// Days the runs span, ending now.
    #[arg(long, default_value_t = 30)]
    pub days: u64,
    /// Requests timed per endpoint.
    #[arg(long, default_value_t = 100)]
    pub requests: usize,
    /// Runs per INSERT ... SELECT.
    #[arg(long, default_value_t = 10_000_000)]
    pub chunk: u64,
    /// Most seconds to wait for ClickHouse's merges to settle.
    #[arg(long, default_value_t = 300)]
    pub settle_secs: u64,
    /// Checks (the first ones) shown on the public status page.
    #[arg(long, default_value_t = 300)]
    pub public: u64,
}

impl Args {
    pub fn check(&self) -> anyhow::Result<()> {
        let a = self;
        anyhow::ensure!(
            a.runs >= a.checks && a.checks > 0 && a.days > 0 && a.chunk > 0 && a.requests > 0,
            "runs >= checks > 0, days, chunk and requests positive"
        );
        Ok(())
    }
}

/// Latency of one endpoint, in milliseconds.
struct Timing {
    name: String,
    target_ms: Option<f64>,
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
    bytes: usize,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[(((sorted.len() - 1) as f64) * q).round() as usize]
}

async fn time(
    http: &reqwest::Client,
    name: &str,
    target_ms: Option<f64>,
    n: usize,
    mut url: impl FnMut(usize) -> String,
) -> anyhow::Result<Timing> {
    // Warm-up: the first requests load marks and connections.
    for i in 0..3 {
        http.get(url(n + i)).send().await?.error_for_status()?;
    }
    let mut ms = Vec::with_capacity(n);
    let mut bytes = 0;
    for i in 0..n {
        let start = Instant::now();
        let resp = http.get(url(i)).send().await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        ms.push(start.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            status.is_success(),
            "{name}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        bytes = body.len();
    }
    Ok(Timing::of(name, target_ms, ms, bytes))
}

impl Timing {
    /// The quantiles of `ms` (not empty), one per request.
    fn of(name: &str, target_ms: Option<f64>, mut ms: Vec<f64>, bytes: usize) -> Timing {
        ms.sort_by(f64::total_cmp);
        Timing {
            name: name.to_string(),
            target_ms,
            p50: quantile(&ms, 0.5),
            p95: quantile(&ms, 0.95),
            p99: quantile(&ms, 0.99),
            max: ms[ms.len() - 1],
            bytes,
        }
    }
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct Size {
    table: String,
    rows: u64,
    bytes: u64,
    parts: u64,
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let server_bin = bin("server")?;
    eprintln!("bench reports: starting services");
    let services = Services::start().await?;
    let env = services.env.clone();
    let api_port = free_port()?;
    let mut server = spawn(
        &server_bin,
        &env,
        &[
            ("PORT", api_port.to_string()),
            ("API_AUTH", "off".into()),
            ("SCHEDULER_ENABLED", "false".into()),
        ],
    )?;
    let base = format!("http://127.0.0.1:{api_port}");
    wait_ready(&format!("{base}/ready")).await?;

    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&env["DATABASE_URL"])
        .await?;
    // The checks the runs belong to (paused: nothing runs them), created
    // before the first run so every minute of the window counts.
    sqlx::query(
        "INSERT INTO checks (id, name, url, interval_seconds, enabled, created_at, public) \
         SELECT ('00000000-0000-4000-8000-' || (100000000000 + i)::text)::uuid, 'bench ' || i, \
            'http://127.0.0.1:9/', 300, false, now() - ($2 + 1) * interval '1 day', i < $3 \
         FROM generate_series(0, $1 - 1) AS i",
    )
    .bind(args.checks as i64)
    .bind(args.days as f64)
    .bind(args.public as i64)
    .execute(&pool)
    .await?;

    let dsn = ClickHouseDsn::parse(&env["CLICKHOUSE_DSN"])?;
    let results = ResultsStore::new(&dsn);
    let now = chrono::Utc::now().timestamp();
    let span = (args.days * 86_400) as i64;
    let per_check = args.runs / args.checks;
    let step = (span as u64 / per_check.max(1)).max(1) as u32;
    let from = now - i64::from(step) * per_check as i64;
    eprintln!(
        "bench reports: loading {} runs ({} checks, a run every {step} s each, {} days)",
        args.runs, args.checks, args.days
    );
    let load = Instant::now();
    let mut first = 0;
    while first < args.runs {
        let count = args.chunk.min(args.runs - first);
        let t = Instant::now();
        results
            .generate_runs(args.checks, first, count, from, step, 1)
            .await
            .with_context(|| format!("loading runs {first}..{}", first + count))?;
        eprintln!(
            "bench reports: {} runs loaded ({:.0} runs/s)",
            first + count,
            count as f64 / t.elapsed().as_secs_f64()
        );
        first += count;
    }
    let load_s = load.elapsed().as_secs_f64();

    // Let background merges settle, as they would long after loading.
    let ch = clickhouse::Client::default()
        .with_url(&dsn.url)
        .with_user(&dsn.user)
        .with_password(secrecy::ExposeSecret::expose_secret(&dsn.password))
        .with_database(&dsn.database)
        .with_validation(false);
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(args.settle_secs) {
        let merges: u64 = ch
            .query("SELECT count() FROM system.merges WHERE database = currentDatabase()")
            .fetch_one()
            .await?;
        if merges == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let settle_s = settle.elapsed().as_secs_f64();
    let sizes: Vec<Size> = ch
        .query(&format!(
            "SELECT table, sum(rows), sum(bytes), count() FROM system.parts \
             WHERE database = currentDatabase() AND active \
             AND table IN ('check_runs', '{MINUTE_TABLE}', '{HOUR_TABLE}', '{CHECKS_TABLE}') \
             GROUP BY table ORDER BY table"
        ))
        .fetch_all()
        .await?;

    let http = reqwest::Client::new();
    let n = args.requests;
    let pick = |i: usize| generated_check_id((i as u64 * 7919) % args.checks);
    let mut timings = Vec::new();
    timings.push(
        time(
            &http,
            "one check, 30 days: /checks/:id/stats?window=30d",
            Some(50.0),
            n,
            |i| format!("{base}/checks/{}/stats?window=30d", pick(i)),
        )
        .await?,
    );
    timings.push(
        time(
            &http,
            "one check, 24 h at 1 min: /checks/:id/series?window=24h&bucket=1m",
            Some(50.0),
            n,
            |i| format!("{base}/checks/{}/series?window=24h&bucket=1m", pick(i)),
        )
        .await?,
    );
    timings.push(
        time(
            &http,
            "one check, 30 days hourly: /checks/:id/series?window=30d&bucket=1h",
            None,
            n,
            |i| format!("{base}/checks/{}/series?window=30d&bucket=1h", pick(i)),
        )
        .await?,
    );
    timings.push(
        time(
            &http,
            "every check, 24 h: /stats?window=24h",
            Some(500.0),
            n.min(30),
            |_| format!("{base}/stats?window=24h"),
        )
        .await?,
    );
    timings.push(
        time(
            &http,
            "every check, 30 days: /stats?window=30d",
            None,
            n.min(10),
            |_| format!("{base}/stats?window=30d"),
        )
        .await?,
    );
    let status = status_page(&base, n).await?;
    terminate(&mut server, Duration::from_secs(10)).await;
    drop(services);

    println!(
        "Reports benchmark: {} runs, {} checks, {} days (a run every {step} s per check); \
         loaded in {load_s:.0} s ({:.0} runs/s through the rollup views), merges settled in {settle_s:.0} s.\n",
        args.runs,
        args.checks,
        args.days,
        args.runs as f64 / load_s
    );
    println!("| table | rows | parts | on disk |");
    println!("|---|---:|---:|---:|");
    for s in &sizes {
        println!(
            "| `{}` | {} | {} | {:.0} MB |",
            s.table,
            s.rows,
            s.parts,
            s.bytes as f64 / 1e6
        );
    }
    println!();
    println!("| endpoint | requests | p50 ms | p95 ms | p99 ms | max ms | target p95 | body |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (t, count) in timings.iter().zip([n, n, n, n.min(30), n.min(10)]) {
        let target = t.target_ms.map_or("-".to_string(), |ms| {
            format!(
                "< {ms:.0} ms {}",
                if t.p95 < ms { "(met)" } else { "(missed)" }
            )
        });
        println!(
            "| {} | {count} | {:.1} | {:.1} | {:.1} | {:.1} | {target} | {:.0} kB |",
            t.name,
            t.p50,
            t.p95,
            t.p99,
            t.max,
            t.bytes as f64 / 1000.0
        );
    }
    println!();
    println!(
        "Status page ({} public checks): first render {:.0} ms, {:.0} kB; then \
         (the rendering shared for 5 s) p50 {:.1} ms, p95 {:.1} ms over {} visitors. \
         `/health` while 20 visitors load `/status` in a loop: p50 {:.1} ms, p99 {:.1} ms \
         ({} status loads served, {} told to slow down).",
        args.public.min(args.checks),
        status.cold_ms,
        status.bytes as f64 / 1000.0,
        status.cached.p50,
        status.cached.p95,
        n.min(30),
        status.health.p50,
        status.health.p99,
        status.served,
        status.limited,
    );
    Ok(())
}

/// What the status page's timing found.
struct StatusTiming {
    cold_ms: f64,
    bytes: usize,
    cached: Timing,
    health: Timing,
    served: usize,
    limited: usize,
}

/// A client whose requests come from `127.0.0.<host>` (another visitor to
/// the per-IP limit).
fn visitor(host: u8) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, host]))
        .build()?)
}

/// Times `/status`: its first render, then visitors each from their own
/// address, then `/health` while 20 visitors load `/status` in a loop.
async fn status_page(base: &str, n: usize) -> anyhow::Result<StatusTiming> {
    let url = format!("{base}/status");
    let start = Instant::now();
    let resp = visitor(2)?.get(&url).send().await?.error_for_status()?;
    let bytes = resp.bytes().await?.len();
    let cold_ms = start.elapsed().as_secs_f64() * 1000.0;
    let mut ms = Vec::new();
    for i in 0..n.min(30) {
        let http = visitor(10 + i as u8)?;
        let start = Instant::now();
        http.get(&url)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        ms.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let cached = Timing::of("/status", Some(500.0), ms, bytes);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loops = tokio::task::JoinSet::new();
    for v in 0..20u8 {
        let (http, url, stop) = (visitor(100 + v)?, url.clone(), stop.clone());
        loops.spawn(async move {
            let (mut served, mut limited) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match http.get(&url).send().await {
                    Ok(r) if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS => limited += 1,
                    Ok(r) => {
                        let _ = r.bytes().await;
                        served += 1;
                    }
                    Err(_) => {}
                }
            }
            (served, limited)
        });
    }
    let health = time(&reqwest::Client::new(), "/health", None, n.max(100), |_| {
        format!("{base}/health")
    })
    .await?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut served, mut limited) = (0, 0);
    for (s, l) in loops.join_all().await {
        served += s;
        limited += l;
    }
    Ok(StatusTiming {
        cold_ms,
        bytes,
        cached,
        health,
        served,
        limited,
    })
}
