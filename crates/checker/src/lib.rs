//! HTTP check execution with reqwest.
//!
//! One [`Checker`] (and so one reqwest client) per worker, but no
//! connection is reused between runs: a pooled keep-alive connection could
//! hide a dead listener, and real monitors measure a fresh connect each
//! time. `timeout_ms` bounds the whole run, body included; redirects are
//! followed up to 10 hops; the body is read up to a cap.

use std::collections::BTreeMap;
use std::error::Error as _;
use std::time::{Duration, Instant};

use chrono::Utc;
use pulse_core::{FailureReason, RunOutcome};

/// Redirect hops followed before a run counts as an error.
pub const MAX_REDIRECTS: usize = 10;
/// Default cap on the response body read for `body_contains`.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// One request to make, borrowed from the check.
pub struct Probe<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a BTreeMap<String, String>,
    pub body: Option<&'a str>,
    pub timeout: Duration,
    pub expected_status: u16,
    pub body_contains: Option<&'a str>,
}

#[derive(Clone)]
pub struct Checker {
    client: reqwest::Client,
    body_limit: usize,
}

impl Checker {
    pub fn new(body_limit: usize) -> Result<Checker, reqwest::Error> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
            .user_agent(concat!("pulse/", env!("CARGO_PKG_VERSION")))
            .tcp_nodelay(true)
            .build()?;
        Ok(Checker { client, body_limit })
    }

    /// Makes the request and judges the answer. Never fails: whatever goes
    /// wrong with the target is part of the outcome.
    pub async fn run(&self, probe: &Probe<'_>) -> RunOutcome {
        let started_at = Utc::now();
        let clock = Instant::now();
        let elapsed_ms = |c: &Instant| c.elapsed().as_millis().min(u32::MAX as u128) as u32;
        let attempt = tokio::time::timeout(probe.timeout, self.fetch(probe)).await;
        let latency_ms = elapsed_ms(&clock);
        match attempt {
            Err(_) => RunOutcome::failed(
                started_at,
                latency_ms,
                FailureReason::Timeout,
                format!(
                    "no complete response within {} ms",
                    probe.timeout.as_millis()
                ),
            ),
            Ok(Err(e)) => {
                let (reason, text) = classify(&e);
                RunOutcome::failed(started_at, latency_ms, reason, text)
            }
            Ok(Ok((code, body))) => RunOutcome::judge(
                started_at,
                latency_ms,
                code,
                probe.expected_status,
                probe.body_contains,
                &body,
            ),
        }
    }

    async fn fetch(&self, probe: &Probe<'_>) -> Result<(u16, Vec<u8>), reqwest::Error> {
        let method =
            reqwest::Method::from_bytes(probe.method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut req = self
            .client
            .request(method, probe.url)
            .timeout(probe.timeout);
        for (name, value) in probe.headers {
            req = req.header(name, value);
        }
        if let Some(body) = probe.body {
            req = req.body(body.to_string());
        }
        let mut resp = req.send().await?;
        let code = resp.status().as_u16();
        let mut body = Vec::new();
        // Read only what `body_contains` needs, up to the cap.
        if probe.body_contains.is_some() {
            while let Some(chunk) = resp.chunk().await? {
                let room = self.body_limit.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= self.body_limit {
                    break;
                }
            }
        } else {
            while resp.chunk().await?.is_some() {}
        }
        Ok((code, body))
    }
}

/// Names what broke, from reqwest's error and its causes.
fn classify(e: &reqwest::Error) -> (FailureReason, String) {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    let lower = text.to_ascii_lowercase();
    let reason = if e.is_timeout() {
        FailureReason::Timeout
    } else if lower.contains("dns error") || lower.contains("failed to lookup address") {
        FailureReason::Dns
    } else if lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("handshake")
        || lower.contains("peer sent")
    {
        FailureReason::Tls
    } else if e.is_connect() {
        FailureReason::Connect
    } else {
        FailureReason::Request
    };
    (reason, text)
}
