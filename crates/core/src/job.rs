//! A queued run: which check, for which due slot, under which lease, and
//! everything the worker needs to run it.
//!
//! The scheduler's claim returns the check's definition and alert state
//! with the lease, so a worker runs a job without reading the check again.
//! Jobs travel through Redis as JSON.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::IncidentState;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub check_id: Uuid,
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

/// The part of a check a run needs, as it was when the slot was claimed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCheck {
    pub name: String,
    pub url: String,
    pub method: String,
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    pub expected_status: u16,
    pub body_contains: Option<String>,
    pub timeout_ms: i32,
    pub alert_threshold: i32,
    pub webhook_url: Option<String>,
    /// Alert state after the previous run; nothing else writes it while the
    /// lease is held.
    pub consecutive_fails: i32,
    pub incident_open: bool,
}

impl Job {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn decode(s: &str) -> Option<Job> {
        serde_json::from_str(s).ok()
    }

    pub fn slot(&self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.slot_ms)
            .single()
            .unwrap_or_default()
    }

    pub fn incident_state(&self) -> IncidentState {
        IncidentState {
            consecutive_fails: self.check.consecutive_fails,
            incident_open: self.check.incident_open,
        }
    }

    /// Whether a run started at `now_ms` surely ends before the lease runs
    /// out, keeping half of the lease margin in hand (for writing the result
    /// and for clock skew). So a job may wait in the queue up to half the
    /// margin. One that waited longer is not started: its slot is re-queued
    /// under a new lease, and starting it anyway could overlap that run.
    pub fn can_start(&self, now_ms: i64) -> bool {
        let timeout = i64::from(self.check.timeout_ms);
        let margin = self.lease_expires_ms - self.claimed_ms - timeout;
        now_ms + timeout + margin / 2 <= self.lease_expires_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            check_id: Uuid::new_v4(),
            token: Uuid::new_v4(),
            slot_ms: 1_700_000_000_123,
            claimed_ms: 1_700_000_000_123,
            lease_expires_ms: 1_700_000_007_123,
            check: JobCheck {
                name: "n".into(),
                url: "http://a/".into(),
                method: "GET".into(),
                headers: BTreeMap::from([("x".into(), "y".into())]),
                body: None,
                expected_status: 200,
                body_contains: Some("ok".into()),
                timeout_ms: 5000,
                alert_threshold: 3,
                webhook_url: None,
                consecutive_fails: 1,
                incident_open: false,
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
    fn a_job_starts_only_if_its_run_fits_in_the_lease() {
        let job = job();
        // Lease ends 7 s after the claim: timeout 5 s, margin 2 s. It may
        // wait up to half the margin.
        assert!(job.can_start(job.claimed_ms));
        assert!(job.can_start(job.claimed_ms + 1000));
        assert!(!job.can_start(job.claimed_ms + 1001));
    }
}
