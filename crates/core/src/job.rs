//! A queued run: which check, for which due slot, under which lease token.
//!
//! Jobs travel through Redis as compact strings
//! `"<check_id>:<lease_token>:<slot_epoch_ms>"`.

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    pub check_id: Uuid,
    /// Lease token handed out by the scheduler's claim. A worker swaps it for
    /// its own run token when it starts, so one claim runs at most once.
    pub token: Uuid,
    /// The due time of the slot this job runs, in epoch milliseconds.
    pub slot_ms: i64,
}

impl Job {
    pub fn encode(&self) -> String {
        format!(
            "{}:{}:{}",
            self.check_id.simple(),
            self.token.simple(),
            self.slot_ms
        )
    }

    pub fn decode(s: &str) -> Option<Job> {
        let mut parts = s.splitn(3, ':');
        let check_id = Uuid::parse_str(parts.next()?).ok()?;
        let token = Uuid::parse_str(parts.next()?).ok()?;
        let slot_ms = parts.next()?.parse().ok()?;
        Some(Job {
            check_id,
            token,
            slot_ms,
        })
    }

    pub fn slot(&self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.slot_ms)
            .single()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_survives_encoding_round_trip() {
        let job = Job {
            check_id: Uuid::new_v4(),
            token: Uuid::new_v4(),
            slot_ms: 1_700_000_000_123,
        };
        assert_eq!(Job::decode(&job.encode()), Some(job));
    }

    #[test]
    fn garbage_is_not_a_job() {
        assert_eq!(Job::decode("nope"), None);
        assert_eq!(Job::decode("a:b:c"), None);
        let id = Uuid::new_v4().simple().to_string();
        assert_eq!(Job::decode(&format!("{id}:{id}:x")), None);
    }
}
