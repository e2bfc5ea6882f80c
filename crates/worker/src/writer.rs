//! The results writer: collects run rows from every in-flight run and writes
//! them to ClickHouse in batches (every `batch_size` rows or
//! `flush_interval`). When ClickHouse fails, rows stay buffered and are
//! retried; beyond `max_buffer` the oldest are dropped and counted.

use std::collections::VecDeque;
use std::time::Duration;

use pulse_store::metrics::Metrics;
use pulse_store::{ResultsStore, RunRow};
use tokio::sync::mpsc;

pub struct Writer {
    results: ResultsStore,
    batch_size: usize,
    flush_interval: Duration,
    max_buffer: usize,
    metrics: Metrics,
}

impl Writer {
    pub fn new(
        results: ResultsStore,
        batch_size: usize,
        flush_interval: Duration,
        max_buffer: usize,
        metrics: Metrics,
    ) -> Writer {
        Writer {
            results,
            batch_size,
            flush_interval,
            max_buffer: max_buffer.max(batch_size),
            metrics,
        }
    }

    /// Runs until every sender is gone, then flushes what is left (a few
    /// tries) and returns.
    pub async fn run(self, mut rx: mpsc::Receiver<RunRow>) {
        let mut buffer: VecDeque<RunRow> = VecDeque::new();
        let mut tick = tokio::time::interval(self.flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                row = rx.recv() => match row {
                    Some(row) => {
                        self.push(&mut buffer, row);
                        if buffer.len() >= self.batch_size {
                            self.flush(&mut buffer).await;
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => self.flush(&mut buffer).await,
            }
        }
        for _ in 0..5 {
            if buffer.is_empty() {
                break;
            }
            self.flush(&mut buffer).await;
            if !buffer.is_empty() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        if !buffer.is_empty() {
            tracing::error!(
                rows = buffer.len(),
                "results lost at shutdown: clickhouse unavailable"
            );
            self.metrics.results_dropped.inc_by(buffer.len() as u64);
        }
    }

    fn push(&self, buffer: &mut VecDeque<RunRow>, row: RunRow) {
        if buffer.len() >= self.max_buffer {
            buffer.pop_front();
            let dropped = self.metrics.results_dropped.inc() + 1;
            if dropped.is_power_of_two() {
                tracing::error!(dropped, "results buffer full: dropping oldest results");
            }
        }
        buffer.push_back(row);
        self.metrics.results_buffered.set(buffer.len() as i64);
    }

    async fn flush(&self, buffer: &mut VecDeque<RunRow>) {
        while !buffer.is_empty() {
            let n = buffer.len().min(self.batch_size);
            let batch: Vec<RunRow> = buffer.iter().take(n).cloned().collect();
            match self.results.insert(&batch).await {
                Ok(()) => {
                    buffer.drain(..n);
                    self.metrics.results_written.inc_by(n as u64);
                    self.metrics.results_buffered.set(buffer.len() as i64);
                }
                Err(e) => {
                    tracing::warn!(error = %e, buffered = buffer.len(), "results insert failed, will retry");
                    return;
                }
            }
        }
    }
}
