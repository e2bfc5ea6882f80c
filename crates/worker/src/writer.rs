//! The results writer: moves results from the Postgres outbox
//! (`run_result_batches`, written with each run's state) to ClickHouse, in
//! batches of up to `batch_size` rows every `flush_interval`, paced across
//! all workers (the time of the last move is shared in Postgres): however
//! many workers run, ClickHouse gets one insert per interval, or more only
//! while a full batch is waiting. Each insert writes a part in the raw
//! table and in every rollup, so fewer, larger inserts cost ClickHouse much
//! less to write and merge. While
//! ClickHouse is down results wait in the outbox; beyond `max_buffer` the
//! oldest are dropped, counted (`pulse_results_dropped_total`) and logged.
//! Every worker runs one; they share the outbox safely.

use std::time::Duration;

use pulse_runtime::WorkerMetrics as Metrics;
use pulse_store::pg::outbox::ResultOutbox;
use pulse_store::ResultsStore;
use tokio_util::sync::CancellationToken;

pub struct Writer {
    pub outbox: ResultOutbox,
    pub results: ResultsStore,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub max_buffer: usize,
    pub metrics: Metrics,
}

impl Writer {
    /// Flushes when due until `stop`, then everything waiting.
    pub async fn run(self, stop: CancellationToken) {
        // Looks often (a lock attempt and one row read) so that the shared
        // pace holds whichever worker gets there first.
        let tick =
            (self.flush_interval / 5).clamp(Duration::from_millis(20), Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stop.cancelled() => break,
            }
            self.flush_every(self.flush_interval).await;
        }
        self.flush().await;
    }

    /// Moves everything waiting now, whatever the pace.
    pub async fn flush(&self) {
        self.flush_every(Duration::ZERO).await;
    }

    /// Moves everything waiting, batch by batch, if the last move was at
    /// least `every` ago or a full batch waits; on failure, enforces the
    /// buffer bound and leaves the rest for the next tick.
    async fn flush_every(&self, every: Duration) {
        let batch = self.batch_size.max(1) as i64;
        loop {
            match self.outbox.flush_paced(&self.results, batch, every).await {
                Ok(n) => {
                    self.metrics.results_written.inc_by(n as u64);
                    if (n as i64) < batch {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "results flush to clickhouse failed, will retry");
                    match self.outbox.trim(self.max_buffer as i64).await {
                        Ok(0) => {}
                        Ok(dropped) => {
                            self.metrics.results_dropped.inc_by(dropped);
                            tracing::error!(
                                dropped,
                                max = self.max_buffer,
                                "results buffer full: oldest results dropped"
                            );
                        }
                        Err(e) => tracing::warn!(error = %e, "results buffer trim failed"),
                    }
                    break;
                }
            }
        }
        if let Ok(n) = self.outbox.len().await {
            self.metrics.results_buffered.set(n);
        }
    }
}
