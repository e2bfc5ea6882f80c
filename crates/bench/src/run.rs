//! One benchmark run: bring everything up, load, measure, drain, count.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use sqlx::Row;
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

use crate::{procs, Args};

#[derive(Debug, Serialize, Default)]
pub struct ProcStat {
    pub name: String,
    pub cpu_s: f64,
    pub peak_rss_mb: f64,
}

#[derive(Debug, Serialize, Default)]
pub struct Outcome {
    pub started_at: String,
    pub machine: String,
    pub target_rate: f64,
    /// Runs executed in the window (by start time) per second: runs that
    /// made a request (a slot recorded `missed` is not one).
    pub runs_per_sec: f64,
    pub runs_in_window: u64,
    /// Start minus due time of the runs of slots due in the window.
    pub lag_ms: Percentiles,
    /// Slots due in the window that were not run: no result, or recorded
    /// `missed` (no request made).
    pub missed_slots: u64,
    /// Of those, the ones recorded `missed` (by reason).
    pub recorded_missed: HashMap<String, u64>,
    /// Slots due in the window with more than one result.
    pub duplicated_slots: u64,
    /// Over the whole run: target hits beyond the distinct slots stored.
    pub target_extra_executions: u64,
    /// Over the whole run: slots between a check's first and last stored
    /// slot that the target never saw.
    pub target_missed: u64,
    pub target_hits_total: u64,
    pub clickhouse_rows_total: u64,
    pub statuses: HashMap<String, u64>,
    pub pg_xacts_per_run: f64,
    pub procs: Vec<ProcStat>,
    pub pipeline_cpu_per_run_us: f64,
    pub baseline: Option<Baseline>,
    pub claim_plans: Vec<String>,
}

#[derive(Debug, Serialize, Default)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Serialize, Default)]
pub struct Baseline {
    pub requests: u64,
    pub errors: u64,
    pub cpu_per_request_us: f64,
    pub ratio: f64,
}

pub(crate) struct Services {
    dir: PathBuf,
    pub(crate) env: HashMap<String, String>,
}

fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

impl Services {
    pub(crate) async fn start() -> anyhow::Result<Services> {
        let dir =
            std::env::temp_dir().join(format!("pulse-bench-{}", uuid::Uuid::new_v4().simple()));
        let script = repo_root().join("scripts/services.sh");
        // The benchmark measures Postgres as it runs in production: fsync,
        // synchronous commit and full-page writes on (tests turn them off).
        let ok = Command::new(&script)
            .arg("start")
            .arg(&dir)
            .env("PULSE_PG_DURABLE", "1")
            .status()
            .await?;
        if !ok.success() {
            bail!("{} start failed", script.display());
        }
        let env = std::fs::read_to_string(dir.join("env"))?
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Services { dir, env })
    }

    fn pid(&self, name: &str) -> anyhow::Result<u32> {
        let file = if name == "pg" {
            self.dir.join("pg/data/postmaster.pid")
        } else {
            self.dir.join(format!("{name}.pid"))
        };
        let raw = std::fs::read_to_string(&file).with_context(|| file.display().to_string())?;
        Ok(raw.lines().next().unwrap_or("").trim().parse()?)
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo_root().join("scripts/services.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(crate) fn bin(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::current_exe()?
        .parent()
        .map(|d| d.join(name))
        .context("exe dir")?;
    if !path.exists() {
        bail!(
            "{} missing: build the workspace binaries first (make bench does)",
            path.display()
        );
    }
    Ok(path)
}

pub(crate) fn spawn(
    path: &Path,
    env: &HashMap<String, String>,
    extra: &[(&str, String)],
) -> anyhow::Result<Child> {
    let mut cmd = Command::new(path);
    cmd.env_clear()
        .envs(env)
        .env("RUST_LOG", "warn")
        .env("HOST", "127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    Ok(cmd.spawn()?)
}

pub(crate) async fn terminate(child: &mut Child, limit: Duration) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    if tokio::time::timeout(limit, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

pub(crate) async fn wait_ready(url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(url).await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{url} not ready in 60 s")
}

fn percentiles(mut v: Vec<i64>) -> Percentiles {
    if v.is_empty() {
        return Percentiles::default();
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize] as f64;
    Percentiles {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        max: *v.last().unwrap() as f64,
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct Row_ {
    #[serde(with = "clickhouse::serde::uuid")]
    check_id: uuid::Uuid,
    run_at_ms: i64,
    scheduled_at_ms: i64,
    status: String,
    failure_reason: Option<String>,
    location: String,
}

pub async fn run(args: &Args) -> anyhow::Result<Outcome> {
    let mut out = Outcome {
        started_at: chrono::Utc::now().to_rfc3339(),
        machine: machine(),
        target_rate: (args.checks * args.locations as u64) as f64 / args.interval_s as f64,
        ..Outcome::default()
    };
    let (server_bin, worker_bin) = (bin("server")?, bin("worker")?);
    eprintln!("bench: starting services");
    let services = Services::start().await?;
    let env = services.env.clone();

    // Target, as its own process.
    let mut target = Command::new(std::env::current_exe()?)
        .args([
            "target",
            &args.checks.to_string(),
            &args.target_delay_ms.to_string(),
            if args.https { "https" } else { "http" },
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines =
        tokio::io::BufReader::new(target.stdout.take().context("target stdout")?).lines();
    let target_port: u16 = lines.next_line().await?.context("target port")?.parse()?;
    let target_pid = target.id().context("target pid")?;

    // Server (migrations, API, scheduler).
    let api_port = free_port()?;
    let mut server = spawn(
        &server_bin,
        &env,
        &[
            ("PORT", api_port.to_string()),
            ("SCHEDULER_POLL_MS", args.poll_ms.to_string()),
        ],
    )?;
    let server_pid = server.id().context("server pid")?;
    wait_ready(&format!("http://127.0.0.1:{api_port}/ready")).await?;

    // Checks, spread evenly over one interval, first due 3 s from now.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&env["DATABASE_URL"])
        .await?;
    let interval_ms = args.interval_s as i64 * 1000;
    let base_ms = now_ms() + 3000 + (args.checks as i64 / 20_000) * 1000;
    let t = Instant::now();
    // With --assertions: status, a JSONPath and the response time, judged
    // on the target's JSON body.
    let assertions = if args.assertions {
        serde_json::json!([
            {"source": "status_code", "comparison": "equals", "target": "200"},
            {"source": "json_body", "property": "$.status", "comparison": "equals", "target": "ok"},
            {"source": "response_time", "comparison": "less_than", "target": "2000"}
        ])
    } else {
        serde_json::json!([])
    };
    sqlx::query(
        "INSERT INTO checks (id, name, url, interval_seconds, timeout_ms, alert_threshold, \
            next_run_at, tls_verify, assertions, locations) \
         SELECT gen_random_uuid(), 'bench-' || i, $1 || i, $2, $3, 3, \
                to_timestamp(($4 + (i * $5 / $6)) / 1000.0), false, $7, $8 \
         FROM generate_series(0, $6 - 1) AS i",
    )
    .bind(target_base(args, target_port))
    .bind(args.interval_s as i32)
    .bind(args.timeout_ms as i32)
    .bind(base_ms)
    .bind(interval_ms)
    .bind(args.checks as i64)
    .bind(assertions)
    .bind(args.location_names())
    .execute(&pool)
    .await?;
    // Each location's schedule: every slot in every location.
    sqlx::query(
        "INSERT INTO check_schedules (check_id, location, period_seconds, next_run_at) \
         SELECT c.id, l, c.interval_seconds, c.next_run_at FROM checks c, unnest(c.locations) l",
    )
    .execute(&pool)
    .await?;
    sqlx::query("ANALYZE checks").execute(&pool).await?;
    sqlx::query("ANALYZE check_schedules")
        .execute(&pool)
        .await?;
    eprintln!(
        "bench: inserted {} checks in {:.1} s",
        args.checks,
        t.elapsed().as_secs_f64()
    );
    let ids: HashMap<uuid::Uuid, usize> =
        sqlx::query("SELECT id, (regexp_replace(url, '.*/t/', ''))::int AS n FROM checks")
            .fetch_all(&pool)
            .await?
            .into_iter()
            .map(|r| (r.get::<uuid::Uuid, _>("id"), r.get::<i32, _>("n") as usize))
            .collect();

    if args.explain {
        out.claim_plans
            .push(explain_claim(&pool, "before the run").await?);
    }

    // Workers.
    // At least one per location, spread over them in turn.
    let mut workers = Vec::new();
    let names = args.location_names();
    for i in 0..args.workers.max(names.len()) {
        workers.push(spawn(
            &worker_bin,
            &env,
            &[
                ("WORKER_PORT", free_port()?.to_string()),
                ("WORKER_ID", format!("bench-{i}")),
                ("WORKER_CONCURRENCY", args.concurrency.to_string()),
                ("LOCATION", names[i % names.len()].clone()),
            ],
        )?);
    }
    let worker_pids: Vec<u32> = workers.iter().filter_map(|w| w.id()).collect();

    let mut tracked: Vec<(String, u32)> = vec![("server".into(), server_pid)];
    for (i, pid) in worker_pids.iter().enumerate() {
        tracked.push((format!("worker-{i}"), *pid));
    }
    tracked.push(("postgres".into(), services.pid("pg")?));
    tracked.push(("redis".into(), services.pid("redis")?));
    tracked.push(("clickhouse".into(), services.pid("ch")?));
    tracked.push(("target".into(), target_pid));

    // Peak RSS sampler.
    let peaks: Arc<Mutex<Vec<f64>>> = Arc::new(Mutex::new(vec![0.0; tracked.len()]));
    let sampling = Arc::new(AtomicU64::new(1));
    let sampler = {
        let (peaks, sampling, tracked) = (peaks.clone(), sampling.clone(), tracked.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) == 1 {
                let now: Vec<f64> = tracked.iter().map(|(_, pid)| procs::rss_mb(*pid)).collect();
                {
                    let mut p = peaks.lock().unwrap();
                    for (slot, v) in p.iter_mut().zip(now) {
                        *slot = slot.max(v);
                    }
                }
                // Reading every process's smaps is not free (Postgres's
                // backends, ClickHouse's threads): every 0.5 s it took
                // about 0.07 of a core (perf) from what it measures.
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        })
    };

    // Warm-up, then the measured window.
    let t0 = base_ms + args.warmup_s as i64 * 1000;
    sleep_until_ms(t0).await;
    let cpu0: Vec<f64> = tracked
        .iter()
        .map(|(_, p)| procs::cpu_seconds(*p))
        .collect();
    let x0 = pg_xacts(&pool).await?;
    eprintln!("bench: measuring for {} s", args.duration_s);
    let t1 = t0 + args.duration_s as i64 * 1000;
    sleep_until_ms(t1).await;
    let cpu1: Vec<f64> = tracked
        .iter()
        .map(|(_, p)| procs::cpu_seconds(*p))
        .collect();
    let x1 = pg_xacts(&pool).await?;

    if args.explain {
        out.claim_plans
            .push(explain_claim(&pool, "after the run").await?);
    }

    eprintln!("bench: window done, draining");
    // Drain: keep scheduling a little past the window so every slot due in
    // it is claimed, then stop scheduling, let workers finish what is
    // queued, stop them.
    tokio::time::sleep(Duration::from_millis(args.poll_ms + 1500)).await;
    terminate(&mut server, Duration::from_secs(10)).await;
    let drain_deadline = Instant::now() + Duration::from_millis(args.timeout_ms + 15_000);
    let queue = pulse_store::Queue::connect(&env["REDIS_URL"], "pulse").await?;
    while Instant::now() < drain_deadline {
        let mut queued = 0;
        for name in &names {
            queued += queue.len(name).await?;
        }
        let in_flight: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM check_schedules WHERE lease_token IS NOT NULL",
        )
        .fetch_one(&pool)
        .await?;
        if queued == 0 && in_flight == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("bench: queue drained, stopping workers");
    for w in &mut workers {
        terminate(w, Duration::from_secs(20)).await;
    }
    eprintln!("bench: counting");
    sampling.store(0, Ordering::Relaxed);
    let _ = sampler.await;
    let peaks = peaks.lock().unwrap().clone();
    for (i, (name, pid)) in tracked.iter().enumerate() {
        let hwm = if name == "server" || name.starts_with("worker") || name == "target" {
            procs::peak_rss_mb(*pid)
        } else {
            0.0
        };
        out.procs.push(ProcStat {
            name: name.clone(),
            cpu_s: cpu1[i] - cpu0[i],
            peak_rss_mb: peaks[i].max(hwm),
        });
    }

    // Count.
    let dsn = pulse_store::ClickHouseDsn::parse(&env["CLICKHOUSE_DSN"])?;
    let ch = clickhouse::Client::default()
        .with_url(&dsn.url)
        .with_user(&dsn.user)
        .with_password(secrecy::ExposeSecret::expose_secret(&dsn.password))
        .with_database(&dsn.database)
        .with_validation(false);
    let rows: Vec<Row_> = ch
        .query(
            "SELECT check_id, run_at_ms, scheduled_at_ms, status, failure_reason, location \
             FROM check_runs",
        )
        .fetch_all()
        .await?;
    // Close its keep-alive connection now: ClickHouse waits for open
    // connections when it shuts down.
    drop(ch);
    let hits: Vec<u64> = stats_client()?
        .get(format!(
            "{}stats",
            target_base(args, target_port).trim_end_matches("t/")
        ))
        .send()
        .await?
        .json()
        .await?;
    count(&mut out, args, &rows, &hits, &ids, t0, t1);
    out.pg_xacts_per_run = (x1 - x0) as f64 / out.runs_in_window.max(1) as f64;
    let pipeline_cpu: f64 = out
        .procs
        .iter()
        .filter(|p| p.name != "target")
        .map(|p| p.cpu_s)
        .sum();
    out.pipeline_cpu_per_run_us = pipeline_cpu * 1e6 / out.runs_in_window.max(1) as f64;

    if args.baseline {
        eprintln!("bench: baseline (bare reqwest loop)");
        let t = Instant::now();
        let b = baseline(args, target_port).await;
        eprintln!("bench: baseline took {:.1} s", t.elapsed().as_secs_f64());
        out.baseline = Some(Baseline {
            ratio: out.pipeline_cpu_per_run_us / b.cpu_per_request_us.max(1e-9),
            ..b
        });
    }
    pool.close().await;
    drop(target);
    eprintln!("bench: stopping services");
    drop(services);
    Ok(out)
}

fn count(
    out: &mut Outcome,
    args: &Args,
    rows: &[Row_],
    hits: &[u64],
    ids: &HashMap<uuid::Uuid, usize>,
    t0: i64,
    t1: i64,
) {
    let interval_ms = args.interval_s as i64 * 1000;
    out.clickhouse_rows_total = rows.len() as u64;
    out.target_hits_total = hits.iter().sum();
    let mut lags = Vec::new();
    let mut per_slot: HashMap<(uuid::Uuid, &str, i64), u64> = HashMap::new();
    let mut per_check: HashMap<(uuid::Uuid, &str), Vec<i64>> = HashMap::new();
    let mut ran_slots = std::collections::HashSet::new();
    for r in rows {
        let ran = r.status != "missed";
        if ran && (t0..t1).contains(&r.run_at_ms) {
            out.runs_in_window += 1;
        }
        if (t0..t1).contains(&r.scheduled_at_ms) {
            let slot = (r.check_id, r.location.as_str(), r.scheduled_at_ms);
            if ran {
                lags.push(r.run_at_ms - r.scheduled_at_ms);
                ran_slots.insert(slot);
            } else {
                *out.recorded_missed
                    .entry(r.failure_reason.clone().unwrap_or_default())
                    .or_default() += 1;
            }
            *per_slot.entry(slot).or_default() += 1;
            *out.statuses.entry(r.status.clone()).or_default() += 1;
        }
        per_check
            .entry((r.check_id, r.location.as_str()))
            .or_default()
            .push(r.scheduled_at_ms);
    }
    out.runs_per_sec = out.runs_in_window as f64 / args.duration_s as f64;
    out.lag_ms = percentiles(lags);
    out.duplicated_slots = per_slot.values().filter(|n| **n > 1).count() as u64;
    // Expected slots due in the window: each (check, location)'s slots are
    // its first slot plus multiples of the interval. The target counts a
    // check's requests from every location together.
    let mut expected = 0u64;
    let mut ran: HashMap<uuid::Uuid, (u64, u64)> = HashMap::new();
    for ((id, _), slots) in &per_check {
        let first = *slots.iter().min().unwrap();
        let mut s = first;
        if s < t0 {
            s += ((t0 - s + interval_ms - 1) / interval_ms) * interval_ms;
        }
        while s < t1 {
            expected += 1;
            s += interval_ms;
        }
        let distinct: std::collections::HashSet<&i64> = slots.iter().collect();
        let last = *slots.iter().max().unwrap();
        let span = ((last - first) / interval_ms + 1) as u64;
        let e = ran.entry(*id).or_default();
        e.0 += distinct.len() as u64;
        e.1 += span;
    }
    for (id, (distinct, span)) in ran {
        if let Some(n) = ids.get(&id) {
            let h = hits.get(*n).copied().unwrap_or(0);
            out.target_extra_executions += h.saturating_sub(distinct);
            out.target_missed += span.saturating_sub(h);
        }
    }
    // (Check, location)s that never produced a row at all are missed too.
    let never = (ids.len() * args.locations).saturating_sub(per_check.len()) as u64;
    out.missed_slots = expected.saturating_sub(ran_slots.len() as u64)
        + never * (args.duration_s / args.interval_s);
}

async fn sleep_until_ms(at: i64) {
    let wait = at - now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}

async fn pg_xacts(pool: &sqlx::PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?)
}

async fn explain_claim(pool: &sqlx::PgPool, when: &str) -> anyhow::Result<String> {
    let mut tx = pool.begin().await?;
    sqlx::query(pulse_store::pg::checks::CLAIM_SETTINGS)
        .execute(&mut *tx)
        .await?;
    let sql = format!(
        "EXPLAIN (ANALYZE, BUFFERS) {}",
        pulse_store::pg::checks::CLAIM_DUE_SQL
            .replace("$1", "1000")
            .replace("$2", "5000")
            .replace("$3", "ARRAY(SELECT DISTINCT location FROM check_schedules)")
    );
    let plan: Vec<String> = sqlx::query_scalar(&sql).fetch_all(&mut *tx).await?;
    tx.rollback().await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM checks")
        .fetch_one(pool)
        .await?;
    Ok(format!(
        "claim plan {when}, {n} checks in the table:\n{}",
        plan.join("\n")
    ))
}

/// The same requests, same connection policy (fresh connection each), same
/// rate, arrival pattern (a burst per scheduler poll) and concurrency, from
/// a bare reqwest loop; CPU of this process.
async fn baseline(args: &Args, port: u16) -> Baseline {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client");
    let rate = args.checks as f64 / args.interval_s as f64;
    let secs = args.duration_s.min(30);
    let total = (rate * secs as f64) as u64;
    let slots = Arc::new(tokio::sync::Semaphore::new(args.concurrency * args.workers));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu0 = procs::self_cpu_seconds();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    // Requests arrive as the scheduler releases them: a burst every poll.
    let per_poll = (rate * args.poll_ms as f64 / 1000.0).max(1.0);
    let mut sent = 0u64;
    let mut tick = 0u64;
    while sent < total {
        let due = start + Duration::from_millis(tick * args.poll_ms);
        tokio::time::sleep_until(due.into()).await;
        tick += 1;
        let upto = ((tick as f64 * per_poll) as u64).min(total);
        while sent < upto {
            let permit = slots.clone().acquire_owned().await.expect("semaphore");
            let (client, errors) = (client.clone(), errors.clone());
            let url = format!("{}{}", target_base(args, port), sent % args.checks);
            tasks.spawn(async move {
                let ok = match client.get(&url).send().await {
                    Ok(r) => r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                drop(permit);
            });
            sent += 1;
        }
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let cpu = procs::self_cpu_seconds() - cpu0;
    Baseline {
        requests: total,
        errors: errors.load(Ordering::Relaxed),
        cpu_per_request_us: cpu * 1e6 / total.max(1) as f64,
        ratio: 0.0,
    }
}

/// The URL the checks point at, up to the check number.
fn target_base(args: &Args, port: u16) -> String {
    if args.https {
        format!("https://localhost:{port}/t/")
    } else {
        format!("http://127.0.0.1:{port}/t/")
    }
}

/// A client for the target's own endpoints (self-signed with --https).
fn stats_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()?)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_gb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
        .map(|kb| kb / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    format!("{cores} cores ({cpu}), {mem_gb:.0} GiB")
}
