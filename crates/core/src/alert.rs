//! The alert state machine: N consecutive failures open an incident (one
//! `failure` alert), the first success after that closes it (one `recovery`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type))]
#[cfg_attr(feature = "sqlx", sqlx(type_name = "text", rename_all = "lowercase"))]
pub enum AlertKind {
    Failure,
    Recovery,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Failure => "failure",
            AlertKind::Recovery => "recovery",
        }
    }
}

/// The per-check state the alert decision depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IncidentState {
    pub consecutive_fails: i32,
    /// A failure alert was sent and no recovery yet.
    pub incident_open: bool,
}

impl IncidentState {
    /// Applies one run's result. Returns the new state and the alert to
    /// raise, if any. An incident raises exactly one failure alert, when the
    /// failure count first reaches `threshold`, and one recovery alert.
    pub fn next(self, succeeded: bool, threshold: i32) -> (IncidentState, Option<AlertKind>) {
        if succeeded {
            let alert = self.incident_open.then_some(AlertKind::Recovery);
            (IncidentState::default(), alert)
        } else {
            let consecutive_fails = self.consecutive_fails.saturating_add(1);
            let opens = !self.incident_open && consecutive_fails >= threshold.max(1);
            (
                IncidentState {
                    consecutive_fails,
                    incident_open: self.incident_open || opens,
                },
                opens.then_some(AlertKind::Failure),
            )
        }
    }
}

/// The webhook body: the original design's fields plus what a receiver needs
/// to act on it without calling back.
#[derive(Debug, Clone, Serialize)]
pub struct AlertPayload {
    pub alert_id: Uuid,
    pub check_id: Uuid,
    pub check_name: String,
    pub url: String,
    #[serde(rename = "type")]
    pub kind: AlertKind,
    pub status: String,
    pub error: Option<String>,
    pub consecutive_fails: i32,
    #[serde(serialize_with = "crate::time::ms")]
    pub timestamp: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seq: &[bool], threshold: i32) -> Vec<Option<AlertKind>> {
        let mut state = IncidentState::default();
        seq.iter()
            .map(|ok| {
                let (s, alert) = state.next(*ok, threshold);
                state = s;
                alert
            })
            .collect()
    }

    #[test]
    fn failure_alert_fires_once_at_threshold() {
        let alerts = run(&[false, false, false, false, false], 3);
        assert_eq!(
            alerts,
            vec![None, None, Some(AlertKind::Failure), None, None]
        );
    }

    #[test]
    fn recovery_follows_an_open_incident_only() {
        let alerts = run(&[false, true, false, false, true, true], 2);
        assert_eq!(
            alerts,
            vec![
                None,
                None,
                None,
                Some(AlertKind::Failure),
                Some(AlertKind::Recovery),
                None
            ]
        );
    }

    #[test]
    fn threshold_one_alerts_on_first_failure() {
        assert_eq!(run(&[false], 1), vec![Some(AlertKind::Failure)]);
    }

    #[test]
    fn success_resets_the_failure_count() {
        let (s, _) = IncidentState {
            consecutive_fails: 2,
            incident_open: false,
        }
        .next(true, 3);
        assert_eq!(s, IncidentState::default());
    }
}
