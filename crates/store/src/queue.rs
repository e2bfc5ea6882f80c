//! The job queue on Redis.
//!
//! Keys, under a configurable prefix:
//! - `<prefix>:queue`: jobs waiting (scheduler `LPUSH`es, workers take from
//!   the right).
//! - `<prefix>:processing:<worker>`: jobs a worker has taken. A job moves
//!   there atomically (`BLMOVE`), never by a bare pop, and is removed only
//!   when its run is finished.
//! - `<prefix>:alive:<worker>`: a heartbeat with a short TTL
//!   ([`HEARTBEAT_TTL`]); `<prefix>:workers` is the set of worker ids. When
//!   a worker's heartbeat expires, the scheduler takes its processing list
//!   ([`Queue::take_lost_jobs`]) and re-leases those runs at once, so a
//!   dead worker's checks wait seconds, not a whole lease.
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

    pub fn queue_key(&self) -> String {
        format!("{}:queue", self.prefix)
    }

    /// Enqueues jobs in one round trip.
    pub async fn push(&self, jobs: &[Job]) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let values: Vec<String> = jobs.iter().map(Job::encode).collect();
        let mut conn = self.conn.clone();
        let _: i64 = conn.lpush(self.queue_key(), values).await?;
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

    pub async fn len(&self) -> Result<i64> {
        let mut conn = self.conn.clone();
        Ok(conn.llen(self.queue_key()).await?)
    }

    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// Takes the jobs held by workers whose heartbeat expired: each such
    /// processing list is renamed away atomically (so one scheduler gets
    /// it), read and deleted, and the worker is deregistered. The caller
    /// re-leases the jobs; if it dies first, their leases expire as usual.
    pub async fn take_lost_jobs(&self) -> Result<Vec<String>> {
        let mut conn = self.conn.clone();
        let prefix = &self.prefix;
        let workers: Vec<String> = conn.smembers(format!("{prefix}:workers")).await?;
        let mut jobs = Vec::new();
        for worker in workers {
            let alive: bool = conn.exists(format!("{prefix}:alive:{worker}")).await?;
            if alive {
                continue;
            }
            let list = format!("{prefix}:processing:{worker}");
            let taken = format!("{prefix}:lost:{worker}:{}", uuid::Uuid::new_v4());
            let renamed: redis::RedisResult<()> = redis::cmd("RENAME")
                .arg(&list)
                .arg(&taken)
                .query_async(&mut conn)
                .await;
            let _: i64 = conn.srem(format!("{prefix}:workers"), &worker).await?;
            if renamed.is_err() {
                continue; // no list (or another scheduler took it)
            }
            let held: Vec<String> = conn.lrange(&taken, 0, -1).await?;
            let _: i64 = conn.del(&taken).await?;
            tracing::info!(worker, jobs = held.len(), "worker lost; taking its jobs");
            jobs.extend(held);
        }
        Ok(jobs)
    }

    /// A consumer for one worker. It has its own connection for the
    /// blocking move, so waiting for jobs never delays other commands.
    pub async fn consumer(&self, url: &str, worker_id: &str) -> Result<Consumer> {
        let client = redis::Client::open(crate::config::normalize_redis_url(url))?;
        let blocking = ConnectionManager::new_with_config(client, manager_config()).await?;
        Ok(Consumer {
            blocking,
            move_many: redis::Script::new(MOVE_MANY),
            handle: ConsumerHandle {
                queue: self.clone(),
                worker_id: worker_id.to_string(),
                processing_key: format!("{}:processing:{worker_id}", self.prefix),
            },
        })
    }
}

/// The worker side of the queue: takes jobs.
pub struct Consumer {
    blocking: ConnectionManager,
    move_many: redis::Script,
    handle: ConsumerHandle,
}

/// Moves up to ARGV[1] entries from the queue to a processing list,
/// atomically, returning them.
const MOVE_MANY: &str = r"
local out = {}
for i = 1, tonumber(ARGV[1]) do
  local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not v then break end
  out[#out + 1] = v
end
return out
";

/// How long a heartbeat lives; a worker refreshes it every
/// [`HEARTBEAT_EVERY`], and is taken for dead once it expires.
pub const HEARTBEAT_TTL: Duration = Duration::from_millis(3000);
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(500);

impl Consumer {
    /// Waits up to `wait` for a job, then takes up to `max` in all, moving
    /// each atomically into this worker's processing list (one blocking
    /// `BLMOVE`, then one script call for the rest). Returns the raw
    /// entries, to `ack` when done.
    pub async fn take(&mut self, max: usize, wait: Duration) -> Result<Vec<String>> {
        let first: Option<String> = redis::cmd("BLMOVE")
            .arg(self.handle.queue.queue_key())
            .arg(&self.handle.processing_key)
            .arg("RIGHT")
            .arg("LEFT")
            .arg(wait.as_secs_f64())
            .query_async(&mut self.blocking)
            .await?;
        let Some(first) = first else {
            return Ok(Vec::new());
        };
        let mut jobs = vec![first];
        if max > 1 {
            let more: Vec<String> = self
                .move_many
                .key(self.handle.queue.queue_key())
                .key(&self.handle.processing_key)
                .arg(max - 1)
                .invoke_async(&mut self.blocking)
                .await?;
            jobs.extend(more);
        }
        Ok(jobs)
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
    processing_key: String,
}

impl ConsumerHandle {
    /// Removes finished jobs from the processing list, in one round trip.
    pub async fn ack(&self, raws: &[String]) -> Result<()> {
        if raws.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for raw in raws {
            pipe.lrem(&self.processing_key, 1, raw).ignore();
        }
        let mut conn = self.queue.conn.clone();
        let _: () = pipe.query_async(&mut conn).await?;
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

    /// Marks this worker alive and registered.
    pub async fn heartbeat(&self) -> Result<()> {
        let mut conn = self.queue.conn.clone();
        let prefix = &self.queue.prefix;
        let _: () = redis::pipe()
            .sadd(format!("{prefix}:workers"), &self.worker_id)
            .ignore()
            .pset_ex(
                format!("{prefix}:alive:{}", self.worker_id),
                1,
                HEARTBEAT_TTL.as_millis() as u64,
            )
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn drain_into_queue(&self, list: &str) -> Result<usize> {
        let mut conn = self.queue.conn.clone();
        let mut moved = 0;
        loop {
            let job: Option<String> = redis::cmd("LMOVE")
                .arg(list)
                .arg(self.queue.queue_key())
                .arg("RIGHT")
                .arg("RIGHT")
                .query_async(&mut conn)
                .await?;
            if job.is_none() {
                return Ok(moved);
            }
            moved += 1;
        }
    }

    /// On a clean exit: hands back untaken work and deregisters.
    pub async fn retire(&self) -> Result<()> {
        self.drain_into_queue(&self.processing_key).await?;
        let mut conn = self.queue.conn.clone();
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
