//! The Pulse worker: takes jobs off the Redis queue (moving each into its
//! own held set, never popping it), runs many checks at once
//! (bounded by `WORKER_CONCURRENCY`), writes results to ClickHouse in
//! batches, updates state in Postgres under a lease, and delivers alert
//! webhooks from the outbox. Serves `/health` and `/ready` on its own port.

pub mod alerter;
pub mod finisher;
mod health;
pub mod liveness;
pub mod overload;
pub mod retention;
pub mod runner;
pub mod settings;
pub mod writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pulse_checker::Checker;
use pulse_runtime::process::Services;
use pulse_store::{AlertStore, CheckStore};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use finisher::Finisher;
use liveness::Liveness;
use pulse_runtime::WorkerMetrics as Metrics;
use pulse_store::pg::outbox::ResultOutbox;
use pulse_store::queue::HEARTBEAT_EVERY;
pub use runner::{process_one, RunContext};
pub use settings::Settings;
use writer::Writer;

/// Most jobs taken from Redis in one round trip.
const TAKE_BATCH: usize = 64;

pub struct Worker {
    settings: Settings,
    services: Services,
    /// Taken by the health endpoint when the worker runs.
    listener: Option<TcpListener>,
    addr: SocketAddr,
    /// Keeps the listening address off the targets checks may reach.
    _protected: pulse_core::policy::Protected,
}

impl Worker {
    /// Connects to the services (waiting for them) and binds the health port.
    pub async fn build(settings: Settings, shutdown: &CancellationToken) -> anyhow::Result<Worker> {
        let services = Services::connect(&settings.services, shutdown)
            .await
            .context("connecting to services")?;
        let (listener, addr) = pulse_runtime::process::bind(&settings.host, settings.port)
            .await
            .with_context(|| format!("binding {}:{}", settings.host, settings.port))?;
        // The API (or health port) is never a check's target while it runs.
        let protected = pulse_core::policy::protect_own([addr]);
        Ok(Worker {
            settings,
            services,
            listener: Some(listener),
            addr,
            _protected: protected,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Runs until `shutdown` fires; then stops taking jobs, lets in-flight
    /// runs finish within `SHUTDOWN_GRACE_MS`, flushes results, hands back
    /// untaken jobs and returns.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let loops = self.start_background()?;
        let mut consumer = match self.consumer(&shutdown).await {
            Ok(c) => c,
            Err(e) => {
                loops.stop().await;
                return Err(e);
            }
        };
        let handle = consumer.handle();
        let (done_tx, done_rx) = mpsc::channel(self.settings.concurrency * 2);
        let live = finisher::LiveLocations::default();
        let finisher = tokio::spawn(
            Finisher {
                worker_id: self.settings.worker_id.clone(),
                location: self.settings.location.clone(),
                checks: CheckStore::new(self.services.pool.clone()),
                queue: handle.clone(),
                alerter: loops.alerter.clone(),
                live: live.clone(),
            }
            .run(done_rx),
        );
        let alive = Liveness::new(pulse_store::queue::HEARTBEAT_TTL);
        let heartbeat = tokio::spawn(heartbeat(
            handle.clone(),
            loops.metrics.clone(),
            alive.clone(),
            loops.overload.clone(),
            live,
            loops.stop.clone(),
        ));
        let ctx = RunContext {
            checker: Checker::new(
                self.settings.body_limit,
                self.settings.target_policy,
                &self.settings.extra_ca,
            )?
            .with_source(self.settings.source_address),
            done: done_tx,
            metrics: loops.metrics.clone(),
            alive,
            overload: loops.overload.clone(),
        };
        tracing::info!(
            worker_id = %self.settings.worker_id,
            concurrency = self.settings.concurrency,
            health = %self.addr,
            "worker started"
        );

        let mut running = JoinSet::new();
        take_jobs(&self.settings, &mut consumer, &ctx, &mut running, &shutdown).await;
        drain(&mut running, self.settings.shutdown_grace).await;

        // Dropping the last sender ends the finisher once it has written the
        // last batch; only then are results flushed and the queue left.
        drop(ctx);
        let _ = finisher.await;
        loops.writer_stop.cancel();
        if let Err(e) = handle.retire().await {
            tracing::warn!(error = %e, "retiring from queue failed");
        }
        let metrics = loops.metrics.clone();
        loops.stop().await;
        let _ = heartbeat.await;
        tracing::info!(
            written = metrics.results_written.get(),
            dropped = metrics.results_dropped.get(),
            "worker stopped"
        );
        Ok(())
    }

    /// Starts the loops that outlive job taking: the results writer, the
    /// alerter and the health endpoint.
    fn start_background(&mut self) -> anyhow::Result<Background> {
        let listener = self.listener.take().context("the worker runs once")?;
        let s = &self.settings;
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
        let stop = CancellationToken::new();
        let tasks = vec![
            tokio::spawn(
                Writer {
                    outbox: ResultOutbox::new(self.services.pool.clone()),
                    results: self.services.results.clone(),
                    batch_size: s.batch_size,
                    flush_interval: s.flush_interval,
                    max_buffer: s.max_buffer,
                    metrics: metrics.clone(),
                }
                .run(writer_stop.clone()),
            ),
            tokio::spawn(alerter.clone().run(stop.clone())),
            tokio::spawn(retention::run(
                self.services.results.clone(),
                s.results_retention_days,
                retention::EVERY,
                stop.clone(),
            )),
            tokio::spawn(retention::run_rollups(
                self.services.results.clone(),
                s.rollup_retention_days,
                retention::EVERY,
                stop.clone(),
            )),
        ];
        let overload = overload::Overload::new();
        let client = pulse_checker::guarded_client(s.target_policy, 3)
            .timeout(s.webhook_timeout)
            .build()?;
        let mut tasks = tasks;
        tasks.push(tokio::spawn(overload.clone().monitor(
            s.overload.clone(),
            s.worker_id.clone(),
            client,
            metrics.clone(),
            stop.clone(),
        )));
        let health = tokio::spawn(health::serve(
            listener,
            self.services.clone(),
            metrics.clone(),
            overload.clone(),
            stop.clone(),
        ));
        Ok(Background {
            metrics,
            overload,
            alerter,
            writer_stop,
            stop,
            tasks,
            health,
        })
    }

    /// The queue consumer, retried while Redis is unreachable.
    async fn consumer(
        &self,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<pulse_store::Consumer> {
        let s = &self.settings;
        loop {
            match self
                .services
                .queue
                .consumer(
                    secrecy::ExposeSecret::expose_secret(&s.services.redis_url),
                    &s.worker_id,
                    &s.location,
                )
                .await
            {
                Ok(c) => return Ok(c),
                Err(e) if !shutdown.is_cancelled() => {
                    tracing::warn!(error = %e, "redis consumer connect failed, retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The loops started by [`Worker::start_background`].
struct Background {
    metrics: Metrics,
    overload: overload::Overload,
    alerter: alerter::Alerter,
    /// Stops the results writer (after the finisher is done).
    writer_stop: CancellationToken,
    /// Stops the alerter, the health endpoint and the heartbeat.
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    health: tokio::task::JoinHandle<()>,
}

impl Background {
    async fn stop(self) {
        self.writer_stop.cancel();
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        let _ = self.health.await;
    }
}

/// Takes jobs while there are free run slots, until `shutdown`: waits for
/// one free slot, then takes as many jobs as there are free slots (up to
/// [`TAKE_BATCH`]) in one go. Jobs taken while this worker was not alive
/// (its heartbeat lapsed: another worker may hold them now) are dropped.
async fn take_jobs(
    s: &Settings,
    consumer: &mut pulse_store::Consumer,
    ctx: &RunContext,
    running: &mut JoinSet<()>,
    shutdown: &CancellationToken,
) {
    let handle = consumer.handle();
    let slots = Arc::new(Semaphore::new(s.concurrency));
    loop {
        while running.try_join_next().is_some() {}
        let mut permits = tokio::select! {
            p = slots.clone().acquire_many_owned(1) => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.cancelled() => return,
        };
        let extra = slots.available_permits().min(TAKE_BATCH - 1) as u32;
        if extra > 0 {
            if let Ok(more) = slots.clone().try_acquire_many_owned(extra) {
                permits.merge(more);
            }
        }
        if !ctx.alive.is_alive() {
            // No heartbeat yet (or Redis lost): take nothing.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                _ = shutdown.cancelled() => return,
            }
        }
        let epoch = ctx.alive.epoch();
        let taken = tokio::select! {
            r = consumer.take(permits.num_permits(), Duration::from_secs(1)) => r,
            _ = shutdown.cancelled() => return,
        };
        let jobs = match taken {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %e, "taking jobs failed");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = shutdown.cancelled() => return,
                }
            }
        };
        let jobs: Vec<(String, Option<pulse_core::Job>)> = jobs
            .into_iter()
            .map(|raw| {
                let job = pulse_core::Job::decode(&raw);
                (raw, job)
            })
            .collect();
        let cancelled = cancelled_jobs(&handle, &jobs).await;
        let stale = !ctx.alive.holds(epoch);
        for ((raw, job), cancelled) in jobs.into_iter().zip(cancelled) {
            let Some(permit) = permits.split(1) else {
                break;
            };
            if cancelled || stale {
                tracing::info!(
                    check_id = ?job.map(|j| j.check_id),
                    cancelled,
                    "queued run skipped (check deleted or paused, or this worker's liveness lapsed)"
                );
                let _ = ctx.done.send(finisher::Done::Skip { raw }).await;
                continue;
            }
            let ctx = ctx.clone();
            running.spawn(async move {
                runner::process_job(&ctx, raw, job).await;
                drop(permit);
            });
        }
    }
}

/// Lets in-flight runs finish within `grace`; the rest are abandoned to
/// their lease (the scheduler re-runs them once it expires).
async fn drain(running: &mut JoinSet<()>, grace: Duration) {
    tracing::info!(in_flight = running.len(), "worker draining");
    let drained = tokio::time::timeout(grace, async {
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
}

/// Which taken jobs belong to checks deleted or paused after the job was
/// claimed. If Redis cannot tell, every job runs (its state write is still
/// fenced).
async fn cancelled_jobs(
    handle: &pulse_store::ConsumerHandle,
    jobs: &[(String, Option<pulse_core::Job>)],
) -> Vec<bool> {
    let keys: Vec<(uuid::Uuid, i64)> = jobs
        .iter()
        .map(|(_, j)| {
            j.as_ref().map_or((uuid::Uuid::nil(), i64::MIN), |j| {
                (j.check_id, j.claimed_ms)
            })
        })
        .collect();
    match handle.cancelled(&keys).await {
        Ok(flags) => flags,
        Err(e) => {
            tracing::warn!(error = %e, "could not read cancellations");
            vec![false; jobs.len()]
        }
    }
}

/// Keeps this worker's heartbeat alive (every [`HEARTBEAT_EVERY`], with
/// its location and lag) and its [`Liveness`] in step with it, refreshes
/// which locations are live (for quorum decisions), and exports its
/// location's queue depth.
async fn heartbeat(
    handle: pulse_store::ConsumerHandle,
    metrics: Metrics,
    alive: Liveness,
    overload: overload::Overload,
    live: finisher::LiveLocations,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let sent = std::time::Instant::now();
        alive.before_heartbeat(sent);
        match handle.heartbeat(overload.p99_ms()).await {
            Ok(()) => alive.renewed(sent),
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
        if let Ok(presence) = handle.queue().presence().await {
            live.set(presence.live());
        }
        if let Ok(depth) = handle.queue().len(handle.location()).await {
            metrics.queue_depth.set(depth);
        }
    }
}
