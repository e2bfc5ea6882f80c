//! The results writer: moves results from the Postgres outbox
//! (`run_result_batches`, written with each run's state) to ClickHouse, in
//! batches of up to `batch_size` rows every `flush_interval`. While
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
    /// Flushes every `flush_interval` until `stop`, then a last time.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.flush_interval) => {}
                _ = stop.cancelled() => break,
            }
            self.flush().await;
        }
        self.flush().await;
    }

    /// Moves everything waiting, batch by batch; on failure, enforces the
    /// buffer bound and leaves the rest for the next tick.
    pub async fn flush(&self) {
        let batch = self.batch_size.max(1) as i64;
        loop {
            match self.outbox.flush(&self.results, batch).await {
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
