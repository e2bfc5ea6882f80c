//! Result retention: every hour, drop the ClickHouse partitions (days) older
//! than `RESULTS_RETENTION_DAYS`. Every worker runs it; dropping a partition
//! another worker dropped already does nothing, so one success is enough.

use std::time::Duration;

use pulse_store::ResultsStore;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// How often retention runs (and first at start).
pub const EVERY: Duration = Duration::from_secs(3600);

/// Runs retention at start and then every `every` until `stop` fires.
/// `days == 0` keeps results forever.
pub async fn run(results: ResultsStore, days: u32, every: Duration, stop: CancellationToken) {
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
            r = results.drop_partitions_older_than(days) => r,
            _ = stop.cancelled() => return,
        };
        match outcome {
            Ok(dropped) if dropped.is_empty() => {}
            Ok(dropped) => {
                tracing::info!(?dropped, days, "dropped result partitions past retention")
            }
            Err(e) => tracing::warn!(error = %e, "result retention failed, will retry"),
        }
    }
}
