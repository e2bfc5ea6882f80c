//! The alert state machine: N consecutive failures open an incident (one
//! `failure` alert), the first success after that closes it (one `recovery`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type))]
#[cfg_attr(feature = "sqlx", sqlx(type_name = "text", rename_all = "snake_case"))]
pub enum AlertKind {
    Failure,
    Recovery,
    /// `alert_threshold` degraded (slow but passing) runs in a row, with
    /// `alert_on_degraded`.
    Degraded,
    /// The server's certificate expires within `tls_expiry_days`.
    TlsExpiry,
    /// The check's SLO error budget burns too fast (`slo_alerts`).
    SloBurn,
    /// The burn that raised an `slo_burn` alert ended.
    SloRecovered,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Failure => "failure",
            AlertKind::Recovery => "recovery",
            AlertKind::Degraded => "degraded",
            AlertKind::TlsExpiry => "tls_expiry",
            AlertKind::SloBurn => "slo_burn",
            AlertKind::SloRecovered => "slo_recovered",
        }
    }
}

/// The per-check state the alert decision depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IncidentState {
    pub consecutive_fails: i32,
    /// A failure alert was sent and no recovery yet.
    pub incident_open: bool,
    /// Degraded runs in a row (with `alert_on_degraded`).
    pub consecutive_degraded: i32,
    /// A degraded alert was sent and no recovery yet.
    pub degraded_open: bool,
}

impl IncidentState {
    /// Applies one run's result. Returns the new state and the alert to
    /// raise, if any. An incident raises exactly one failure alert, when the
    /// failure count first reaches `threshold`, and one recovery alert.
    pub fn next(self, succeeded: bool, threshold: i32) -> (IncidentState, Option<AlertKind>) {
        if succeeded {
            let alert = self.incident_open.then_some(AlertKind::Recovery);
            (
                IncidentState {
                    consecutive_fails: 0,
                    incident_open: false,
                    ..self
                },
                alert,
            )
        } else {
            let consecutive_fails = self.consecutive_fails.saturating_add(1);
            let opens = !self.incident_open && consecutive_fails >= threshold.max(1);
            (
                IncidentState {
                    consecutive_fails,
                    incident_open: self.incident_open || opens,
                    ..self
                },
                opens.then_some(AlertKind::Failure),
            )
        }
    }

    /// Applies one run's status: failures as [`Self::next`] (a degraded run
    /// is up), and with `alert_on_degraded` a streak of `threshold` degraded
    /// runs raises one `degraded` alert, closed by a `recovery` at the first
    /// fast run. A failure ends a degraded streak silently (the failure
    /// incident speaks for it).
    pub fn next_run(
        self,
        status: crate::RunStatus,
        threshold: i32,
        alert_on_degraded: bool,
    ) -> (IncidentState, Option<AlertKind>) {
        let (mut state, failure_alert) = self.next(status.is_up(), threshold);
        let mut degraded_alert = None;
        match status {
            crate::RunStatus::Degraded if alert_on_degraded => {
                state.consecutive_degraded = self.consecutive_degraded.saturating_add(1);
                if !self.degraded_open && state.consecutive_degraded >= threshold.max(1) {
                    state.degraded_open = true;
                    degraded_alert = Some(AlertKind::Degraded);
                }
            }
            crate::RunStatus::Success if self.degraded_open => {
                state.consecutive_degraded = 0;
                state.degraded_open = false;
                degraded_alert = Some(AlertKind::Recovery);
            }
            _ => {
                state.consecutive_degraded = 0;
                state.degraded_open = false;
            }
        }
        (state, failure_alert.or(degraded_alert))
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
    use crate::RunStatus;

    fn statuses(seq: &[RunStatus], threshold: i32, on: bool) -> Vec<Option<AlertKind>> {
        let mut state = IncidentState::default();
        seq.iter()
            .map(|s| {
                let (next, alert) = state.next_run(*s, threshold, on);
                state = next;
                alert
            })
            .collect()
    }

    #[test]
    fn a_degraded_streak_alerts_once_and_a_fast_run_recovers_it() {
        use RunStatus::{Degraded as D, Success as S};
        assert_eq!(
            statuses(&[D, D, D, D, S, S], 3, true),
            vec![
                None,
                None,
                Some(AlertKind::Degraded),
                None,
                Some(AlertKind::Recovery),
                None
            ]
        );
        // Without alert_on_degraded, degraded runs say nothing.
        assert_eq!(statuses(&[D, D, D, S], 2, false), vec![None; 4]);
        // A broken streak starts over.
        assert_eq!(statuses(&[D, S, D, D], 3, true), vec![None; 4]);
    }

    #[test]
    fn degraded_runs_are_up_for_failure_incidents() {
        use RunStatus::{Degraded as D, Fail as F};
        assert_eq!(
            statuses(&[F, F, D], 2, false),
            vec![None, Some(AlertKind::Failure), Some(AlertKind::Recovery)]
        );
    }

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
            ..Default::default()
        }
        .next(true, 3);
        assert_eq!(s, IncidentState::default());
    }
}
