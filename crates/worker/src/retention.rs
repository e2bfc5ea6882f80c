//! Retention: every hour, drop the ClickHouse partitions (days) older than
//! `RESULTS_RETENTION_DAYS` from the raw runs, and older than
//! `ROLLUP_RETENTION_DAYS` from the report rollups. Every worker runs it;
//! dropping a partition another worker dropped already does nothing, so one
//! success is enough.

use std::future::Future;
use std::time::Duration;

use pulse_store::ResultsStore;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// How often retention runs (and first at start).
pub const EVERY: Duration = Duration::from_secs(3600);

/// Runs retention of the raw runs at start and then every `every` until
/// `stop` fires. `days == 0` keeps results forever.
pub async fn run(results: ResultsStore, days: u32, every: Duration, stop: CancellationToken) {
    repeat("result", days, every, stop, || async {
        results.drop_partitions_older_than(days).await
    })
    .await
}

/// The same for the report rollups (`ROLLUP_RETENTION_DAYS`).
pub async fn run_rollups(
    results: ResultsStore,
    days: u32,
    every: Duration,
    stop: CancellationToken,
) {
    repeat("rollup", days, every, stop, || async {
        results.drop_rollup_partitions_older_than(days).await
    })
    .await
}

async fn repeat<F, Fut, T>(
    what: &'static str,
    days: u32,
    every: Duration,
    stop: CancellationToken,
    mut drop: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = pulse_store::Result<Vec<T>>>,
    T: std::fmt::Debug,
{
    if days == 0 {
        return;
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let outcome = tokio::select! {
            r = drop() => r,
            _ = stop.cancelled() => return,
        };
        match outcome {
            Ok(dropped) if dropped.is_empty() => {}
            Ok(dropped) => {
                tracing::info!(what, ?dropped, days, "dropped partitions past retention")
            }
            Err(e) => tracing::warn!(what, error = %e, "retention failed, will retry"),
        }
    }
}
