//! HTTP check execution with reqwest.
//!
//! One [`Checker`] (and so one reqwest client) per worker, but no
//! connection is reused between runs: a pooled keep-alive connection could
//! hide a dead listener, and real monitors measure a fresh connect each
//! time. `timeout_ms` bounds the whole run, body included; redirects are
//! followed up to 10 hops. The body is read up to `RESPONSE_BODY_LIMIT`
//! bytes and no further, whatever the check: a longer (or endless) body is
//! not an error, the run is judged on its first bytes. The target policy
//! (`TARGET_POLICY`) is enforced on every address connected to, and proxy
//! variables (`HTTP_PROXY` and friends) are ignored: a proxy would connect
//! on our behalf to addresses the policy never sees.

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use pulse_core::policy::TargetPolicy;
use pulse_core::{FailureReason, RunOutcome};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

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
    /// What the response must satisfy.
    pub expect: pulse_core::run::Expectations<'a>,
}

/// Root certificates trusted beside the system store and the built-in
/// webpki roots: `EXTRA_CA_FILE`, for intranet targets signed by an
/// internal CA.
#[derive(Clone, Default)]
pub struct ExtraRoots(Vec<reqwest::Certificate>);

/// Why `EXTRA_CA_FILE` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not PEM certificates: {source}")]
    Parse {
        path: String,
        source: reqwest::Error,
    },
    #[error("{path}: no PEM certificate in it")]
    Empty { path: String },
}

impl fmt::Debug for ExtraRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExtraRoots({} certificates)", self.0.len())
    }
}

impl ExtraRoots {
    /// Every certificate of a PEM file (one or more `CERTIFICATE` blocks).
    pub fn from_pem_file(path: &std::path::Path) -> Result<ExtraRoots, CaFileError> {
        let name = || path.display().to_string();
        let pem = std::fs::read(path).map_err(|source| CaFileError::Read {
            path: name(),
            source,
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| CaFileError::Parse {
                path: name(),
                source,
            })?;
        if certs.is_empty() {
            return Err(CaFileError::Empty { path: name() });
        }
        Ok(ExtraRoots(certs))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds these roots to a client builder.
    pub fn trust_in(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        self.0
            .iter()
            .fold(builder, |b, cert| b.add_root_certificate(cert.clone()))
    }
}

/// A response as read: status, headers, and the body up to the cap.
struct Answer {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

#[derive(Clone)]
pub struct Checker {
    client: reqwest::Client,
    body_limit: usize,
    policy: TargetPolicy,
}

/// A connection the target policy refuses: the error the resolver and the
/// redirect policy give, found again in a reqwest error's causes by
/// [`is_blocked`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked(pub String);

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Blocked {}

/// Whether the target policy refused the connection behind `e`.
pub fn is_blocked(e: &(dyn Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<Blocked>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// A reqwest client builder that enforces `policy` on every address it
/// connects to: names through a resolver that drops refused addresses,
/// IP literals on every redirect hop (and, by the caller, on the first URL).
/// It never uses a proxy, whatever the environment says.
pub fn guarded_client(policy: TargetPolicy, max_redirects: usize) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(PolicyResolver(policy)))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max_redirects {
                attempt.error(format!("more than {max_redirects} redirects"))
            } else if let Some(why) = policy.blocks_url(attempt.url()) {
                attempt.error(Blocked(why))
            } else {
                attempt.follow()
            }
        }))
}

/// Resolves names with the system resolver, keeping only the addresses the
/// policy allows; if none is left, resolution fails with the reason.
struct PolicyResolver(TargetPolicy);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| match policy.blocks(a.ip()) {
                    Some(why) => {
                        refused = Some(format!(
                            "blocked by target policy: {host} resolves to {} ({why})",
                            a.ip()
                        ));
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty() {
                return Err(match refused {
                    Some(why) => Blocked(why).into(),
                    None => format!("{host} has no address").into(),
                });
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

impl Checker {
    /// A checker reading bodies up to `body_limit` bytes, connecting where
    /// `policy` allows, trusting `roots` beside the system and webpki roots.
    pub fn new(
        body_limit: usize,
        policy: TargetPolicy,
        roots: &ExtraRoots,
    ) -> Result<Checker, reqwest::Error> {
        let client = roots
            .trust_in(guarded_client(policy, MAX_REDIRECTS))
            .pool_max_idle_per_host(0)
            .user_agent(concat!("pulse/", env!("CARGO_PKG_VERSION")))
            .tcp_nodelay(true)
            .build()?;
        Ok(Checker {
            client,
            body_limit,
            policy,
        })
    }

    /// Makes the request and judges the answer. Never fails: whatever goes
    /// wrong with the target is part of the outcome.
    pub async fn run(&self, probe: &Probe<'_>) -> RunOutcome {
        let started_at = Utc::now();
        if let Some(why) = reqwest::Url::parse(probe.url)
            .ok()
            .and_then(|u| self.policy.blocks_url(&u))
        {
            return RunOutcome::failed(started_at, 0, FailureReason::Blocked, why);
        }
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
            Ok(Ok(answer)) => {
                let response = pulse_core::assertion::Response {
                    status: answer.status,
                    headers: &answer.headers,
                    body: &answer.body,
                    latency_ms,
                };
                let mut outcome = RunOutcome::judge(started_at, &response, &probe.expect);
                if !outcome.status.is_up() {
                    outcome.excerpt = Some(pulse_core::run::excerpt(
                        answer.status,
                        &answer.reason,
                        &answer.headers,
                        &answer.body,
                    ));
                }
                outcome
            }
        }
    }

    async fn fetch(&self, probe: &Probe<'_>) -> Result<Answer, reqwest::Error> {
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
        let status = resp.status();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        // Read up to the cap and stop there: the response is dropped with
        // its connection. Keep the whole body only when judging needs it;
        // otherwise its start, for a failed run's excerpt.
        let keep = if probe.expect.needs_body() {
            self.body_limit
        } else {
            pulse_core::run::EXCERPT_BODY_BYTES.min(self.body_limit)
        };
        let mut body = Vec::new();
        let mut read = 0usize;
        while read < self.body_limit {
            let Some(chunk) = resp.chunk().await? else {
                break;
            };
            let take = chunk.len().min(self.body_limit - read);
            let room = keep.saturating_sub(body.len()).min(take);
            body.extend_from_slice(&chunk[..room]);
            read += take;
        }
        Ok(Answer {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or_default().to_string(),
            headers,
            body,
        })
    }
}

/// An error and all its causes, joined by ": ", with the userinfo of any
/// URL in them (reqwest names the URL) replaced by `***`.
pub fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    pulse_core::redact::redact_text(&text)
}

/// Names what broke, from reqwest's error and its causes.
fn classify(e: &reqwest::Error) -> (FailureReason, String) {
    let text = error_chain(e);
    let lower = text.to_ascii_lowercase();
    let reason = if is_blocked(e) {
        FailureReason::Blocked
    } else if e.is_timeout() {
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
