//! Whether this worker may still run the jobs it took.
//!
//! A worker is alive while its heartbeat key in Redis is (`HEARTBEAT_TTL`);
//! once the key expires, the scheduler hands the worker's jobs to others
//! under new leases. So the worker must stop first: it counts itself alive
//! only until a heartbeat's send time plus the TTL minus a margin, which is
//! always before the key can expire. A run checks this before each attempt
//! and is cut off when it lapses, and a lapse (a stalled process, a lost
//! Redis) starts a new epoch: whatever was taken or started before it is
//! abandoned, even once heartbeats succeed again.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Time the local deadline keeps in hand before the key can expire.
pub const LIVENESS_MARGIN: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct Liveness {
    inner: Arc<Inner>,
}

struct Inner {
    origin: Instant,
    ttl: Duration,
    /// Alive until this many ms after `origin`.
    until_ms: AtomicU64,
    epoch: AtomicU64,
}

impl Liveness {
    /// Not alive until the first heartbeat lands.
    pub fn new(ttl: Duration) -> Liveness {
        Liveness {
            inner: Arc::new(Inner {
                origin: Instant::now(),
                ttl,
                until_ms: AtomicU64::new(0),
                epoch: AtomicU64::new(0),
            }),
        }
    }

    fn ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.inner.origin).as_millis() as u64
    }

    fn until(&self) -> Instant {
        self.inner.origin + Duration::from_millis(self.inner.until_ms.load(Ordering::SeqCst))
    }

    /// Called just before a heartbeat is sent: a lapse since the last one
    /// ends the current epoch.
    pub fn before_heartbeat(&self, now: Instant) {
        if now >= self.until() {
            self.inner.epoch.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A heartbeat sent at `sent` was stored: alive until `sent` + TTL -
    /// margin.
    pub fn renewed(&self, sent: Instant) {
        let until = self.ms(sent + self.inner.ttl.saturating_sub(LIVENESS_MARGIN));
        self.inner.until_ms.fetch_max(until, Ordering::SeqCst);
    }

    pub fn epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::SeqCst)
    }

    pub fn is_alive(&self) -> bool {
        Instant::now() < self.until()
    }

    /// Whether work started in `epoch` may go on.
    pub fn holds(&self, epoch: u64) -> bool {
        self.epoch() == epoch && self.is_alive()
    }

    /// Runs `work` while `epoch` holds; `None` if it lapses first.
    pub async fn guard<T>(&self, epoch: u64, work: impl Future<Output = T>) -> Option<T> {
        if !self.holds(epoch) {
            return None;
        }
        tokio::pin!(work);
        loop {
            tokio::select! {
                biased;
                _ = tokio::time::sleep_until(self.until().into()) => {
                    if !self.holds(epoch) {
                        return None;
                    }
                }
                out = &mut work => return self.holds(epoch).then_some(out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_worker_is_alive_only_after_a_heartbeat_and_until_before_its_key_expires() {
        let alive = Liveness::new(Duration::from_millis(3000));
        assert!(!alive.is_alive());
        let sent = Instant::now();
        alive.renewed(sent);
        assert!(alive.is_alive());
        let until = alive.until();
        assert!(until <= sent + Duration::from_millis(2500));
        assert!(until + Duration::from_millis(10) >= sent + Duration::from_millis(2500));
    }

    #[tokio::test]
    async fn a_lapse_ends_the_epoch_even_when_heartbeats_resume() {
        let alive = Liveness::new(Duration::from_millis(600));
        alive.renewed(Instant::now());
        let epoch = alive.epoch();
        assert!(alive.holds(epoch));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!alive.is_alive(), "600 ms TTL less the 500 ms margin");
        alive.before_heartbeat(Instant::now());
        alive.renewed(Instant::now());
        assert!(alive.is_alive());
        assert!(!alive.holds(epoch), "work of the old epoch stays abandoned");
        assert!(alive.holds(alive.epoch()));
    }

    #[tokio::test]
    async fn guarded_work_is_cut_off_when_liveness_lapses() {
        let alive = Liveness::new(Duration::from_millis(700));
        alive.renewed(Instant::now());
        let epoch = alive.epoch();
        let started = Instant::now();
        let out = alive
            .guard(epoch, tokio::time::sleep(Duration::from_secs(5)))
            .await;
        assert!(out.is_none());
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(alive.guard(epoch, async { 1 }).await, None);
    }
}
