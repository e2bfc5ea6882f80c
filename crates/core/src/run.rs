//! What one execution of a check produced, and how it is judged.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::assertion::{evaluate, first_failure, Assertion, AssertionResult, Response, Source};

/// The original design's four run statuses, and `missed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type))]
#[cfg_attr(feature = "sqlx", sqlx(type_name = "text", rename_all = "lowercase"))]
pub enum RunStatus {
    /// Expected status code and body.
    Success,
    /// Everything as expected, but slower than the check's `degraded_ms`.
    /// Counts as up: it opens no incident.
    Degraded,
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
            RunStatus::Degraded => "degraded",
            RunStatus::Fail => "fail",
            RunStatus::Timeout => "timeout",
            RunStatus::Error => "error",
            RunStatus::Missed => "missed",
        }
    }

    pub fn is_success(self) -> bool {
        self == RunStatus::Success
    }

    /// Whether the target was up: a success, or a degraded (slow) success.
    pub fn is_up(self) -> bool {
        matches!(self, RunStatus::Success | RunStatus::Degraded)
    }

    /// Every status, as stored and shown.
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Success,
        RunStatus::Degraded,
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
    /// An assertion failed; the run's error names the first one.
    Assertion,
    /// Slower than the check's `max_response_ms`.
    Slow,
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
            FailureReason::Assertion => "assertion",
            FailureReason::Slow => "slow",
            FailureReason::Blocked => "blocked",
            FailureReason::Request => "request",
        }
    }

    /// The run status a failure of this kind is reported as.
    pub fn status(self) -> RunStatus {
        match self {
            FailureReason::Timeout => RunStatus::Timeout,
            FailureReason::StatusMismatch
            | FailureReason::BodyMismatch
            | FailureReason::Assertion
            | FailureReason::Slow => RunStatus::Fail,
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
    /// Every assertion's outcome, in the check's order.
    pub assertions: Vec<AssertionResult>,
    /// For a failed run that got a response: its status line, headers and
    /// the first [`EXCERPT_BODY_BYTES`] of its body.
    pub excerpt: Option<String>,
    /// Where the time went (summed over redirects); they add up to
    /// `latency_ms`. `None` for runs that made no request.
    pub phases: Option<Phases>,
    /// The server's certificate, for HTTPS runs that got one.
    pub certificate: Option<Certificate>,
}

/// What a run records beyond its status: phases, every assertion's
/// outcome, the excerpt of a failed response, the certificate. Stored as one
/// JSON value per run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RunDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phases: Option<Phases>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assertions: Vec<AssertionResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Certificate>,
}

impl RunOutcome {
    pub fn details(&self) -> RunDetails {
        RunDetails {
            phases: self.phases,
            assertions: self.assertions.clone(),
            excerpt: self.excerpt.clone(),
            certificate: self.certificate.clone(),
        }
    }
}

/// A run's time by phase, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Phases {
    /// Resolving the host name.
    pub dns_ms: u32,
    /// The TCP handshake.
    pub connect_ms: u32,
    /// The TLS handshake.
    pub tls_ms: u32,
    /// From the request going out to the first byte of the response.
    pub ttfb_ms: u32,
    /// From the first to the last byte of the response.
    pub download_ms: u32,
}

impl Phases {
    /// Each phase with its name (`dns`, `connect`, `tls`, `ttfb`,
    /// `download`), in order.
    pub fn by_name(&self) -> [(&'static str, u32); 5] {
        [
            ("dns", self.dns_ms),
            ("connect", self.connect_ms),
            ("tls", self.tls_ms),
            ("ttfb", self.ttfb_ms),
            ("download", self.download_ms),
        ]
    }

    pub fn total_ms(&self) -> u32 {
        self.dns_ms + self.connect_ms + self.tls_ms + self.ttfb_ms + self.download_ms
    }
}

/// What a run saw of the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    #[serde(serialize_with = "crate::time::ms")]
    pub not_after: DateTime<Utc>,
    /// Whole days from the run to `not_after` (negative once expired).
    pub days_left: i64,
    pub issuer: String,
    pub subject: String,
    /// Subject alternative names (DNS names and IP addresses).
    pub sans: Vec<String>,
    /// The earliest `not_after` of the whole chain the server sent.
    #[serde(serialize_with = "crate::time::ms")]
    pub chain_not_after: DateTime<Utc>,
    /// SHA-256 of the leaf certificate, hex.
    pub fingerprint: String,
}

/// Body bytes kept in a failed run's excerpt.
pub const EXCERPT_BODY_BYTES: usize = 4096;

/// What a response must satisfy to pass.
#[derive(Debug, Clone, Copy)]
pub struct Expectations<'a> {
    /// The HTTP status the response must have (`None`: TCP and DNS checks).
    pub expected_status: Option<u16>,
    pub body_contains: Option<&'a str>,
    pub assertions: &'a [Assertion],
    pub degraded_ms: Option<i32>,
    pub max_response_ms: Option<i32>,
}

impl<'a> Expectations<'a> {
    /// Only a status code (and maybe a text), the original design's rules.
    pub fn status(expected_status: u16, body_contains: Option<&'a str>) -> Expectations<'a> {
        Expectations {
            expected_status: Some(expected_status),
            body_contains,
            assertions: &[],
            degraded_ms: None,
            max_response_ms: None,
        }
    }

    /// Whether judging needs the whole body read (up to the cap), not just
    /// the excerpt.
    pub fn needs_body(&self) -> bool {
        self.body_contains.is_some()
            || self
                .assertions
                .iter()
                .any(|a| matches!(a.source, Source::JsonBody | Source::TextBody))
    }
}

/// A response's status line, headers and the start of its body, as text.
pub fn excerpt(status: u16, reason: &str, headers: &[(String, String)], body: &[u8]) -> String {
    let mut text = format!("HTTP {status} {reason}\n");
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\n"));
    }
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(
        &body[..body.len().min(EXCERPT_BODY_BYTES)],
    ));
    text
}

impl RunOutcome {
    /// Judges a response that arrived: status code, then the body text,
    /// then every assertion, then the time it took.
    pub fn judge(
        started_at: DateTime<Utc>,
        response: &Response<'_>,
        expect: &Expectations<'_>,
    ) -> RunOutcome {
        let results = evaluate(expect.assertions, response);
        let latency_ms = response.latency_ms;
        let failure =
            if let Some(expected) = expect.expected_status.filter(|e| *e != response.status) {
                Some((
                    FailureReason::StatusMismatch,
                    format!("expected status {expected}, got {}", response.status),
                ))
            } else if let Some(needle) = expect.body_contains {
                (!contains(response.body, needle.as_bytes())).then(|| {
                    (
                        FailureReason::BodyMismatch,
                        format!("body does not contain {needle:?}"),
                    )
                })
            } else {
                None
            };
        let failure = failure
            .or_else(|| {
                first_failure(expect.assertions, &results).map(|e| (FailureReason::Assertion, e))
            })
            .or_else(|| {
                let max = expect.max_response_ms?;
                (i64::from(latency_ms) > i64::from(max)).then(|| {
                    (
                        FailureReason::Slow,
                        format!("took {latency_ms} ms, over max_response_ms {max}"),
                    )
                })
            });
        let (status, reason, error) = match failure {
            Some((reason, error)) => (reason.status(), Some(reason), Some(error)),
            None => match expect.degraded_ms {
                Some(d) if i64::from(latency_ms) > i64::from(d) => (
                    RunStatus::Degraded,
                    None,
                    Some(format!("took {latency_ms} ms, over degraded_ms {d}")),
                ),
                _ => (RunStatus::Success, None, None),
            },
        };
        RunOutcome {
            status,
            failure_reason: reason,
            latency_ms,
            status_code: Some(response.status),
            error,
            started_at,
            attempts: 1,
            assertions: results,
            excerpt: None,
            phases: None,
            certificate: None,
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
            assertions: Vec::new(),
            excerpt: None,
            phases: None,
            certificate: None,
        }
    }
}

/// Whether `needle` occurs in `haystack`, in linear time.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || memchr::memmem::find(haystack, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(code: u16, contains: Option<&str>, body: &str) -> RunOutcome {
        let r = Response {
            status: code,
            headers: &[],
            body: body.as_bytes(),
            latency_ms: 5,
        };
        RunOutcome::judge(Utc::now(), &r, &Expectations::status(200, contains))
    }

    fn with(
        assertions: serde_json::Value,
        latency_ms: u32,
        degraded: Option<i32>,
        max: Option<i32>,
    ) -> RunOutcome {
        let assertions: Vec<Assertion> = serde_json::from_value(assertions).unwrap();
        let headers = vec![("content-type".to_string(), "application/json".to_string())];
        let r = Response {
            status: 200,
            headers: &headers,
            body: br#"{"status": "down"}"#,
            latency_ms,
        };
        let expect = Expectations {
            expected_status: Some(200),
            body_contains: None,
            assertions: &assertions,
            degraded_ms: degraded,
            max_response_ms: max,
        };
        RunOutcome::judge(Utc::now(), &r, &expect)
    }

    #[test]
    fn a_failed_assertion_fails_the_run_naming_it_and_every_result_is_kept() {
        let out = with(
            serde_json::json!([
                {"source": "status_code", "comparison": "equals", "target": "200"},
                {"source": "json_body", "property": "$.status", "comparison": "equals", "target": "ok"}
            ]),
            10,
            None,
            None,
        );
        assert_eq!(out.status, RunStatus::Fail);
        assert_eq!(out.failure_reason, Some(FailureReason::Assertion));
        assert_eq!(
            out.error.as_deref(),
            Some(r#"json_body $.status equals "ok": got "down""#)
        );
        assert_eq!(out.assertions.len(), 2);
        assert!(out.assertions[0].passed);
        assert!(!out.assertions[1].passed);
    }

    #[test]
    fn slow_runs_are_degraded_and_too_slow_ones_fail() {
        let none = serde_json::json!([]);
        assert_eq!(
            with(none.clone(), 100, Some(500), Some(2000)).status,
            RunStatus::Success
        );
        let slow = with(none.clone(), 800, Some(500), Some(2000));
        assert_eq!(slow.status, RunStatus::Degraded);
        assert!(slow.status.is_up());
        assert_eq!(slow.failure_reason, None);
        let too_slow = with(none, 2500, Some(500), Some(2000));
        assert_eq!(too_slow.status, RunStatus::Fail);
        assert_eq!(too_slow.failure_reason, Some(FailureReason::Slow));
    }

    #[test]
    fn an_excerpt_shows_the_status_line_headers_and_the_start_of_the_body() {
        let headers = vec![("x-a".to_string(), "b".to_string())];
        let body = vec![b'z'; 10_000];
        let text = excerpt(503, "Service Unavailable", &headers, &body);
        assert!(text.starts_with("HTTP 503 Service Unavailable\nx-a: b\n\n"));
        assert_eq!(text.matches('z').count(), EXCERPT_BODY_BYTES);
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
