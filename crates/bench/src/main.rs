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
//! Usage: `bench --help` (flags with their defaults); `bench reports --help`.
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

/// Pulse's end-to-end benchmark: throwaway services, the real server and
/// workers, a local target; reports throughput, lag, CPU per run and the
/// bare-loop baseline.
#[derive(Debug, clap::Parser)]
#[command(name = "bench", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: Args,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// The reports benchmark: generated runs loaded into ClickHouse, then
    /// each report endpoint timed through the API.
    Reports(reports::Args),
    /// The local target the benchmark starts (internal).
    #[command(hide = true)]
    Target {
        #[arg(default_value_t = 1)]
        checks: usize,
        #[arg(default_value_t = 0)]
        delay_ms: u64,
        #[arg(default_value = "http")]
        scheme: String,
    },
}

#[derive(Debug, Clone, serde::Serialize, clap::Args)]
pub struct Args {
    /// Checks inserted, spread evenly over one interval.
    #[arg(long, default_value_t = 12_000)]
    pub checks: u64,
    /// Each check's interval, in seconds.
    #[arg(long = "interval", default_value_t = 10)]
    pub interval_s: u64,
    /// The measured window, in seconds.
    #[arg(long = "duration", default_value_t = 60)]
    pub duration_s: u64,
    /// Seconds run before the window opens.
    #[arg(long = "warmup", default_value_t = 10)]
    pub warmup_s: u64,
    /// Worker processes (at least one per location).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Runs in flight per worker (WORKER_CONCURRENCY).
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Each check's timeout_ms.
    #[arg(long, default_value_t = 5_000)]
    pub timeout_ms: u64,
    /// Milliseconds the target waits before it answers.
    #[arg(long, default_value_t = 0)]
    pub target_delay_ms: u64,
    /// The scheduler's poll interval (SCHEDULER_POLL_MS).
    #[arg(long, default_value_t = 200)]
    pub poll_ms: u64,
    /// Print the claim statement's query plans.
    #[arg(long)]
    pub explain: bool,
    /// Skip the bare reqwest loop the pipeline is compared with.
    #[arg(long = "no-baseline", action = clap::ArgAction::SetFalse)]
    pub baseline: bool,
    /// A TLS target (self-signed, `tls_verify` off): a full handshake every
    /// run.
    #[arg(long)]
    pub https: bool,
    /// Every check asserts status, a JSONPath and the response time on a
    /// JSON body.
    #[arg(long)]
    pub assertions: bool,
    /// Locations every check runs in (1: `default`).
    #[arg(long, default_value_t = 1)]
    pub locations: usize,
    /// Where the JSON result file goes.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/results"))]
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
    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.checks > 0 && self.interval_s > 0 && self.duration_s > 0 && self.locations > 0,
            "checks, interval, duration and locations must be positive"
        );
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = <Cli as clap::Parser>::parse();
    match cli.command {
        Some(Command::Target {
            checks,
            delay_ms,
            scheme,
        }) => target::serve(checks, delay_ms, scheme == "https").await,
        Some(Command::Reports(args)) => {
            args.check()?;
            reports::run(&args).await
        }
        None => {
            let args = cli.run;
            args.check()?;
            let result = run::run(&args).await?;
            println!("{}", report::markdown(&args, &result));
            let path = report::save(&args, &result)?;
            eprintln!("bench: results written to {}", path.display());
            Ok(())
        }
    }
}
