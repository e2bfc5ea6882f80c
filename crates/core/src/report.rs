//! Report arithmetic: availability over runs and uptime over minutes.
//!
//! Availability is runs that passed (`success` or `degraded`) over runs
//! made (`missed` runs are not made). Uptime is minutes up over minutes
//! counted: a minute with runs is up when none of them failed (`fail`,
//! `timeout`, `error`); a minute without runs carries the state of the last
//! minute that had some; minutes before the check existed, or before its
//! first run, are not counted.

/// The runs of one check in one minute (all locations asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteRuns {
    /// The minute's start, epoch seconds (a multiple of 60).
    pub minute: i64,
    /// Runs made (not `missed`).
    pub made: u64,
    /// Runs that failed (`fail`, `timeout`, `error`).
    pub down: u64,
}

impl MinuteRuns {
    /// Up, down, or `None` when no run was made in it (carry the last state).
    pub fn state(&self) -> Option<bool> {
        (self.made > 0).then_some(self.down == 0)
    }
}

/// Minutes up and minutes counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Uptime {
    pub up_minutes: u64,
    pub counted_minutes: u64,
}

impl Uptime {
    /// The share of counted minutes that were up; `None` when none counted.
    pub fn ratio(&self) -> Option<f64> {
        (self.counted_minutes > 0).then(|| self.up_minutes as f64 / self.counted_minutes as f64)
    }
}

/// Availability: runs up over runs made; `None` when none was made.
pub fn availability(up: u64, made: u64) -> Option<f64> {
    (made > 0).then(|| up as f64 / made as f64)
}

/// Uptime per bucket of `bucket` seconds over `[from, to)` (epoch seconds,
/// multiples of 60; `from` a multiple of `bucket`), from the minutes that
/// had runs (ascending, within the window) and the state of the last minute
/// with runs before `from` (`prior_up`). Minutes before `not_before` (the
/// check's creation) are not counted. One entry per bucket, in order.
pub fn uptime_buckets(
    minutes: &[MinuteRuns],
    prior_up: Option<bool>,
    from: i64,
    to: i64,
    not_before: i64,
    bucket: i64,
) -> Vec<Uptime> {
    let bucket = bucket.max(60);
    let n = ((to - from).max(0) + bucket - 1) / bucket;
    let mut out = vec![Uptime::default(); n as usize];
    let mut state = prior_up;
    let mut next = minutes.iter().peekable();
    let mut m = from;
    while m < to {
        while let Some(r) = next.peek() {
            if r.minute > m {
                break;
            }
            if r.minute == m {
                if let Some(s) = r.state() {
                    state = Some(s);
                }
            }
            next.next();
        }
        if m + 60 > not_before {
            if let Some(up) = state {
                let b = &mut out[((m - from) / bucket) as usize];
                b.counted_minutes += 1;
                b.up_minutes += u64::from(up);
            }
        }
        m += 60;
    }
    out
}

/// Uptime over the whole of `[from, to)`.
pub fn uptime(
    minutes: &[MinuteRuns],
    prior_up: Option<bool>,
    from: i64,
    to: i64,
    not_before: i64,
) -> Uptime {
    uptime_buckets(minutes, prior_up, from, to, not_before, (to - from).max(60))
        .into_iter()
        .next()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(minute: i64, made: u64, down: u64) -> MinuteRuns {
        MinuteRuns {
            minute: minute * 60,
            made,
            down,
        }
    }

    #[test]
    fn minutes_without_runs_carry_the_last_state() {
        // Up at 0, down at 3 (carried to 4 and 5), up again at 6.
        let runs = [m(0, 1, 0), m(3, 1, 1), m(6, 1, 0)];
        let u = uptime(&runs, None, 0, 10 * 60, 0);
        assert_eq!(u.counted_minutes, 10);
        assert_eq!(u.up_minutes, 7);
        assert_eq!(u.ratio(), Some(0.7));
    }

    #[test]
    fn a_minute_with_one_failed_run_among_several_is_down() {
        let u = uptime(&[m(0, 3, 1)], None, 0, 60, 0);
        assert_eq!(
            u,
            Uptime {
                up_minutes: 0,
                counted_minutes: 1
            }
        );
    }

    #[test]
    fn minutes_before_the_first_run_or_the_check_do_not_count() {
        // No state before minute 4; the check was created in minute 2.
        let runs = [m(4, 1, 0)];
        assert_eq!(uptime(&runs, None, 0, 600, 0).counted_minutes, 6);
        // With a prior state, counting starts at creation.
        let u = uptime(&runs, Some(false), 0, 600, 2 * 60 + 30);
        assert_eq!(
            u,
            Uptime {
                up_minutes: 6,
                counted_minutes: 8
            }
        );
        assert_eq!(uptime(&[], None, 0, 600, 0).ratio(), None);
    }

    #[test]
    fn a_missed_only_minute_keeps_the_state_before_it() {
        let runs = [m(0, 1, 1), m(1, 0, 0)];
        assert_eq!(uptime(&runs, None, 0, 120, 0).up_minutes, 0);
    }

    #[test]
    fn buckets_split_the_window_and_carry_across_their_edges() {
        let runs = [m(0, 1, 0), m(7, 1, 1)];
        let b = uptime_buckets(&runs, None, 0, 15 * 60, 0, 5 * 60);
        assert_eq!(
            b,
            vec![
                Uptime {
                    up_minutes: 5,
                    counted_minutes: 5
                },
                Uptime {
                    up_minutes: 2,
                    counted_minutes: 5
                },
                Uptime {
                    up_minutes: 0,
                    counted_minutes: 5
                },
            ]
        );
    }

    #[test]
    fn availability_counts_runs_made_only() {
        assert_eq!(availability(9, 10), Some(0.9));
        assert_eq!(availability(0, 0), None);
    }
}
