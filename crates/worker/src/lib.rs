//! The Pulse worker: takes jobs off the Redis queue (moving each into its
//! own processing list, never popping it), runs many checks at once
//! (bounded by `WORKER_CONCURRENCY`), writes results to ClickHouse in
//! batches, updates state in Postgres under a lease, and delivers alert
//! webhooks from the outbox. Serves `/health` and `/ready` on its own port.

pub mod alerter;
pub mod finisher;
mod health;
pub mod retention;
pub mod runner;
pub mod settings;
pub mod writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pulse_checker::Checker;
use pulse_store::runtime::Services;
use pulse_store::{AlertStore, CheckStore};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use finisher::Finisher;
use pulse_store::metrics::Metrics;
use pulse_store::pg::outbox::ResultOutbox;
pub use runner::{process_one, RunContext};
pub use settings::Settings;
use writer::Writer;

/// Most jobs taken from Redis in one round trip.
const TAKE_BATCH: usize = 64;

pub struct Worker {
    settings: Settings,
    services: Services,
    listener: TcpListener,
    addr: SocketAddr,
}

impl Worker {
    /// Connects to the services (waiting for them) and binds the health port.
    pub async fn build(settings: Settings, shutdown: &CancellationToken) -> anyhow::Result<Worker> {
        let services = Services::connect(&settings.services, shutdown)
            .await
            .context("connecting to services")?;
        let (listener, addr) = pulse_store::runtime::bind(&settings.host, settings.port)
            .await
            .with_context(|| format!("binding {}:{}", settings.host, settings.port))?;
        Ok(Worker {
            settings,
            services,
            listener,
            addr,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Runs until `shutdown` fires; then stops taking jobs, lets in-flight
    /// runs finish within `SHUTDOWN_GRACE_MS`, flushes results, hands back
    /// untaken jobs and returns.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let s = &self.settings;
        let checks = CheckStore::new(self.services.pool.clone());
        let metrics = Metrics::new();
        let alerter = alerter::Alerter::new(
            AlertStore::new(self.services.pool.clone()),
            metrics.clone(),
            alerter::DeliveryPolicy {
                timeout: s.webhook_timeout,
                retry_for: s.webhook_retry_for,
                backoff: s.webhook_backoff,
                secret: s.webhook_secret.clone(),
                target_policy: s.target_policy,
            },
            s.alerter_poll,
        )?;
        let writer_stop = CancellationToken::new();
        let writer = tokio::spawn(
            Writer {
                outbox: ResultOutbox::new(self.services.pool.clone()),
                results: self.services.results.clone(),
                batch_size: s.batch_size,
                flush_interval: s.flush_interval,
                max_buffer: s.max_buffer,
                metrics: metrics.clone(),
            }
            .run(writer_stop.clone()),
        );
        let background = CancellationToken::new();
        let alerter_task = tokio::spawn(alerter.clone().run(background.clone()));
        let retention_task = tokio::spawn(retention::run(
            self.services.results.clone(),
            s.results_retention_days,
            retention::EVERY,
            background.clone(),
        ));
        let health_task = tokio::spawn(health::serve(
            self.listener,
            self.services.clone(),
            metrics.clone(),
            background.clone(),
        ));
        let mut consumer = loop {
            match self
                .services
                .queue
                .consumer(&s.services.redis_url, &s.worker_id)
                .await
            {
                Ok(c) => break c,
                Err(e) if !shutdown.is_cancelled() => {
                    tracing::warn!(error = %e, "redis consumer connect failed, retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
                Err(e) => return Err(e.into()),
            }
        };
        let handle = consumer.handle();
        let (done_tx, done_rx) = mpsc::channel(s.concurrency * 2);
        let finisher = tokio::spawn(
            Finisher {
                worker_id: s.worker_id.clone(),
                checks,
                queue: handle.clone(),
                alerter,
            }
            .run(done_rx),
        );
        let ctx = RunContext {
            checker: Checker::new(s.body_limit, s.target_policy)?,
            done: done_tx,
            metrics: metrics.clone(),
        };
        let heartbeat = tokio::spawn(heartbeat(
            handle.clone(),
            self.services.queue.clone(),
            metrics.clone(),
            background.clone(),
        ));
        tracing::info!(worker_id = %s.worker_id, concurrency = s.concurrency, health = %self.addr, "worker started");

        let slots = Arc::new(Semaphore::new(s.concurrency));
        let mut running = JoinSet::new();
        loop {
            while running.try_join_next().is_some() {}
            // Wait for one free slot, then take as many jobs as there are
            // free slots (up to TAKE_BATCH) in one go.
            let mut permits = tokio::select! {
                p = slots.clone().acquire_many_owned(1) => p?,
                _ = shutdown.cancelled() => break,
            };
            let extra = slots.available_permits().min(TAKE_BATCH - 1) as u32;
            if extra > 0 {
                if let Ok(more) = slots.clone().try_acquire_many_owned(extra) {
                    permits.merge(more);
                }
            }
            let taken = tokio::select! {
                r = consumer.take(permits.num_permits(), Duration::from_secs(1)) => r,
                _ = shutdown.cancelled() => break,
            };
            match taken {
                Ok(jobs) => {
                    for raw in jobs {
                        let Some(permit) = permits.split(1) else {
                            break;
                        };
                        let ctx = ctx.clone();
                        running.spawn(async move {
                            process_one(&ctx, raw).await;
                            drop(permit);
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "taking jobs failed");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
            }
        }

        tracing::info!(in_flight = running.len(), "worker draining");
        let drained = tokio::time::timeout(s.shutdown_grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                abandoned = running.len(),
                "grace period over; abandoning runs to lease expiry"
            );
            running.abort_all();
        }
        drop(ctx);
        let _ = finisher.await;
        writer_stop.cancel();
        let _ = writer.await;
        if let Err(e) = handle.retire().await {
            tracing::warn!(error = %e, "retiring from queue failed");
        }
        background.cancel();
        let _ = tokio::join!(alerter_task, health_task, heartbeat, retention_task);
        tracing::info!(
            written = metrics.results_written.get(),
            dropped = metrics.results_dropped.get(),
            "worker stopped"
        );
        Ok(())
    }
}

/// Keeps this worker's heartbeat alive and returns dead workers' taken jobs
/// to the queue.
async fn heartbeat(
    handle: pulse_store::ConsumerHandle,
    queue: pulse_store::Queue,
    metrics: Metrics,
    stop: CancellationToken,
) {
    loop {
        if let Ok(depth) = queue.len().await {
            metrics.queue_depth.set(depth);
        }
        if let Err(e) = handle.heartbeat().await {
            tracing::warn!(error = %e, "heartbeat failed");
        }
        match handle.requeue_dead_workers().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "requeued jobs of dead workers"),
            Err(e) => tracing::warn!(error = %e, "requeue of dead workers failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3)) => {}
            _ = stop.cancelled() => return,
        }
    }
}
