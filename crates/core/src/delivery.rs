//! The webhook delivery rules, pure: which answers count as delivered, which
//! end the retries, and when the next attempt is due.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Where an alert's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type))]
#[cfg_attr(feature = "sqlx", sqlx(type_name = "text", rename_all = "lowercase"))]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    Delivered,
    /// Gave up: out of time, `410 Gone`, or refused by the target policy.
    Failed,
    /// The check has no webhook.
    Skipped,
}

/// Longest pause between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// What an HTTP answer means for a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 2xx.
    Delivered,
    /// `410 Gone`: the receiver is gone for good; retrying cannot help.
    Gone,
    /// Anything else: try again later.
    Retry,
}

pub fn judge(code: u16) -> Answer {
    match code {
        200..=299 => Answer::Delivered,
        410 => Answer::Gone,
        _ => Answer::Retry,
    }
}

/// The pause after `attempts` attempts: `backoff` doubled per attempt,
/// capped at [`MAX_BACKOFF`], times `jitter` (0.5 to 1.5, random in use).
pub fn backoff(base: Duration, attempts: i32, jitter: f64) -> Duration {
    let doubling = 1u32 << (attempts - 1).clamp(0, 20);
    base.saturating_mul(doubling)
        .min(MAX_BACKOFF)
        .mul_f64(jitter.clamp(0.5, 1.5))
}

/// When to try again, or `None` when that would be past `retry_for` after
/// the alert was created (then the delivery has failed).
pub fn next_attempt(
    now: DateTime<Utc>,
    created_at: DateTime<Utc>,
    retry_for: Duration,
    pause: Duration,
) -> Option<DateTime<Utc>> {
    let at = now + chrono::Duration::from_std(pause).ok()?;
    let deadline = created_at + chrono::Duration::from_std(retry_for).ok()?;
    (at <= deadline).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_hundreds_deliver_410_gives_up_and_the_rest_retry() {
        assert_eq!(judge(200), Answer::Delivered);
        assert_eq!(judge(204), Answer::Delivered);
        assert_eq!(judge(410), Answer::Gone);
        for code in [301, 400, 404, 429, 500, 503] {
            assert_eq!(judge(code), Answer::Retry, "{code}");
        }
    }

    #[test]
    fn the_backoff_doubles_per_attempt_with_jitter_and_a_cap() {
        let base = Duration::from_secs(1);
        assert_eq!(backoff(base, 1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(base, 2, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(base, 5, 1.0), Duration::from_secs(16));
        assert_eq!(backoff(base, 4, 0.5), Duration::from_secs(4));
        assert_eq!(backoff(base, 4, 1.5), Duration::from_secs(12));
        assert_eq!(backoff(base, 40, 1.0), MAX_BACKOFF);
        assert_eq!(backoff(base, 40, 1.5), MAX_BACKOFF.mul_f64(1.5));
    }

    #[test]
    fn retries_stop_once_the_retry_period_is_over() {
        let created = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let day = Duration::from_secs(86_400);
        let now = created + chrono::Duration::hours(23);
        assert_eq!(
            next_attempt(now, created, day, Duration::from_secs(60)),
            Some(now + chrono::Duration::seconds(60))
        );
        assert_eq!(
            next_attempt(now, created, day, Duration::from_secs(3601)),
            None
        );
    }
}
