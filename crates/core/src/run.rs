//! What one execution of a check produced, and how it is judged.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The original design's four run statuses, and `missed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type))]
#[cfg_attr(feature = "sqlx", sqlx(type_name = "text", rename_all = "lowercase"))]
pub enum RunStatus {
    /// Expected status code and body.
    Success,
    /// The target answered, but not as expected.
    Fail,
    /// No complete answer within `timeout_ms`.
    Timeout,
    /// The request could not be made (DNS, connect, TLS, protocol).
    Error,
    /// No request was made: the slot fell due while its worker was lost.
    Missed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Success => "success",
            RunStatus::Fail => "fail",
            RunStatus::Timeout => "timeout",
            RunStatus::Error => "error",
            RunStatus::Missed => "missed",
        }
    }

    pub fn is_success(self) -> bool {
        self == RunStatus::Success
    }

    /// Every status, as stored and shown.
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Success,
        RunStatus::Fail,
        RunStatus::Timeout,
        RunStatus::Error,
        RunStatus::Missed,
    ];

    pub fn parse(s: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// What broke, when a run did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    Dns,
    Connect,
    Tls,
    Timeout,
    StatusMismatch,
    BodyMismatch,
    /// The target's address is refused by the target policy.
    Blocked,
    /// Any other transport or protocol error (bad redirect, broken body...).
    Request,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Dns => "dns",
            FailureReason::Connect => "connect",
            FailureReason::Tls => "tls",
            FailureReason::Timeout => "timeout",
            FailureReason::StatusMismatch => "status_mismatch",
            FailureReason::BodyMismatch => "body_mismatch",
            FailureReason::Blocked => "blocked",
            FailureReason::Request => "request",
        }
    }

    /// The run status a failure of this kind is reported as.
    pub fn status(self) -> RunStatus {
        match self {
            FailureReason::Timeout => RunStatus::Timeout,
            FailureReason::StatusMismatch | FailureReason::BodyMismatch => RunStatus::Fail,
            FailureReason::Dns
            | FailureReason::Connect
            | FailureReason::Tls
            | FailureReason::Blocked
            | FailureReason::Request => RunStatus::Error,
        }
    }
}

/// The result of one run, as stored in ClickHouse and summarised in Postgres.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub failure_reason: Option<FailureReason>,
    pub latency_ms: u32,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    /// Attempts made: 1, plus the check's retries that were used.
    pub attempts: u8,
}

impl RunOutcome {
    /// Judges a response that arrived: status code first, then the body.
    pub fn judge(
        started_at: DateTime<Utc>,
        latency_ms: u32,
        status_code: u16,
        expected_status: u16,
        body_contains: Option<&str>,
        body: &[u8],
    ) -> RunOutcome {
        let failure = if status_code != expected_status {
            Some((
                FailureReason::StatusMismatch,
                format!("expected status {expected_status}, got {status_code}"),
            ))
        } else if let Some(needle) = body_contains {
            (!contains(body, needle.as_bytes())).then(|| {
                (
                    FailureReason::BodyMismatch,
                    format!("body does not contain {needle:?}"),
                )
            })
        } else {
            None
        };
        match failure {
            None => RunOutcome {
                status: RunStatus::Success,
                failure_reason: None,
                latency_ms,
                status_code: Some(status_code),
                error: None,
                started_at,
                attempts: 1,
            },
            Some((reason, error)) => RunOutcome {
                status: reason.status(),
                failure_reason: Some(reason),
                latency_ms,
                status_code: Some(status_code),
                error: Some(error),
                started_at,
                attempts: 1,
            },
        }
    }

    /// A run that got no usable response.
    pub fn failed(
        started_at: DateTime<Utc>,
        latency_ms: u32,
        reason: FailureReason,
        error: String,
    ) -> RunOutcome {
        RunOutcome {
            status: reason.status(),
            failure_reason: Some(reason),
            latency_ms,
            status_code: None,
            error: Some(error),
            started_at,
            attempts: 1,
        }
    }
}

/// Substring search in linear time (`memmem`), whatever the input: a body
/// of `aaaa...` searched for `aaa...b` must not cost length times length.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(code: u16, contains: Option<&str>, body: &str) -> RunOutcome {
        RunOutcome::judge(Utc::now(), 5, code, 200, contains, body.as_bytes())
    }

    #[test]
    fn expected_status_and_body_is_success() {
        let out = judge(200, Some("ok"), "all ok here");
        assert_eq!(out.status, RunStatus::Success);
        assert_eq!(out.failure_reason, None);
        assert_eq!(out.status_code, Some(200));
    }

    #[test]
    fn wrong_status_is_a_fail_with_status_mismatch() {
        let out = judge(500, None, "");
        assert_eq!(out.status, RunStatus::Fail);
        assert_eq!(out.failure_reason, Some(FailureReason::StatusMismatch));
        assert!(out.error.unwrap().contains("500"));
    }

    #[test]
    fn missing_text_is_a_fail_with_body_mismatch() {
        let out = judge(200, Some("healthy"), "degraded");
        assert_eq!(out.status, RunStatus::Fail);
        assert_eq!(out.failure_reason, Some(FailureReason::BodyMismatch));
    }

    #[test]
    fn body_search_finds_text_at_the_start_middle_and_end() {
        assert!(contains(b"needle in hay", b"needle"));
        assert!(contains(b"hay needle hay", b"needle"));
        assert!(contains(b"hay needle", b"needle"));
        assert!(contains(b"anything", b""));
        assert!(!contains(b"hay", b"needle"));
        assert!(!contains(b"needl", b"needle"));
    }

    #[test]
    fn body_search_stays_fast_on_adversarial_input() {
        // A 16 MiB body of 'a' and a 4 KiB needle of 'a's ending in 'b':
        // about 7 * 10^10 byte comparisons for a naive window search.
        let body = vec![b'a'; 16 * 1024 * 1024];
        let mut needle = vec![b'a'; 4095];
        needle.push(b'b');
        let started = std::time::Instant::now();
        assert!(!contains(&body, &needle));
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_millis(300), "{took:?}");
    }

    #[test]
    fn transport_failures_map_to_the_original_statuses() {
        assert_eq!(FailureReason::Timeout.status(), RunStatus::Timeout);
        assert_eq!(FailureReason::Dns.status(), RunStatus::Error);
        assert_eq!(FailureReason::Tls.status(), RunStatus::Error);
        assert_eq!(FailureReason::Connect.status(), RunStatus::Error);
    }
}
