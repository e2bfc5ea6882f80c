//! The benchmark's outputs: a markdown table on stdout, JSON on disk.

use std::fmt::Write;
use std::path::PathBuf;

use crate::run::Outcome;
use crate::Args;

pub fn markdown(args: &Args, o: &Outcome) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## Pulse benchmark, {}\n\nMachine: {}. {} checks every {} s in {} location(s) (target {:.0} runs/s), {} worker(s) x {} concurrency, {} s measured after {} s warm-up.\n",
        o.started_at, o.machine, args.checks, args.interval_s, args.locations, o.target_rate, args.workers.max(args.locations), args.concurrency, args.duration_s, args.warmup_s
    );
    let _ = writeln!(s, "| metric | value |\n|---|---|");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(s, "| {k} | {v} |");
    };
    row(
        "runs/s landed in ClickHouse (sustained; requests made)",
        format!("{:.1}", o.runs_per_sec),
    );
    row("runs in window", o.runs_in_window.to_string());
    row(
        "scheduling lag p50 / p95 / p99 / max (ms)",
        format!(
            "{:.0} / {:.0} / {:.0} / {:.0}",
            o.lag_ms.p50, o.lag_ms.p95, o.lag_ms.p99, o.lag_ms.max
        ),
    );
    let mut recorded: Vec<_> = o.recorded_missed.iter().collect();
    recorded.sort();
    row(
        "missed slots (ClickHouse, window; of them recorded `missed`)",
        format!("{} ({recorded:?})", o.missed_slots),
    );
    row(
        "duplicated slots (ClickHouse, window)",
        o.duplicated_slots.to_string(),
    );
    row(
        "missed slots (target hit log, whole run)",
        o.target_missed.to_string(),
    );
    row(
        "extra executions (target hit log, whole run)",
        o.target_extra_executions.to_string(),
    );
    row(
        "target hits / ClickHouse rows (whole run)",
        format!("{} / {}", o.target_hits_total, o.clickhouse_rows_total),
    );
    let mut statuses: Vec<_> = o.statuses.iter().collect();
    statuses.sort();
    row("statuses (window)", format!("{statuses:?}"));
    row(
        "Postgres transactions per run",
        format!("{:.2}", o.pg_xacts_per_run),
    );
    row(
        "pipeline CPU per run (µs)",
        format!("{:.0}", o.pipeline_cpu_per_run_us),
    );
    if let Some(b) = &o.baseline {
        row(
            "bare reqwest loop CPU per request (µs)",
            format!(
                "{:.0} ({} requests, {} errors)",
                b.cpu_per_request_us, b.requests, b.errors
            ),
        );
        row(
            "pipeline CPU per run / bare loop",
            format!("{:.2}x", b.ratio),
        );
    }
    let _ = writeln!(
        s,
        "\n| process | CPU s (window) | CPU cores | peak RSS MB |\n|---|---|---|---|"
    );
    for p in &o.procs {
        let _ = writeln!(
            s,
            "| {} | {:.1} | {:.2} | {:.0} |",
            p.name,
            p.cpu_s,
            p.cpu_s / args.duration_s as f64,
            p.peak_rss_mb
        );
    }
    for plan in &o.claim_plans {
        let _ = writeln!(s, "\n```\n{plan}\n```");
    }
    s
}

pub fn save(args: &Args, o: &Outcome) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(&args.out)?;
    let name = format!(
        "{}-{}x{}s.json",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        args.checks,
        args.interval_s
    );
    let path = args.out.join(name);
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&serde_json::json!({ "args": args, "result": o }))?,
    )?;
    Ok(path)
}
