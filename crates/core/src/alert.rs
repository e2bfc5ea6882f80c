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

/// One location's streak, as the quorum sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationStreak {
    pub location: String,
    pub consecutive_fails: i32,
    pub consecutive_degraded: i32,
    /// The location's last error (named in the alert).
    pub last_error: Option<String>,
    /// Whether the location has a live worker: a stale one neither opens
    /// nor holds an incident.
    pub live: bool,
}

/// A location named in an alert: failing (or degraded), with its last error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertLocation {
    pub location: String,
    pub error: Option<String>,
}

/// The check's incident state after a run, decided over all its locations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumDecision {
    pub incident_open: bool,
    pub degraded_open: bool,
    pub alert: Option<AlertKind>,
    /// The live locations failing (or, for a `degraded` alert, degraded).
    pub locations: Vec<AlertLocation>,
}

/// Decides the check's incident from every location's streak: an incident
/// is open while at least `quorum` of the live locations have failed
/// `threshold` runs in a row. Opening it raises one `failure` alert, its
/// end one `recovery`. With `alert_on_degraded`, a quorum of degraded
/// streaks (and no failure incident) raises one `degraded` alert, closed by
/// a `recovery` once no live location fails or is degraded; a failure
/// incident taking over ends it silently. With one location this is the
/// single-location rule of [`IncidentState::next_run`].
pub fn decide(
    was: IncidentState,
    streaks: &[LocationStreak],
    threshold: i32,
    alert_on_degraded: bool,
    quorum: crate::Quorum,
) -> QuorumDecision {
    let threshold = threshold.max(1);
    let live: Vec<&LocationStreak> = streaks.iter().filter(|s| s.live).collect();
    let named = |pick: &dyn Fn(&LocationStreak) -> bool| -> Vec<AlertLocation> {
        live.iter()
            .filter(|s| pick(s))
            .map(|s| AlertLocation {
                location: s.location.clone(),
                error: s.last_error.clone(),
            })
            .collect()
    };
    let failing = named(&|s| s.consecutive_fails >= threshold);
    let incident_open = quorum.met(failing.len(), live.len());
    let degraded = named(&|s| s.consecutive_degraded >= threshold);
    let degraded_open =
        alert_on_degraded && !incident_open && quorum.met(degraded.len(), live.len());
    let all_clear = live.iter().all(|s| s.consecutive_fails == 0);
    let alert = if incident_open && !was.incident_open {
        Some(AlertKind::Failure)
    } else if !incident_open && was.incident_open {
        Some(AlertKind::Recovery)
    } else if degraded_open && !was.degraded_open {
        Some(AlertKind::Degraded)
    } else if !degraded_open && was.degraded_open && !incident_open && all_clear {
        Some(AlertKind::Recovery)
    } else {
        None
    };
    let locations = match alert {
        Some(AlertKind::Degraded) => degraded,
        _ => failing,
    };
    QuorumDecision {
        incident_open,
        degraded_open,
        alert,
        locations,
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
    /// The location of the run that raised it (`null` for alerts raised
    /// over all locations, such as an SLO's).
    pub location: Option<String>,
    /// The live locations failing (degraded, for a `degraded` alert), each
    /// with its last error; empty for a recovery.
    pub locations: Vec<AlertLocation>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Quorum, RunStatus};

    fn streak(location: &str, fails: i32, live: bool) -> LocationStreak {
        LocationStreak {
            location: location.into(),
            consecutive_fails: fails,
            consecutive_degraded: 0,
            last_error: (fails > 0).then(|| format!("{location} is down")),
            live,
        }
    }

    fn opened(quorum: Quorum, streaks: &[LocationStreak]) -> QuorumDecision {
        decide(IncidentState::default(), streaks, 2, false, quorum)
    }

    #[test]
    fn quorums_open_incidents_as_their_names_say() {
        let one_bad = [
            streak("a", 2, true),
            streak("b", 0, true),
            streak("c", 0, true),
        ];
        let two_bad = [
            streak("a", 2, true),
            streak("b", 5, true),
            streak("c", 1, true),
        ];
        let all_bad = [
            streak("a", 2, true),
            streak("b", 5, true),
            streak("c", 2, true),
        ];
        assert_eq!(
            opened(Quorum::Any, &one_bad).alert,
            Some(AlertKind::Failure)
        );
        assert_eq!(opened(Quorum::Majority, &one_bad).alert, None);
        let d = opened(Quorum::Majority, &two_bad);
        assert_eq!(d.alert, Some(AlertKind::Failure));
        let named: Vec<&str> = d.locations.iter().map(|l| l.location.as_str()).collect();
        assert_eq!(named, ["a", "b"]);
        assert_eq!(d.locations[1].error.as_deref(), Some("b is down"));
        assert_eq!(opened(Quorum::All, &two_bad).alert, None);
        assert_eq!(
            opened(Quorum::All, &all_bad).alert,
            Some(AlertKind::Failure)
        );
        assert_eq!(
            opened(Quorum::AtLeast(2), &two_bad).alert,
            Some(AlertKind::Failure)
        );
    }

    #[test]
    fn a_stale_location_neither_opens_nor_holds_an_incident() {
        let stale_bad = [streak("a", 9, false), streak("b", 0, true)];
        assert_eq!(opened(Quorum::Any, &stale_bad).alert, None);
        let open = IncidentState {
            incident_open: true,
            ..Default::default()
        };
        let d = decide(open, &stale_bad, 2, false, Quorum::Any);
        assert!(!d.incident_open);
        assert_eq!(d.alert, Some(AlertKind::Recovery));
        // `all` counts the live ones: one stale, the two live both failing.
        let two_live_bad = [
            streak("a", 2, true),
            streak("b", 2, true),
            streak("c", 0, false),
        ];
        assert_eq!(
            opened(Quorum::All, &two_live_bad).alert,
            Some(AlertKind::Failure)
        );
    }

    #[test]
    fn one_recovery_when_the_quorum_no_longer_fails() {
        let open = IncidentState {
            incident_open: true,
            ..Default::default()
        };
        // Any: one of two recovers, the other still fails: still open.
        let d = decide(
            open,
            &[streak("a", 0, true), streak("b", 3, true)],
            2,
            false,
            Quorum::Any,
        );
        assert!(d.incident_open);
        assert_eq!(d.alert, None);
        let d = decide(
            open,
            &[streak("a", 0, true), streak("b", 0, true)],
            2,
            false,
            Quorum::Any,
        );
        assert_eq!(d.alert, Some(AlertKind::Recovery));
        assert!(d.locations.is_empty());
    }

    #[test]
    fn one_location_decides_as_the_single_location_rule() {
        use RunStatus::{Degraded as D, Fail as F, Success as S};
        for seq in [
            vec![F, F, F, S, F, D, D, D, S, D, D, F, S],
            vec![D, D, D, D, F, F, F, S, S],
            vec![F, S, F, F, D, D, D, S],
        ] {
            for on in [false, true] {
                let mut single = IncidentState::default();
                let mut quorum = IncidentState::default();
                for status in &seq {
                    let (next, want) = single.next_run(*status, 3, on);
                    single = next;
                    let (streak, _) = quorum.next_run(*status, 3, on);
                    let d = decide(
                        quorum,
                        &[LocationStreak {
                            location: "default".into(),
                            consecutive_fails: streak.consecutive_fails,
                            consecutive_degraded: streak.consecutive_degraded,
                            last_error: None,
                            live: true,
                        }],
                        3,
                        on,
                        Quorum::Any,
                    );
                    assert_eq!(d.alert, want, "{seq:?} {on} at {status:?}");
                    quorum = IncidentState {
                        incident_open: d.incident_open,
                        degraded_open: d.degraded_open,
                        ..streak
                    };
                    assert_eq!(quorum, single, "{seq:?} {on}");
                }
            }
        }
    }

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
