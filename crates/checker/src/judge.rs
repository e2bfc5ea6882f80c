//! Judging a response off the async threads. Assertions with a JSONPath or
//! a regex can cost real CPU on a large or deeply nested body, and a worker
//! thread busy with them would stall every other run, the lease renewals and
//! `/health`. Such runs are judged on a blocking thread within a time
//! budget; over it, the run is an `error` that says so.

use std::time::Duration;

use chrono::{DateTime, Utc};
use pulse_core::assertion::{Assertion, Comparison, Response, Source};
use pulse_core::run::Expectations;
use pulse_core::{FailureReason, RunOutcome};

/// Most time judging one response may take.
pub const JUDGE_BUDGET: Duration = Duration::from_secs(2);

/// What a response is judged on, owned so it can move to another thread.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub latency_ms: u32,
}

/// Whether judging may cost more than a few comparisons.
fn is_costly(assertions: &[Assertion]) -> bool {
    assertions.iter().any(|a| {
        a.source == Source::JsonBody
            || matches!(a.comparison, Comparison::Matches | Comparison::NotMatches)
    })
}

/// Judges `answer` against `expect`: inline when that is cheap, otherwise on
/// a blocking thread within `budget`. Hands the answer back for the excerpt.
pub async fn judge(
    started_at: DateTime<Utc>,
    answer: Answer,
    expect: &Expectations<'_>,
    budget: Duration,
) -> (RunOutcome, Answer) {
    if !is_costly(expect.assertions) {
        let outcome = RunOutcome::judge(started_at, &response(&answer), expect);
        return (outcome, answer);
    }
    let latency_ms = answer.latency_ms;
    let owned = (
        expect.expected_status,
        expect.body_contains.map(str::to_owned),
        expect.assertions.to_vec(),
        expect.degraded_ms,
        expect.max_response_ms,
    );
    let task = tokio::task::spawn_blocking(move || {
        let (expected_status, body_contains, assertions, degraded_ms, max_response_ms) = owned;
        let expect = Expectations {
            expected_status,
            body_contains: body_contains.as_deref(),
            assertions: &assertions,
            degraded_ms,
            max_response_ms,
        };
        let outcome = RunOutcome::judge(started_at, &response(&answer), &expect);
        (outcome, answer)
    });
    match tokio::time::timeout(budget, task).await {
        Ok(Ok(judged)) => judged,
        Ok(Err(_)) => (
            RunOutcome::failed(
                started_at,
                latency_ms,
                FailureReason::Request,
                "judging the response failed".into(),
            ),
            Answer::empty(latency_ms),
        ),
        Err(_) => (
            RunOutcome::failed(
                started_at,
                latency_ms,
                FailureReason::Request,
                format!(
                    "judging the assertions took over {} ms, the budget per run; \
                     use a simpler JSONPath or regex",
                    budget.as_millis()
                ),
            ),
            Answer::empty(latency_ms),
        ),
    }
}

fn response(a: &Answer) -> Response<'_> {
    Response {
        status: a.status,
        headers: &a.headers,
        body: &a.body,
        latency_ms: a.latency_ms,
    }
}

impl Answer {
    fn empty(latency_ms: u32) -> Answer {
        Answer {
            status: 0,
            headers: Vec::new(),
            body: Vec::new(),
            latency_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_assertion(path: &str) -> Assertion {
        serde_json::from_value(serde_json::json!({
            "source": "json_body", "property": path, "comparison": "exists"
        }))
        .unwrap()
    }

    fn answer(body: &str) -> Answer {
        Answer {
            status: 200,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
            latency_ms: 3,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn costly_judging_leaves_the_async_thread_free_and_obeys_the_budget() {
        // On a one-thread runtime, a ticker only ticks while the judging is
        // elsewhere.
        let assertions = vec![json_assertion("$..*")];
        let expect = Expectations {
            expected_status: Some(200),
            body_contains: None,
            assertions: &assertions,
            degraded_ms: None,
            max_response_ms: None,
        };
        let mut doc = String::new();
        for _ in 0..100 {
            doc.push_str(&format!("{{\"w\":[{}],\"n\":", vec!["1"; 20_000].join(",")));
        }
        doc.push_str(&format!("null{}", "}".repeat(100)));
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        let (outcome, _) = judge(Utc::now(), answer(&doc), &expect, Duration::from_millis(1)).await;
        ticker.abort();
        assert_eq!(outcome.failure_reason, Some(FailureReason::Request));
        let error = outcome.error.unwrap();
        assert!(error.contains("budget"), "{error}");
        // Judged within budget, the same check passes.
        let (outcome, back) = judge(Utc::now(), answer(r#"{"a": 1}"#), &expect, JUDGE_BUDGET).await;
        assert!(outcome.status.is_up(), "{:?}", outcome.error);
        assert_eq!(back.body, br#"{"a": 1}"#);
        assert!(ticks.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    }
}
