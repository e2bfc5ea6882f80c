//! `bench`: Pulse's end-to-end benchmark.
//!
//! Starts throwaway Postgres, Redis and ClickHouse (scripts/services.sh, as
//! the tests do), a local target (this binary, `bench target`), the real
//! `server` and K `worker` processes; inserts M checks spread evenly over
//! one interval; lets them run for a warm-up and then a measured window;
//! then drains, stops everything, and reports from ClickHouse, the target's
//! hit counts and /proc. Then runs a bare reqwest loop making the same
//! requests with the same connection policy at the same rate and
//! concurrency, and compares CPU per run.
//!
//! Usage: bench [--checks M] [--interval S] [--duration D] [--warmup W]
//!              [--workers K] [--concurrency C] [--timeout-ms T]
//!              [--target-delay-ms X] [--poll-ms P] [--explain]
//!              [--no-baseline] [--https] [--assertions] [--locations N]
//!              [--out DIR]
//!
//! With `--locations N` every check runs in N locations (`loc-0`...), each
//! served by its own workers (`--workers` in all, at least one per
//! location): N runs per slot.
//!
//! `bench reports [...]` is the reports benchmark (crates/bench/src/reports.rs).

mod procs;
mod report;
mod reports;
mod run;
mod target;

use std::path::PathBuf;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Args {
    pub checks: u64,
    pub interval_s: u64,
    pub duration_s: u64,
    pub warmup_s: u64,
    pub workers: usize,
    pub concurrency: usize,
    pub timeout_ms: u64,
    pub target_delay_ms: u64,
    pub poll_ms: u64,
    pub explain: bool,
    pub baseline: bool,
    /// A TLS target (self-signed, `tls_verify` off): a full handshake every
    /// run.
    pub https: bool,
    /// Every check asserts status, a JSONPath and the response time on a
    /// JSON body.
    pub assertions: bool,
    /// Locations every check runs in (1: `default`).
    pub locations: usize,
    pub out: PathBuf,
}

impl Args {
    /// The locations' names.
    pub fn location_names(&self) -> Vec<String> {
        if self.locations <= 1 {
            vec!["default".into()]
        } else {
            (0..self.locations).map(|i| format!("loc-{i}")).collect()
        }
    }
}

impl Args {
    fn parse(mut it: impl Iterator<Item = String>) -> anyhow::Result<Args> {
        let mut a = Args {
            checks: 12_000,
            interval_s: 10,
            duration_s: 60,
            warmup_s: 10,
            workers: 2,
            concurrency: 200,
            timeout_ms: 5_000,
            target_delay_ms: 0,
            poll_ms: 200,
            explain: false,
            baseline: true,
            https: false,
            assertions: false,
            locations: 1,
            out: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/results")),
        };
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--checks" => a.checks = value()?.parse()?,
                "--interval" => a.interval_s = value()?.parse()?,
                "--duration" => a.duration_s = value()?.parse()?,
                "--warmup" => a.warmup_s = value()?.parse()?,
                "--workers" => a.workers = value()?.parse()?,
                "--concurrency" => a.concurrency = value()?.parse()?,
                "--timeout-ms" => a.timeout_ms = value()?.parse()?,
                "--target-delay-ms" => a.target_delay_ms = value()?.parse()?,
                "--poll-ms" => a.poll_ms = value()?.parse()?,
                "--out" => a.out = PathBuf::from(value()?),
                "--explain" => a.explain = true,
                "--no-baseline" => a.baseline = false,
                "--https" => a.https = true,
                "--assertions" => a.assertions = true,
                "--locations" => a.locations = value()?.parse()?,
                other => anyhow::bail!(
                    "unknown flag {other}; see the doc comment of crates/bench/src/main.rs"
                ),
            }
        }
        anyhow::ensure!(
            a.checks > 0 && a.interval_s > 0 && a.duration_s > 0 && a.locations > 0,
            "checks, interval, duration and locations must be positive"
        );
        Ok(a)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut argv = std::env::args().skip(1).peekable();
    if argv.peek().map(String::as_str) == Some("target") {
        argv.next();
        let checks = argv.next().and_then(|v| v.parse().ok()).unwrap_or(1);
        let delay = argv.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let https = argv.next().as_deref() == Some("https");
        return target::serve(checks, delay, https).await;
    }
    if argv.peek().map(String::as_str) == Some("reports") {
        argv.next();
        return reports::run(&reports::Args::parse(argv)?).await;
    }
    let args = Args::parse(argv)?;
    let result = run::run(&args).await?;
    println!("{}", report::markdown(&args, &result));
    let path = report::save(&args, &result)?;
    eprintln!("bench: results written to {}", path.display());
    Ok(())
}
