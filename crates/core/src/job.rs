//! A queued run: which check, for which due slot, under which lease, and
//! everything the worker needs to run it.
//!
//! The scheduler's claim returns the check's definition and alert state
//! with the lease, so a worker runs a job without reading the check again.
//! Jobs travel through Redis as JSON.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{CheckSpec, IncidentState};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub check_id: Uuid,
    /// The location this slot runs in; its workers take it.
    #[serde(default = "default_location")]
    pub location: String,
    /// The lease token from the claim; the state write is fenced by it.
    pub token: Uuid,
    /// The due time of the slot this job runs, in epoch milliseconds.
    pub slot_ms: i64,
    /// When the slot was claimed (or re-claimed), in epoch milliseconds.
    pub claimed_ms: i64,
    /// When the lease runs out, in epoch milliseconds: the claim time plus
    /// the check's timeout plus the scheduler's lease margin. After that the
    /// scheduler may hand the slot to another worker.
    pub lease_expires_ms: i64,
    pub check: JobCheck,
}

fn default_location() -> String {
    crate::location::DEFAULT_LOCATION.into()
}

/// The check as it was when the slot was claimed: its definition (without
/// the webhook secret, which never leaves Postgres) and its alert state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCheck {
    #[serde(flatten)]
    pub spec: CheckSpec,
    /// This location's streak after its previous run (nothing else writes
    /// it while the lease is held), and the check's incident state (for a
    /// check in one location, also written only under the lease; with
    /// several, the finisher reads it again under a lock).
    pub consecutive_fails: i32,
    pub incident_open: bool,
    #[serde(default)]
    pub consecutive_degraded: i32,
    #[serde(default)]
    pub degraded_open: bool,
}

impl Job {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn decode(s: &str) -> Option<Job> {
        serde_json::from_str(s).ok()
    }

    pub fn incident_state(&self) -> IncidentState {
        IncidentState {
            consecutive_fails: self.check.consecutive_fails,
            incident_open: self.check.incident_open,
            consecutive_degraded: self.check.consecutive_degraded,
            degraded_open: self.check.degraded_open,
        }
    }

    /// Whether a run started at `now_ms` surely ends before the lease runs
    /// out, keeping half of the lease margin in hand (for writing the result
    /// and for clock skew). So a job may wait in the queue up to half the
    /// margin. One that waited longer is not started: its slot is re-queued
    /// under a new lease, and starting it anyway could overlap that run.
    pub fn can_start(&self, now_ms: i64) -> bool {
        now_ms + self.run_budget_ms() + self.margin_ms() / 2 <= self.lease_expires_ms
    }

    /// The longest a run can take: every attempt timing out, plus the
    /// pauses between them. The scheduler's lease is this plus its margin
    /// (the claim computes the same sum in SQL).
    pub fn run_budget_ms(&self) -> i64 {
        let retries = self.check.spec.retries.clamp(0, 5);
        i64::from(self.check.spec.timeout_ms) * i64::from(retries + 1)
            + 200 * ((1i64 << retries) - 1)
    }

    fn margin_ms(&self) -> i64 {
        self.lease_expires_ms - self.claimed_ms - self.run_budget_ms()
    }

    /// The pause before retry `n` (1-based): 200 ms, doubling.
    pub fn retry_backoff_ms(n: u8) -> i64 {
        200i64 << n.saturating_sub(1).min(5)
    }

    /// How long retry `n` (1-based) may take if it starts at `now_ms` after
    /// its backoff: the check's `timeout_ms`, cut to the time left before
    /// the next slot is due and before the lease runs out (keeping half the
    /// margin, as [`Self::can_start`]), so a retry never overlaps the next
    /// run. A retry with less than [`MIN_RETRY_MS`] left (or less than the
    /// whole timeout, when that is shorter) is skipped, and the error says
    /// why.
    pub fn retry_window(&self, n: u8, now_ms: i64) -> Result<i64, RetrySkipped> {
        if i32::from(n) > self.check.spec.retries {
            return Err(RetrySkipped::NoneLeft);
        }
        let start = now_ms + Self::retry_backoff_ms(n);
        let next_slot = self.slot_ms + i64::from(self.check.spec.interval_seconds) * 1000;
        let lease_end = self.lease_expires_ms - self.margin_ms() / 2;
        let timeout = i64::from(self.check.spec.timeout_ms);
        let window = timeout.min(next_slot - start).min(lease_end - start);
        if window >= timeout.min(MIN_RETRY_MS) {
            Ok(window)
        } else {
            Err(RetrySkipped::NoTime {
                retry: n,
                left_ms: (next_slot.min(lease_end) - now_ms).max(0),
            })
        }
    }
}

/// Shortest time a retry is given; with less left before the next slot it
/// is skipped.
pub const MIN_RETRY_MS: i64 = 100;

/// Why a retry was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetrySkipped {
    /// Every configured retry was used.
    NoneLeft,
    /// A configured retry had too little time before the next slot.
    NoTime { retry: u8, left_ms: i64 },
}

impl std::fmt::Display for RetrySkipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetrySkipped::NoneLeft => f.write_str("no retries left"),
            RetrySkipped::NoTime { retry, left_ms } => write!(
                f,
                "retry {retry} skipped: only {left_ms} ms left before the next run is due"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            location: "default".into(),
            check_id: Uuid::new_v4(),
            token: Uuid::new_v4(),
            slot_ms: 1_700_000_000_123,
            claimed_ms: 1_700_000_000_123,
            lease_expires_ms: 1_700_000_007_123,
            check: JobCheck {
                spec: CheckSpec {
                    name: "n".into(),
                    url: "http://a/".into(),
                    headers: std::collections::BTreeMap::from([("x".into(), "y".into())]),
                    body_contains: Some("ok".into()),
                    timeout_ms: 5000,
                    retries: 2,
                    ..CheckSpec::defaults()
                },
                consecutive_fails: 1,
                incident_open: false,
                consecutive_degraded: 0,
                degraded_open: false,
            },
        }
    }

    #[test]
    fn a_job_survives_encoding_round_trip() {
        let job = job();
        assert_eq!(Job::decode(&job.encode()), Some(job));
    }

    #[test]
    fn garbage_is_not_a_job() {
        assert_eq!(Job::decode("nope"), None);
        assert_eq!(Job::decode("{}"), None);
    }

    #[test]
    fn retries_stay_within_the_lease_and_before_the_next_slot() {
        let mut job = job();
        job.check.spec.timeout_ms = 1000;
        // 2 retries: budget 3 x 1 s + 200 + 400 ms = 3.6 s; margin 2 s.
        assert_eq!(job.run_budget_ms(), 3600);
        job.lease_expires_ms = job.claimed_ms + 5600;
        assert!(job.can_start(job.claimed_ms + 1000));
        assert!(!job.can_start(job.claimed_ms + 1001));
        assert_eq!(job.retry_window(1, job.claimed_ms + 1000), Ok(1000));
        assert_eq!(job.retry_window(2, job.claimed_ms + 2000), Ok(1000));
        assert_eq!(
            job.retry_window(3, job.claimed_ms + 1000),
            Err(RetrySkipped::NoneLeft),
            "only 2 retries"
        );
        // Late in the lease: the retry gets what is left of it.
        assert_eq!(job.retry_window(2, job.claimed_ms + 3300), Ok(900));
    }

    #[test]
    fn a_retry_gets_the_time_left_before_the_next_slot() {
        // The example: every 2 s, timeout 3 s, 1 retry.
        let mut job = job();
        job.check.spec.interval_seconds = 2;
        job.check.spec.timeout_ms = 3000;
        job.check.spec.retries = 1;
        job.lease_expires_ms = job.claimed_ms + job.run_budget_ms() + 5000;
        // The first attempt failed fast: the retry (after 200 ms) has the
        // rest of the 2 s.
        assert_eq!(job.retry_window(1, job.slot_ms + 50), Ok(1750));
        // With 80 ms left it is skipped, and says so.
        let skipped = job.retry_window(1, job.slot_ms + 1720).unwrap_err();
        assert_eq!(
            skipped,
            RetrySkipped::NoTime {
                retry: 1,
                left_ms: 280
            }
        );
        assert!(skipped.to_string().contains("retry 1 skipped"));
    }

    #[test]
    fn a_job_starts_only_if_its_run_fits_in_the_lease() {
        let mut job = job();
        job.check.spec.retries = 0;
        // Lease ends 7 s after the claim: timeout 5 s, margin 2 s. It may
        // wait up to half the margin.
        assert!(job.can_start(job.claimed_ms));
        assert!(job.can_start(job.claimed_ms + 1000));
        assert!(!job.can_start(job.claimed_ms + 1001));
    }
}
