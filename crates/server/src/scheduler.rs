//! The scheduler: every poll it reads which locations have a live worker,
//! re-queues the runs of lost workers (their heartbeat expired) and runs
//! whose lease expired, records the slots a lost worker made them miss and
//! the slots of stale locations (no live worker for `LOCATION_STALE_MS`),
//! then claims due slots of live locations in batches and pushes their jobs
//! onto each location's queue.
//!
//! Safe to run in several servers at once: claims use `FOR UPDATE SKIP
//! LOCKED`, so each due slot is claimed by exactly one of them. A crash
//! between claim and push loses nothing: the lease expires and the slot is
//! re-queued.

use pulse_runtime::ServerMetrics as Metrics;
use pulse_store::pg::checks::{LocationsNow, SweepProbe};
use pulse_store::{CheckStore, Queue};
use tokio_util::sync::CancellationToken;

use crate::settings::SchedulerSettings;

pub async fn run(
    store: CheckStore,
    queue: Queue,
    settings: SchedulerSettings,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    tracing::info!(
        poll_ms = settings.poll.as_millis() as u64,
        "scheduler started"
    );
    let mut seen = Presence::new(std::time::Instant::now());
    loop {
        match tick(&store, &queue, &settings, &mut seen).await {
            Ok(n) => {
                metrics.jobs_scheduled.inc_by(n as u64);
            }
            Err(e) => tracing::warn!(error = %e, "scheduler tick failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.poll) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    tracing::info!("scheduler stopped");
}

/// How often the scheduler sweeps for expired leases and stale
/// locations' slots (at most once a poll when polls are further apart).
/// Expired leases are found by a scan of `check_schedules` (no index keeps
/// them, so that finishing a run is a heap-only update), too costly for
/// every poll; a lost worker's runs are re-queued every poll from its
/// heartbeat, so the sweep is only the backstop. On a table so large that
/// the scan takes longer than a fiftieth of this, sweeps are spaced out to
/// fifty times the scan's duration (so they take about 2% of a core), up to
/// [`LEASE_SWEEP_MAX`].
pub const LEASE_SWEEP: std::time::Duration = std::time::Duration::from_secs(1);

/// The longest gap between sweeps, however long the scan takes (a slow
/// scan may be a passing stall, not a large table).
pub const LEASE_SWEEP_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// What a scheduler remembers between passes: when it last saw each
/// location live, beside what Redis remembers (`<prefix>:locations`), so
/// that Redis restarting empty does not make every location look stale
/// before its workers heartbeat again; and when it last swept, and how
/// long to wait for the next sweep.
#[derive(Debug, Clone)]
pub struct Presence {
    started: std::time::Instant,
    last_live: std::collections::HashMap<String, std::time::Instant>,
    last_sweep: Option<std::time::Instant>,
    sweep_every: std::time::Duration,
}

impl Presence {
    /// A scheduler that started at `started`.
    pub fn new(started: std::time::Instant) -> Presence {
        Presence {
            started,
            last_live: Default::default(),
            last_sweep: None,
            sweep_every: LEASE_SWEEP,
        }
    }

    /// Whether this pass sweeps: the first does, then one a [`LEASE_SWEEP`]
    /// (or longer: see [`Self::swept`]).
    fn sweep_now(&mut self) -> bool {
        let now = std::time::Instant::now();
        let due = self
            .last_sweep
            .is_none_or(|at| now.duration_since(at) >= self.sweep_every);
        if due {
            self.last_sweep = Some(now);
        }
        due
    }

    /// Which locations are live, stale, or known now: a location is stale
    /// when it has had no live worker for `stale_after` (by its last
    /// heartbeat in Redis and by when this scheduler last saw it live); one
    /// never seen is stale once this scheduler has run that long.
    pub fn now(
        &mut self,
        workers: &pulse_store::queue::Presence,
        stale_after: std::time::Duration,
    ) -> LocationsNow {
        let live = workers.live();
        let at = std::time::Instant::now();
        for l in &live {
            self.last_live.insert(l.clone(), at);
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut known: Vec<String> = workers
            .seen
            .keys()
            .chain(self.last_live.keys())
            .cloned()
            .collect();
        known.sort();
        known.dedup();
        let stale = known
            .iter()
            .filter(|l| !live.contains(l))
            .filter(|l| {
                let beat_gone = workers
                    .seen
                    .get(*l)
                    .is_none_or(|ms| now_ms - ms > stale_after.as_millis() as i64);
                let seen_gone = self
                    .last_live
                    .get(*l)
                    .is_none_or(|t| t.elapsed() > stale_after);
                beat_gone && seen_gone
            })
            .cloned()
            .collect();
        LocationsNow {
            live,
            stale,
            known,
            unknown_stale: self.started.elapsed() > stale_after,
        }
    }

    /// The sweep's scan took `took`: the next one waits fifty times that,
    /// between [`LEASE_SWEEP`] and [`LEASE_SWEEP_MAX`].
    fn swept(&mut self, took: std::time::Duration) {
        self.sweep_every = (took * 50).clamp(LEASE_SWEEP, LEASE_SWEEP_MAX);
    }
}

/// One pass: re-queue lost workers' runs, sweep (about once a [`LEASE_SWEEP`])
/// for expired leases and stale locations' slots, then claim and queue
/// everything due. `seen` is what this
/// scheduler knows of the locations from earlier passes. Returns how many
/// jobs were queued.
pub async fn tick(
    store: &CheckStore,
    queue: &Queue,
    settings: &SchedulerSettings,
    seen: &mut Presence,
) -> pulse_store::Result<usize> {
    let mut queued = 0;
    let workers = queue.presence().await?;
    let now = seen.now(&workers, settings.stale_after);
    let sweep = if seen.sweep_now() {
        let started = std::time::Instant::now();
        let probe = store.sweep_probe(&now.live).await?;
        seen.swept(started.elapsed());
        probe
    } else {
        SweepProbe::default()
    };
    if sweep.expired {
        store.release_idle_leases().await?;
    }
    // A lost worker's runs go back to its location's queue while the
    // location has another worker; otherwise they wait for their leases to
    // expire and are recorded missed with the location.
    let lost: Vec<(uuid::Uuid, uuid::Uuid)> = queue
        .take_lost_jobs(&workers.lost)
        .await?
        .iter()
        .filter_map(|raw| pulse_core::Job::decode(raw))
        .filter(|j| now.live.contains(&j.location))
        .map(|j| (j.check_id, j.token))
        .collect();
    if !lost.is_empty() {
        let relet = store.relet(&lost, settings.lease_margin_ms).await?;
        tracing::info!(
            held = lost.len(),
            requeued = relet.len(),
            "re-queued runs of a lost worker"
        );
        queue.push(&relet).await?;
        queued += relet.len();
    }
    // Re-queue runs whose lease expired, a batch at a time.
    let mut reclaim = sweep.expired;
    while reclaim {
        let stale = store
            .reclaim_expired(settings.batch, settings.lease_margin_ms, &now.live)
            .await?;
        if !stale.is_empty() {
            tracing::info!(count = stale.len(), "re-queued runs with expired leases");
            queue.push(&stale).await?;
            queued += stale.len();
        }
        reclaim = stale.len() as i64 == settings.batch;
    }
    let missed = store.skip_missed_slots(settings.batch).await?;
    if missed > 0 {
        tracing::info!(
            missed,
            "slots missed while a worker was lost recorded as missed"
        );
    }
    let missed = if sweep.expired || sweep.elsewhere {
        store.miss_stale_slots(settings.batch, &now).await?
    } else {
        0
    };
    if missed > 0 {
        tracing::info!(
            missed,
            stale = ?now.stale,
            "slots of locations without a live worker recorded as missed"
        );
    }
    if now.live.is_empty() {
        return Ok(queued);
    }
    loop {
        let jobs = store
            .claim_due(settings.batch, settings.lease_margin_ms, &now.live)
            .await?;
        queue.push(&jobs).await?;
        queued += jobs.len();
        if (jobs.len() as i64) < settings.batch {
            break;
        }
    }
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn sweeps_are_spaced_out_when_the_scan_is_slow_up_to_ten_seconds() {
        let mut p = Presence::new(Instant::now());
        assert!(p.sweep_now(), "the first pass sweeps");
        assert!(!p.sweep_now(), "not again within a second");
        for (took_ms, every_ms) in [(5, 1000), (20, 1000), (100, 5000), (2000, 10_000)] {
            p.swept(Duration::from_millis(took_ms));
            assert_eq!(
                p.sweep_every,
                Duration::from_millis(every_ms),
                "scan {took_ms} ms"
            );
        }
        p.last_sweep = Some(Instant::now() - Duration::from_millis(9_000));
        assert!(!p.sweep_now());
        p.last_sweep = Some(Instant::now() - Duration::from_millis(10_000));
        assert!(p.sweep_now());
    }
}
