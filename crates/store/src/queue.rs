//! The job queue on Redis.
//!
//! Keys, under a configurable prefix:
//! - `<prefix>:queue`: jobs waiting in location `default`, and
//!   `<prefix>:queue:<location>` in each other location (scheduler
//!   `LPUSH`es, that location's workers take from the right).
//! - `<prefix>:held:<worker>`: the set of jobs a worker has taken. A job
//!   moves there atomically (one script, `lua/take.lua`), never by a bare
//!   pop, and is removed only when its run is finished (`SREM`, O(1) per
//!   job however many are held).
//! - `<prefix>:processing:<worker>`: the landing list of a worker's blocking
//!   wait (`BLMOVE`, used only when the queue is empty): at most one job,
//!   moved into the held set by the next take.
//! - `<prefix>:alive:<worker>`: a heartbeat with a short TTL
//!   ([`HEARTBEAT_TTL`]); `<prefix>:workers` is the set of worker ids. When
//!   a worker's heartbeat expires, the scheduler takes its landing list and
//!   held set ([`Queue::take_lost_jobs`]) and re-leases those runs at once, so a
//!   dead worker's checks wait seconds, not a whole lease.
//!   The heartbeat's value says which location the worker serves and its
//!   scheduling lag p99; `<prefix>:locations` maps every location ever
//!   served to its last heartbeat (epoch ms).
//! - `<prefix>:cancel:<check>`: when the check was deleted or paused;
//!   workers skip its jobs claimed before then.

use std::time::Duration;

use pulse_core::Job;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;

use crate::Result;

fn manager_config() -> ConnectionManagerConfig {
    // The backoff between retries starts at 1 s and grows a hundredfold by
    // default (1 s, then 100 s): cap it.
    ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(5))
        .set_response_timeout(Duration::from_secs(10))
        .set_number_of_retries(2)
        .set_max_delay(2000)
}

/// One connection and a `PING`, without the manager's retries, so that a
/// wrong or missing password is reported at once.
async fn probe(client: &redis::Client) -> Result<()> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Duration::from_secs(5))
        .set_response_timeout(Duration::from_secs(5));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let _: String = redis::cmd("PING").query_async(&mut conn).await?;
    Ok(())
}

/// The producer side, and queue inspection.
#[derive(Clone)]
pub struct Queue {
    conn: ConnectionManager,
    prefix: String,
}

impl Queue {
    pub async fn connect(url: &str, prefix: &str) -> Result<Queue> {
        let client = redis::Client::open(crate::config::normalize_redis_url(url))?;
        probe(&client).await?;
        let conn = ConnectionManager::new_with_config(client, manager_config()).await?;
        Ok(Queue {
            conn,
            prefix: prefix.to_string(),
        })
    }

    /// The queue of a location's jobs.
    pub fn queue_key(&self, location: &str) -> String {
        if location == pulse_core::location::DEFAULT_LOCATION {
            format!("{}:queue", self.prefix)
        } else {
            format!("{}:queue:{location}", self.prefix)
        }
    }

    /// Enqueues jobs, each on its location's queue, in one round trip.
    pub async fn push(&self, jobs: &[Job]) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut by_location: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for job in jobs {
            by_location
                .entry(job.location.as_str())
                .or_default()
                .push(job.encode());
        }
        let mut pipe = redis::pipe();
        for (location, values) in by_location {
            pipe.lpush(self.queue_key(location), values).ignore();
        }
        let mut conn = self.conn.clone();
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    /// Marks a check's queued jobs as cancelled (it was deleted or paused):
    /// workers skip every job of it claimed up to now. The mark outlives
    /// any lease (an hour).
    pub async fn cancel(&self, check_id: uuid::Uuid) -> Result<()> {
        let mut conn = self.conn.clone();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let _: () = conn
            .set_ex(format!("{}:cancel:{check_id}", self.prefix), now_ms, 3600)
            .await?;
        Ok(())
    }

    /// Jobs waiting in a location's queue.
    pub async fn len(&self, location: &str) -> Result<i64> {
        let mut conn = self.conn.clone();
        Ok(conn.llen(self.queue_key(location)).await?)
    }

    /// Every worker registered and alive now, with the location it serves
    /// and its lag, and every location ever served with its last heartbeat.
    pub async fn presence(&self) -> Result<Presence> {
        let mut conn = self.conn.clone();
        let prefix = &self.prefix;
        let workers: Vec<String> = conn.smembers(format!("{prefix}:workers")).await?;
        let beats: Vec<Option<String>> = if workers.is_empty() {
            Vec::new()
        } else {
            let keys: Vec<String> = workers
                .iter()
                .map(|w| format!("{prefix}:alive:{w}"))
                .collect();
            redis::cmd("MGET").arg(keys).query_async(&mut conn).await?
        };
        let mut alive = Vec::new();
        let mut lost = Vec::new();
        for (worker, beat) in workers.into_iter().zip(beats) {
            match beat {
                Some(beat) => {
                    let beat: Heartbeat = serde_json::from_str(&beat).unwrap_or_default();
                    alive.push(LiveWorker {
                        worker,
                        location: beat.location,
                        lag_p99_ms: beat.lag_p99_ms,
                    });
                }
                None => lost.push(worker),
            }
        }
        let seen: std::collections::HashMap<String, i64> =
            conn.hgetall(format!("{prefix}:locations")).await?;
        Ok(Presence { alive, lost, seen })
    }

    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// Takes the jobs held by these workers (those [`Presence::lost`]
    /// names) if their heartbeat is still expired: for each, one script (`lua/take_lost.lua`) reads and deletes its landing list
    /// and held set and deregisters it, atomically (so one scheduler gets
    /// them). The caller re-leases the jobs; if it dies first, their leases
    /// expire as usual.
    pub async fn take_lost_jobs(&self, workers: &[String]) -> Result<Vec<String>> {
        let mut conn = self.conn.clone();
        let prefix = &self.prefix;
        let script = redis::Script::new(TAKE_LOST);
        let mut jobs = Vec::new();
        for worker in workers {
            let held: Option<Vec<String>> = script
                .key(format!("{prefix}:alive:{worker}"))
                .key(format!("{prefix}:processing:{worker}"))
                .key(format!("{prefix}:held:{worker}"))
                .key(format!("{prefix}:workers"))
                .arg(worker)
                .invoke_async(&mut conn)
                .await?;
            let Some(held) = held else {
                continue; // alive again
            };
            tracing::info!(worker, jobs = held.len(), "worker lost; taking its jobs");
            jobs.extend(held);
        }
        Ok(jobs)
    }

    /// A consumer for one worker serving `location`. It has its own
    /// connection for the blocking move, so waiting for jobs never delays
    /// other commands.
    pub async fn consumer(&self, url: &str, worker_id: &str, location: &str) -> Result<Consumer> {
        let client = redis::Client::open(crate::config::normalize_redis_url(url))?;
        let blocking = ConnectionManager::new_with_config(client, manager_config()).await?;
        Ok(Consumer {
            blocking,
            take: redis::Script::new(TAKE),
            handle: ConsumerHandle {
                queue: self.clone(),
                worker_id: worker_id.to_string(),
                location: location.to_string(),
                queue_key: self.queue_key(location),
                landing_key: format!("{}:processing:{worker_id}", self.prefix),
                held_key: format!("{}:held:{worker_id}", self.prefix),
            },
        })
    }
}

/// The worker side of the queue: takes jobs.
pub struct Consumer {
    blocking: ConnectionManager,
    take: redis::Script,
    handle: ConsumerHandle,
}

const TAKE: &str = include_str!("../lua/take.lua");
const TAKE_LOST: &str = include_str!("../lua/take_lost.lua");
const RETIRE: &str = include_str!("../lua/retire.lua");

/// How long a heartbeat lives; a worker refreshes it every
/// [`HEARTBEAT_EVERY`], and is taken for dead once it expires.
pub const HEARTBEAT_TTL: Duration = Duration::from_millis(3000);
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(500);

impl Consumer {
    /// Takes up to `max` jobs, each moved atomically into this worker's
    /// held set, waiting up to `wait` for the first. While the queue has
    /// jobs this is one round trip (the take script); when it is empty, a
    /// blocking `BLMOVE` into the landing list waits for one, and the
    /// script then takes it and more. Returns the raw entries, to `ack`
    /// when done.
    pub async fn take(&mut self, max: usize, wait: Duration) -> Result<Vec<String>> {
        let jobs = self.take_now(max).await?;
        if !jobs.is_empty() {
            return Ok(jobs);
        }
        let first: Option<String> = redis::cmd("BLMOVE")
            .arg(&self.handle.queue_key)
            .arg(&self.handle.landing_key)
            .arg("RIGHT")
            .arg("LEFT")
            .arg(wait.as_secs_f64())
            .query_async(&mut self.blocking)
            .await?;
        if first.is_none() {
            return Ok(Vec::new());
        }
        self.take_now(max).await
    }

    async fn take_now(&mut self, max: usize) -> Result<Vec<String>> {
        Ok(self
            .take
            .key(&self.handle.queue_key)
            .key(&self.handle.landing_key)
            .key(&self.handle.held_key)
            .arg(max.max(1))
            .invoke_async(&mut self.blocking)
            .await?)
    }

    pub fn handle(&self) -> ConsumerHandle {
        self.handle.clone()
    }
}

/// What the rest of a worker does with the queue: acknowledge finished
/// jobs, heartbeat, recover dead workers' jobs, retire.
#[derive(Clone)]
pub struct ConsumerHandle {
    queue: Queue,
    worker_id: String,
    location: String,
    /// The queue of this worker's location.
    queue_key: String,
    /// The blocking wait's landing list (at most one job).
    landing_key: String,
    /// The set of jobs this worker holds.
    held_key: String,
}

impl ConsumerHandle {
    /// Removes finished jobs from the held set: one `SREM`, O(1) per job.
    pub async fn ack(&self, raws: &[String]) -> Result<()> {
        if raws.is_empty() {
            return Ok(());
        }
        let mut conn = self.queue.conn.clone();
        let _: i64 = conn.srem(&self.held_key, raws).await?;
        Ok(())
    }

    /// Which of these jobs were cancelled after they were claimed (their
    /// check was deleted or paused), in one round trip.
    /// `jobs` are (check id, claimed at in epoch ms).
    pub async fn cancelled(&self, jobs: &[(uuid::Uuid, i64)]) -> Result<Vec<bool>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = jobs
            .iter()
            .map(|(id, _)| format!("{}:cancel:{id}", self.queue.prefix))
            .collect();
        let mut conn = self.queue.conn.clone();
        let marks: Vec<Option<i64>> = redis::cmd("MGET").arg(keys).query_async(&mut conn).await?;
        Ok(jobs
            .iter()
            .zip(marks)
            .map(|((_, claimed_ms), mark)| mark.is_some_and(|at| *claimed_ms <= at))
            .collect())
    }

    /// Marks this worker alive and registered, serving its location with
    /// this scheduling lag p99.
    pub async fn heartbeat(&self, lag_p99_ms: u64) -> Result<()> {
        let mut conn = self.queue.conn.clone();
        let prefix = &self.queue.prefix;
        let beat = Heartbeat {
            location: self.location.clone(),
            lag_p99_ms,
        };
        let _: () = redis::pipe()
            .sadd(format!("{prefix}:workers"), &self.worker_id)
            .ignore()
            .pset_ex(
                format!("{prefix}:alive:{}", self.worker_id),
                serde_json::to_string(&beat).unwrap_or_default(),
                HEARTBEAT_TTL.as_millis() as u64,
            )
            .ignore()
            .hset(
                format!("{prefix}:locations"),
                &self.location,
                chrono::Utc::now().timestamp_millis(),
            )
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// The queue this worker takes from.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    /// On a clean exit: hands back untaken work and deregisters.
    pub async fn retire(&self) -> Result<()> {
        let mut conn = self.queue.conn.clone();
        let _: i64 = redis::Script::new(RETIRE)
            .key(&self.queue_key)
            .key(&self.landing_key)
            .key(&self.held_key)
            .invoke_async(&mut conn)
            .await?;
        let prefix = &self.queue.prefix;
        let _: () = redis::pipe()
            .srem(format!("{prefix}:workers"), &self.worker_id)
            .ignore()
            .del(format!("{prefix}:alive:{}", self.worker_id))
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
}

/// What a heartbeat says (the value of `<prefix>:alive:<worker>`).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Heartbeat {
    #[serde(default = "default_location")]
    location: String,
    #[serde(default)]
    lag_p99_ms: u64,
}

fn default_location() -> String {
    pulse_core::location::DEFAULT_LOCATION.into()
}

/// A worker whose heartbeat is current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveWorker {
    pub worker: String,
    pub location: String,
    pub lag_p99_ms: u64,
}

/// Who serves which location now (see [`Queue::presence`]).
#[derive(Debug, Clone, Default)]
pub struct Presence {
    pub alive: Vec<LiveWorker>,
    /// Workers still registered whose heartbeat has expired.
    pub lost: Vec<String>,
    /// Every location ever served, with its last heartbeat (epoch ms).
    pub seen: std::collections::HashMap<String, i64>,
}

impl Presence {
    /// The locations with a live worker, sorted.
    pub fn live(&self) -> Vec<String> {
        let mut live: Vec<String> = self.alive.iter().map(|w| w.location.clone()).collect();
        live.sort();
        live.dedup();
        live
    }
}
