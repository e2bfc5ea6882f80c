//! Service level objectives: a check's objective (a share of runs that must
//! pass over a rolling window), its error budget and burn rates, and the
//! multiwindow, multi-burn-rate alert rule of Google's SRE workbook.

use serde::{Deserialize, Serialize};

use crate::check::ValidationError;

/// Largest SLO window, in days (the rollups keep 400 days by default).
pub const MAX_WINDOW_DAYS: u32 = 90;

/// A check's objective: `objective` percent of the runs made over the last
/// `window_days` days succeed (`degraded` counts as success, `missed` runs
/// are not counted).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Percent, above 0 and below 100 (e.g. 99.9).
    pub objective: f64,
    #[serde(default = "default_window_days")]
    pub window_days: u32,
}

// Validated objectives are finite (never NaN), so equality is total.
impl Eq for Slo {}

fn default_window_days() -> u32 {
    30
}

impl Slo {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !(self.objective > 0.0 && self.objective < 100.0) {
            return Err(ValidationError {
                field: "slo.objective".into(),
                message: "must be a percentage above 0 and below 100, e.g. 99.9".into(),
            });
        }
        if !(1..=MAX_WINDOW_DAYS).contains(&self.window_days) {
            return Err(ValidationError {
                field: "slo.window_days".into(),
                message: format!("must be between 1 and {MAX_WINDOW_DAYS}"),
            });
        }
        Ok(())
    }

    /// The share of runs allowed to fail (0.001 for 99.9).
    pub fn error_rate_allowed(&self) -> f64 {
        1.0 - self.objective / 100.0
    }

    /// The error budget over the SLO window, from the runs made in it.
    pub fn budget(&self, made: u64, failed: u64) -> ErrorBudget {
        let allowed = self.error_rate_allowed() * made as f64;
        let remaining = allowed - failed as f64;
        ErrorBudget {
            allowed_failures: allowed,
            failed,
            remaining_failures: remaining,
            remaining_ratio: if allowed > 0.0 {
                Some(remaining / allowed)
            } else {
                None
            },
        }
    }

    /// How fast the budget burns over a window: the window's failure rate
    /// over the allowed rate (1 spends the budget exactly over the SLO
    /// window). `None` when no run was made in the window.
    pub fn burn_rate(&self, made: u64, failed: u64) -> Option<f64> {
        (made > 0).then(|| (failed as f64 / made as f64) / self.error_rate_allowed())
    }
}

/// The error budget over an SLO window, counted in runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ErrorBudget {
    /// Failures the objective allows over the runs made so far.
    pub allowed_failures: f64,
    /// Failures so far (the budget spent).
    pub failed: u64,
    /// `allowed_failures - failed`; negative once the objective is missed.
    pub remaining_failures: f64,
    /// `remaining_failures / allowed_failures` (1 untouched, 0 spent, below
    /// 0 overspent); `None` before any run.
    pub remaining_ratio: Option<f64>,
}

/// The windows burn rates are reported over, in seconds, with their names.
pub const BURN_WINDOWS: [(&str, u32); 5] = [
    ("5m", 300),
    ("30m", 1800),
    ("1h", 3600),
    ("6h", 21_600),
    ("3d", 259_200),
];

/// Runs made and failed in each of [`BURN_WINDOWS`] (same order).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WindowCounts {
    pub made: [u64; 5],
    pub failed: [u64; 5],
}

impl WindowCounts {
    fn burn(&self, slo: &Slo, window: &str) -> f64 {
        BURN_WINDOWS
            .iter()
            .position(|(name, _)| *name == window)
            .and_then(|i| slo.burn_rate(self.made[i], self.failed[i]))
            .unwrap_or(0.0)
    }
}

/// The page rule (SRE workbook, multiwindow multi-burn-rate): burning over
/// 14.4 over both the last hour and the last 5 minutes (2% of a 30-day
/// budget in an hour), or over 6 over both the last 6 hours and the last
/// 30 minutes (5% in 6 hours). The short window makes the alert stop soon
/// after the burn does. Returns the rule that fired.
pub fn page(slo: &Slo, counts: &WindowCounts) -> Option<BurnRule> {
    let b = |w| counts.burn(slo, w);
    if b("1h") > 14.4 && b("5m") > 14.4 {
        Some(BurnRule::Fast)
    } else if b("6h") > 6.0 && b("30m") > 6.0 {
        Some(BurnRule::Slow)
    } else {
        None
    }
}

/// Which page rule fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BurnRule {
    /// Over 14.4 over 1 h and 5 min.
    Fast,
    /// Over 6 over 6 h and 30 min.
    Slow,
}

impl BurnRule {
    pub fn describe(self) -> &'static str {
        match self {
            BurnRule::Fast => "error budget burning over 14.4x over the last 1h and 5m",
            BurnRule::Slow => "error budget burning over 6x over the last 6h and 30m",
        }
    }
}

/// What the SLO evaluator does for a check, given whether a breach is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SloStep {
    /// A breach starts: one `slo_burn` alert.
    Open(BurnRule),
    /// The breach ended: one `slo_recovered` alert.
    Close,
    Nothing,
}

pub fn step(slo: &Slo, counts: &WindowCounts, open: bool) -> SloStep {
    match (page(slo, counts), open) {
        (Some(rule), false) => SloStep::Open(rule),
        (None, true) => SloStep::Close,
        _ => SloStep::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slo() -> Slo {
        Slo {
            objective: 99.9,
            window_days: 30,
        }
    }

    fn counts(rates: [(u64, u64); 5]) -> WindowCounts {
        WindowCounts {
            made: rates.map(|r| r.0),
            failed: rates.map(|r| r.1),
        }
    }

    #[test]
    fn objectives_outside_0_to_100_and_bad_windows_are_refused() {
        for (objective, days, field) in [
            (100.0, 30, "slo.objective"),
            (0.0, 30, "slo.objective"),
            (f64::NAN, 30, "slo.objective"),
            (99.0, 0, "slo.window_days"),
            (99.0, 91, "slo.window_days"),
        ] {
            let e = Slo {
                objective,
                window_days: days,
            }
            .validate()
            .unwrap_err();
            assert_eq!(e.field, field);
        }
        assert!(slo().validate().is_ok());
    }

    #[test]
    fn the_budget_is_the_allowed_share_of_the_runs_made() {
        let b = slo().budget(100_000, 40);
        assert!((b.allowed_failures - 100.0).abs() < 1e-6);
        assert_eq!(b.failed, 40);
        assert!((b.remaining_failures - 60.0).abs() < 1e-6);
        assert!((b.remaining_ratio.unwrap() - 0.6).abs() < 1e-9);
        assert!(slo().budget(1000, 5).remaining_ratio.unwrap() < 0.0);
        assert_eq!(slo().budget(0, 0).remaining_ratio, None);
    }

    #[test]
    fn burn_rate_is_the_failure_rate_over_the_allowed_rate() {
        assert!((slo().burn_rate(1000, 1).unwrap() - 1.0).abs() < 1e-9);
        assert!((slo().burn_rate(100, 2).unwrap() - 20.0).abs() < 1e-9);
        assert_eq!(slo().burn_rate(0, 0), None);
    }

    #[test]
    fn a_fast_burn_pages_only_when_both_the_hour_and_the_last_5_minutes_burn() {
        // 2% failing: a burn of 20 over 5m and 1h.
        let hot = counts([(100, 2), (600, 12), (1000, 20), (6000, 20), (9000, 20)]);
        assert_eq!(page(&slo(), &hot), Some(BurnRule::Fast));
        // The last 5 minutes recovered: no page, though the hour burned.
        let cooled = counts([(100, 0), (600, 12), (1000, 20), (6000, 20), (9000, 20)]);
        assert_eq!(page(&slo(), &cooled), None);
    }

    #[test]
    fn a_slow_burn_pages_when_6h_and_30m_both_burn_over_6() {
        // 0.8% failing: a burn of 8.
        let warm = counts([(100, 0), (1000, 8), (2000, 16), (10000, 80), (50000, 80)]);
        assert_eq!(page(&slo(), &warm), Some(BurnRule::Slow));
    }

    #[test]
    fn one_alert_opens_a_breach_and_one_closes_it() {
        let hot = counts([(100, 2), (600, 12), (1000, 20), (6000, 20), (9000, 20)]);
        let calm = WindowCounts::default();
        assert_eq!(step(&slo(), &hot, false), SloStep::Open(BurnRule::Fast));
        assert_eq!(step(&slo(), &hot, true), SloStep::Nothing);
        assert_eq!(step(&slo(), &calm, true), SloStep::Close);
        assert_eq!(step(&slo(), &calm, false), SloStep::Nothing);
    }
}
